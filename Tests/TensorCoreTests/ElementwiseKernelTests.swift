// TensorCoreTests: the C element-wise kernels (GELU forward, its slope and rule, LayerNorm rows forward/backward)
// against their Swift definitions, bit for bit, on every kernel path this CPU runs (AVX-512, AVX2,
// portable), with lengths that leave every kind of tail. Shapes: N elements; M rows of C channels.

import CGemm
import XCTest
@testable import TensorCore

final class ElementwiseKernelTests: XCTestCase {
    private var rng = TestRNG(77)

    override func tearDown() {
        GemmKernel.use(GemmKernel.best)
        super.tearDown()
    }

    private func values(_ n: Int, scale: Float) -> [Float] { (0..<n).map { _ in scale * rng.uniform() } }

    func testGeluMatchesItsDefinitionOnEveryPath() {
        for kernel in GemmKernel.runnable {
            GemmKernel.use(kernel)
            for n in [1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 200, 1000] {
                // Wide enough to reach erf's clamp at +-4 and exp's polynomial everywhere.
                let x = values(n, scale: 9), g = values(n, scale: 2)
                var ours = [Float](repeating: 0, count: n), want = ours
                stm_gelu_forward(x, &ours, n)
                referenceGeluForward(x, &want, n)
                XCTAssertEqual(ours.map(\.bitPattern), want.map(\.bitPattern), "forward \(kernel) n=\(n)")
                // The forward with the slope: the same y, the slope's definition, in place over x too.
                var y = [Float](repeating: .nan, count: n), slope = y, wantSlope = y
                stm_gelu_forward_slope(x, &y, &slope, n)
                referenceGeluSlope(x, &wantSlope, n)
                XCTAssertEqual(y.map(\.bitPattern), want.map(\.bitPattern), "forward with slope \(kernel) n=\(n)")
                XCTAssertEqual(slope.map(\.bitPattern), wantSlope.map(\.bitPattern), "slope \(kernel) n=\(n)")
                var inPlace = x, y2 = y
                inPlace.withUnsafeMutableBufferPointer { stm_gelu_forward_slope($0.baseAddress!, &y2, $0.baseAddress!, n) }
                XCTAssertEqual(inPlace.map(\.bitPattern), wantSlope.map(\.bitPattern), "slope in place \(kernel) n=\(n)")
                XCTAssertEqual(y2.map(\.bitPattern), want.map(\.bitPattern), "forward, slope in place \(kernel) n=\(n)")
                // The rule: dy * slope gives the definition of GELU's backward.
                stm_multiply(g, slope, &ours, n)
                referenceGeluBackward(x, g, &want, n)
                XCTAssertEqual(ours.map(\.bitPattern), want.map(\.bitPattern), "backward \(kernel) n=\(n)")
            }
        }
    }

    func testDepthwiseTapsMatchItsDefinitionOnEveryPath() {
        for kernel in GemmKernel.runnable {
            GemmKernel.use(kernel)
            // Channel counts that leave every kind of block and tail (8 vectors, 2, 1, scalar).
            for c in [1, 5, 8, 16, 24, 40, 96, 100, 130, 200, 272] {
                for (taps, withBias) in [(49, true), (9, false), (1, true), (0, true), (30, false)] {
                    let weights = values(49 * c, scale: 2), bias = values(c, scale: 1)
                    let rows = (0..<taps).map { _ in values(c, scale: 3) }
                    // A random subset of the 49 tap numbers, in increasing order (as a convolution visits them).
                    var numbers = Array(0..<49)
                    for i in stride(from: 48, to: 0, by: -1) { numbers.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                    let chosen = Array(numbers.prefix(taps)).sorted()
                    var ours = [Float](repeating: .nan, count: c), want = ours
                    withArrayPointers(rows) { sources in
                        let constant = sources.map { UnsafePointer($0) }
                        let optional: [UnsafePointer<Float>?] = constant.map { $0 }
                        let tapNumbers = chosen.map { Int32($0) }
                        stm_depthwise_taps(&ours, withBias ? bias : nil, c, Int32(taps), optional, weights, tapNumbers)
                        bias.withUnsafeBufferPointer { bp in
                            referenceDepthwiseTaps(into: &want, bias: withBias ? bp.baseAddress : nil, c: c,
                                                   sources: constant, taps: chosen, weights: weights)
                        }
                    }
                    XCTAssertEqual(ours.map(\.bitPattern), want.map(\.bitPattern), "\(kernel) c=\(c) taps=\(taps) bias=\(withBias)")
                }
            }
        }
    }

    /// Calls `body` with stable pointers to each array's elements.
    private func withArrayPointers(_ arrays: [[Float]], _ body: ([UnsafeMutablePointer<Float>]) -> Void) {
        let copies = arrays.map { a -> UnsafeMutablePointer<Float> in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(a.count, 1))
            p.initialize(from: a, count: a.count)
            return p
        }
        defer { copies.forEach { $0.deallocate() } }
        body(copies)
    }

    func testSoftmaxRowMatchesItsDefinitionOnEveryPath() {
        for kernel in GemmKernel.runnable {
            GemmKernel.use(kernel)
            for l in [1, 2, 15, 16, 17, 31, 32, 33, 49, 64, 65, 100, 144, 343] {
                let x = values(l, scale: 20)
                var ours = [Float](repeating: 0, count: l), want = ours
                stm_softmax_row(x, &ours, l)
                referenceSoftmaxRow(x, &want, l)
                XCTAssertEqual(ours.map(\.bitPattern), want.map(\.bitPattern), "\(kernel) l=\(l)")
                var inPlace = x
                inPlace.withUnsafeMutableBufferPointer { stm_softmax_row($0.baseAddress!, $0.baseAddress!, l) }
                XCTAssertEqual(inPlace.map(\.bitPattern), want.map(\.bitPattern), "in place, \(kernel) l=\(l)")
            }
        }
    }

    func testSoftmaxOfManyRowsIsEachRowAlone() {
        // Rows shorter than 16, and the tails of longer ones, run several at a time, one per vector
        // lane; every row must keep the bits of stm_softmax_row on it alone: whole groups of rows and a remainder, ties, infinities,
        // NaN and huge values among the logits, in place too. A NaN is any NaN here: which of two NaN
        // operands a product passes on (so the sign of a NaN result) depends on how the compiler orders
        // the operands of that commutative instruction, in either version.
        let special: [Float] = [0, -0.0, 1e30, -1e30, .infinity, -.infinity, .nan, 88.7, -87.4, 3, 3]
        for kernel in GemmKernel.runnable {
            GemmKernel.use(kernel)
            for l in [1, 2, 3, 8, 9, 15, 16, 17, 31, 32, 49, 169] { for m in [1, 7, 8, 9, 16, 17, 37] {
                var x = values(m * l, scale: 20)
                // Special values in odd rows only: the even ones stay finite.
                for i in stride(from: 0, to: x.count, by: 5) where (i / l) % 2 == 1 { x[i] = special[(i / 5) % special.count] }
                var ours = [Float](repeating: 0, count: m * l), want = ours
                stm_softmax_rows(x, &ours, m, l)
                for r in 0..<m { x.withUnsafeBufferPointer { xb in want.withUnsafeMutableBufferPointer { wb in
                    stm_softmax_row(xb.baseAddress! + r * l, wb.baseAddress! + r * l, l)
                } } }
                func bits(_ v: [Float]) -> [UInt32] { v.map { $0.isNaN ? Float.nan.bitPattern : $0.bitPattern } }
                XCTAssertEqual(bits(ours), bits(want), "\(kernel) l=\(l) m=\(m)")
                XCTAssertTrue(want.prefix(l).allSatisfy { $0 > 0 && $0 <= 1 }, "row 0 is finite")
                var inPlace = x
                inPlace.withUnsafeMutableBufferPointer { stm_softmax_rows($0.baseAddress!, $0.baseAddress!, m, l) }
                XCTAssertEqual(bits(inPlace), bits(want), "in place, \(kernel) l=\(l) m=\(m)")
            } }
        }
    }

    func testSoftmaxWeightsAreNeverDenormal() {
        // Masked logits (-100: Swin's shift mask, HaloNet's padding) and far-off ones give weights
        // below the smallest normal float, which are stored as +0 on every path (a denormal weight costs
        // an assist in every product it enters on x86 cores without DAZ). By hand first: exp clamps
        // -100 to FLT_MIN, and FLT_MIN / 2 would be denormal.
        for kernel in GemmKernel.runnable {
            GemmKernel.use(kernel)
            for m in [1, 16] {  // one row alone, and rows across the lanes
                let x: [Float] = (0..<m).flatMap { _ -> [Float] in [0, 0, -100] }
                var ours = [Float](repeating: 1, count: x.count)
                stm_softmax_rows(x, &ours, m, 3)
                XCTAssertEqual(ours, (0..<m).flatMap { _ in [Float(0.5), 0.5, 0] }, "\(kernel) m=\(m)")
            }
            for l in [3, 9, 13, 49, 169] { for m in [1, 17] {
                var x = values(m * l, scale: 20)
                for i in x.indices where i % 3 != 0 { x[i] = i % 3 == 1 ? -100 : x[i] - Float(60 + i % 40) }
                var ours = [Float](repeating: 0, count: m * l)
                stm_softmax_rows(x, &ours, m, l)
                XCTAssertFalse(ours.contains { $0.isSubnormal }, "\(kernel) l=\(l) m=\(m)")
                var want = [Float](repeating: 0, count: l)
                for r in 0..<m {
                    x.withUnsafeBufferPointer { referenceSoftmaxRow($0.baseAddress! + r * l, &want, l) }
                    XCTAssertEqual(Array(ours[(r * l)..<((r + 1) * l)]).map(\.bitPattern), want.map(\.bitPattern), "\(kernel) l=\(l) row \(r)")
                }
            } }
        }
    }

    func testSoftmaxBackwardOfManyRowsIsEachRowAlone() {
        // The kernel's sums take whole groups of 16 (AVX-512) or 8 (AVX2) rows, a row per lane, in
        // blocks of 64 rows (m = 49: three groups of 16, or six of 8, and a row; m = 80: a second
        // block); four scalar chains and single rows take the rest, and the products run sixteen at a
        // time. Each row must keep the bits of the scalar definition, on every kernel, for every
        // column tail (l = 169: ten blocks of 16 and 9), in place (as the attention runs it) too.
        for kernel in GemmKernel.runnable {
            GemmKernel.use(kernel)
            for l in [1, 9, 13, 16, 49, 169] { for m in [0, 1, 7, 8, 9, 16, 17, 37, 49, 80] {
                var p = values(m * l, scale: 1).map { abs($0) }, d = values(m * l, scale: 30)
                if m * l > 5 { d[3] = -0.0; p[5] = 0 }
                // Tiny weights: p * (d - dot) falls below the smallest normal float, and is stored as +0.
                for i in stride(from: 2, to: m * l, by: 7) { p[i] = 1e-37 * p[i] }
                var ours = [Float](repeating: 0, count: m * l), want = ours
                softmaxBackwardRows(p, d, &ours, rows: m, l)
                for r in 0..<m {  // the definition: the row's sum in order, then each element
                    var dot: Float = 0
                    for j in 0..<l { dot += d[r * l + j] * p[r * l + j] }
                    for j in 0..<l {
                        let g = p[r * l + j] * (d[r * l + j] - dot)
                        want[r * l + j] = abs(g) < .leastNormalMagnitude ? 0 : g
                    }
                }
                XCTAssertFalse(ours.contains { $0.isSubnormal }, "no denormal gradient, \(kernel) l=\(l) m=\(m)")
                XCTAssertEqual(ours.map(\.bitPattern), want.map(\.bitPattern), "\(kernel) l=\(l) m=\(m)")
                d.withUnsafeMutableBufferPointer { softmaxBackwardRows(p, $0.baseAddress!, $0.baseAddress!, rows: m, l) }
                XCTAssertEqual(d.map(\.bitPattern), want.map(\.bitPattern), "in place, \(kernel) l=\(l) m=\(m)")
            } }
        }
    }

    func testLayerNormMatchesItsDefinitionOnEveryPath() {
        for kernel in GemmKernel.runnable {
            GemmKernel.use(kernel)
            // m = 9: two groups of four rows (the forward's row blocks) and one row after them; m = 37:
            // the backward's groups of 16 (AVX-512) or 8 (AVX2) rows where C is a multiple of 16, and a rest.
            for c in [1, 5, 8, 16, 17, 31, 48, 96, 100, 200] { for m in [3, 9, 37] {
                let x = values(m * c, scale: 3).map { $0 + 0.5 }, w = values(c, scale: 1), b = values(c, scale: 1)
                let dy = values(m * c, scale: 1)
                var h1 = [Float](repeating: 0, count: m * c), o1 = h1, r1 = [Float](repeating: 0, count: m)
                var h2 = h1, o2 = h1, r2 = r1
                stm_layernorm_forward(x, w, b, 1e-6, m, c, &h1, &o1, &r1)
                referenceLayerNormForward(x, w, b, eps: 1e-6, m: m, c: c, xhat: &h2, out: &o2, rstd: &r2)
                XCTAssertEqual(o1.map(\.bitPattern), o2.map(\.bitPattern), "forward \(kernel) c=\(c) m=\(m)")
                XCTAssertEqual(h1.map(\.bitPattern), h2.map(\.bitPattern), "xhat \(kernel) c=\(c)")
                XCTAssertEqual(r1.map(\.bitPattern), r2.map(\.bitPattern), "rstd \(kernel) c=\(c)")
                // xhat and out in one buffer: it ends with the affine result.
                var shared = [Float](repeating: 0, count: m * c)
                shared.withUnsafeMutableBufferPointer { sp in stm_layernorm_forward(x, w, b, 1e-6, m, c, sp.baseAddress, sp.baseAddress, &r1) }
                XCTAssertEqual(shared.map(\.bitPattern), o2.map(\.bitPattern), "forward into one buffer \(kernel) c=\(c) m=\(m)")
                var d1 = [Float](repeating: 0, count: m * c), d2 = d1
                stm_layernorm_backward(h1, dy, w, r1, m, c, &d1)
                referenceLayerNormBackward(h2, dy, w, rstd: r2, m: m, c: c, dx: &d2)
                XCTAssertEqual(d1.map(\.bitPattern), d2.map(\.bitPattern), "backward \(kernel) c=\(c)")
            } }
        }
    }
}
