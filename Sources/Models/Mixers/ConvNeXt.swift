// Models: U-DWConv, the reference's `UnifiedConvNeXtBlock`. Token mixer: LayerNorm2d, 1x1 input
// projection, 7x7 depth-wise conv, 1x1 output projection, layer scale, residual; then the
// transformer-style channel mixer: LayerNorm, MLP (4x, GELU), layer scale, residual.
// The original ConvNeXt block (without projections) is not part of the study's unified models.
// This file is the whole mixer: settings (none), presets, block, key recognition, inference.
//
// Shape key: N batch, H height, W width, C channels.

import Checkpoint
import TensorCore

extension Family {
    /// U-DWConv.
    public static let convnext = Family("convnext")
}

/// U-DWConv has no block settings (`block_kwargs` is `{}`; other keys are ignored).
public struct ConvNeXtSettings: MixerSettings, Equatable {
    public init() {}
    public func validate(dims: [Int], source: String) throws {}
}

/// The U-DWConv mixer.
public enum ConvNeXtMixer: Mixer {
    public static let family = Family.convnext
    public static let presetName = "convnext"
    public static let blockClass = "UnifiedConvNeXtBlock"
    public static let mixerName = "U-DWConv"

    public static func preset(scale: String) -> ArchConfig? {
        let (dims, depths): ([Int], [Int])
        switch scale {
        case "micro": (dims, depths) = ([32, 64, 128, 256], [3, 3, 8, 3])
        case "tiny": (dims, depths) = ([96, 192, 384, 768], [2, 2, 9, 2])
        case "small": (dims, depths) = ([96, 192, 384, 768], [2, 2, 24, 2])
        case "base": (dims, depths) = ([128, 256, 512, 1024], [2, 2, 24, 2])
        default: return nil
        }
        return ArchConfig(family: family, dims: dims, depths: depths, block_kwargs: BlockKwargs())
    }

    public static func makeBlock(_ ctx: BlockContext, settings: ConvNeXtSettings) -> Block { UnifiedConvNeXtBlock(ctx) }

    public static func recognises(_ keys: [String]) -> Bool { keys.contains { $0.contains(".dw_input_proj.") } }

    public static func inferSettings(from state: StateDict, dims: [Int], depths: [Int], path: String) throws
        -> (settings: ConvNeXtSettings, assumptions: [String], imgSize: Int?) {
        (ConvNeXtSettings(), [], nil)
    }
}

public final class UnifiedConvNeXtBlock: TwoStepBlock {
    let dw_norm: LayerNorm
    let dw_input_proj: PointwiseConv
    let dwconv: DepthwiseConv
    let dw_out_proj: PointwiseConv
    let gamma_1: Parameter   // [1, C, 1, 1]
    let pw_norm: LayerNorm
    let pwconv1: Linear
    let pwconv2: Linear
    let gamma_2: Parameter   // [1, 1, 1, C]

    init(_ ctx: BlockContext) {
        let c = ctx.dim
        dw_norm = LayerNorm(c, eps: 1e-6)
        dw_input_proj = PointwiseConv(c, c)
        dwconv = DepthwiseConv(c, kernel: 7, padding: 3)
        dw_out_proj = PointwiseConv(c, c)
        gamma_1 = Parameter([1, c, 1, 1], init: .layerScale)
        pw_norm = LayerNorm(c, eps: 1e-6)
        pwconv1 = Linear(c, 4 * c)
        pwconv2 = Linear(4 * c, c)
        gamma_2 = Parameter([1, 1, 1, c], init: .layerScale)
    }

    /// x + gamma_1 * mixer(x), the output projection's product and the residual in one pass:
    /// x [N,H,W,C] -> [N,H,W,C]
    public func tokenMixing(_ x: Tensor) -> Tensor {
        dw_out_proj.residual(dwconv(dw_input_proj(dw_norm(x))), onto: x, gamma_1)
    }

    /// y + gamma_2 * pwconv2(gelu(pwconv1(pw_norm(y)))), as one node: y [N,H,W,C] -> [N,H,W,C].
    public func channelMixing(_ y: Tensor) -> Tensor {
        mlpResidual(pw_norm(y), fc1: pwconv1.weight.tensor, bias1: pwconv1.bias?.tensor,
                    fc2: pwconv2.weight.tensor, bias2: pwconv2.bias?.tensor, onto: y, scale: gamma_2.layerScale)
    }
}

extension UnifiedConvNeXtBlock: InspectableBlock {
    /// The token-mixing branch: x [N,H,W,C] -> dw_out_proj(dwconv(dw_input_proj(dw_norm(x)))) [N,H,W,C].
    public func mixer(_ x: Tensor) -> Tensor { dw_out_proj(dwconv(dw_input_proj(dw_norm(x)))) }

    /// The static 7x7 kernel centred on (y, x): the map holds the mean |w| over channels at each
    /// tap inside the map; the raw weights are dwconv's [C, K, K].
    public func aggregationKernel(_ x: Tensor, y: Int, x col: Int) -> MixerKernel {
        let (h, w) = (x.shape[1], x.shape[2])
        let s = dwconv.weight.shape, c = s[0], k = s[2], pad = dwconv.padding
        let wv = dwconv.weight.values
        var map = [Float](repeating: 0, count: h * w)
        for ky in 0..<k {
            for kx in 0..<k {
                let yy = y + ky - pad, xx = col + kx - pad
                guard yy >= 0 && yy < h && xx >= 0 && xx < w else { continue }
                var sum: Float = 0
                for ch in 0..<c { sum += abs(wv[ch * k * k + ky * k + kx]) }
                map[yy * w + xx] = sum / Float(c)
            }
        }
        return MixerKernel(kind: .staticKernel, maps: [map], rawShape: [c, k, k], raw: wv)
    }
}
