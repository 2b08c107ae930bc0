// TensorCoreTests: the attention's memory-saving forms give the bits of the stored forms. With
// softmax the backward remakes the weights instead of keeping them (compared with a run that keeps
// them because a recorder is on); HaloNet's relative logits as a factored term (`HaloRelativeTerm`)
// against the stored [B, Hd, L, K] logits of `haloRelativeLogits`, with and without the key mask, for
// softmax and for an activation that keeps its weights; keys and values read through a gather plan
// against gathered ones. Forward and every input gradient, bit for bit.
// Shapes: q [B, L, Hd*Dk], kv [B, K, Hd*(Dk+Dv)], tables [R, Dk], mask [G, K].

import XCTest
@testable import TensorCore

final class AttentionRecomputeTests: XCTestCase {
    private var rng = TestRNG(20261204)

    /// Output and the gradients of q and kv (all seeded with `seed`), with or without a recorder.
    private func run(_ q: Tensor, _ kv: Tensor, _ seed: Tensor, recording: Bool,
                     _ f: (Tensor, Tensor) -> Tensor) -> [[UInt32]] {
        let lq = q.detached().requiringGrad(), lkv = kv.detached().requiringGrad()
        let y = recording ? AttentionRecorder.recording { f(lq, lkv) }.result : f(lq, lkv)
        Tape.backward(y, seed: seed)
        return [bits(y), bits(Tape.gradient(of: lq)), bits(Tape.gradient(of: lkv))]
    }

    func testRemadeWeightsGiveTheBitsOfKeptOnes() {
        // Swin-like: windows with a per-head bias and a per-group (shift) mask; 3 threads split the pairs.
        let before = Threads.count
        defer { Threads.set(before) }
        let (b, l, heads, dk) = (6, 49, 3, 8)
        let q = rng.tensor([b, l, heads * dk]), kv = rng.tensor([b, l, heads * dk * 2]), seed = rng.tensor([b, l, heads * dk])
        let perHead = rng.tensor([heads, l, l]), perGroup = rng.tensor([2, l, l], scale: 3)
        for threads in [1, 3] {
            Threads.set(threads)
            let f = { (q: Tensor, kv: Tensor) in
                attention(q: AttentionOperand(q), k: AttentionOperand(kv), v: AttentionOperand(kv, offset: heads * dk),
                          heads: heads, keyWidth: dk, valueWidth: dk, scale: 0.35,
                          bias: AttentionBias(perHead: perHead, perGroup: perGroup))
            }
            XCTAssertEqual(run(q, kv, seed, recording: false, f), run(q, kv, seed, recording: true, f), "\(threads) threads")
        }
    }

    /// Keys masked with -100 (Swin's shifted windows) get weights below the smallest normal float;
    /// they are stored as +0, so neither the weights nor the output nor any gradient holds a denormal.
    func testMaskedKeysGiveNoDenormalWeightsOrGradients() {
        let (b, l, heads, dk) = (4, 49, 2, 8)
        let q = rng.tensor([b, l, heads * dk]), kv = rng.tensor([b, l, heads * dk * 2]), seed = rng.tensor([b, l, heads * dk])
        // Group 1 masks half of each query's keys, as a shifted window's mask does.
        let mask = Tensor(shape: [2, l, l], values: (0..<(2 * l * l)).map { i in i >= l * l && (i / l + i % l) % 2 == 1 ? -100 : 0 })
        let lq = q.detached().requiringGrad(), lkv = kv.detached().requiringGrad()
        let (y, weights) = AttentionRecorder.recording {
            attention(q: AttentionOperand(lq), k: AttentionOperand(lkv), v: AttentionOperand(lkv, offset: heads * dk),
                      heads: heads, keyWidth: dk, valueWidth: dk, scale: 0.35, bias: AttentionBias(perGroup: mask))
        }
        Tape.backward(y, seed: seed)
        let w = weights[0]
        let masked = (0..<w.count).filter { i in
            let bh = i / (l * l), at = i % (l * l)
            return (bh / heads) % 2 == 1 && mask.data[l * l + at] < 0
        }
        XCTAssertFalse(masked.isEmpty)
        XCTAssertTrue(masked.allSatisfy { w.data[$0] == 0 }, "masked keys weigh +0")
        for (name, t) in [("weights", w), ("output", y), ("dq", Tape.gradient(of: lq)), ("dkv", Tape.gradient(of: lkv))] {
            XCTAssertFalse((0..<t.count).contains { t.data[$0].isSubnormal }, name)
        }
    }

    /// Gradient buffers start uninitialised only where the heads' slices cover their width: operands
    /// that are slices of wider tensors (one qkv tensor with spare columns on both sides, a q with spare
    /// columns) get exact zeros in the columns no head reads, and the same values elsewhere as the
    /// operands cut out on their own.
    func testGradientsOfSlicesOfWiderTensors() {
        let (b, l, heads, dk) = (2, 13, 2, 4)
        let w = heads * dk
        let pad = 3  // spare columns before q and after v
        let qkv = rng.tensor([b, l, pad + 3 * w + 2]), seed = rng.tensor([b, l, w])
        let wide = qkv.detached().requiringGrad()
        let y = attention(q: AttentionOperand(wide, offset: pad), k: AttentionOperand(wide, offset: pad + w),
                          v: AttentionOperand(wide, offset: pad + 2 * w), heads: heads, keyWidth: dk, valueWidth: dk, scale: 0.5)
        Tape.backward(y, seed: seed)
        let g = Tape.gradient(of: wide)
        // The same operands as tensors of their own.
        func cut(_ offset: Int) -> Tensor {
            Tensor(shape: [b, l, w], values: (0..<(b * l)).flatMap { r in (0..<w).map { qkv.data[r * qkv.shape[2] + offset + $0] } })
        }
        let q = cut(pad).requiringGrad(), k = cut(pad + w).requiringGrad(), v = cut(pad + 2 * w).requiringGrad()
        let y2 = attention(q: AttentionOperand(q), k: AttentionOperand(k), v: AttentionOperand(v), heads: heads, keyWidth: dk, valueWidth: dk, scale: 0.5)
        Tape.backward(y2, seed: seed)
        XCTAssertEqual(bits(y), bits(y2))
        let parts = [Tape.gradient(of: q), Tape.gradient(of: k), Tape.gradient(of: v)]
        let ld = qkv.shape[2]
        for r in 0..<(b * l) {
            for j in 0..<ld {
                let got = g.data[r * ld + j]
                if j < pad || j >= pad + 3 * w {
                    XCTAssertEqual(got.bitPattern, Float(0).bitPattern, "row \(r), spare column \(j)")
                } else {
                    let which = (j - pad) / w, col = (j - pad) % w
                    XCTAssertEqual(got.bitPattern, parts[which].data[r * w + col].bitPattern, "row \(r), column \(j)")
                }
            }
        }
    }

    func testHaloTermGivesTheBitsOfStoredRelativeLogits() {
        // Windows of 8 (one 8-wide chunk), 7 (4 + 3) and the study's 13 (8 + 4 + 1) key columns.
        for (s, wn) in [(4, 8), (3, 7), (7, 13)] { checkHaloTerm(block: s, window: wn) }
    }

    func checkHaloTerm(block s: Int, window wn: Int) {
        let (heads, dk, nb) = (2, 6, 5)  // e.g. block 4, window 8: L = 16 queries, K = 64 keys, R = 15
        let l = s * s, k = wn * wn, r = 2 * wn - 1
        let q = rng.tensor([nb, l, heads * dk]), kv = rng.tensor([nb, k, heads * dk * 2]), seed = rng.tensor([nb, l, heads * dk])
        let ht = rng.tensor([r, dk]), wt = rng.tensor([r, dk])
        var maskValues = [Float](repeating: 0, count: 2 * k)
        for j in 0..<k where j % 7 == 3 || j < 5 { maskValues[j] = -Float.greatestFiniteMagnitude }
        for j in 0..<k where j % 5 == 1 { maskValues[k + j] = -Float.greatestFiniteMagnitude }
        let mask = Tensor(shape: [2, k], values: maskValues)
        for masked in [false, true] {
            let key = masked ? mask : nil
            let stored = run(q, kv, seed, recording: false) { q, kv in
                attention(q: AttentionOperand(q), k: AttentionOperand(kv), v: AttentionOperand(kv, offset: heads * dk),
                          heads: heads, keyWidth: dk, valueWidth: dk, scale: 0.4,
                          logits: haloRelativeLogits(q, heightTable: ht, widthTable: wt, heads: heads, block: s, window: wn, keyBias: key))
            }
            let factored = run(q, kv, seed, recording: false) { q, kv in
                let term = HaloRelativeTerm(coefficients: haloRelativeCoefficients(q, heightTable: ht, widthTable: wt, heads: heads),
                                            heads: heads, block: s, window: wn, keyBias: key)
                return attention(q: AttentionOperand(q), k: AttentionOperand(kv), v: AttentionOperand(kv, offset: heads * dk),
                                 heads: heads, keyWidth: dk, valueWidth: dk, scale: 0.4, term: term)
            }
            XCTAssertEqual(factored, stored, "softmax, masked \(masked), block \(s), window \(wn)")
        }
        // An activation that keeps its weights (the term still replaces the stored logits).
        let act = AttentionActivation.scale(by: Float(k), relu: true)
        let stored = run(q, kv, seed, recording: false) { q, kv in
            attention(q: AttentionOperand(q), k: AttentionOperand(kv), v: AttentionOperand(kv, offset: heads * dk),
                      heads: heads, keyWidth: dk, valueWidth: dk, scale: 0.4,
                      logits: haloRelativeLogits(q, heightTable: ht, widthTable: wt, heads: heads, block: s, window: wn),
                      activation: act)
        }
        let factored = run(q, kv, seed, recording: false) { q, kv in
            let term = HaloRelativeTerm(coefficients: haloRelativeCoefficients(q, heightTable: ht, widthTable: wt, heads: heads),
                                        heads: heads, block: s, window: wn)
            return attention(q: AttentionOperand(q), k: AttentionOperand(kv), v: AttentionOperand(kv, offset: heads * dk),
                             heads: heads, keyWidth: dk, valueWidth: dk, scale: 0.4, term: term, activation: act)
        }
        XCTAssertEqual(factored, stored, "scale-relu, block \(s), window \(wn)")
    }

    /// Keys and values read through a gather plan (HaloNet's overlapping windows, never written
    /// whole) give the bits of gathering them first: output and both gradients (the plan-read
    /// tensor's by gatherRows' rule), for softmax (weights remade) and an activation that keeps its
    /// weights, with rows the plan leaves out (zeros), rows read by several windows, a key mask and
    /// Halo's term, on 1 and 3 threads and every kernel; and with softmax weights kept instead of
    /// remade (`remakeWeights: false`, as Halo runs it).
    func testKeysAndValuesReadThroughAPlanGiveTheBitsOfGatheredOnes() {
        let before = Threads.count
        defer { Threads.set(before) }
        let (s, wn, heads, dk, dv) = (3, 7, 2, 6, 5)  // blocks of 9 queries, windows of 49 keys
        let (nb, l, k, sources) = (4, s * s, wn * wn, 50)
        let width = heads * (dk + dv) + 3  // spare columns past the values
        var index = [Int32](repeating: -1, count: nb * k)
        for b in 0..<nb { for j in 0..<k where (j * 7 + b) % 5 != 0 { index[b * k + j] = Int32((b * 11 + j * 3) % sources) } }
        let plan = GatherPlan(index: index, sourceRows: sources)
        let q = rng.tensor([nb, l, heads * dk]), src = rng.tensor([5, 10, width]), seed = rng.tensor([nb, l, heads * dv])
        let ht = rng.tensor([2 * wn - 1, dk]), wt = rng.tensor([2 * wn - 1, dk])
        var maskValues = [Float](repeating: 0, count: 2 * k)
        for j in 0..<k where j % 6 == 2 { maskValues[j] = -Float.greatestFiniteMagnitude }
        let mask = Tensor(shape: [2, k], values: maskValues)
        for kernel in GemmKernel.runnable {
            XCTAssertTrue(GemmKernel.use(kernel))
            for threads in [1, 3] {
                Threads.set(threads)
                for act in [AttentionActivation.softmax, .scale(by: Float(k), relu: true)] {
                    let softmax = act.kind == .softmax
                    func mixed(_ q: Tensor, _ k: AttentionOperand, _ v: AttentionOperand, remake: Bool = true) -> Tensor {
                        let term = HaloRelativeTerm(coefficients: haloRelativeCoefficients(q, heightTable: ht, widthTable: wt, heads: heads),
                                                    heads: heads, block: s, window: wn, keyBias: softmax ? mask : nil)
                        return attention(q: AttentionOperand(q), k: k, v: v, heads: heads, keyWidth: dk, valueWidth: dv, scale: 0.4,
                                         term: term, activation: act, remakeWeights: remake)
                    }
                    let gathered = run(q, src, seed, recording: false) { q, src in
                        let kv = gatherRows(src, plan: plan, outShape: [nb, k, width])
                        return mixed(q, AttentionOperand(kv, offset: 0), AttentionOperand(kv, offset: heads * dk))
                    }
                    let read = run(q, src, seed, recording: false) { q, src in
                        mixed(q, AttentionOperand(src, offset: 0, rows: plan), AttentionOperand(src, offset: heads * dk, rows: plan))
                    }
                    XCTAssertEqual(read, gathered, "\(kernel), \(threads) threads, \(act.kind)")
                    // Halo's way: through the plan, its softmax weights kept for the backward, not remade.
                    let kept = run(q, src, seed, recording: false) { q, src in
                        mixed(q, AttentionOperand(src, offset: 0, rows: plan), AttentionOperand(src, offset: heads * dk, rows: plan), remake: false)
                    }
                    XCTAssertEqual(kept, gathered, "weights kept, \(kernel), \(threads) threads, \(act.kind)")
                }
            }
        }
    }

    func testHaloCoefficientGradientMeetsFiniteDifferences() {
        let (heads, dk, r) = (2, 3, 5)
        let ht = rng.tensor([r, dk]), wt = rng.tensor([r, dk])
        checkGradient("haloRelativeCoefficients", rng.tensor([2, 4, heads * dk])) {
            haloRelativeCoefficients($0, heightTable: ht, widthTable: wt, heads: heads)
        }
    }
}
