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
        // Also the study's D = 16 with nine points, and D = 6 (no whole vector on AVX-512).
        for (g, d, p) in [(2, 37, 3), (3, 16, 9), (2, 6, 3)] { checkValueGradient(groups: g, channels: d, points: p) }
    }

    func checkValueGradient(groups g: Int, channels d: Int, points p: Int) {
        let (n, h, w) = (2, 4, 5)
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
        XCTAssertEqual(got.values.map(\.bitPattern), want.map(\.bitPattern), "D = \(d), G = \(g), P = \(p)")
    }

    /// Locations that exercise every branch of `BilinearTaps`: integer and half coordinates, the
    /// borders (-1, 0, W - 1, W and just inside them), -0.0, far outside, and non-finite values.
    func edgeLocations(w: Int, h: Int, count: Int) -> [Float] {
        let special: [Float] = [0, -0.0, -1, -0.999, -1.001, 0.5, -0.5, 1e-7, -1e-7, Float(w - 1), Float(w), Float(w) - 1e-4,
                                Float(h - 1), Float(h), 7.25, -3.5, 1e9, -1e9, .nan, .infinity, -.infinity]
        return (0..<count).map { i in i % 3 == 0 ? special[Int(rng.next() % UInt64(special.count))] : 3 * rng.uniform() }
    }

    func testTapBatchHasTheScalarTapsBits() {
        // 37 points: two whole 16-lane chunks and a partial one (the staging path), each lane against
        // BilinearTaps made one location at a time.
        let (w, h, count) = (5, 4, 37)
        let batch = TapBatch(points: count)
        defer { batch.deallocate() }
        for (x, y) in [(0, 0), (2, 1), (4, 3)] {
            let offsets = edgeLocations(w: w, h: h, count: 2 * count)
            let weights = (0..<count).map { _ in rng.uniform() }
            batch.fill(x: x, y: y, w: w, h: h, offsets: offsets, weights: weights, count: count)
            for l in 0..<count {
                let t = BilinearTaps(sx: Float(x) + offsets[2 * l], sy: Float(y) + offsets[2 * l + 1], w: w, h: h)
                XCTAssertEqual(batch.valid[l] != 0, t != nil, "point \(l) at (\(x), \(y))")
                guard let t else { continue }
                let a = weights[l]
                let (i00, i01, i10, i11) = batch.indices(l)
                XCTAssertEqual([i00, i01, i10, i11], [t.i00, t.i01, t.i10, t.i11], "point \(l)")
                let got = [batch.fx[l], batch.fy[l], batch.m00[l], batch.m01[l], batch.m10[l], batch.m11[l], batch.a[l],
                           batch.a00[l], batch.a01[l], batch.a10[l], batch.a11[l]]
                let want = [t.fx, t.fy, t.m00, t.m01, t.m10, t.m11, a, a * t.w00, a * t.w01, a * t.w10, a * t.w11]
                XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "point \(l) at (\(x), \(y)): \(offsets[2 * l]), \(offsets[2 * l + 1])")
            }
        }
    }

    func testPointGradientsAndForwardAreTheScalarDefinitionBitForBit() {
        // D = 37 (chunks of 16, 4 and 1 channels) and G*P = 21 points per pixel (a whole 16-lane
        // chunk and a partial one), with locations on and beyond the borders: each gradient must have
        // the bits of the point-by-point definition (BilinearTaps, 4-lane partial dot products in
        // channel order), and the forward those of its taps accumulated point by point.
        checkPointGradientsAndForward(groups: 3, channels: 37, points: 7)
        // The study's D = 16 (and 32): whole 16-channel chunks only, the C kernel's regrouped sums.
        checkPointGradientsAndForward(groups: 4, channels: 16, points: 9)
        checkPointGradientsAndForward(groups: 2, channels: 32, points: 9)
        // D = 16 with 3 x 7 = 21 points: groups that start inside a block of four points, and a last
        // block of one (the D = 16 kernels reduce four points' dots together).
        checkPointGradientsAndForward(groups: 3, channels: 16, points: 7)
        // D = 16 with 120 x 9 = 1080 points per pixel: past the D = 16 kernels' 1024, the general ones.
        checkPointGradientsAndForward(groups: 120, channels: 16, points: 9)
        // D < 16: four-channel steps and a tail only.
        checkPointGradientsAndForward(groups: 2, channels: 6, points: 3)
    }

    func checkPointGradientsAndForward(groups g: Int, channels d: Int, points p: Int, file: StaticString = #filePath, line: UInt = #line) {
        let (n, h, w) = (2, 4, 5)
        let gp = g * p, c = g * d
        let value = rng.tensor([n, h, w, c]), dOut = rng.tensor([n, h, w, c])
        let offsets = Tensor(shape: [n, h, w, gp * 2], values: edgeLocations(w: w, h: h, count: n * h * w * gp * 2))
        let weights = rng.tensor([n, h, w, gp])
        var wantOff = [Float](repeating: 0, count: n * h * w * gp * 2), wantWt = [Float](repeating: 0, count: n * h * w * gp)
        var wantOut = [Float](repeating: 0, count: n * h * w * c)
        let vp = value.data, gr = dOut.data
        for b in 0..<n { for y in 0..<h { for x in 0..<w {
            let pixel = (b * h + y) * w + x
            for gi in 0..<g {
                var taps: [(BilinearTaps, Float)] = []
                for k in 0..<p {
                    let q = pixel * gp + gi * p + k
                    guard let t = BilinearTaps(sx: Float(x) + offsets.data[2 * q], sy: Float(y) + offsets.data[2 * q + 1], w: w, h: h) else { continue }
                    taps.append((t, weights.data[q]))
                    func at(_ i: Int, _ j: Int) -> Float { vp[(b * h * w + i) * c + gi * d + j] }
                    var lanes = [[Float]](repeating: [0, 0, 0, 0], count: 4)
                    var j = 0
                    while j + 4 <= d {
                        for l in 0..<4 {
                            let gj = gr[pixel * c + gi * d + j + l]
                            for (m, i) in [t.i00, t.i01, t.i10, t.i11].enumerated() { lanes[m][l] = lanes[m][l] + gj * at(i, j + l) }
                        }
                        j += 4
                    }
                    var e = lanes.map { SIMD4<Float>($0[0], $0[1], $0[2], $0[3]).sum() }
                    while j < d {
                        let gj = gr[pixel * c + gi * d + j]
                        for (m, i) in [t.i00, t.i01, t.i10, t.i11].enumerated() { e[m] += gj * at(i, j) }
                        j += 1
                    }
                    let (e00, e01, e10, e11) = (e[0] * t.m00, e[1] * t.m01, e[2] * t.m10, e[3] * t.m11)
                    let (fx, fy, a) = (t.fx, t.fy, weights.data[q])
                    wantWt[q] = (1 - fy) * ((1 - fx) * e00 + fx * e01) + fy * ((1 - fx) * e10 + fx * e11)
                    wantOff[2 * q] = a * ((1 - fy) * (e01 - e00) + fy * (e11 - e10))
                    wantOff[2 * q + 1] = a * ((1 - fx) * (e10 - e00) + fx * (e11 - e01))
                }
                for j in 0..<d {
                    // Channels in vector chunks add the taps in pairs; the last D % 4 in one chain.
                    var acc: Float = 0
                    for (t, a) in taps {
                        func v(_ i: Int) -> Float { vp[(b * h * w + i) * c + gi * d + j] }
                        if j < d / 4 * 4 {
                            acc += (a * t.w00) * v(t.i00) + (a * t.w01) * v(t.i01)
                            acc += (a * t.w10) * v(t.i10) + (a * t.w11) * v(t.i11)
                        } else {
                            acc += (a * t.w00) * v(t.i00) + (a * t.w01) * v(t.i01) + (a * t.w10) * v(t.i10) + (a * t.w11) * v(t.i11)
                        }
                    }
                    wantOut[pixel * c + gi * d + j] = acc
                }
            }
        } } }
        func differing(_ got: Tensor, _ want: [Float]) -> Int { zip(got.values, want).filter { $0.bitPattern != $1.bitPattern }.count }
        XCTAssertGreaterThan(wantOff.filter { $0 != 0 }.count, wantOff.count / 3, "most points have a gradient", file: file, line: line)
        // The value gradient by the portable kernel's scatter (testValueGradientIsTheScalarScatterBitForBit
        // holds it to the scalar definition).
        defer { GemmKernel.use(GemmKernel.best) }
        GemmKernel.use(.portable)
        let dValue = deformableSamplingValueGradient(value.shape, offsets: offsets, weights: weights, dOut: dOut, groups: g)
        let before = Threads.count
        defer { Threads.set(before) }
        for kernel in GemmKernel.runnable {
            GemmKernel.use(kernel)
            let shape = "D = \(d), G = \(g), P = \(p), \(kernel)"
            let (dOff, dWt) = deformableSamplingPointGradients(value, offsets: offsets, weights: weights, dOut: dOut, groups: g)
            let out = deformableSampling(value, offsets: offsets, weights: weights, groups: g)
            XCTAssertEqual(differing(dWt, wantWt), 0, "weight gradients whose bits differ, \(shape)", file: file, line: line)
            XCTAssertEqual(differing(dOff, wantOff), 0, "offset gradients whose bits differ, \(shape)", file: file, line: line)
            XCTAssertEqual(differing(out, wantOut), 0, "outputs whose bits differ, \(shape)", file: file, line: line)
            // The backward's one pass, both kinds at once and its groups in runs of every length: the
            // bits of each kind alone.
            for threads in [1, 2, 5] {
                Threads.set(threads)
                let both = deformableSamplingGradients(value, offsets: offsets, weights: weights, dOut: dOut, groups: g, values: true, points: true)
                XCTAssertEqual(differing(both.offsets!, wantOff), 0, "one pass, \(threads) threads, \(shape)", file: file, line: line)
                XCTAssertEqual(differing(both.weights!, wantWt), 0, "one pass, \(threads) threads, \(shape)", file: file, line: line)
                XCTAssertEqual(both.values!.values.map(\.bitPattern), dValue.values.map(\.bitPattern), "one pass, \(threads) threads, \(shape)", file: file, line: line)
            }
            Threads.set(before)
        }
    }
}
