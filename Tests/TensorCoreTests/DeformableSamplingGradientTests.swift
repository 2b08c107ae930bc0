// Tests of `deformableSampling`: the forward against the slow Double reference and against cases
// worked by hand (borders, half-outside and fully outside locations), finite-difference checks of
// the gradients with respect to values, offsets and weights, and independence of the thread count.
// Offsets for finite differences keep every sampling location's fractional part in [0.15, 0.85], so
// the steps never cross the integer coordinates where bilinear interpolation has kinks.
//
// Shape key: N batch, H height, W width, G groups, D channels per group, P points per group.

import XCTest
@testable import TensorCore

final class DeformableSamplingGradientTests: XCTestCase {
    var rng = TestRNG(7)

    /// Offsets [N,H,W,G*P*2] whose integer parts span [-span, span - 1] (so many locations land
    /// near or beyond the border of a small map) and whose fractional parts stay in [0.15, 0.85].
    func offsetsAwayFromKinks(_ shape: [Int], span: Int) -> Tensor {
        let values = (0..<elementCount(shape)).map { _ -> Float in
            let whole = Int(rng.next() % UInt64(2 * span)) - span
            let frac = 0.5 + 0.35 * rng.uniform()
            return Float(whole) + frac
        }
        return Tensor(shape: shape, values: values)
    }

    func testForwardMatchesReference() {
        // D = 11: one 8-channel chunk and three single channels.
        let (n, h, w, g, d, p) = (2, 5, 6, 2, 11, 4)
        let value = rng.tensor([n, h, w, g * d])
        // Continuous offsets up to 4 pixels: inside, across the border and fully outside.
        let offsets = rng.tensor([n, h, w, g * p * 2], scale: 4)
        let weights = rng.tensor([n, h, w, g * p])
        let y = deformableSampling(value, offsets: offsets, weights: weights, groups: g)
        let ref = referenceDeformableSampling(value, offsets: offsets, weights: weights, groups: g)
        XCTAssertEqual(y.shape, value.shape)
        for i in 0..<ref.count { XCTAssertEqual(y.data[i], ref[i], accuracy: 1e-5, "element \(i)") }
    }

    func testHandWorkedLocations() {
        // A 2x2 map with one channel: [[1, 2], [3, 4]]; one point per pixel, weight 1.
        let value = Tensor(shape: [1, 2, 2, 1], values: [1, 2, 3, 4])
        func sample(_ dx: Float, _ dy: Float, at pixel: Int = 0) -> Float {
            var off = [Float](repeating: 0, count: 8)
            off[2 * pixel] = dx
            off[2 * pixel + 1] = dy
            let y = deformableSampling(value, offsets: Tensor(shape: [1, 2, 2, 2], values: off),
                                       weights: Tensor(shape: [1, 2, 2, 1], repeating: 1), groups: 1)
            return y.data[pixel]
        }
        XCTAssertEqual(sample(0, 0), 1, accuracy: 1e-6)           // on the pixel centre
        XCTAssertEqual(sample(0.5, 0.5), 2.5, accuracy: 1e-6)     // mean of the four
        XCTAssertEqual(sample(0.25, 0), 1.25, accuracy: 1e-6)     // along a row
        XCTAssertEqual(sample(-0.5, 0), 0.5, accuracy: 1e-6)      // half outside the left edge
        XCTAssertEqual(sample(0, 1.5), 1.5, accuracy: 1e-6)       // half below the bottom edge: 3/2
        XCTAssertEqual(sample(-1.5, 0), 0, accuracy: 1e-6)        // fully outside
        XCTAssertEqual(sample(0, 0, at: 3), 4, accuracy: 1e-6)    // the pixel's own position is the base
        XCTAssertEqual(sample(-1, -1, at: 3), 1, accuracy: 1e-6)
        XCTAssertEqual(sample(.nan, 0), 0)                        // non-finite locations read nothing
    }

    func testGradientWithRespectToValue() {
        let (n, h, w, g, d, p) = (2, 4, 5, 2, 9, 3)
        let offsets = offsetsAwayFromKinks([n, h, w, g * p * 2], span: 3)
        let weights = rng.tensor([n, h, w, g * p])
        checkGradient("deformableSampling wrt value", rng.tensor([n, h, w, g * d])) {
            deformableSampling($0, offsets: offsets, weights: weights, groups: g)
        }
    }

    func testGradientWithRespectToOffsets() {
        let (n, h, w, g, d, p) = (1, 5, 4, 3, 10, 4)
        let value = rng.tensor([n, h, w, g * d])
        let weights = rng.tensor([n, h, w, g * p])
        checkGradient("deformableSampling wrt offsets", offsetsAwayFromKinks([n, h, w, g * p * 2], span: 3), coordinates: 40) {
            deformableSampling(value, offsets: $0, weights: weights, groups: g)
        }
    }

    func testGradientWithRespectToWeights() {
        let (n, h, w, g, d, p) = (2, 3, 4, 2, 4, 5)
        let value = rng.tensor([n, h, w, g * d])
        let offsets = offsetsAwayFromKinks([n, h, w, g * p * 2], span: 2)
        checkGradient("deformableSampling wrt weights", rng.tensor([n, h, w, g * p])) {
            deformableSampling(value, offsets: offsets, weights: $0, groups: g)
        }
    }

    func testGradientThroughSoftmaxWeightsAndSharedInput() {
        // As in DCNv3: offsets and weights are computed from the same tensor that is sampled.
        let (h, w, g, d, p) = (4, 4, 2, 2, 3)
        let c = g * d
        let toOffsets = rng.tensor([g * p * 2, c], scale: 0.3), toWeights = rng.tensor([g * p, c])
        let x0 = rng.tensor([1, h, w, c], scale: 0.5)
        // Offsets at x0 equal offsetsAwayFromKinks; steps of 2e-3 move them by under 3e-3.
        let target = offsetsAwayFromKinks([1, h, w, g * p * 2], span: 2)
        let base = add(target, scale(linear(x0, weight: toOffsets), -1))
        checkGradient("deformableSampling shared input", x0, eps: 2e-3) { x in
            let off = add(linear(x, weight: toOffsets), base)
            let wt = softmax(linear(x, weight: toWeights).reshaped([1, h, w, g, p])).reshaped([1, h, w, g * p])
            return deformableSampling(x, offsets: off, weights: wt, groups: g)
        }
    }

    func testLocationsOutsideGiveZeroOutputAndGradients() {
        let (h, w, g, d, p) = (3, 3, 1, 4, 2)
        let value = rng.tensor([1, h, w, g * d]).requiringGrad()
        let offsets = Tensor(shape: [1, h, w, g * p * 2], repeating: 10).requiringGrad()
        let weights = rng.tensor([1, h, w, g * p]).requiringGrad()
        let y = deformableSampling(value, offsets: offsets, weights: weights, groups: g)
        XCTAssertTrue(y.values.allSatisfy { $0 == 0 })
        Tape.backward(y, seed: rng.tensor(y.shape))
        XCTAssertTrue(Tape.gradient(of: value).values.allSatisfy { $0 == 0 })
        XCTAssertTrue(Tape.gradient(of: offsets).values.allSatisfy { $0 == 0 })
        XCTAssertTrue(Tape.gradient(of: weights).values.allSatisfy { $0 == 0 })
    }

    func testResultsDoNotDependOnThreadCount() {
        let (n, h, w, g, d, p) = (2, 9, 7, 3, 8, 9)
        let value = rng.tensor([n, h, w, g * d])
        let offsets = rng.tensor([n, h, w, g * p * 2], scale: 2)
        let weights = rng.tensor([n, h, w, g * p])
        let seed = rng.tensor([n, h, w, g * d])
        func run() -> [[Float]] {
            let v = value.detached().requiringGrad(), o = offsets.detached().requiringGrad(), wt = weights.detached().requiringGrad()
            let y = deformableSampling(v, offsets: o, weights: wt, groups: g)
            Tape.backward(y, seed: seed)
            return [y.values, Tape.gradient(of: v).values, Tape.gradient(of: o).values, Tape.gradient(of: wt).values]
        }
        let before = Threads.count
        Threads.set(1)
        let one = run()
        Threads.set(3)
        let three = run()
        Threads.set(before)
        XCTAssertEqual(one, three)
    }

    func testValueGradientIsTheScalarScatterBitForBit() {
        // D = 37: two 16-channel chunks, one of 4 and a single channel; every chunk width must give the
        // scalar loop's bits (the same multiply and add per element, pixels and points in order).
        let (n, h, w, g, d, p) = (2, 4, 5, 2, 37, 3)
        let offsets = Tensor(shape: [n, h, w, g * p * 2], values: (0..<(n * h * w * g * p * 2)).map { _ in 3 * rng.uniform() })
        let weights = rng.tensor([n, h, w, g * p]), dOut = rng.tensor([n, h, w, g * d])
        let got = deformableSamplingValueGradient([n, h, w, g * d], offsets: offsets, weights: weights, dOut: dOut, groups: g)
        var want = [Float](repeating: 0, count: n * h * w * g * d)
        for b in 0..<n {
            for gi in 0..<g {
                for y in 0..<h {
                    for x in 0..<w {
                        let pixel = (b * h + y) * w + x
                        for k in 0..<p {
                            let q = pixel * g * p + gi * p + k
                            guard let t = BilinearTaps(sx: Float(x) + offsets.data[2 * q], sy: Float(y) + offsets.data[2 * q + 1], w: w, h: h) else { continue }
                            let a = weights.data[q]
                            for (i, tw) in [(t.i00, a * t.w00), (t.i01, a * t.w01), (t.i10, a * t.w10), (t.i11, a * t.w11)] {
                                for j in 0..<d {
                                    let at = (b * h * w + i) * g * d + gi * d + j
                                    want[at] = want[at] + tw * dOut.data[pixel * g * d + gi * d + j]
                                }
                            }
                        }
                    }
                }
            }
        }
        XCTAssertEqual(got.values.map(\.bitPattern), want.map(\.bitPattern))
    }
}
