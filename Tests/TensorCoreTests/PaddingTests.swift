// TensorCore tests: explicit asymmetric zero padding, TensorFlow "same" padding arithmetic, the
// strided "valid" depth-wise convolution and ReLU6: values by hand and against a direct loop,
// gradients by finite differences.
//
// Shape key: N batch, H/W height/width, C channels, K kernel.

import XCTest
@testable import TensorCore

final class PaddingTests: XCTestCase {
    var rng = TestRNG(29)

    func testSamePaddingArithmetic() {
        // EfficientNet-Lite's stem (3x3, stride 2) at 224 pads nothing before and one pixel after.
        XCTAssertEqual(Padding2d.same(height: 224, width: 224, kernel: 3, stride: 2), Padding2d(top: 0, bottom: 1, left: 0, right: 1))
        XCTAssertEqual(Padding2d.same(height: 224, width: 224, kernel: 3, stride: 2).description, "(0, 1, 0, 1)")
        // At an odd size the total is even: one each side.
        XCTAssertEqual(Padding2d.same(height: 225, width: 225, kernel: 3, stride: 2), Padding2d(top: 1, bottom: 1, left: 1, right: 1))
        // 5x5 stride 2 at 56: out 28, total 3 -> (1, 2); at stride 1 always k - 1 split evenly.
        XCTAssertTrue(Padding2d.sameAxis(56, kernel: 5, stride: 2) == (1, 2))
        XCTAssertTrue(Padding2d.sameAxis(57, kernel: 5, stride: 2) == (2, 2))
        XCTAssertTrue(Padding2d.sameAxis(14, kernel: 5, stride: 1) == (2, 2))
        XCTAssertTrue(Padding2d.sameAxis(7, kernel: 1, stride: 1) == (0, 0))
        // Height and width independently.
        XCTAssertEqual(Padding2d.same(height: 224, width: 225, kernel: 3, stride: 2), Padding2d(top: 0, bottom: 1, left: 1, right: 1))
    }

    func testPadByHand() {
        let x = Tensor(shape: [1, 2, 2, 1], values: [1, 2, 3, 4])
        let y = pad2d(x, Padding2d(top: 0, bottom: 1, left: 2, right: 1))
        XCTAssertEqual(y.shape, [1, 3, 5, 1])
        XCTAssertEqual(y.values, [0, 0, 1, 2, 0,
                                  0, 0, 3, 4, 0,
                                  0, 0, 0, 0, 0])
        let same = pad2d(x, Padding2d(top: 0, bottom: 0, left: 0, right: 0))
        XCTAssertEqual(same.shape, x.shape)
        XCTAssertEqual(same.values, x.values)
    }

    func testPadGradient() {
        checkGradient("pad2d", rng.tensor([2, 3, 4, 5])) { pad2d($0, Padding2d(top: 1, bottom: 2, left: 0, right: 3)) }
    }

    func testStridedDepthwiseMatchesDirectConvolution() {
        for (h, w, k, s) in [(9, 8, 3, 2), (11, 11, 5, 2), (7, 6, 3, 1)] {
            let c = 19  // one 16-lane group and a remainder
            let x = rng.tensor([2, h, w, c])
            let torchWeight = (0..<(c * k * k)).map { _ in rng.uniform() }
            let bias = rng.tensor([c])
            let y = depthwiseConv2dValid(x, weight: depthwiseWeightHWC(torchWeight, c: c, kh: k, kw: k), bias: bias, stride: s)
            let ho = (h - k) / s + 1, wo = (w - k) / s + 1
            XCTAssertEqual(y.shape, [2, ho, wo, c])
            for b in 0..<2 { for oy in 0..<ho { for ox in 0..<wo { for ch in 0..<c {
                var acc = Double(bias.data[ch])
                for ky in 0..<k { for kx in 0..<k {
                    acc += Double(x.data[((b * h + oy * s + ky) * w + ox * s + kx) * c + ch]) * Double(torchWeight[(ch * k + ky) * k + kx])
                } }
                XCTAssertEqual(Double(y.data[((b * ho + oy) * wo + ox) * c + ch]), acc, accuracy: 1e-4, "\(h)x\(w) k\(k) s\(s)")
            } } } }
        }
    }

    func testStridedDepthwiseGradient() {
        let w3 = rng.tensor([3, 3, 4]), b = rng.tensor([4])
        checkGradient("depthwise valid 3x3 s2", rng.tensor([1, 7, 8, 4])) { depthwiseConv2dValid($0, weight: w3, bias: b, stride: 2) }
        let w5 = rng.tensor([5, 5, 18])
        checkGradient("depthwise valid 5x5 s2 after same padding", rng.tensor([2, 8, 8, 18])) {
            depthwiseConv2dValid(pad2d($0, .same(height: 8, width: 8, kernel: 5, stride: 2)), weight: w5, stride: 2)
        }
    }

    func testRelu6() {
        let x = Tensor(shape: [6], values: [-1, 0.5, 3, 5.9, 6.5, 100])
        XCTAssertEqual(relu6(x).values, [0, 0.5, 3, 5.9, 6, 6])
        // Away from the kinks at 0 and 6.
        let g = Tensor(shape: [40], values: (0..<40).map { i in Float(i % 5) * 2.1 - 1.7 + Float(i) * 0.01 })
        checkGradient("relu6", g) { relu6($0) }
    }
}
