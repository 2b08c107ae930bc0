// TensorCoreTests: the GEMM's contract, bit for bit. Every element of C must equal the scalar FMA
// chain (`fmaChainGemm`) for every micro-kernel this CPU can run, every transpose combination,
// edge tiles, several k-blocks, alpha/beta/bias; a row must not depend on the other rows of the call
// (M = 1..64), nor the result on the thread count or on pre-packing. OpenBLAS is the independent
// oracle to a tolerance. Shapes: A [M,K] (or [K,M]), B [K,N] (or [N,K]), C [M,N].

import CGemm
import Foundation
import XCTest
@testable import TensorCore

final class GemmTests: XCTestCase {
    private var rng = TestRNG(20261201)

    override func tearDown() {
        GemmKernel.use(GemmKernel.best)
        super.tearDown()
    }

    private func random(_ count: Int) -> [Float] { (0..<count).map { _ in rng.uniform() } }

    /// Runs `gemm` and `fmaChainGemm` on the same random operands (leading dimensions padded) and
    /// returns the first mismatch, if any.
    private func mismatch(ta: Bool, tb: Bool, m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0,
                          bias: Bool = false, packed: Bool = false) -> String? {
        let lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2
        let a = random((ta ? k : m) * lda), b = random((tb ? n : k) * ldb), c0 = random(m * ldc), bv = random(n)
        var ours = c0, want = c0
        let bt = Tensor(shape: [b.count], values: b).frozen()
        let pack = packed ? PackedMatrix(transposed: tb, k: k, n: n, b: bt.data, ld: ldb) : nil
        bv.withUnsafeBufferPointer { bp in
            a.withUnsafeBufferPointer { ap in
                ours.withUnsafeMutableBufferPointer { cp in
                    gemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: ap.baseAddress!, lda: lda,
                         b: bt.data, ldb: ldb, beta: beta, c: cp.baseAddress!, ldc: ldc, packedB: pack,
                         bias: bias ? bp.baseAddress! : nil)
                }
                want.withUnsafeMutableBufferPointer { cp in
                    fmaChainGemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: ap.baseAddress!, lda: lda,
                                 b: bt.data, ldb: ldb, beta: beta, c: cp.baseAddress!, ldc: ldc,
                                 bias: bias ? bp.baseAddress! : nil)
                }
            }
        }
        for i in 0..<m {
            for j in 0..<ldc where ours[i * ldc + j].bitPattern != want[i * ldc + j].bitPattern {
                return "\(GemmKernel.current) ta=\(ta) tb=\(tb) m=\(m) n=\(n) k=\(k) alpha=\(alpha) beta=\(beta) bias=\(bias): "
                    + "C[\(i),\(j)] = \(ours[i * ldc + j]), chain gives \(want[i * ldc + j])"
            }
        }
        return nil
    }

    func testEveryElementIsOneFMAChainOnEveryKernel() {
        XCTAssertFalse(GemmKernel.runnable.isEmpty)
        for kernel in GemmKernel.runnable {
            XCTAssertTrue(GemmKernel.use(kernel))
            var failures: [String] = []
            for trial in 0..<60 {
                let m = 1 + Int(rng.next() % 70), n = 1 + Int(rng.next() % 70), k = 1 + Int(rng.next() % 70)
                let ta = trial % 2 == 1, tb = (trial / 2) % 2 == 1
                let alpha: Float = trial % 3 == 0 ? 1 : 0.7, beta: Float = trial % 5 == 0 ? 0.3 : 0
                if let e = mismatch(ta: ta, tb: tb, m: m, n: n, k: k, alpha: alpha, beta: beta, bias: trial % 4 == 0) { failures.append(e) }
            }
            // Larger: several k-blocks (K past the k-block; K is split into equal blocks, 321 and 641 just
            // past one and two), row blocks and column blocks, threads; a short K whose blocks take
            // their tiles row by row (300 x 200 x 96), and one whose block's B is too large for that.
            for (m, n, k) in [(130, 100, 700), (300, 70, 257), (49, 768, 300), (7, 33, 1000), (40, 50, 321), (20, 40, 641),
                              (300, 200, 96), (200, 800, 90)] {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    if let e = mismatch(ta: ta, tb: tb, m: m, n: n, k: k, bias: true) { failures.append(e) }
                    if let e = mismatch(ta: ta, tb: tb, m: m, n: n, k: k, alpha: 0.5, beta: 1) { failures.append(e) }
                    if let e = mismatch(ta: ta, tb: tb, m: m, n: n, k: k, packed: true) { failures.append(e) }
                }
            }
            XCTAssertEqual(failures, [], "\(kernel)")
        }
    }

    func testBlockingOverridesChangeNoBit() {
        // STM_GEMM_KC / STM_GEMM_MC (tuning knobs) move the k-block and row-block boundaries only:
        // each value stays the one chain over k in order, with alpha, beta (past several k-blocks) and bias.
        defer { GemmKernel.setBlocking(kc: 0, mc: 0) }
        XCTAssertFalse(GemmKernel.setBlocking(kc: 5, mc: 0), "a k-block under 8 is refused")
        XCTAssertFalse(GemmKernel.setBlocking(kc: 0, mc: 5000), "block rows past 4096 are refused")
        for kernel in GemmKernel.runnable {
            XCTAssertTrue(GemmKernel.use(kernel))
            var failures: [String] = []
            for (kc, mc) in [(8, 1), (37, 20), (64, 200), (512, 48), (4096, 4096)] {
                XCTAssertTrue(GemmKernel.setBlocking(kc: kc, mc: mc))
                let b = kernel.blocking, mr = kernel.tile.rows
                XCTAssertEqual(b.kc, kc)
                XCTAssertEqual(b.mc, (mc + mr - 1) / mr * mr, "mc rounded up to a multiple of \(mr)")
                XCTAssertTrue(GemmKernel.blockingOverridden)
                for (m, n, k) in [(130, 100, 300), (49, 169, 32), (300, 70, 96), (7, 33, 1000)] {
                    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                        if let e = mismatch(ta: ta, tb: tb, m: m, n: n, k: k, bias: true) { failures.append("kc \(kc) mc \(mc): " + e) }
                        if let e = mismatch(ta: ta, tb: tb, m: m, n: n, k: k, alpha: 0.5, beta: 1) { failures.append("kc \(kc) mc \(mc): " + e) }
                    }
                }
            }
            GemmKernel.setBlocking(kc: 0, mc: 0)
            XCTAssertFalse(GemmKernel.blockingOverridden)
            XCTAssertEqual(failures, [], "\(kernel)")
        }
    }

    func testKZeroGivesTheEpilogueOfAnEmptySum() {
        XCTAssertNil(mismatch(ta: false, tb: false, m: 3, n: 5, k: 0, alpha: 2, beta: 0.5, bias: true))
        XCTAssertNil(mismatch(ta: false, tb: false, m: 3, n: 5, k: 0))
    }

    func testARowDoesNotDependOnTheOtherRows() {
        let (n, k) = (45, 131)
        let a = random(64 * k), b = random(k * n)
        for kernel in GemmKernel.runnable {
            GemmKernel.use(kernel)
            for m in 1...64 {
                var all = [Float](repeating: 0, count: m * n)
                gemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &all, ldc: n)
                for r in [0, m / 2, m - 1] {
                    var alone = [Float](repeating: 0, count: n)
                    a.withUnsafeBufferPointer { ap in
                        gemm(m: 1, n: n, k: k, a: ap.baseAddress! + r * k, lda: k, b: b, ldb: n, c: &alone, ldc: n)
                    }
                    XCTAssertEqual(Array(all[(r * n)..<(r * n + n)]).map(\.bitPattern), alone.map(\.bitPattern),
                                   "\(kernel): row \(r) of \(m)")
                }
            }
        }
    }

    func testThreadCountsAndKernelsGiveIdenticalBytes() {
        let before = Threads.count
        defer { Threads.set(before) }
        let (m, n, k) = (517, 389, 301)
        let a = random(m * k), b = random(k * n), bias = random(n)
        var results: [[UInt32]] = []
        for kernel in GemmKernel.runnable {
            GemmKernel.use(kernel)
            for threads in [1, 2, 3, 5] {
                Threads.set(threads)
                var c = [Float](repeating: 0, count: m * n)
                gemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &c, ldc: n, bias: bias)
                results.append(c.map(\.bitPattern))
            }
        }
        for r in results.dropFirst() { XCTAssertTrue(r == results[0], "a kernel or thread count changed the bits") }
    }

    func testAgreesWithOpenBLAS() {
        let (m, n, k) = (67, 91, 203)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = random(m * k), b = random(k * n), c0 = random(m * n)
            var ours = c0, theirs = c0
            gemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.9, a: a, lda: ta ? m : k, b: b, ldb: tb ? k : n,
                 beta: 0.4, c: &ours, ldc: n)
            openblasGemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.9, a: a, lda: ta ? m : k, b: b, ldb: tb ? k : n,
                         beta: 0.4, c: &theirs, ldc: n)
            for i in 0..<m * n { XCTAssertEqual(ours[i], theirs[i], accuracy: 1e-4) }
        }
    }

    func testFrozenWeightsArePackedOnceAndGiveTheSameBits() {
        let (m, n, k) = (37, 50, 70)
        let w = Tensor(shape: [n, k], values: random(n * k))
        let x = Tensor(shape: [m, k], values: random(m * k))
        let plain = linear(x, weight: w).values
        XCTAssertNil(w.packedForGemm(transposed: true), "an unfrozen tensor is never packed")
        w.frozen()
        let p1 = w.packedForGemm(transposed: true), p2 = w.packedForGemm(transposed: true)
        XCTAssertNotNil(p1)
        XCTAssertTrue(p1 === p2, "a frozen weight is packed once")
        XCTAssertEqual(linear(x, weight: w).values.map(\.bitPattern), plain.map(\.bitPattern))
    }

    func testEpilogueSeesEveryBlockOnceAndCanFuseWork() {
        let before = Threads.count
        defer { Threads.set(before) }
        let (m, n, k) = (300, 200, 90)
        let a = random(m * k), b = random(k * n), bias = random(n)
        var plain = [Float](repeating: 0, count: m * n)
        gemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &plain, ldc: n, bias: bias)
        var geluPlain = [Float](repeating: 0, count: m * n)
        referenceGeluForward(plain, &geluPlain, m * n)
        for threads in [1, 2, 3] {
            Threads.set(threads)
            var c = [Float](repeating: 0, count: m * n)
            var fused = [Float](repeating: 0, count: m * n)
            let lock = NSLock()
            var covered = [Int](repeating: 0, count: m * n)
            fused.withUnsafeMutableBufferPointer { out in
                let op = out.baseAddress!
                c.withUnsafeMutableBufferPointer { cb in
                    gemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: cb.baseAddress!, ldc: n, bias: bias) { cp, ldc, i0, j0, rows, cols in
                        for i in i0..<(i0 + rows) { stm_gelu_forward(cp + i * ldc + j0, op + i * n + j0, cols) }
                        lock.lock()
                        for i in i0..<(i0 + rows) { for j in j0..<(j0 + cols) { covered[i * n + j] += 1 } }
                        lock.unlock()
                    }
                }
            }
            XCTAssertEqual(c.map(\.bitPattern), plain.map(\.bitPattern), "C is what gemm gives (\(threads) threads)")
            XCTAssertEqual(fused.map(\.bitPattern), geluPlain.map(\.bitPattern), "fused GELU (\(threads) threads)")
            XCTAssertTrue(covered.allSatisfy { $0 == 1 }, "every element of C in exactly one block (\(threads) threads)")
        }
    }

    func testForwardOnlyAttentionInQueryChunksGivesTheSameBits() {
        let (b, lq, lk, heads, d) = (2, 37, 23, 2, 8)
        let q = Tensor(shape: [b, lq, heads * d], values: random(b * lq * heads * d))
        let kv = Tensor(shape: [b, lk, 2 * heads * d], values: random(b * lk * 2 * heads * d))
        let mask = Tensor(shape: [1, lq, lk], values: random(lq * lk))
        func run() -> [UInt32] {
            attention(q: AttentionOperand(q), k: AttentionOperand(kv, offset: 0), v: AttentionOperand(kv, offset: heads * d),
                      heads: heads, keyWidth: d, valueWidth: d, scale: 0.3, bias: AttentionBias(perGroup: mask)).values.map(\.bitPattern)
        }
        let before = AttentionLimits.scratchFloats
        defer { AttentionLimits.scratchFloats = before }
        let whole = run()
        for limit in [1, lk, 5 * lk + 3] {
            AttentionLimits.scratchFloats = limit
            XCTAssertEqual(run(), whole, "query chunks of \(max(1, limit / lk)) rows")
        }
    }

    func testFMAPeakIsMeasuredAtTheKernelsWidth() {
        // Regression: the peak was once measured with 16-lane Swift SIMD that an AVX2 build
        // scalarised (1 GFLOP/s). Any real core does well over 1 GFLOP/s per thread with vectors.
        let before = Threads.count
        defer { Threads.set(before) }
        Threads.set(1)
        for kernel in GemmKernel.runnable where kernel != .portable {
            GemmKernel.use(kernel)
            XCTAssertGreaterThan(measureFMAPeak(iterations: 200_000, trials: 2), 4, "\(kernel)")
        }
    }
}

