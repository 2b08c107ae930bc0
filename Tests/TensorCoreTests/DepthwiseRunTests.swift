// TensorCore tests: depth-wise convolutions that compute the interior columns of a row four at a
// time (`stm_depthwise_taps_run`, each weight vector loaded once for four pixels) give the bits of
// the per-pixel definition (`referenceDepthwiseTaps`), forward and input gradient, padded and valid
// forms, on every kernel path this CPU runs, at 1 and 3 threads.
//
// Shape key: N batch, H/W height/width, C channels, K kernel side, P pixels in a run.

import CGemm
import XCTest
@testable import TensorCore

final class DepthwiseRunTests: XCTestCase {
    private var rng = TestRNG(91)

    override func tearDown() {
        GemmKernel.use(GemmKernel.best)
        super.tearDown()
    }

    /// The C entry point: P neighbouring outputs from shifted sources, against P single-pixel definitions.
    func testRunsMatchSinglePixels() {
        for kernel in GemmKernel.runnable {
            GemmKernel.use(kernel)
            for c in [1, 5, 8, 16, 24, 40, 96, 100] {
                for pixels in [1, 2, 3, 4, 5, 7, 8, 9] {
                    for (taps, withBias) in [(49, true), (9, false), (0, true)] {
                        let weights = (0..<(49 * c)).map { _ in 2 * rng.uniform() - 1 }
                        let bias = (0..<c).map { _ in rng.uniform() }
                        // Each tap reads a row of (pixels) vectors; pixel p takes vector p of every row.
                        let rows = (0..<taps).map { _ in (0..<(pixels * c)).map { _ in 6 * rng.uniform() - 3 } }
                        var numbers = Array(0..<49)  // a random subset of the tap numbers, in increasing order
                        for i in stride(from: 48, to: 0, by: -1) { numbers.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                        let chosen = Array(numbers.prefix(taps)).sorted()
                        var ours = [Float](repeating: .nan, count: pixels * c), want = ours
                        let copies = rows.map { r -> UnsafeMutablePointer<Float> in
                            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(r.count, 1))
                            p.initialize(from: r, count: r.count)
                            return p
                        }
                        defer { copies.forEach { $0.deallocate() } }
                        let sources: [UnsafePointer<Float>?] = copies.map { UnsafePointer($0) }
                        stm_depthwise_taps_run(&ours, withBias ? bias : nil, c, Int32(taps), sources, weights,
                                               chosen.map { Int32($0) }, Int32(pixels))
                        bias.withUnsafeBufferPointer { bp in
                            want.withUnsafeMutableBufferPointer { wp in
                                for p in 0..<pixels {
                                    referenceDepthwiseTaps(into: wp.baseAddress! + p * c, bias: withBias ? bp.baseAddress : nil, c: c,
                                                           sources: copies.map { UnsafePointer($0 + p * c) }, taps: chosen, weights: weights)
                                }
                            }
                        }
                        assertSameBits(ours, want, "\(kernel) c=\(c) pixels=\(pixels) taps=\(taps) bias=\(withBias)")
                    }
                }
            }
        }
    }

    /// Fails with the first differing element, not the whole arrays.
    private func assertSameBits(_ ours: [Float], _ want: [Float], _ label: String, line: UInt = #line) {
        XCTAssertEqual(ours.count, want.count, label, line: line)
        if let i = ours.indices.first(where: { $0 < want.count && ours[$0].bitPattern != want[$0].bitPattern }) {
            XCTFail("\(label): element \(i) is \(ours[i]), the definition gives \(want[i])", line: line)
        }
    }

    /// The per-pixel definition of the padded convolution and of its input gradient.
    private func definition(_ x: [Float], n: Int, h: Int, w: Int, c: Int, k: Int, pad: Int, weight: [Float],
                            bias: [Float], dOut: [Float]) -> (y: [Float], dx: [Float]) {
        let ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1
        var y = [Float](repeating: 0, count: n * ho * wo * c), dx = [Float](repeating: 0, count: n * h * w * c)
        x.withUnsafeBufferPointer { xp in dOut.withUnsafeBufferPointer { dp in weight.withUnsafeBufferPointer { wp in
            for b in 0..<n { for oy in 0..<ho { for ox in 0..<wo {
                var src: [UnsafePointer<Float>] = [], taps: [Int] = []
                for ky in 0..<k { for kx in 0..<k {
                    let iy = oy + ky - pad, ix = ox + kx - pad
                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                    src.append(xp.baseAddress! + ((b * h + iy) * w + ix) * c)
                    taps.append(ky * k + kx)
                } }
                y.withUnsafeMutableBufferPointer { yp in bias.withUnsafeBufferPointer { bp in
                    referenceDepthwiseTaps(into: yp.baseAddress! + ((b * ho + oy) * wo + ox) * c, bias: bp.baseAddress, c: c,
                                           sources: src, taps: taps, weights: wp.baseAddress!)
                } }
            } } }
            for b in 0..<n { for iy in 0..<h { for ix in 0..<w {
                var src: [UnsafePointer<Float>] = [], taps: [Int] = []
                for ky in 0..<k { for kx in 0..<k {
                    let oy = iy - ky + pad, ox = ix - kx + pad
                    guard oy >= 0, oy < ho, ox >= 0, ox < wo else { continue }
                    src.append(dp.baseAddress! + ((b * ho + oy) * wo + ox) * c)
                    taps.append(ky * k + kx)
                } }
                dx.withUnsafeMutableBufferPointer { gp in
                    referenceDepthwiseTaps(into: gp.baseAddress! + ((b * h + iy) * w + ix) * c, bias: nil, c: c,
                                           sources: src, taps: taps, weights: wp.baseAddress!)
                }
            } } }
        } } }
        return (y, dx)
    }

    /// The padded convolution (U-DWConv's 7x7, a 3x3, rows narrower than the kernel, widths that leave
    /// runs of every length) and the valid form at stride 1 (pad first), forward and input gradient.
    func testConvolutionsMatchTheirDefinition() {
        let cases: [(h: Int, w: Int, c: Int, k: Int, pad: Int)] = [
            (5, 14, 16, 7, 3), (4, 13, 24, 7, 3), (3, 16, 5, 3, 1), (6, 9, 40, 3, 1), (3, 5, 8, 7, 3), (2, 11, 96, 5, 0),
        ]
        let before = Threads.count
        defer { Threads.set(before) }
        for kernel in GemmKernel.runnable {
            GemmKernel.use(kernel)
            for threads in [1, 3] {
                Threads.set(threads)
                for (h, w, c, k, pad) in cases {
                    let n = 2
                    let ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1
                    guard ho > 0, wo > 0 else { continue }
                    let x = (0..<(n * h * w * c)).map { _ in 2 * rng.uniform() - 1 }
                    let weight = (0..<(k * k * c)).map { _ in 2 * rng.uniform() - 1 }
                    let bias = (0..<c).map { _ in rng.uniform() }
                    let dOut = (0..<(n * ho * wo * c)).map { _ in 2 * rng.uniform() - 1 }
                    let want = definition(x, n: n, h: h, w: w, c: c, k: k, pad: pad, weight: weight, bias: bias, dOut: dOut)
                    let label = "\(kernel) \(threads) threads \(h)x\(w)x\(c) k\(k) p\(pad)"
                    let wt = Tensor(shape: [k, k, c], values: weight), bt = Tensor(shape: [c], values: bias)
                    let seed = Tensor(shape: [n, ho, wo, c], values: dOut)

                    let leaf = Tensor(shape: [n, h, w, c], values: x).requiringGrad()
                    let y = depthwiseConv2d(leaf, weight: wt, bias: bt, pad: pad)
                    Tape.backward(y, seed: seed)
                    assertSameBits(y.values, want.y, "padded forward, \(label)")
                    assertSameBits(Tape.gradient(of: leaf).values, want.dx, "padded dx, \(label)")

                    let leaf2 = Tensor(shape: [n, h, w, c], values: x).requiringGrad()
                    // (The padded zeros add w * 0 to sums that are not -0: the same bits.)
                    let y2 = depthwiseConv2dValid(pad2d(leaf2, Padding2d(top: pad, bottom: pad, left: pad, right: pad)), weight: wt, bias: bt, stride: 1)
                    Tape.backward(y2, seed: seed)
                    assertSameBits(y2.values, want.y, "valid forward, \(label)")
                    assertSameBits(Tape.gradient(of: leaf2).values, want.dx, "valid dx, \(label)")
                }
            }
        }
    }
}
