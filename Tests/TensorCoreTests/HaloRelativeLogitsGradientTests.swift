// Tests of `haloRelativeLogits`: the forward against timm's pad-and-reshape construction done
// literally (`referenceHaloRelativeLogits`), the key bias, a hand-worked index case, the factored
// term's addition (`HaloRelativeTerm.add`) bit for bit against its definition on every kernel, and
// finite-difference gradients with respect to the queries (with and without the key bias, and
// combined with `attention` as the halo block uses it).

import XCTest
@testable import TensorCore

final class HaloRelativeLogitsGradientTests: XCTestCase {
    var rng = TestRNG(7)

    func testForwardMatchesTimmConstruction() {
        for (b, heads, dk, s, wn) in [(3, 2, 4, 3, 7), (2, 1, 5, 7, 13), (1, 3, 2, 2, 2)] {
            let q = rng.tensor([b, s * s, heads * dk])
            let ht = rng.tensor([2 * wn - 1, dk]), wt = rng.tensor([2 * wn - 1, dk])
            let fast = haloRelativeLogits(q, heightTable: ht, widthTable: wt, heads: heads, block: s, window: wn)
            XCTAssertEqual(fast.shape, [b, heads, s * s, wn * wn])
            let slow = referenceHaloRelativeLogits(q, heightTable: ht, widthTable: wt, heads: heads, block: s, window: wn)
            XCTAssertEqual(slow.count, fast.count)
            for i in 0..<slow.count { XCTAssertEqual(fast.data[i], slow[i], accuracy: 1e-5, "S \(s) Wn \(wn) element \(i)") }
        }
    }

    func testHandWorkedIndex() {
        // One head of width 1, q = 1 everywhere: the logit of query (y, x) and key (ky, kx) is
        // heightTable[Wn-1+ky-y] + widthTable[Wn-1+kx-x]; tables hold 100*row and row.
        let (s, wn) = (2, 4)
        let r = 2 * wn - 1
        let ht = Tensor(shape: [r, 1], values: (0..<r).map { Float(100 * $0) })
        let wt = Tensor(shape: [r, 1], values: (0..<r).map { Float($0) })
        let out = haloRelativeLogits(Tensor(shape: [1, s * s, 1], repeating: 1), heightTable: ht, widthTable: wt,
                                     heads: 1, block: s, window: wn)
        // Query (1, 0), key (0, 3): height row 3 + 0 - 1 = 2, width row 3 + 3 - 0 = 6.
        XCTAssertEqual(out.data[(1 * s + 0) * wn * wn + 0 * wn + 3], 206)
        // Query (0, 1), key (3, 0): height row 6, width row 2.
        XCTAssertEqual(out.data[(0 * s + 1) * wn * wn + 3 * wn + 0], 602)
    }

    func testKeyBiasIsAddedPerGroup() {
        let (b, heads, dk, s, wn) = (4, 2, 3, 2, 4)
        let q = rng.tensor([b, s * s, heads * dk])
        let ht = rng.tensor([2 * wn - 1, dk]), wt = rng.tensor([2 * wn - 1, dk])
        let bias = rng.tensor([2, wn * wn], scale: 5)
        let plain = haloRelativeLogits(q, heightTable: ht, widthTable: wt, heads: heads, block: s, window: wn)
        let biased = haloRelativeLogits(q, heightTable: ht, widthTable: wt, heads: heads, block: s, window: wn, keyBias: bias)
        let l = s * s, k = wn * wn
        for blk in 0..<b { for h in 0..<heads { for i in 0..<l { for j in 0..<k {
            let o = ((blk * heads + h) * l + i) * k + j
            XCTAssertEqual(biased.data[o], plain.data[o] + bias.data[(blk % 2) * k + j], accuracy: 1e-5)
        } } } }
    }

    /// `HaloRelativeTerm.add` against the scalar definition, bit for bit, on every kernel: dst += (h + w)
    /// + bias per key, or dst += h + w without a bias, for windows of 1 to 17 (the eight-, four- and
    /// one-wide steps), chunks of rows that start mid-block, and values whose sums round differently
    /// in another order.
    func testTermAddIsTheScalarDefinitionOnEveryKernel() {
        defer { GemmKernel.use(GemmKernel.best) }
        for (heads, s, wn) in [(2, 3, 7), (3, 7, 13), (1, 2, 16), (2, 4, 1), (1, 3, 17), (2, 5, 9)] {
            let b = 3, l = s * s, k = wn * wn, r = 2 * wn - 1
            let coef = Tensor(shape: [b * l * heads, 2 * r], values: (0..<(b * l * heads * 2 * r)).map { _ in
                rng.uniform() * (rng.next() % 2 == 0 ? 1e4 : 1e-3) })
            let bias = Tensor(shape: [2, k], values: (0..<(2 * k)).map { _ in rng.uniform() * 3e3 })
            let start = (0..<(b * heads * l * k)).map { _ in rng.uniform() * 7e3 }
            for keyBias in [nil, bias] {
                let term = HaloRelativeTerm(coefficients: coef, heads: heads, block: s, window: wn, keyBias: keyBias)
                var want = start
                for bh in 0..<(b * heads) {
                    let blk = bh / heads, h = bh % heads
                    for i in 0..<l {
                        let src = ((blk * l + i) * heads + h) * 2 * r, y = i / s, x = i % s
                        for ky in 0..<wn { for kx in 0..<wn {
                            let hv = coef.data[src + wn - 1 - y + ky], wv = coef.data[src + r + wn - 1 - x + kx]
                            let o = (bh * l + i) * k + ky * wn + kx
                            if let keyBias { want[o] += (hv + wv) + keyBias.data[(blk % 2) * k + ky * wn + kx] } else { want[o] += hv + wv }
                        } }
                    }
                }
                for kernel in GemmKernel.runnable {
                    XCTAssertTrue(GemmKernel.use(kernel))
                    var got = start
                    got.withUnsafeMutableBufferPointer { g in
                        for bh in 0..<(b * heads) {
                            // Rows in chunks of 4 (the forward-only attention's query chunks start mid-block).
                            for i0 in stride(from: 0, to: l, by: 4) {
                                term.add(bh: bh, i0: i0, rows: min(4, l - i0), into: g.baseAddress! + (bh * l + i0) * k)
                            }
                        }
                    }
                    let bad = zip(got, want).filter { $0.bitPattern != $1.bitPattern }.count
                    XCTAssertEqual(bad, 0, "\(kernel) heads \(heads) S \(s) Wn \(wn) bias \(keyBias != nil)")
                }
            }
        }
    }

    func testGradientWithRespectToQueries() {
        let (heads, dk, s, wn) = (2, 3, 3, 5)
        let ht = rng.tensor([2 * wn - 1, dk]), wt = rng.tensor([2 * wn - 1, dk])
        let bias = rng.tensor([3, wn * wn])
        checkGradient("haloRelativeLogits", rng.tensor([3, s * s, heads * dk])) {
            haloRelativeLogits($0, heightTable: ht, widthTable: wt, heads: heads, block: s, window: wn)
        }
        checkGradient("haloRelativeLogits with key bias", rng.tensor([3, s * s, heads * dk])) {
            haloRelativeLogits($0, heightTable: ht, widthTable: wt, heads: heads, block: s, window: wn, keyBias: bias)
        }
    }

    func testGradientThroughAttentionWithMask() {
        // The halo block's use: q feeds both q·k and the relative logits; masked keys get -max.
        let (b, heads, dk, s, wn) = (2, 2, 2, 2, 4)
        let ht = rng.tensor([2 * wn - 1, dk]), wt = rng.tensor([2 * wn - 1, dk])
        var maskValues = [Float](repeating: 0, count: wn * wn)
        for j in 0..<wn { maskValues[j] = -Float.greatestFiniteMagnitude }  // first window row outside the map
        let mask = Tensor(shape: [1, wn * wn], values: maskValues)
        let kv = rng.tensor([b, wn * wn, heads * 2 * dk])
        func run(_ q: Tensor) -> Tensor {
            let rel = haloRelativeLogits(q, heightTable: ht, widthTable: wt, heads: heads, block: s, window: wn, keyBias: mask)
            return attention(q: AttentionOperand(q), k: AttentionOperand(kv), v: AttentionOperand(kv, offset: heads * dk),
                             heads: heads, keyWidth: dk, valueWidth: dk, scale: 0.7, logits: rel)
        }
        let q = rng.tensor([b, s * s, heads * dk])
        let y = run(q)
        XCTAssertFalse(y.values.contains { !$0.isFinite })
        checkGradient("attention with halo logits", q) { run($0) }
    }

    func testResultsDoNotDependOnThreadCount() {
        let (heads, dk, s, wn) = (3, 4, 7, 13)
        let q = rng.tensor([5, s * s, heads * dk])
        let ht = rng.tensor([2 * wn - 1, dk]), wt = rng.tensor([2 * wn - 1, dk])
        let seed = rng.tensor([5, heads, s * s, wn * wn])
        func run() -> ([Float], [Float]) {
            let leaf = q.detached().requiringGrad()
            let y = haloRelativeLogits(leaf, heightTable: ht, widthTable: wt, heads: heads, block: s, window: wn)
            Tape.backward(y, seed: seed)
            return (y.values, Tape.gradient(of: leaf).values)
        }
        let before = Threads.count
        Threads.set(1)
        let one = run()
        Threads.set(4)
        let four = run()
        Threads.set(before)
        XCTAssertEqual(one.0, four.0)
        XCTAssertEqual(one.1, four.1)
    }
}
