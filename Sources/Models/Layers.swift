// Models: the leaf layers shared by every architecture (linear, convolutions, norms, MLP, layer
// scale). Each holds its parameters under the checkpoint's names and, in `prepare()`, converts them
// to the channels-last layouts TensorCore's kernels take. Forward passes take NHWC tensors.
//
// Shape key: N batch, H height, W width, C channels, O output channels, K kernel size.

import TensorCore

/// nn.Linear: weight [O, C], bias [O].
public final class Linear: Module {
    public let weight: Parameter
    public let bias: Parameter?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) {
        weight = Parameter([outFeatures, inFeatures], init: .truncatedNormal(std: 0.02))
        self.bias = bias ? Parameter([outFeatures], init: .zeros) : nil
    }

    /// x [..., C] -> [..., O]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        linear(x, weight: weight.tensor, bias: bias?.tensor)
    }

    /// gelu(self(x)), fused: x [..., C] -> [..., O]
    public func withGELU(_ x: Tensor) -> Tensor { linearGELU(x, weight: weight.tensor, bias: bias?.tensor) }
}

/// nn.Conv2d with a 1x1 kernel, run as a linear layer over channels: weight [O, C, 1, 1], bias [O].
public final class PointwiseConv: Module {
    public let weight: Parameter
    public let bias: Parameter?
    private var matrix = Tensor.zeros([0])  // [O, C]

    public init(_ inChannels: Int, _ outChannels: Int, bias: Bool = true) {
        weight = Parameter([outChannels, inChannels, 1, 1], init: .truncatedNormal(std: 0.02))
        self.bias = bias ? Parameter([outChannels], init: .zeros) : nil
    }

    public func prepare() { matrix = weight.tensor.detached().reshaped([weight.shape[0], weight.shape[1]]) }

    /// x [N,H,W,C] -> [N,H,W,O]
    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: matrix, bias: bias?.tensor) }

    /// residual(base, self(x), gamma), fused: x [N,H,W,C], base [N,H,W,O] -> [N,H,W,O]
    public func residual(_ x: Tensor, onto base: Tensor, _ gamma: Parameter) -> Tensor {
        linearResidual(x, weight: matrix, bias: bias?.tensor, onto: base, scale: gamma.layerScale)
    }
}

/// nn.Conv2d, dense (groups = 1): weight [O, C, K, K], bias [O].
public final class Conv2d: Module {
    public let weight: Parameter
    public let bias: Parameter?
    public let kernel: Int, stride: Int, padding: Int
    private var ohwi = Tensor.zeros([0])  // [O, K*K*C]

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int, padding: Int, bias: Bool = true) {
        weight = Parameter([outChannels, inChannels, kernel, kernel], init: .truncatedNormal(std: 0.02))
        self.bias = bias ? Parameter([outChannels], init: .zeros) : nil
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    public func prepare() {
        let s = weight.shape
        let m = convWeightOHWI(weight.values, o: s[0], c: s[1], kh: s[2], kw: s[3]).frozen()
        ohwi = m
        // The checkpoint-layout weight is read only if someone asks for it: its pages are handed back
        // and written again from the matrix on such a read.
        weight.tensor.storage.releaseDerived { convWeightOIHW(m.data, o: s[0], c: s[1], kh: s[2], kw: s[3], into: $0) }
    }

    /// x [N,H,W,C] -> [N,Ho,Wo,O]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv2d(x, weight: ohwi, bias: bias?.tensor, kernel: (kernel, kernel), stride: stride, pad: padding)
    }
}

/// nn.Conv2d with groups = channels: weight [C, 1, K, K], bias [C]; stride 1.
public final class DepthwiseConv: Module {
    public let weight: Parameter
    public let bias: Parameter?
    public let padding: Int
    private var hwc = Tensor.zeros([0])  // [K, K, C]

    public init(_ channels: Int, kernel: Int, padding: Int, bias: Bool = true) {
        weight = Parameter([channels, 1, kernel, kernel], init: .truncatedNormal(std: 0.02))
        self.bias = bias ? Parameter([channels], init: .zeros) : nil
        self.padding = padding
    }

    public func prepare() {
        let s = weight.shape
        hwc = depthwiseWeightHWC(weight.values, c: s[0], kh: s[2], kw: s[3])
    }

    /// x [N,H,W,C] -> [N,H,W,C] (for padding = K // 2)
    public func callAsFunction(_ x: Tensor) -> Tensor {
        depthwiseConv2d(x, weight: hwc, bias: bias?.tensor, pad: padding)
    }
}

/// nn.LayerNorm / LayerNorm2d over channels: weight, bias [C].
public final class LayerNorm: Module {
    public let weight: Parameter
    public let bias: Parameter
    public let eps: Float

    public init(_ channels: Int, eps: Float) {
        weight = Parameter([channels], init: .ones)
        bias = Parameter([channels], init: .zeros)
        self.eps = eps
    }

    /// x [..., C] -> [..., C]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        layerNorm(x, weight: weight.tensor, bias: bias.tensor, eps: eps)
    }
}

/// nn.BatchNorm2d in eval mode: weight, bias, running_mean, running_var [C]; eps 1e-5 unless given
/// (EfficientNet-Lite's is 1e-3).
public final class BatchNorm2d: Module {
    public let weight: Parameter
    public let bias: Parameter
    public let running_mean: Parameter
    public let running_var: Parameter
    public let eps: Float
    private var folded = (scale: Tensor.zeros([0]), shift: Tensor.zeros([0]))

    public init(_ channels: Int, eps: Float = 1e-5) {
        self.eps = eps
        weight = Parameter([channels], init: .ones)
        bias = Parameter([channels], init: .zeros)
        running_mean = Parameter([channels], init: .zeros)
        running_var = Parameter([channels], init: .ones)
    }

    public func prepare() {
        folded = foldBatchNorm(weight: weight.values, bias: bias.values, mean: running_mean.values,
                               variance: running_var.values, eps: eps)
    }

    /// x [N,H,W,C] -> [N,H,W,C]
    public func callAsFunction(_ x: Tensor) -> Tensor { channelAffine(x, scale: folded.scale, shift: folded.shift) }
}

/// timm's Mlp: fc1, GELU, fc2.
public final class Mlp: Module {
    public let fc1: Linear
    public let fc2: Linear

    public init(_ dim: Int, hidden: Int) {
        fc1 = Linear(dim, hidden)
        fc2 = Linear(hidden, dim)
    }

    /// x [..., C] -> [..., C]
    public func callAsFunction(_ x: Tensor) -> Tensor { fc2(fc1.withGELU(x)) }

    /// residual(base, self(x), gamma) as one node (`mlpResidual`: GELU, the residual update and the backward's GELU rule fused):
    /// x, base [..., C] -> [..., C]
    public func residual(_ x: Tensor, onto base: Tensor, _ gamma: Parameter) -> Tensor {
        mlpResidual(x, fc1: fc1.weight.tensor, bias1: fc1.bias?.tensor, fc2: fc2.weight.tensor, bias2: fc2.bias?.tensor,
                    onto: base, scale: gamma.layerScale)
    }
}

/// The residual update of every block with its layer scale: `x + gamma * y`, fused (gamma stored with
/// any shape holding C values: [C], [1,C,1,1] or [1,1,1,C] in the reference blocks).
@inlinable
public func residual(_ x: Tensor, _ y: Tensor, _ gamma: Parameter) -> Tensor {
    addScaled(x, y, scale: gamma.layerScale)
}

extension Parameter {
    /// A layer scale's C values as a [C] constant, whatever shape the checkpoint stores it in.
    @inlinable
    public var layerScale: Tensor { tensor.detached().reshaped([count]) }
}
