// TensorCore tests: the fold-back of a convolution's input gradient (`col2im`, the adjoint of
// `im2col`), whose tap lists are made once per call, against the loop it replaced
// (`referenceCol2im`), bit for bit, over the geometries the models use and some they do not.
//
// Shape key: N batch, H/W input height/width, C channels, KH/KW kernel, Ho/Wo output height/width.

import XCTest
@testable import TensorCore

final class Col2imTests: XCTestCase {
    var rng = TestRNG(53)

    func testSameBitsAsTheDefinition() {
        // (h, w, c, kh, kw, stride, pad): the stem and transitions (3x3 s2 p1), PVT's reduction (k = s),
        // a 4x4 patch stem, stride 1, a kernel larger than the stride with no padding, odd sizes, and
        // channel counts with whole groups of sixteen.
        let cases: [(Int, Int, Int, Int, Int, Int, Int)] = [
            (15, 13, 3, 3, 3, 2, 1), (16, 16, 5, 3, 3, 2, 1), (16, 12, 4, 2, 2, 2, 0), (17, 9, 3, 4, 4, 4, 0),
            (9, 11, 2, 3, 3, 1, 1), (12, 10, 3, 5, 3, 2, 0), (7, 8, 6, 3, 2, 3, 2), (1, 1, 3, 3, 3, 2, 1),
            // Channels in sixteens and a remainder: the stem's second convolution (C = 48), 16 + 5, 32.
            (14, 12, 48, 3, 3, 2, 1), (9, 7, 21, 2, 2, 2, 0), (8, 8, 32, 4, 4, 4, 0),
            // Patches that tile the input: a 4x4 patch stem on C = 3, and 2x2 on C = 40.
            (16, 12, 3, 4, 4, 4, 0), (6, 10, 40, 2, 2, 2, 0),
        ]
        let before = Threads.count
        defer { Threads.set(before) }
        for threads in [1, 3] {
            Threads.set(threads)
            do {
                for (h, w, c, kh, kw, stride, pad) in cases {
                    let n = 2
                    let ho = convOutputSize(h, kernel: kh, stride: stride, pad: pad)
                    let wo = convOutputSize(w, kernel: kw, stride: stride, pad: pad)
                    // Some -0: a sum from +0 turns it into +0, and so must every path.
                    let dcol = (0..<(n * ho * wo * kh * kw * c)).map { i in i % 7 == 3 ? -0.0 : rng.uniform() - 0.5 }
                    var fast = [Float](repeating: .nan, count: n * h * w * c), slow = fast
                    dcol.withUnsafeBufferPointer { d in
                        col2im(d.baseAddress!, n: n, h: h, w: w, c: c, kh: kh, kw: kw, stride: stride, pad: pad, ho: ho, wo: wo, dx: &fast)
                        referenceCol2im(d.baseAddress!, n: n, h: h, w: w, c: c, kh: kh, kw: kw, stride: stride, pad: pad, ho: ho, wo: wo, dx: &slow)
                    }
                    XCTAssertEqual(fast.map(\.bitPattern), slow.map(\.bitPattern), "\(h)x\(w)x\(c) k\(kh)x\(kw) s\(stride) p\(pad), \(threads) threads")
                }
            }
        }
    }

    func testAdjointOfIm2colByHand() {
        // 3x3 input, 2x2 kernel, stride 1: the centre pixel is reached by all four taps of the four
        // outputs, a corner by one; a col of ones folds back to those counts.
        let (h, w, kh, kw) = (3, 3, 2, 2)
        let dcol = [Float](repeating: 1, count: 2 * 2 * kh * kw)
        var dx = [Float](repeating: .nan, count: h * w)
        col2im(dcol, n: 1, h: h, w: w, c: 1, kh: kh, kw: kw, stride: 1, pad: 0, ho: 2, wo: 2, dx: &dx)
        XCTAssertEqual(dx, [1, 2, 1, 2, 4, 2, 1, 2, 1])
    }
}
