// stm-analyze kernel's analysis: the static kernel of a depth-wise convolution equals its weights;
// a Swin block's softmax kernel sums to 1 over its window and is zero outside it; the Jacobian view
// of a purely linear mixer (a depth-wise convolution) equals its weights; a site outside the map is
// one clear error.
//
// Shape key: H/W map, C channels, K kernel side.

import Analysis
import Foundation
import Models
import TensorCore
import TestSupport
import XCTest

final class KernelTests: XCTestCase {
    private func image(_ side: Int = 224) -> Tensor {
        var state: UInt64 = 5
        return Tensor(shape: [1, side, side, 3], values: (0..<(side * side * 3)).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(state >> 40) % 2001 - 1000) / 1000
        })
    }

    func testDepthwiseConvKernelEqualsItsWeights() throws {
        let loaded = try ModelLoader.load(model: referencePath("convnext_nano.pth"), arch: referencePath("convnext_nano.json"))
        let site = KernelSite(stage: 2, block: 1, y: 10, x: 12)
        let r = try computeKernel(model: loaded.model, name: "convnext_nano", image: image(), site: site)
        XCTAssertEqual(r.kernel.kind, .staticKernel)
        let w = try XCTUnwrap(loaded.state?["stages.1.0.dwconv.weight"])  // [C, 1, 7, 7]
        XCTAssertEqual(r.kernel.rawShape, [w.shape[0], 7, 7])
        XCTAssertEqual(r.kernel.raw, w.values)
        // The drawn map: mean |w| over channels at (y + ky - 3, x + kx - 3), zero elsewhere.
        let c = w.shape[0]
        for ky in 0..<7 {
            for kx in 0..<7 {
                var sum: Float = 0
                for ch in 0..<c { sum += abs(w.values[ch * 49 + ky * 7 + kx]) }
                XCTAssertEqual(r.kernel.maps[0][(10 + ky - 3) * r.width + 12 + kx - 3], sum / Float(c), accuracy: 1e-6)
            }
        }
        XCTAssertEqual(r.kernel.maps[0].filter { $0 != 0 }.count, 49)
    }

    func testSwinSoftmaxKernelSumsToOneOverItsWindow() throws {
        let loaded = try ModelLoader.load(model: referencePath("swin_nano.pth"), arch: referencePath("swin_nano.json"))
        // Block 2 shifts its windows by 3: position (10, 12) of the 28x28 stage-2 map.
        for (block, x, y) in [(1, 12, 10), (2, 12, 10), (2, 27, 27)] {
            let r = try computeKernel(model: loaded.model, name: "swin_nano", image: image(),
                                      site: KernelSite(stage: 2, block: block, y: y, x: x))
            XCTAssertEqual(r.kernel.kind, .attention)
            XCTAssertEqual(r.kernel.maps.count, 2)
            for (h, m) in r.kernel.maps.enumerated() {
                XCTAssertEqual(m.reduce(0, +), 1, accuracy: 1e-5, "block \(block) head \(h)")
                let support = m.indices.filter { m[$0] > 0 }
                XCTAssertLessThanOrEqual(support.count, 49)
                // Unshifted: the 7x7 window holding the query, exactly.
                if block == 1 {
                    XCTAssertEqual(Set(support), Set((7..<14).flatMap { yy in (7..<14).map { yy * 28 + $0 } }))
                }
            }
            XCTAssertEqual(r.kernel.rawShape, [2, 49])
        }
    }

    func testJacobianOfALinearMixerEqualsItsWeights() {
        var state: UInt64 = 9
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(state >> 40) % 2001 - 1000) / 1000
        }
        let (h, w, c, k) = (9, 8, 3, 5)
        let weights = (0..<(k * k * c)).map { _ in next() }         // [K, K, C]
        let wt = Tensor(shape: [k, k, c], values: weights)
        let x = Tensor(shape: [1, h, w, c], values: (0..<(h * w * c)).map { _ in next() })  // [1,H,W,C]
        let (py, px) = (4, 3)
        let jac = jacobianNorm({ depthwiseConv2d($0, weight: wt, pad: k / 2) }, input: x, y: py, x: px)
        // Output (py, px, ch) = sum_k w[ky, kx, ch] x(py + ky - 2, px + kx - 2, ch): the Jacobian at input
        // position q = p + (ky - 2, kx - 2) is diag(w[ky, kx, :]), whose norm is sqrt(sum_ch w^2).
        for yy in 0..<h {
            for xx in 0..<w {
                let ky = yy - py + k / 2, kx = xx - px + k / 2
                var expected: Float = 0
                if (0..<k).contains(ky) && (0..<k).contains(kx) {
                    expected = (0..<c).map { weights[(ky * k + kx) * c + $0] * weights[(ky * k + kx) * c + $0] }.reduce(0, +).squareRoot()
                }
                XCTAssertEqual(jac[yy * w + xx], expected, accuracy: 1e-6, "(\(yy), \(xx))")
            }
        }
        // One channel: the Jacobian view is |w| itself.
        let w1 = Tensor(shape: [k, k, 1], values: Array(weights.prefix(k * k)))
        let x1 = Tensor(shape: [1, h, w, 1], values: Array(x.values.prefix(h * w)))
        let j1 = jacobianNorm({ depthwiseConv2d($0, weight: w1, pad: k / 2) }, input: x1, y: py, x: px)
        for ky in 0..<k { for kx in 0..<k { XCTAssertEqual(j1[(py + ky - 2) * w + px + kx - 2], abs(weights[ky * k + kx]), accuracy: 1e-6) } }
    }

    func testSiteOutsideTheMapIsOneError() throws {
        let loaded = try ModelLoader.load(model: "unified_swin_micro")
        XCTAssertThrowsError(try computeKernel(model: loaded.model, name: "m", image: image(), site: KernelSite(stage: 2, block: 1, y: 3, x: 28))) {
            XCTAssertEqual("\($0)", "--at 28,3: is outside the 28x28 map of stage 2 (hint: x from 0 to 27, y from 0 to 27)")
        }
        XCTAssertThrowsError(try computeKernel(model: loaded.model, name: "m", image: image(), site: KernelSite(stage: 5, block: 1, y: 0, x: 0)))
        XCTAssertThrowsError(try computeKernel(model: loaded.model, name: "m", image: image(), site: KernelSite(stage: 1, block: 3, y: 0, x: 0)))
    }
}
