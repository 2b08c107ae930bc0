// TensorCore: the activation between attention's two products, as a strategy the fused attention
// op takes (Attention.swift): a forward row (logits in, weights out, in place), a backward row
// (dWeights in, dLogits out, in place) and what it saves for that backward. The study "Interpret
// Vision Transformers as ConvNets with Dynamic Convolutions" replaces softmax by:
//   scale           a_j = s_j / D                          (no non-linearity)
//   scale-relu      a_j = max(s_j, 0) / D
//   layernorm       a_j = gamma_j * (s_j - mu) / sqrt(var + eps) + beta_j   (over the N logits of a query)
//   layernorm-relu  max(layernorm, 0)
// Softmax itself is one case, run by the fused op on its own inlined path (Attention.swift), so
// its speed and bits do not change.
// Masks: softmax adds the per-group mask to its logits (-100 or the most negative float make the
// key's weight vanish). The others cannot, so they read it as a presence mask: a key whose mask
// entry is negative is absent, gets weight 0 and no gradient, and does not count in the
// LayerNorm's mean and variance. D stays the constant it was configured with.
//
// Shape key: Lk keys per row (N in the study).

import Foundation

/// How a row of attention logits becomes a row of weights.
public struct AttentionActivation: @unchecked Sendable {
    /// The activation's kind.
    public enum Kind: String, CaseIterable, Sendable {
        case softmax
        case scale
        case scaleReLU = "scale-relu"
        case layerNorm = "layernorm"
        case layerNormReLU = "layernorm-relu"
    }

    /// Which activation.
    public let kind: Kind
    /// The constant D the scale variants divide by (1 for the others).
    public let divisor: Float
    /// LayerNorm affine, [Lk] each (nil for the others).
    public let weight: Tensor?, bias: Tensor?
    /// LayerNorm eps.
    public let eps: Float

    /// softmax (the default).
    public static let softmax = AttentionActivation(kind: .softmax, divisor: 1, weight: nil, bias: nil, eps: 0)

    /// a = s / D, or max(s, 0) / D with `relu`.
    public static func scale(by divisor: Float, relu: Bool = false) -> AttentionActivation {
        precondition(divisor > 0, "attention scale: the divisor must be positive")
        return AttentionActivation(kind: relu ? .scaleReLU : .scale, divisor: divisor, weight: nil, bias: nil, eps: 0)
    }

    /// LayerNorm over each row's Lk logits with affine `weight`, `bias` (each [Lk]), then ReLU with `relu`.
    public static func layerNorm(weight: Tensor, bias: Tensor, eps: Float = 1e-5, relu: Bool = false) -> AttentionActivation {
        precondition(weight.count == bias.count, "attention layernorm: weight and bias sizes differ")
        return AttentionActivation(kind: relu ? .layerNormReLU : .layerNorm, divisor: 1,
                                   weight: weight.detached(), bias: bias.detached(), eps: eps)
    }

    var isLayerNorm: Bool { kind == .layerNorm || kind == .layerNormReLU }
    var hasReLU: Bool { kind == .scaleReLU || kind == .layerNormReLU }

    /// Checks the affine against the row length.
    func check(keys lk: Int) {
        if let weight { precondition(weight.count == lk, "attention layernorm: affine of size \(weight.count) for \(lk) keys") }
    }

    /// Floats saved per row for the backward besides the weights: the normalised row and 1/sigma for LayerNorm.
    func savedPerRow(keys lk: Int) -> Int { isLayerNorm ? lk + 1 : 0 }

    /// Forward of one row, in place: `row` holds the logits [Lk] and receives the weights.
    /// `present` (optional [Lk]): entries < 0 mark absent keys. `saved` (optional [savedPerRow]).
    @inline(__always)
    func forwardRow(_ row: UnsafeMutablePointer<Float>, present: UnsafePointer<Float>?, _ lk: Int,
                    saved: UnsafeMutablePointer<Float>?) {
        @inline(__always) func here(_ j: Int) -> Bool { present.map { $0[j] >= 0 } ?? true }
        switch kind {
        case .softmax:
            if let present { for j in 0..<lk { row[j] += present[j] } }
            softmaxRow(row, row, lk)
        case .scale, .scaleReLU:
            let inv = 1 / divisor, relu = hasReLU
            for j in 0..<lk {
                let v = relu ? max(row[j], 0) : row[j]
                row[j] = here(j) ? v * inv : 0
            }
        case .layerNorm, .layerNormReLU:
            let g = weight!.data, b = bias!.data, relu = hasReLU
            var count = 0, sum = 0.0
            for j in 0..<lk where here(j) { sum += Double(row[j]); count += 1 }
            guard count > 0 else {
                for j in 0..<lk { row[j] = 0 }
                if let saved { for j in 0...lk { saved[j] = 0 } }
                return
            }
            let mean = sum / Double(count)
            var sq = 0.0
            for j in 0..<lk where here(j) { let d = Double(row[j]) - mean; sq += d * d }
            let rstd = 1 / (sq / Double(count) + Double(eps)).squareRoot()
            for j in 0..<lk {
                let xhat = here(j) ? Float((Double(row[j]) - mean) * rstd) : 0
                saved?[j] = xhat
                let y = g[j] * xhat + b[j]
                row[j] = here(j) ? (relu ? max(y, 0) : y) : 0
            }
            saved?[lk] = Float(rstd)
        }
    }

    /// Backward of one row, in place: `gradient` holds dWeights [Lk] and receives dLogits.
    /// `output` is the forward's weights, `present` and `saved` as in the forward.
    @inline(__always)
    func backwardRow(output: UnsafePointer<Float>, present: UnsafePointer<Float>?, saved: UnsafePointer<Float>?,
                     gradient d: UnsafeMutablePointer<Float>, _ lk: Int) {
        @inline(__always) func here(_ j: Int) -> Bool { present.map { $0[j] >= 0 } ?? true }
        switch kind {
        case .softmax:
            softmaxBackwardRow(output, d, d, lk)
        case .scale, .scaleReLU:
            let inv = 1 / divisor, relu = hasReLU
            for j in 0..<lk { d[j] = here(j) && (!relu || output[j] > 0) ? d[j] * inv : 0 }
        case .layerNorm, .layerNormReLU:
            let xhat = saved!, rstd = Double(saved![lk]), g = weight!.data, relu = hasReLU
            var count = 0, sumG = 0.0, sumGX = 0.0
            for j in 0..<lk {
                // dxhat_j, zero where absent or cut by the ReLU.
                let gj: Float = here(j) && (!relu || output[j] > 0) ? d[j] * g[j] : 0
                d[j] = gj
                if here(j) { count += 1; sumG += Double(gj); sumGX += Double(gj) * Double(xhat[j]) }
            }
            guard count > 0 else { return }
            let meanG = sumG / Double(count), meanGX = sumGX / Double(count)
            for j in 0..<lk {
                d[j] = here(j) ? Float(rstd * (Double(d[j]) - meanG - Double(xhat[j]) * meanGX)) : 0
            }
        }
    }
}
