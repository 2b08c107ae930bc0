// TensorCore ops: element-wise activations and the softmax, with their gradient rules.
// GELU is the exact (erf) form PyTorch's nn.GELU uses; no tanh approximation is offered. ReLU6 is
// EfficientNet-Lite's activation.
//
// Shape key: any shape; softmax works over the last dimension (M rows of L entries).

import CGemm
import Foundation

/// Exact GELU: x * Phi(x) = x/2 * (1 + erf(x / sqrt 2)). With a gradient, the forward also keeps
/// GELU's slope Phi(x) + x * phi(x) (computed with the same erf), and the rule multiplies by it.
public func gelu(_ x: Tensor) -> Tensor {
    let out = Tensor(uninitializedShape: x.shape)
    let xp = x.data, op = out.data
    let n = x.count
    guard x.requiresGrad else {
        parallelFor(n, grain: grainFor(n, minimum: 4096, cost: 20)) { r in
            stm_gelu_forward(xp + r.lowerBound, op + r.lowerBound, r.count)  // = referenceGeluForward, bit for bit
        }
        return out
    }
    let slope = Tensor(uninitializedShape: x.shape)
    let sp = slope.data
    parallelFor(n, grain: grainFor(n, minimum: 4096, cost: 30)) { r in
        stm_gelu_forward_slope(xp + r.lowerBound, op + r.lowerBound, sp + r.lowerBound, r.count)
    }
    return Tape.record(out, inputs: [x]) { dOut in [geluGradient(slope: slope, dOut)] }
}

/// GELU's rule: dx = dOut * slope, where slope [any] = Phi(x) + x * phi(x) as its forward kept it
/// (the bits of referenceGeluBackward). dOut has slope's count -> dx, shaped as slope.
func geluGradient(slope: Tensor, _ dOut: Tensor) -> Tensor {
    let dx = Tensor(uninitializedShape: slope.shape)
    let dp = dOut.data, dxp = dx.data, sp = slope.data
    let n = slope.count
    parallelFor(n, grain: grainFor(n, minimum: 16384)) { r in
        stm_multiply(dp + r.lowerBound, sp + r.lowerBound, dxp + r.lowerBound, r.count)
    }
    return dx
}

/// The definition the C GELU kernel (CGemm's stm_gelu_forward) must meet bit for bit: x [N] -> y [N].
public func referenceGeluForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    mapLanes(x, y, n) { v in 0.5 * v * (1 + fastErf(v * 0.70710678118654752)) }
}

/// The definition of GELU's rule: x, dy [N] -> dx [N]. The kernels meet it as dy * slope, the slope
/// from stm_gelu_forward_slope (= referenceGeluSlope).
public func referenceGeluBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
    mapLanes2(x, dy, dx, n) { v, g in
        g * (0.5 * (1 + fastErf(v * 0.70710678118654752)) + v * 0.39894228040143268 * fastExp(-0.5 * v * v))
    }
}

/// The definition of GELU's slope, the factor of its rule: x [N] -> slope [N].
public func referenceGeluSlope(_ x: UnsafePointer<Float>, _ slope: UnsafeMutablePointer<Float>, _ n: Int) {
    mapLanes(x, slope, n) { v in
        0.5 * (1 + fastErf(v * 0.70710678118654752)) + v * 0.39894228040143268 * fastExp(-0.5 * v * v)
    }
}

/// max(x, 0).
public func relu(_ x: Tensor) -> Tensor {
    let out = Tensor(uninitializedShape: x.shape)
    let xp = x.data, op = out.data
    let n = x.count
    parallelFor(n, grain: grainFor(n, minimum: 8192)) { r in
        for i in r { op[i] = max(xp[i], 0) }
    }
    return Tape.record(out, inputs: [x]) { dOut in
        let dx = Tensor(uninitializedShape: x.shape)
        let dp = dOut.data, dxp = dx.data, xp = x.data
        parallelFor(n, grain: grainFor(n, minimum: 8192)) { r in
            for i in r { dxp[i] = xp[i] > 0 ? dp[i] : 0 }
        }
        return [dx]
    }
}

/// min(max(x, 0), 6), PyTorch's nn.ReLU6. Its gradient is 1 strictly inside (0, 6), else 0.
public func relu6(_ x: Tensor) -> Tensor {
    let out = Tensor(uninitializedShape: x.shape)
    let xp = x.data, op = out.data
    let n = x.count
    parallelFor(n, grain: grainFor(n, minimum: 8192)) { r in
        for i in r { op[i] = min(max(xp[i], 0), 6) }
    }
    return Tape.record(out, inputs: [x]) { dOut in
        let dx = Tensor(uninitializedShape: x.shape)
        let dp = dOut.data, dxp = dx.data, xp = x.data
        parallelFor(n, grain: grainFor(n, minimum: 8192)) { r in
            for i in r { dxp[i] = xp[i] > 0 && xp[i] < 6 ? dp[i] : 0 }
        }
        return [dx]
    }
}

/// Softmax over the last dimension. Keeps its output for the backward.
public func softmax(_ x: Tensor) -> Tensor {
    let l = x.lastDim
    let m = x.count / max(l, 1)
    let out = Tensor(uninitializedShape: x.shape)
    let xp = x.data, op = out.data
    parallelFor(m, grain: grainFor(m, cost: 4 * l)) { r in
        stm_softmax_rows(xp + r.lowerBound * l, op + r.lowerBound * l, r.count, l)
    }
    return Tape.record(out, inputs: [x]) { dOut in
        let dx = Tensor(uninitializedShape: x.shape)
        let dp = dOut.data, dxp = dx.data, op = out.data
        parallelFor(m, grain: grainFor(m, cost: 4 * l)) { r in
            let at = r.lowerBound * l
            softmaxBackwardRows(op + at, dp + at, dxp + at, rows: r.count, l)
        }
        return [dx]
    }
}

/// softmax of one row: o = exp(x - max) / sum (CGemm's C kernel at the vector width in use; it
/// gives the bits of `referenceSoftmaxRow`, the definition, on every path).
@inlinable @inline(__always)
func softmaxRow(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, _ l: Int) {
    stm_softmax_row(x, o, l)
}

/// `softmaxRow` of each of `rows` consecutive rows (x, o [rows, L]; o may equal x), with each row's
/// bits; short rows and the tails of long ones run several rows at a time (stm_softmax_rows).
func softmaxRows(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, rows: Int, _ l: Int) {
    stm_softmax_rows(x, o, rows, l)
}

/// The definition of the softmax row kernel: o = exp(x - max) / sum, sixteen lanes, the sum in a
/// fixed order. x, o [L] (o may equal x).
public func referenceSoftmaxRow(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, _ l: Int) {
    var mx = -Float.greatestFiniteMagnitude
    for j in 0..<l { mx = max(mx, x[j]) }
    // exp(x - max) sixteen lanes at a time; the sum in a fixed order.
    var j = 0
    let raw = UnsafeRawPointer(x), out = UnsafeMutableRawPointer(o)
    var acc = Float16x(repeating: 0)
    while j + 16 <= l {
        let e = fastExp(raw.loadUnaligned(fromByteOffset: j * 4, as: Float16x.self) - mx)
        out.storeBytes(of: e, toByteOffset: j * 4, as: Float16x.self)
        acc += e
        j += 16
    }
    var s = acc.sum()
    if j < l {
        var v = Float16x(repeating: -Float.infinity)
        for t in 0..<(l - j) { v[t] = x[j + t] }
        let e = fastExp(v - mx)
        for t in 0..<(l - j) { o[j + t] = e[t]; s += e[t] }
    }
    let inv = 1 / s
    for j in 0..<l { o[j] = softmaxWeight(o[j] * inv) }
}

/// A softmax weight as stored: below the smallest normal float it is +0, so no weight is denormal
/// (an x86 core without DAZ takes a slow assist on every product with a denormal operand: masked and
/// far-off logits made a quarter of an untrained halo_tiny's weights denormal, and on an Intel Xeon its
/// ERF pass ran 2.4x faster with the CPU's flush-to-zero mode on). Such a weight changes no sum it
/// enters by more than 1.2e-38. NaN stays NaN.
@inline(__always)
func softmaxWeight(_ v: Float) -> Float { v < .leastNormalMagnitude ? 0 : v }

/// Gradient of softmax for one row: dx = p * (d - sum(d * p)).
@inlinable
func softmaxBackwardRow(_ p: UnsafePointer<Float>, _ d: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ l: Int) {
    var dot: Float = 0
    for j in 0..<l { dot += d[j] * p[j] }
    softmaxBackwardScale(p, d, dx, dot, l)
}

/// `softmaxBackwardRow` for consecutive rows: p, d, dx [rows, L] (dx may equal d). Sums run side by
/// side, each in its row's order, so each row gets the bits it gets alone: one row's sum is a chain
/// of dependent adds, and rows one after another were bound by the add's latency. The kernel's lanes
/// take whole groups of 16 or 8 rows; four scalar chains, then single rows, take the rest.
func softmaxBackwardRows(_ p: UnsafePointer<Float>, _ d: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                         rows: Int, _ l: Int) {
    var i = 0
    // Blocks of up to 64 rows: the kernel's sums, 16 (AVX-512) or 8 (AVX2) rows at a time across the
    // lanes, then each row's scaling (halo_tiny: the sums 2.9 -> 1.6 % of the pass's samples).
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 64) { dots in
        while i < rows {
            let n = min(64, rows - i)
            let done = stm_softmax_backward_dots(p + i * l, d + i * l, n, l, dots.baseAddress!)
            for r in 0..<done { softmaxBackwardScale(p + (i + r) * l, d + (i + r) * l, dx + (i + r) * l, dots[r], l) }
            i += done
            if done < n { break }
        }
    }
    while i + 4 <= rows {
        let p0 = p + i * l, p1 = p0 + l, p2 = p1 + l, p3 = p2 + l
        let d0 = d + i * l, d1 = d0 + l, d2 = d1 + l, d3 = d2 + l
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
        for j in 0..<l {
            s0 += d0[j] * p0[j]
            s1 += d1[j] * p1[j]
            s2 += d2[j] * p2[j]
            s3 += d3[j] * p3[j]
        }
        softmaxBackwardScale(p0, d0, dx + i * l, s0, l)
        softmaxBackwardScale(p1, d1, dx + (i + 1) * l, s1, l)
        softmaxBackwardScale(p2, d2, dx + (i + 2) * l, s2, l)
        softmaxBackwardScale(p3, d3, dx + (i + 3) * l, s3, l)
        i += 4
    }
    while i < rows {
        softmaxBackwardRow(p + i * l, d + i * l, dx + i * l, l)
        i += 1
    }
}

/// dx[j] = p[j] * (d[j] - dot), sixteen at a time (dx may equal d, so a plain loop stays scalar);
/// a value of magnitude below the smallest normal float is stored as +0, as `softmaxWeight` does for
/// the weights (a tiny weight times a small dP is often denormal, and dx feeds two products).
@inline(__always) @usableFromInline
func softmaxBackwardScale(_ p: UnsafePointer<Float>, _ d: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                  _ dot: Float, _ l: Int) {
    let dots = Float16x(repeating: dot), tiny = Float16x(repeating: .leastNormalMagnitude)
    var j = 0
    while j + 16 <= l {
        let pv = UnsafeRawPointer(p + j).loadUnaligned(as: Float16x.self), dv = UnsafeRawPointer(d + j).loadUnaligned(as: Float16x.self)
        let g = pv * (dv - dots)
        UnsafeMutableRawPointer(dx + j).storeBytes(of: g.replacing(with: 0, where: (g .< tiny) .& (g .> -tiny)), as: Float16x.self)
        j += 16
    }
    while j < l {
        let g = p[j] * (d[j] - dot)
        dx[j] = abs(g) < .leastNormalMagnitude ? 0 : g
        j += 1
    }
}
