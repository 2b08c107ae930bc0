// TensorCore op: deformable bilinear sampling, the core of DCNv3 (and of deformable attention with
// one level). Every output pixel reads, for each channel group, P points of the value map at
// learned offsets from its own position, bilinearly interpolated with zeros outside the map, and
// sums them with per-point weights. Forward and backward side by side; the backward gives
// gradients for the values (a scatter-add), the offsets and the weights. A slow reference
// implementation in Double sits beside it for tests.
//
// Coordinates: pixel (y, x) of the value map has its centre at (y, x); output pixel (y, x) samples
// point p of group g at (x + offsets[.., 2p], y + offsets[.., 2p + 1]). This is what PyTorch's
// `grid_sample(mode: bilinear, padding_mode: zeros, align_corners: False)` computes for the
// normalised coordinates the DCNv3 reference builds (its zero ring of padding and zeros outside the
// padded map are the same as zeros outside this map). Multi-level sampling, other padding modes
// and offsets relative to anything but the output pixel are not provided.
//
// Speed: channels-last makes each bilinear tap a contiguous run of D floats. The channel loops are C
// at the host's vector width (CGemm/sampling.c): the forward's accumulator in registers over a
// group's points (`stm_sample_pixel`), the value gradient's scatter (`stm_sample_scatter`) and the
// point gradients' dot products (`stm_point_dots`: 4-lane partial sums per tap, whose order is part of
// their bits, kept for all four taps in one vector). Each follows the operation sequence written
// in its header, so every ISA gives the same bits. The taps themselves (floors, fractions, masks,
// tap weights, pixel indices) are made 16 points at a time here (`TapBatch`), as are the point
// gradients' final formulas: made point by point in scalar code they took most of these kernels'
// time at D = 16.
//
// The backward is one pass (`deformableSamplingGradients`): each point's taps, made once, serve the
// offset and weight gradients and the value gradient's scatter, both made point by point in one
// call per pixel (`stm_point_dots_scatter`) when both are wanted.
//
// Determinism: the forward and the offset/weight gradients are independent per output pixel; the
// value gradient is a scatter, done per (image, run of groups), each task owning a disjoint channel
// slice of the result and visiting its pixels and points in a fixed order, so no sum depends on the
// thread count or on how the groups are cut into runs.
//
// Shape key: N batch, H height, W width, G groups (heads), D channels per group, C = G*D channels,
// P sampling points per group.

import CGemm
import Foundation

/// The four bilinear taps of one sampling location, one location at a time: the definition the
/// kernels' `TapBatch` computes 16 locations at a time, bit for bit (the tests compare the two).
/// Tap 00 is (y0, x0), 01 is (y0, x0+1), 10 is (y0+1, x0), 11 is (y0+1, x0+1). A tap outside the
/// map has weight 0, mask 0 and pixel index 0 (a valid address, so loops need no branches).
struct BilinearTaps {
    /// Pixel indices `y * W + x` within the image.
    var i00: Int, i01: Int, i10: Int, i11: Int
    /// Interpolation weights.
    var w00: Float, w01: Float, w10: Float, w11: Float
    /// 1 for taps inside the map, 0 outside.
    var m00: Float, m01: Float, m10: Float, m11: Float
    /// Fractional parts of the location.
    var fx: Float, fy: Float

    /// Taps of location (sx, sy) on an h x w map, or nil when all four lie outside (or the location
    /// is not finite).
    @inline(__always)
    init?(sx: Float, sy: Float, w: Int, h: Int) {
        guard sx > -1, sx < Float(w), sy > -1, sy < Float(h) else { return nil }
        // floor by truncation (sx, sy > -1), avoiding a library call.
        let tx = Int(sx), ty = Int(sy)
        let x0 = Float(tx) > sx ? tx - 1 : tx, y0 = Float(ty) > sy ? ty - 1 : ty
        let fx = sx - Float(x0), fy = sy - Float(y0)
        let inX0: Float = x0 >= 0 ? 1 : 0, inX1: Float = x0 + 1 < w ? 1 : 0
        let inY0: Float = y0 >= 0 ? 1 : 0, inY1: Float = y0 + 1 < h ? 1 : 0
        m00 = inY0 * inX0; m01 = inY0 * inX1; m10 = inY1 * inX0; m11 = inY1 * inX1
        w00 = (1 - fy) * (1 - fx) * m00
        w01 = (1 - fy) * fx * m01
        w10 = fy * (1 - fx) * m10
        w11 = fy * fx * m11
        i00 = m00 != 0 ? y0 * w + x0 : 0
        i01 = m01 != 0 ? y0 * w + x0 + 1 : 0
        i10 = m10 != 0 ? (y0 + 1) * w + x0 : 0
        i11 = m11 != 0 ? (y0 + 1) * w + x0 + 1 : 0
        self.fx = fx
        self.fy = fy
    }
}

// Channel chunks use concrete SIMD types: generic SIMD code is many times slower in debug builds.
private typealias F16 = SIMD16<Float>

@inline(__always) private func load16(_ p: UnsafePointer<Float>) -> F16 { UnsafeRawPointer(p).loadUnaligned(as: F16.self) }
@inline(__always) private func store16(_ v: F16, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: F16.self) }

/// The bilinear taps of consecutive sampling points of one output pixel, made 16 points at a time in
/// SIMD lanes and kept as a structure of arrays (one scratch per task). Each lane goes through the
/// operations of `BilinearTaps.init` (the floor as `rounded(.down)`, equal to the truncation's for
/// locations above -1; x + dx with x >= 0 is never -0), so every value has the bits of the scalar
/// definition; lanes of
/// points wholly outside the map (or not finite) have `valid` 0 and values the kernels never read.
/// Before, each kernel made the taps point by point in scalar code, which took most of its time at
/// the study's D = 16 channels per group.
struct TapBatch {
    /// Lanes per field: the points asked for, rounded up to 16.
    let capacity: Int
    private let base: UnsafeMutablePointer<Float>
    /// The four taps' pixel indices, [4, capacity].
    private let index: UnsafeMutablePointer<Int32>
    /// Fields: valid (1 or 0), the floor of x and y, fx, fy, the four masks, the point's weight and
    /// the four tap weights times it.
    private static let fields = 14

    init(points: Int) {
        capacity = max(16, (points + 15) / 16 * 16)
        // The fields, then 48 staging lanes for a partial chunk's offsets and weights.
        base = .allocate(capacity: TapBatch.fields * capacity + 48)
        base.initialize(repeating: 0, count: TapBatch.fields * capacity + 48)
        index = .allocate(capacity: 4 * capacity)
        index.initialize(repeating: 0, count: 4 * capacity)
    }

    func deallocate() { base.deallocate(); index.deallocate() }

    @inline(__always) private func field(_ f: Int) -> UnsafeMutablePointer<Float> { base + f * capacity }
    var valid: UnsafeMutablePointer<Float> { field(0) }
    var x0: UnsafeMutablePointer<Float> { field(1) }
    var y0: UnsafeMutablePointer<Float> { field(2) }
    var fx: UnsafeMutablePointer<Float> { field(3) }
    var fy: UnsafeMutablePointer<Float> { field(4) }
    var m00: UnsafeMutablePointer<Float> { field(5) }
    var m01: UnsafeMutablePointer<Float> { field(6) }
    var m10: UnsafeMutablePointer<Float> { field(7) }
    var m11: UnsafeMutablePointer<Float> { field(8) }
    /// The point's weight (`weights[q]`).
    var a: UnsafeMutablePointer<Float> { field(9) }
    /// a * w00, a * w01, a * w10, a * w11: what each tap's value is multiplied by.
    var a00: UnsafeMutablePointer<Float> { field(10) }
    var a01: UnsafeMutablePointer<Float> { field(11) }
    var a10: UnsafeMutablePointer<Float> { field(12) }
    var a11: UnsafeMutablePointer<Float> { field(13) }
    /// Pixel indices `y * W + x` of taps 00, 01, 10, 11 within the image (0 for a tap outside the map,
    /// as `BilinearTaps`).
    var i00: UnsafeMutablePointer<Int32> { index }
    var i01: UnsafeMutablePointer<Int32> { index + capacity }
    var i10: UnsafeMutablePointer<Int32> { index + 2 * capacity }
    var i11: UnsafeMutablePointer<Int32> { index + 3 * capacity }

    /// The taps of points [0, count) at output pixel (x, y) of an h x w map.
    /// - Parameters:
    ///   - offsets: the points' (dx, dy) pairs, [count, 2].
    ///   - weights: the points' weights, [count].
    @inline(__always)
    func fill(x: Int, y: Int, w: Int, h: Int, offsets: UnsafePointer<Float>, weights: UnsafePointer<Float>, count: Int) {
        let fw = Float(w), fh = Float(h)
        let zero = F16(), one = F16(repeating: 1)
        var i = 0
        while i < count {
            let n = min(16, count - i)
            let dx: F16, dy: F16, a: F16
            if n == 16 {
                let pairs = UnsafeRawPointer(offsets + 2 * i).loadUnaligned(as: SIMD32<Float>.self)
                dx = pairs.evenHalf
                dy = pairs.oddHalf
                a = load16(weights + i)
            } else {
                // A last, partial chunk goes through the staging lanes (inserting lanes one by one
                // into a vector is a chain of dependent moves); lanes past n keep stale values.
                let stage = field(TapBatch.fields)
                stage.update(from: offsets + 2 * i, count: 2 * n)
                (stage + 32).update(from: weights + i, count: n)
                let pairs = UnsafeRawPointer(stage).loadUnaligned(as: SIMD32<Float>.self)
                dx = pairs.evenHalf
                dy = pairs.oddHalf
                a = load16(stage + 32)
            }
            let sx = F16(repeating: Float(x)) + dx, sy = F16(repeating: Float(y)) + dy
            let ok = (sx .> -1) .& (sx .< fw) .& (sy .> -1) .& (sy .< fh)
            // Lanes outside take location 0, so the rest stays finite; they are never read.
            let cx = zero.replacing(with: sx, where: ok), cy = zero.replacing(with: sy, where: ok)
            let x0 = cx.rounded(.down), y0 = cy.rounded(.down)
            let fx = cx - x0, fy = cy - y0
            let inX0 = zero.replacing(with: one, where: x0 .>= 0), inX1 = zero.replacing(with: one, where: x0 + 1 .< fw)
            let inY0 = zero.replacing(with: one, where: y0 .>= 0), inY1 = zero.replacing(with: one, where: y0 + 1 .< fh)
            let m00 = inY0 * inX0, m01 = inY0 * inX1, m10 = inY1 * inX0, m11 = inY1 * inX1
            let w00 = (1 - fy) * (1 - fx) * m00
            let w01 = (1 - fy) * fx * m01
            let w10 = fy * (1 - fx) * m10
            let w11 = fy * fx * m11
            store16(zero.replacing(with: one, where: ok), valid + i)
            store16(x0, self.x0 + i); store16(y0, self.y0 + i)
            store16(fx, self.fx + i); store16(fy, self.fy + i)
            store16(m00, self.m00 + i); store16(m01, self.m01 + i); store16(m10, self.m10 + i); store16(m11, self.m11 + i)
            store16(a, self.a + i)
            store16(a * w00, a00 + i); store16(a * w01, a01 + i); store16(a * w10, a10 + i); store16(a * w11, a11 + i)
            // Indices in integers. x0 and y0 are whole numbers in [-1, 2^22), so x + 1.5 * 2^23 is exact and
            // its low bits are x + 2^22 (the library's SIMD conversion to Int32 runs lane by lane).
            let magic = F16(repeating: 12_582_912)
            let ix = unsafeBitCast(x0 + magic, to: SIMD16<Int32>.self) &- 0x4B40_0000
            let iy = unsafeBitCast(y0 + magic, to: SIMD16<Int32>.self) &- 0x4B40_0000
            let p00 = iy &* Int32(w) &+ ix
            let none = SIMD16<Int32>()
            storeIndices(p00.replacing(with: none, where: m00 .== 0), i00 + i)
            storeIndices((p00 &+ 1).replacing(with: none, where: m01 .== 0), i01 + i)
            storeIndices((p00 &+ Int32(w)).replacing(with: none, where: m10 .== 0), i10 + i)
            storeIndices((p00 &+ Int32(w + 1)).replacing(with: none, where: m11 .== 0), i11 + i)
            i += 16
        }
    }

    @inline(__always) private func storeIndices(_ v: SIMD16<Int32>, _ p: UnsafeMutablePointer<Int32>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Int32>.self)
    }

    /// Point l's tap pixel indices `y * W + x` (0 for a tap outside, as `BilinearTaps`).
    @inline(__always)
    func indices(_ l: Int) -> (Int, Int, Int, Int) { (Int(i00[l]), Int(i01[l]), Int(i10[l]), Int(i11[l])) }
}

/// Deformable sampling: out[n, y, x, g*D + d] = sum_p weights[n, y, x, g*P + p] *
/// bilinear(value[n, :, :, g*D + d], x + offsets[n, y, x, 2(g*P + p)], y + offsets[n, y, x, 2(g*P + p) + 1]).
///
/// Bilinear interpolation has pixel centres at integer coordinates and reads zeros outside the map.
/// - Parameters:
///   - value: [N, H, W, G*D], channels-last; group g owns channels g*D ..< (g+1)*D.
///   - offsets: [N, H, W, G*P*2], (dx, dy) pairs in pixels, relative to the output pixel.
///   - weights: [N, H, W, G*P], e.g. a softmax over each group's P points.
///   - groups: G.
/// - Returns: [N, H, W, G*D]. Gradients flow to all three inputs.
public func deformableSampling(_ value: Tensor, offsets: Tensor, weights: Tensor, groups: Int) -> Tensor {
    precondition(value.rank == 4 && groups > 0 && value.shape[3] % groups == 0,
                 "deformableSampling: value \(value.shape) is not [N,H,W,G*D] for \(groups) groups")
    let (n, h, w, c) = (value.shape[0], value.shape[1], value.shape[2], value.shape[3])
    let d = c / groups
    let gp = weights.lastDim
    precondition(weights.count == n * h * w * gp && gp % groups == 0,
                 "deformableSampling: weights \(weights.shape) are not [N,H,W,G*P] for value \(value.shape)")
    precondition(offsets.count == n * h * w * 2 * gp,
                 "deformableSampling: offsets \(offsets.shape) are not [N,H,W,G*P*2] for weights \(weights.shape)")
    let p = gp / groups
    precondition(h * (w + 1) < Int(Int32.max) && max(h, w) < 1 << 22,
                 "deformableSampling: a \(h) x \(w) map is too large for 32-bit tap indices")
    let out = Tensor(uninitializedShape: value.shape)
    let vp = value.data, op = out.data, offp = offsets.data, wtp = weights.data
    let rows = n * h
    parallelFor(rows, grain: grainFor(rows, cost: w * gp * (8 * d + 24))) { r in
        let batch = TapBatch(points: gp)
        defer { batch.deallocate() }
        for row in r {
            let b = row / h, y = row % h
            let image = vp + b * h * w * c
            for x in 0..<w {
                let pixel = row * w + x
                batch.fill(x: x, y: y, w: w, h: h, offsets: offp + pixel * gp * 2, weights: wtp + pixel * gp, count: gp)
                // Each group's channels from its points' taps, in C (CGemm/sampling.c); points wholly
                // outside are skipped.
                stm_sample_pixel(op + pixel * c, image, c, d, p, groups, batch.i00, batch.i01, batch.i10, batch.i11,
                                 batch.valid, batch.a00, batch.a01, batch.a10, batch.a11)
            }
        }
    }
    return Tape.record(out, inputs: [value, offsets, weights]) { dOut in
        let g = deformableSamplingGradients(value, offsets: offsets, weights: weights, dOut: dOut, groups: groups,
                                            values: value.requiresGrad, points: offsets.requiresGrad || weights.requiresGrad)
        return [g.values, g.offsets, g.weights]
    }
}

/// Gradients with respect to the offsets [N,H,W,G*P*2] and weights [N,H,W,G*P]. With s the bilinear
/// sample and a the point's weight: dweight = <dOut, s>, doffset = a * <dOut, ds/dx>, a * <dOut, ds/dy>.
/// The backward's pass with the value gradient left out (for the tests of each kind alone).
func deformableSamplingPointGradients(_ value: Tensor, offsets: Tensor, weights: Tensor, dOut: Tensor,
                                      groups: Int) -> (Tensor, Tensor) {
    let g = deformableSamplingGradients(value, offsets: offsets, weights: weights, dOut: dOut, groups: groups, values: false, points: true)
    return (g.offsets!, g.weights!)
}

/// Gradient with respect to the values [N,H,W,G*D]: every sample adds weight * tap weight * dOut to
/// its four taps. The backward's pass with the point gradients left out (for tests: the zero tensor
/// only gives the shape).
func deformableSamplingValueGradient(_ shape: [Int], offsets: Tensor, weights: Tensor, dOut: Tensor, groups: Int) -> Tensor {
    deformableSamplingGradients(Tensor(shape: shape, repeating: 0), offsets: offsets, weights: weights, dOut: dOut,
                                groups: groups, values: true, points: false).values!
}

/// The backward of `deformableSampling` in one pass over the sampling points: each point's taps are
/// made once (`TapBatch`) and serve both the point gradients (`values: false` leaves the value
/// gradient out, `points: false` the other two) and the value gradient's scatter. Before, the two
/// passes made every tap twice, the scatter nine points (one group) at a time.
///
/// One task per (image, run of groups): it owns that image's channel slice of the value gradient for
/// its groups and walks the output pixels, and each pixel's points, in order, so each sum is made in
/// the same order whatever the threads and runs (a group's scatter meets no other group's channels).
/// The point gradients are per point. So no bit depends on the thread count.
/// - Parameters: value [N,H,W,G*D] (read for the point gradients; its shape only otherwise),
///   offsets [N,H,W,G*P*2], weights [N,H,W,G*P], dOut [N,H,W,G*D].
func deformableSamplingGradients(_ value: Tensor, offsets: Tensor, weights: Tensor, dOut: Tensor, groups: Int,
                                 values wantValues: Bool, points wantPoints: Bool)
    -> (values: Tensor?, offsets: Tensor?, weights: Tensor?) {
    let (n, h, w, c) = (value.shape[0], value.shape[1], value.shape[2], value.shape[3])
    let d = c / groups, gp = weights.lastDim, p = gp / groups, hw = h * w
    let dValue: Tensor? = wantValues ? Tensor(uninitializedShape: value.shape) : nil
    let dOff: Tensor? = wantPoints ? Tensor(uninitializedShape: offsets.shape) : nil
    let dWt: Tensor? = wantPoints ? Tensor(uninitializedShape: weights.shape) : nil
    guard wantValues || wantPoints else { return (nil, nil, nil) }
    let vp = value.data, offp = offsets.data, wtp = weights.data, gradp = dOut.data
    let dvp = dValue?.data, doffp = dOff?.data, dwtp = dWt?.data
    // Runs of groups: as few as keep the threads evenly busy (N * runs a multiple of the threads),
    // since a task that walks an image for a few of its groups pays each pixel's set-up (the tap
    // batch, the calls) for fewer points and reads a few lines of each pixel's values: with one
    // group per task (as the value gradient had) the sampling work took 1.9x as long as with all
    // groups in one task (dcn_v3_tiny's ERF, Zen 5).
    let threads = max(1, Threads.count)
    var common = n, other = threads
    while other != 0 { (common, other) = (other, common % other) }
    let runsPerImage = min(groups, threads / common)
    let run = (groups + runsPerImage - 1) / runsPerImage
    let runs = (groups + run - 1) / run
    parallelFor(n * runs) { r in
        let batch = TapBatch(points: run * p)
        // <dOut, tap> of each point's four taps (0 for points wholly outside). [4, capacity]
        let dots = UnsafeMutablePointer<Float>.allocate(capacity: 4 * batch.capacity)
        dots.initialize(repeating: 0, count: 4 * batch.capacity)  // lanes past the run's points are loaded, never used
        defer { batch.deallocate(); dots.deallocate() }
        let e00p = dots, e01p = dots + batch.capacity, e10p = dots + 2 * batch.capacity, e11p = dots + 3 * batch.capacity
        for task in r {
            // Tasks taken together are on different images where there are several (run-major):
            // two threads on one image's runs were 7 % slower (two runs per image, dcn_v3_tiny).
            let b = task % n, g0 = (task / n) * run, g1 = min(groups, g0 + run)
            let count = (g1 - g0) * p, width = (g1 - g0) * d
            let image = vp + b * hw * c + g0 * d
            let dst = dvp.map { $0 + b * hw * c + g0 * d }
            if let dst { for i in 0..<hw { (dst + i * c).update(repeating: 0, count: width) } }
            for y in 0..<h {
                for x in 0..<w {
                    let pixel = (b * h + y) * w + x
                    let go = gradp + pixel * c + g0 * d
                    let q0 = pixel * gp + g0 * p
                    batch.fill(x: x, y: y, w: w, h: h, offsets: offp + 2 * q0, weights: wtp + q0, count: count)
                    // The scatter runs group by group, its points in order. Taps outside the map have
                    // weight 0 and point at pixel 0, where they add nothing.
                    if let doffp, let dwtp, let dst {
                        // Both kinds point by point, while each point's taps are in cache.
                        stm_point_dots_scatter(go, image, dst, c, d, p, count, batch.i00, batch.i01, batch.i10, batch.i11,
                                               batch.valid, batch.a00, batch.a01, batch.a10, batch.a11, e00p, e01p, e10p, e11p)
                        pointGradients(batch, e00p, e01p, e10p, e11p, count: count, dWeights: dwtp + q0, dOffsets: doffp + 2 * q0)
                    } else if let doffp, let dwtp {
                        stm_point_dots(go, image, c, d, p, count, batch.i00, batch.i01, batch.i10, batch.i11, batch.valid,
                                       e00p, e01p, e10p, e11p)
                        pointGradients(batch, e00p, e01p, e10p, e11p, count: count, dWeights: dwtp + q0, dOffsets: doffp + 2 * q0)
                    } else if let dst {
                        stm_sample_scatter(dst, go, c, d, p, g1 - g0, batch.i00, batch.i01, batch.i10, batch.i11,
                                           batch.valid, batch.a00, batch.a01, batch.a10, batch.a11)
                    }
                }
            }
        }
    }
    return (dValue, dOff, dWt)
}

/// The point gradients' final formulas, 16 points at a time, from each point's four tap dots:
/// dWeights [count], dOffsets [count, 2] (dx, dy). Taps outside the map read zero; points wholly
/// outside get zero gradients.
@inline(__always)
private func pointGradients(_ batch: TapBatch, _ e00p: UnsafePointer<Float>, _ e01p: UnsafePointer<Float>,
                            _ e10p: UnsafePointer<Float>, _ e11p: UnsafePointer<Float>, count: Int,
                            dWeights dw: UnsafeMutablePointer<Float>, dOffsets doff: UnsafeMutablePointer<Float>) {
    var i = 0
    while i < count {
        let e00 = load16(e00p + i) * load16(batch.m00 + i), e01 = load16(e01p + i) * load16(batch.m01 + i)
        let e10 = load16(e10p + i) * load16(batch.m10 + i), e11 = load16(e11p + i) * load16(batch.m11 + i)
        let fx = load16(batch.fx + i), fy = load16(batch.fy + i), a = load16(batch.a + i)
        let outside = load16(batch.valid + i) .== 0
        // The scalar definition's expressions, split only for the type checker.
        let gx: F16 = 1 - fx, gy: F16 = 1 - fy
        let top: F16 = gx * e00 + fx * e01, bottom: F16 = gx * e10 + fx * e11
        let vw: F16 = (gy * top + fy * bottom).replacing(with: 0, where: outside)
        let sx: F16 = gy * (e01 - e00) + fy * (e11 - e10), sy: F16 = gx * (e10 - e00) + fx * (e11 - e01)
        let vx: F16 = (a * sx).replacing(with: 0, where: outside)
        let vy: F16 = (a * sy).replacing(with: 0, where: outside)
        let m = min(16, count - i)
        if m == 16 {
            store16(vw, dw + i)
            var pairs = SIMD32<Float>()
            pairs.evenHalf = vx
            pairs.oddHalf = vy
            UnsafeMutableRawPointer(doff + 2 * i).storeBytes(of: pairs, as: SIMD32<Float>.self)
        } else {
            for l in 0..<m {
                dw[i + l] = vw[l]
                doff[2 * (i + l)] = vx[l]
                doff[2 * (i + l) + 1] = vy[l]
            }
        }
        i += 16
    }
}

/// The same sum as `deformableSampling`, by the definition: each of the four neighbours of every
/// sampling location is visited, weighted by (1 - |sx - x'|)(1 - |sy - y'|) and skipped when outside
/// the map; accumulated in Double. Slow; for tests. Same shapes as `deformableSampling`; returns its
/// output values, row-major.
public func referenceDeformableSampling(_ value: Tensor, offsets: Tensor, weights: Tensor, groups: Int) -> [Float] {
    let (n, h, w, c) = (value.shape[0], value.shape[1], value.shape[2], value.shape[3])
    let d = c / groups, gp = weights.lastDim, p = gp / groups
    var out = [Float](repeating: 0, count: value.count)
    for b in 0..<n { for y in 0..<h { for x in 0..<w { for g in 0..<groups { for j in 0..<d {
        let pixel = (b * h + y) * w + x
        var acc = 0.0
        for k in 0..<p {
            let q = pixel * gp + g * p + k
            let sx = Double(x) + Double(offsets.data[2 * q]), sy = Double(y) + Double(offsets.data[2 * q + 1])
            let x0 = Int(Foundation.floor(sx)), y0 = Int(Foundation.floor(sy))
            var sample = 0.0
            for yy in y0...(y0 + 1) {
                for xx in x0...(x0 + 1) where yy >= 0 && yy < h && xx >= 0 && xx < w {
                    let tap = (1 - Swift.abs(sx - Double(xx))) * (1 - Swift.abs(sy - Double(yy)))
                    sample += tap * Double(value.data[((b * h + yy) * w + xx) * c + g * d + j])
                }
            }
            acc += Double(weights.data[q]) * sample
        }
        out[pixel * c + g * d + j] = Float(acc)
    } } } } }
    return out
}
