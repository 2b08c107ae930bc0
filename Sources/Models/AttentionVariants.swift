// Models: the attention variants of "Interpret Vision Transformers as ConvNets with Dynamic
// Convolutions", shared by the attention mixers (Swin window attention, halo attention, PVT
// spatial-reduction attention) through three optional `block_kwargs`:
//   attention_activation  softmax (default) | scale | scale-relu | layernorm | layernorm-relu
//   attention_scale       keys (default: D = N, the number of keys a query sees, the channels of the
//                         intermediate map in the dynamic-convolution reading) | head_dim (D = C_h)
//   attention_kind        dot (default) | depthwise (Swin only: Eq. 5, see DepthwiseAttention.swift)
// The LayerNorm variants learn an affine of size N per block, stored as a PyTorch `nn.LayerNorm(N)`
// named `logit_norm` inside the block's attention module would be: `<block>.attn.logit_norm.weight`
// and `<block>.attn.logit_norm.bias` (eps 1e-5, PyTorch's default).
//
// Shape key: N keys per query.

import TensorCore

/// The attention variant of a block, parsed from `block_kwargs`.
public struct AttentionVariant: Equatable, Sendable {
    /// The reading of the scale variants' constant.
    public enum ScaleReading: String, CaseIterable, Sendable {
        /// D = N, the number of keys (the study's "channels" of the N-channel intermediate map).
        case keys
        /// D = C_h, the width of a head.
        case headDim = "head_dim"
    }

    /// Dot-product attention or the depth-wise form.
    public enum Kind: String, CaseIterable, Sendable {
        case dot
        case depthwise
    }

    public var activation: AttentionActivation.Kind = .softmax
    public var scale: ScaleReading = .keys
    public var kind: Kind = .dot

    /// The softmax dot-product attention every preset uses.
    public static let standard = AttentionVariant()

    /// True when the block needs the `logit_norm` affine.
    public var hasLogitNorm: Bool { kind == .dot && (activation == .layerNorm || activation == .layerNormReLU) }

    /// Parses and validates the three fields; an unknown name is one error listing the known ones.
    /// `depthwiseAllowed`: whether this mixer offers `attention_kind: depthwise`.
    public static func parse(activation: String?, scale: String?, kind: String?, depthwiseAllowed: Bool,
                             source: String) throws -> AttentionVariant {
        var v = AttentionVariant()
        func names<T: RawRepresentable & CaseIterable>(_: T.Type) -> String where T.RawValue == String {
            T.allCases.map(\.rawValue).joined(separator: ", ")
        }
        if let activation {
            guard let a = AttentionActivation.Kind(rawValue: activation) else {
                throw ModelError(source, "block_kwargs.attention_activation '\(activation)' is unknown",
                                 hint: "known: " + names(AttentionActivation.Kind.self))
            }
            v.activation = a
        }
        if let scale {
            guard let s = ScaleReading(rawValue: scale) else {
                throw ModelError(source, "block_kwargs.attention_scale '\(scale)' is unknown", hint: "known: " + names(ScaleReading.self))
            }
            guard v.activation == .scale || v.activation == .scaleReLU else {
                throw ModelError(source, "block_kwargs.attention_scale applies to the scale and scale-relu activations only",
                                 hint: "attention_activation is \(v.activation.rawValue)")
            }
            v.scale = s
        }
        if let kind {
            guard let k = Kind(rawValue: kind) else {
                throw ModelError(source, "block_kwargs.attention_kind '\(kind)' is unknown", hint: "known: " + names(Kind.self))
            }
            if k == .depthwise {
                guard depthwiseAllowed else {
                    throw ModelError(source, "block_kwargs.attention_kind 'depthwise' is offered by the swin block only")
                }
                guard v.activation == .softmax && activation == nil else {
                    throw ModelError(source, "block_kwargs.attention_kind 'depthwise' has no activation",
                                     hint: "drop attention_activation")
                }
            }
            v.kind = k
        }
        return v
    }

    /// The row activation for `keys` keys of width `headDim`; `norm` is the block's `logit_norm`
    /// ([keys] affine, or a larger table `take` picks from).
    func rowActivation(keys: Int, headDim: Int, norm: LayerNorm?, take: [Int]? = nil) -> AttentionActivation {
        switch activation {
        case .softmax: return .softmax
        case .scale, .scaleReLU:
            return .scale(by: Float(scale == .keys ? keys : headDim), relu: activation == .scaleReLU)
        case .layerNorm, .layerNormReLU:
            guard let norm else { preconditionFailure("attention \(activation.rawValue): the block has no logit_norm") }
            var w = norm.weight.tensor, b = norm.bias.tensor
            if let take {
                let wv = w.values, bv = b.values
                w = Tensor(shape: [take.count], values: take.map { wv[$0] })
                b = Tensor(shape: [take.count], values: take.map { bv[$0] })
            }
            precondition(w.count == keys, "attention \(activation.rawValue): logit_norm has \(w.count) entries for \(keys) keys "
                + "(the affine is stored for the img_size the model was built for)")
            return .layerNorm(weight: w, bias: b, eps: norm.eps, relu: activation == .layerNormReLU)
        }
    }
}
