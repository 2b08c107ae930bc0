// Finite-difference checks of every op with a backward, plus forward checks against slow
// reference implementations and small cases worked by hand.

import XCTest
@testable import TensorCore

final class OpGradientTests: XCTestCase {
    var rng = TestRNG(42)

    func testLinear() {
        let w = rng.tensor([5, 7]), b = rng.tensor([5])
        checkGradient("linear", rng.tensor([2, 3, 7])) { linear($0, weight: w, bias: b) }
    }

    func testConv2dStride2() {
        let (o, c, k) = (4, 3, 3)
        let wt = rng.tensor([o, k * k * c]), b = rng.tensor([o])
        checkGradient("conv2d 3x3 s2 p1", rng.tensor([2, 7, 6, c])) { conv2d($0, weight: wt, bias: b, kernel: (k, k), stride: 2, pad: 1) }
    }

    func testConv2dPatchify() {
        let wt = rng.tensor([3, 2 * 2 * 4])
        checkGradient("conv2d k=s=2", rng.tensor([1, 6, 4, 4])) { conv2d($0, weight: wt, kernel: (2, 2), stride: 2, pad: 0) }
    }

    func testDepthwise() {
        let wt = rng.tensor([7, 7, 5]), b = rng.tensor([5])
        checkGradient("depthwise 7x7", rng.tensor([2, 9, 8, 5])) { depthwiseConv2d($0, weight: wt, bias: b, pad: 3) }
        let w3 = rng.tensor([3, 3, 4])
        checkGradient("depthwise 3x3", rng.tensor([1, 5, 6, 4])) { depthwiseConv2d($0, weight: w3, pad: 1) }
    }

    func testLayerNorm() {
        let w = rng.tensor([6]), b = rng.tensor([6])
        checkGradient("layerNorm", rng.tensor([3, 4, 6], scale: 2)) { layerNorm($0, weight: w, bias: b, eps: 1e-6) }
    }

    func testChannelAffine() {
        let s = rng.tensor([4]), t = rng.tensor([4])
        checkGradient("channelAffine", rng.tensor([3, 4])) { channelAffine($0, scale: s, shift: t) }
    }

    func testActivations() {
        checkGradient("gelu", rng.tensor([50], scale: 3)) { gelu($0) }
        // Keep relu's inputs away from its kink.
        let x = Tensor(shape: [40], values: (0..<40).map { i in (i % 2 == 0 ? 1 : -1) * (0.2 + Float(i) * 0.03) })
        checkGradient("relu", x) { relu($0) }
        checkGradient("softmax", rng.tensor([3, 9], scale: 2)) { softmax($0) }
    }

    func testElementwise() {
        let other = rng.tensor([2, 3, 4])
        checkGradient("add (first)", rng.tensor([2, 3, 4])) { add($0, other) }
        checkGradient("add (both the same)", rng.tensor([2, 3, 4])) { add($0, $0) }
        let block = rng.tensor([3, 4])
        checkGradient("addBroadcast (big)", rng.tensor([2, 3, 4])) { addBroadcast($0, block) }
        let big = rng.tensor([5, 3, 4])
        checkGradient("addBroadcast (block)", rng.tensor([3, 4])) { addBroadcast(big, $0) }
        checkGradient("scale", rng.tensor([7])) { scale($0, -1.5) }
        checkGradient("reshape", rng.tensor([2, 6])) { linear($0.reshaped([3, 4]), weight: Tensor(shape: [2, 4], values: (0..<8).map(Float.init))) }
    }

    func testGatherRowsWithDuplicatesAndZeros() {
        let plan = GatherPlan(index: [3, 0, -1, 3, 2, 2, 1, -1, 0], sourceRows: 4)
        checkGradient("gatherRows", rng.tensor([4, 5])) { gatherRows($0, plan: plan, outShape: [9, 5]) }
    }

    func testSliceConcatPool() {
        checkGradient("sliceLastDim", rng.tensor([3, 8])) { sliceLastDim($0, 2..<6) }
        let other = rng.tensor([3, 2])
        checkGradient("concatLastDim", rng.tensor([3, 5])) { concatLastDim([$0, other, $0]) }
        checkGradient("globalAveragePool", rng.tensor([2, 3, 4, 5])) { globalAveragePool($0) }
    }

    func testAttentionFusedQKVWithBiasAndMask() {
        let (b, l, heads, d) = (4, 5, 2, 3)
        let perHead = rng.tensor([heads, l, l]), perGroup = rng.tensor([2, l, l], scale: 3)
        checkGradient("attention qkv", rng.tensor([b, l, 3 * heads * d])) { qkv in
            attention(q: AttentionOperand(qkv, offset: 0), k: AttentionOperand(qkv, offset: heads * d),
                      v: AttentionOperand(qkv, offset: 2 * heads * d), heads: heads, keyWidth: d, valueWidth: d,
                      scale: 0.5, bias: AttentionBias(perHead: perHead, perGroup: perGroup))
        }
    }

    func testAttentionSeparateQueryAndLogits() {
        let (b, lq, lk, heads, d) = (2, 3, 6, 2, 4)
        let kv = rng.tensor([b, lk, 2 * heads * d])
        let q = rng.tensor([b, lq, heads * d])
        let logits = rng.tensor([b, heads, lq, lk])
        func run(_ q: Tensor, _ kv: Tensor, _ logits: Tensor) -> Tensor {
            attention(q: AttentionOperand(q), k: AttentionOperand(kv, offset: 0), v: AttentionOperand(kv, offset: heads * d),
                      heads: heads, keyWidth: d, valueWidth: d, scale: 0.35, logits: logits)
        }
        checkGradient("attention wrt q", q) { run($0, kv, logits) }
        checkGradient("attention wrt kv", kv) { run(q, $0, logits) }
        checkGradient("attention wrt logits", logits) { run(q, kv, $0) }
    }

    // MARK: forward references

    func testGemmMatchesReference() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (m, n, k) = (5, 7, 9)
            let a = rng.tensor([m * k + 3]), bm = rng.tensor([k * n + 2])
            let c1 = Tensor(shape: [m * n], repeating: 0.5), c2 = Tensor(shape: [m * n], repeating: 0.5)
            let lda = ta ? m : k, ldb = tb ? k : n
            gemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.7, a: a.data, lda: lda, b: bm.data, ldb: ldb, beta: 0.3, c: c1.data, ldc: n)
            referenceGemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.7, a: a.data, lda: lda, b: bm.data, ldb: ldb, beta: 0.3, c: c2.data, ldc: n)
            for i in 0..<m * n { XCTAssertEqual(c1.data[i], c2.data[i], accuracy: 1e-5) }
        }
    }

    func testConv2dMatchesDirectConvolution() {
        let (n, h, w, c, o, k, s, p) = (2, 9, 8, 3, 4, 3, 2, 1)
        let x = rng.tensor([n, h, w, c])
        let torchWeight = (0..<(o * c * k * k)).map { _ in rng.uniform() }
        let bias = rng.tensor([o])
        let y = conv2d(x, weight: convWeightOHWI(torchWeight, o: o, c: c, kh: k, kw: k), bias: bias, kernel: (k, k), stride: s, pad: p)
        let ho = convOutputSize(h, kernel: k, stride: s, pad: p), wo = convOutputSize(w, kernel: k, stride: s, pad: p)
        XCTAssertEqual(y.shape, [n, ho, wo, o])
        for b in 0..<n { for oy in 0..<ho { for ox in 0..<wo { for oc in 0..<o {
            var acc = Double(bias.data[oc])
            for ic in 0..<c { for ky in 0..<k { for kx in 0..<k {
                let iy = oy * s + ky - p, ix = ox * s + kx - p
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                acc += Double(x.data[((b * h + iy) * w + ix) * c + ic]) * Double(torchWeight[((oc * c + ic) * k + ky) * k + kx])
            } } }
            XCTAssertEqual(Double(y.data[((b * ho + oy) * wo + ox) * o + oc]), acc, accuracy: 1e-4)
        } } } }
    }

    func testDepthwiseMatchesDirectConvolution() {
        let (h, w, c, k, p) = (6, 7, 3, 7, 3)
        let x = rng.tensor([1, h, w, c])
        let torchWeight = (0..<(c * k * k)).map { _ in rng.uniform() }
        let y = depthwiseConv2d(x, weight: depthwiseWeightHWC(torchWeight, c: c, kh: k, kw: k), pad: p)
        XCTAssertEqual(y.shape, [1, h, w, c])
        for oy in 0..<h { for ox in 0..<w { for ch in 0..<c {
            var acc = 0.0
            for ky in 0..<k { for kx in 0..<k {
                let iy = oy + ky - p, ix = ox + kx - p
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                acc += Double(x.data[(iy * w + ix) * c + ch]) * Double(torchWeight[(ch * k + ky) * k + kx])
            } }
            XCTAssertEqual(Double(y.data[(oy * w + ox) * c + ch]), acc, accuracy: 1e-4)
        } } }
    }

    func testAttentionMatchesNaive() {
        let (b, l, heads, d) = (2, 4, 2, 3)
        let qkv = rng.tensor([b, l, 3 * heads * d])
        let y = attention(q: AttentionOperand(qkv, offset: 0), k: AttentionOperand(qkv, offset: heads * d),
                          v: AttentionOperand(qkv, offset: 2 * heads * d), heads: heads, keyWidth: d, valueWidth: d, scale: 0.6)
        let width = 3 * heads * d
        func at(_ s: Int, _ i: Int, _ col: Int) -> Double { Double(qkv.data[(s * l + i) * width + col]) }
        for s in 0..<b { for h in 0..<heads { for i in 0..<l {
            var logits = [Double](repeating: 0, count: l)
            for j in 0..<l { for e in 0..<d { logits[j] += 0.6 * at(s, i, h * d + e) * at(s, j, heads * d + h * d + e) } }
            let mx = logits.max()!
            let ex = logits.map { Foundation.exp($0 - mx) }
            let z = ex.reduce(0, +)
            for e in 0..<d {
                var o = 0.0
                for j in 0..<l { o += ex[j] / z * at(s, j, 2 * heads * d + h * d + e) }
                XCTAssertEqual(Double(y.data[(s * l + i) * heads * d + h * d + e]), o, accuracy: 1e-5)
            }
        } } }
    }

    // MARK: small cases by hand

    func testHandWorkedCases() {
        // y = relu(2x - 1) summed: gradient 2 where 2x > 1, else 0.
        let x = Tensor(shape: [4], values: [0, 0.25, 1, 3]).requiringGrad()
        let y = relu(add(scale(x, 2), Tensor(shape: [4], repeating: -1)))
        XCTAssertEqual(y.values, [0, 0, 1, 5])
        Tape.backward(y, seed: Tensor(shape: [4], repeating: 1))
        XCTAssertEqual(Tape.gradient(of: x).values, [0, 0, 2, 2])
        // Global average pool of a 2x2 map spreads a gradient of 1 as 1/4 to each pixel.
        let m = Tensor(shape: [1, 2, 2, 1], values: [1, 2, 3, 4]).requiringGrad()
        let p = globalAveragePool(m)
        XCTAssertEqual(p.values, [2.5])
        Tape.backward(p, seed: Tensor(shape: [1, 1], values: [1]))
        XCTAssertEqual(Tape.gradient(of: m).values, [0.25, 0.25, 0.25, 0.25])
        // LayerNorm of [1, 3] is [-1, 1] (eps 0).
        let n = layerNorm(Tensor(shape: [1, 2], values: [1, 3]), weight: Tensor(shape: [2], values: [1, 1]),
                          bias: Tensor(shape: [2], values: [0, 0]), eps: 0)
        XCTAssertEqual(n.values[0], -1, accuracy: 1e-6)
        XCTAssertEqual(n.values[1], 1, accuracy: 1e-6)
        // GELU(0) = 0, GELU(1) = Phi(1) = 0.8413447.
        XCTAssertEqual(gelu(Tensor(shape: [2], values: [0, 1])).values[1], 0.8413447, accuracy: 1e-6)
    }

    func testRetainedGraphServesTwoBackwards() {
        let x = rng.tensor([3, 4]).requiringGrad()
        let w = rng.tensor([4, 4])
        let h1 = gelu(linear(x, weight: w))
        let h2 = gelu(linear(h1, weight: w))
        Tape.backward(h1, seed: Tensor(shape: h1.shape, repeating: 1), retainGraph: true)
        let g1 = Tape.gradient(of: x)
        Tape.backward(h2, seed: Tensor(shape: h2.shape, repeating: 1))
        let g2 = Tape.gradient(of: x)
        // Recompute each from a fresh graph and compare.
        let x1 = x.detached().requiringGrad()
        let f1 = gelu(linear(x1, weight: w))
        Tape.backward(f1, seed: Tensor(shape: f1.shape, repeating: 1))
        XCTAssertEqual(Tape.gradient(of: x1).values, g1.values)
        let x2 = x.detached().requiringGrad()
        let f2 = gelu(linear(gelu(linear(x2, weight: w)), weight: w))
        Tape.backward(f2, seed: Tensor(shape: f2.shape, repeating: 1))
        XCTAssertEqual(Tape.gradient(of: x2).values, g2.values)
    }

    /// Gradients meeting at a node are summed into the first one's buffer only when nothing else holds
    /// it. Here `add` hands one gradient to both its inputs, and a's node receives three: if a sum
    /// were written into a shared buffer, b's (or the seed's) values would change and x would get
    /// more than 4. The seed must come back unchanged.
    func testSharedGradientsAreNeverSummedInPlace() {
        let x = Tensor(shape: [3, 50_000], repeating: 0.5).requiringGrad()  // large enough for several chunks
        let a = relu(x), b = relu(x)
        let out = add(add(a, b), add(a, a))
        let seed = Tensor(shape: out.shape, repeating: 1)
        Tape.backward(out, seed: seed)
        let g = Tape.gradient(of: x).values
        XCTAssertEqual(g.count, 150_000)
        XCTAssertTrue(g.allSatisfy { $0 == 4 }, "x's gradient: \(Set(g))")
        XCTAssertTrue(seed.values.allSatisfy { $0 == 1 }, "the seed was written")
    }

    func testResultsDoNotDependOnThreadCount() {
        let x = rng.tensor([2, 16, 16, 8])
        let wt = rng.tensor([7, 7, 8])
        func run() -> ([Float], [Float]) {
            let leaf = x.detached().requiringGrad()
            let y = gelu(depthwiseConv2d(leaf, weight: wt, pad: 3))
            Tape.backward(y, seed: Tensor(shape: y.shape, repeating: 1))
            return (y.values, Tape.gradient(of: leaf).values)
        }
        let before = Threads.count
        Threads.set(1)
        let one = run()
        Threads.set(3)
        let three = run()
        Threads.set(before)
        XCTAssertEqual(one.0, three.0)
        XCTAssertEqual(one.1, three.1)
    }
}
