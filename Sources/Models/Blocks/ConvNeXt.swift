// Models: U-DWConv, the reference's `UnifiedConvNeXtBlock`. Token mixer: LayerNorm2d, 1x1 input
// projection, 7x7 depth-wise conv, 1x1 output projection, layer scale, residual; then the
// transformer-style channel mixer: LayerNorm, MLP (4x, GELU), layer scale, residual.
// The original ConvNeXt block (without projections) is not part of the study's unified models.
//
// Shape key: N batch, H height, W width, C channels.

import TensorCore

public final class UnifiedConvNeXtBlock: Block {
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

    /// x [N,H,W,C] -> [N,H,W,C]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = residual(x, dw_out_proj(dwconv(dw_input_proj(dw_norm(x)))), gamma_1)
        return residual(y, pwconv2(gelu(pwconv1(pw_norm(y)))), gamma_2)
    }
}
