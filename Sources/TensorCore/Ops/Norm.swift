// TensorCore ops: normalisations over the channel (last) dimension. LayerNorm keeps the normalised
// input and 1/std for its backward; BatchNorm in eval mode is a per-channel affine map
// (`channelAffine`), as are layer scales. Training-mode statistics are not provided.
//
// Shape key: M rows (all leading dimensions), C channels.

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
        for i in r {
            let row = xp + i * c
            var mean: Float = 0
            for j in 0..<c { mean += row[j] }
            mean /= Float(c)
            var variance: Float = 0
            for j in 0..<c { let d = row[j] - mean; variance += d * d }
            variance /= Float(c)
            let rs = 1 / (variance + eps).squareRoot()
            rp[i] = rs
            let h = hp + i * c, o = op + i * c
            for j in 0..<c { h[j] = (row[j] - mean) * rs }
            for j in 0..<c { o[j] = h[j] * wp[j] + bp[j] }
        }
    }
    return Tape.record(out, inputs: [x]) { dOut in
        // dxhat = dOut * weight; dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
        let dx = Tensor(uninitializedShape: x.shape)
        let dp = dOut.data, dxp = dx.data, hp = xhat.data, rp = rstd.data, wp = weight.data
        parallelFor(m, grain: grainFor(m, cost: 8 * c)) { r in
            for i in r {
                let h = hp + i * c, d = dp + i * c, o = dxp + i * c
                var sum1: Float = 0, sum2: Float = 0
                for j in 0..<c {
                    let g = d[j] * wp[j]
                    sum1 += g
                    sum2 += g * h[j]
                }
                let mean1 = sum1 / Float(c), mean2 = sum2 / Float(c), rs = rp[i]
                for j in 0..<c { o[j] = rs * (d[j] * wp[j] - mean1 - h[j] * mean2) }
            }
        }
        return [dx]
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
    return Tape.record(out, inputs: [x]) { dOut in
        let dx = Tensor(uninitializedShape: x.shape)
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
