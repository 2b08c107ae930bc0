// TensorCore ops: normalisations over the channel (last) dimension. LayerNorm keeps the normalised
// input and 1/std for its backward; BatchNorm in eval mode is a per-channel affine map
// (`channelAffine`), as are layer scales. Training-mode statistics are not provided.
//
// Shape key: M rows (all leading dimensions), C channels.

import CGemm
import Foundation

/// LayerNorm over the last dimension: (x - mean) / sqrt(var + eps) * weight + bias.
/// x [..., C]; weight, bias [C]. `eps` is the module's (1e-6 for LayerNorm2d, 1e-5 for nn.LayerNorm).
public func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float) -> Tensor {
    let c = x.lastDim
    precondition(weight.count == c && bias.count == c, "layerNorm: weight/bias of \(weight.count)/\(bias.count) for \(c) channels")
    let m = x.count / max(c, 1)
    let out = Tensor(uninitializedShape: x.shape)
    let keep = x.requiresGrad
    let xhat = keep ? Tensor(uninitializedShape: x.shape) : out  // [M, C]
    let rstd = Tensor(uninitializedShape: [m])                   // [M]
    let xp = x.data, op = out.data, hp = xhat.data, rp = rstd.data, wp = weight.data, bp = bias.data
    parallelFor(m, grain: grainFor(m, cost: 8 * c)) { r in
        // = referenceLayerNormForward, bit for bit.
        let lo = r.lowerBound
        stm_layernorm_forward(xp + lo * c, wp, bp, eps, r.count, c, hp + lo * c, op + lo * c, rp + lo)
    }
    let xShape = x.shape  // not x: the backward reads xhat and rstd
    return Tape.record(out, inputs: [x]) { dOut in
        // dxhat = dOut * weight; dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
        let dx = Tensor(uninitializedShape: xShape)
        let dp = dOut.data, dxp = dx.data, hp = xhat.data, rp = rstd.data, wp = weight.data
        parallelFor(m, grain: grainFor(m, cost: 8 * c)) { r in
            // = referenceLayerNormBackward, bit for bit.
            let lo = r.lowerBound
            stm_layernorm_backward(hp + lo * c, dp + lo * c, wp, rp + lo, r.count, c, dxp + lo * c)
        }
        return [dx]
    }
}

/// The definition of CGemm's stm_layernorm_forward for rows [0, M) of x [M, C] (xhat, out [M, C],
/// rstd [M]).
public func referenceLayerNormForward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>, eps: Float,
                                      m: Int, c: Int, xhat: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>,
                                      rstd: UnsafeMutablePointer<Float>) {
    for i in 0..<m {
        let row = x + i * c
        let mean = laneSum(row, c) / Float(c)
        let variance = laneSumOfSquares(row, c, minus: mean) / Float(c)
        let rs = 1 / (variance + eps).squareRoot()
        rstd[i] = rs
        let h = xhat + i * c, o = out + i * c
        for j in 0..<c { h[j] = (row[j] - mean) * rs }
        for j in 0..<c { o[j] = h[j] * w[j] + b[j] }
    }
}

/// The definition of CGemm's stm_layernorm_backward (xhat, dy, dx [M, C]; w [C]; rstd [M]).
public func referenceLayerNormBackward(_ xhat: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                       rstd: UnsafePointer<Float>, m: Int, c: Int, dx: UnsafeMutablePointer<Float>) {
    for i in 0..<m {
        let h = xhat + i * c, d = dy + i * c, o = dx + i * c
        let (sum1, sum2) = laneDots(d, w, h, c)
        let mean1 = sum1 / Float(c), mean2 = sum2 / Float(c), rs = rstd[i]
        for j in 0..<c { o[j] = rs * (d[j] * w[j] - mean1 - h[j] * mean2) }
    }
}

/// Per-channel affine map `x * scale + shift` over the last dimension (BatchNorm in eval mode,
/// layer scale with `shift == nil`). x [..., C]; scale, shift [C].
public func channelAffine(_ x: Tensor, scale: Tensor, shift: Tensor? = nil) -> Tensor {
    let c = x.lastDim
    precondition(scale.count == c && (shift == nil || shift!.count == c), "channelAffine: parameters do not fit \(c) channels")
    let m = x.count / max(c, 1)
    let out = Tensor(uninitializedShape: x.shape)
    let xp = x.data, op = out.data, sp = scale.data
    let hp: UnsafeMutablePointer<Float>? = shift?.data
    parallelFor(m, grain: grainFor(m, cost: c)) { r in
        for i in r {
            let a = xp + i * c, o = op + i * c
            if let hp { for j in 0..<c { o[j] = a[j] * sp[j] + hp[j] } } else { for j in 0..<c { o[j] = a[j] * sp[j] } }
        }
    }
    let xShape = x.shape  // not x: the backward needs only the scale
    return Tape.record(out, inputs: [x]) { dOut in
        let dx = Tensor(uninitializedShape: xShape)
        let dp = dOut.data, dxp = dx.data, sp = scale.data
        parallelFor(m, grain: grainFor(m, cost: c)) { r in
            for i in r {
                let d = dp + i * c, o = dxp + i * c
                for j in 0..<c { o[j] = d[j] * sp[j] }
            }
        }
        return [dx]
    }
}

/// BatchNorm (eval) folded to `channelAffine` parameters: scale = weight / sqrt(var + eps),
/// shift = bias - mean * scale.
public func foldBatchNorm(weight: [Float], bias: [Float], mean: [Float], variance: [Float], eps: Float) -> (scale: Tensor, shift: Tensor) {
    let c = weight.count
    var s = [Float](repeating: 0, count: c), t = [Float](repeating: 0, count: c)
    for i in 0..<c {
        let sc = Double(weight[i]) / (Double(variance[i]) + Double(eps)).squareRoot()
        s[i] = Float(sc)
        t[i] = Float(Double(bias[i]) - Double(mean[i]) * sc)
    }
    return (Tensor(shape: [c], values: s), Tensor(shape: [c], values: t))
}

// Row reductions with sixteen independent partial sums (a fixed order for a given row length, so
// results do not depend on threads), then the lanes added up.

@inline(__always)
func laneSum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = Float16x(repeating: 0)
    var j = 0
    let raw = UnsafeRawPointer(x)
    while j + 16 <= n { acc += raw.loadUnaligned(fromByteOffset: j * 4, as: Float16x.self); j += 16 }
    var s = acc.sum()
    while j < n { s += x[j]; j += 1 }
    return s
}

@inline(__always)
func laneSumOfSquares(_ x: UnsafePointer<Float>, _ n: Int, minus m: Float) -> Float {
    var acc = Float16x(repeating: 0)
    var j = 0
    let raw = UnsafeRawPointer(x)
    while j + 16 <= n { let d = raw.loadUnaligned(fromByteOffset: j * 4, as: Float16x.self) - m; acc += d * d; j += 16 }
    var s = acc.sum()
    while j < n { let d = x[j] - m; s += d * d; j += 1 }
    return s
}

/// (sum of d * w, sum of d * w * h) over a row.
@inline(__always)
func laneDots(_ d: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ h: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
    var a1 = Float16x(repeating: 0), a2 = Float16x(repeating: 0)
    var j = 0
    let rd = UnsafeRawPointer(d), rw = UnsafeRawPointer(w), rh = UnsafeRawPointer(h)
    while j + 16 <= n {
        let g = rd.loadUnaligned(fromByteOffset: j * 4, as: Float16x.self) * rw.loadUnaligned(fromByteOffset: j * 4, as: Float16x.self)
        a1 += g
        a2 += g * rh.loadUnaligned(fromByteOffset: j * 4, as: Float16x.self)
        j += 16
    }
    var s1 = a1.sum(), s2 = a2.sum()
    while j < n { let g = d[j] * w[j]; s1 += g; s2 += g * h[j]; j += 1 }
    return (s1, s2)
}
