// Models: U-InternImage, the reference's `DCNv3Block` with its `MSDeformAttnGrid_softmax` mixer
// (one level, dilation 1, offsets scaler 1). Token mixer: LayerNorm, then DCNv3: the normalised
// map goes through a depth-wise KxK conv, LayerNorm and GELU to give the query, from which linears
// predict, per group (head), P sampling offsets and P softmax weights; a value projection of the
// normalised map is sampled bilinearly at (own pixel + kernel-grid point + offset), zeros outside,
// weighted and summed (`deformableSampling`), then projected out; layer scale, residual. Channel
// mixer: LayerNorm, MLP (4x, GELU), layer scale, residual.
//
// The reference computes reference points on a map padded by sqrt(P) // 2 and normalises by the
// padded size before `grid_sample`; in pixels that is exactly "sample at x + grid + offset with
// zeros outside the map", so no padding is built here and any map size works. The fixed kernel
// grid is folded into the `sampling_offsets` bias at `prepare()`. `DCNv3SingleResBlock`, other
// dilation rates and offset scalers are not part of the study's models and are left out.
//
// Untrained initialisation: the reference's MetaArch applies its `_init_weights` (truncated normal
// 0.02, zero biases) to every Linear and Conv2d after DCNv3's own `_reset_parameters` has run, which
// overrides it entirely; the default rules of `Linear` and `DepthwiseConv` are exactly that.
//
// This file is the whole mixer: settings, presets, block, key recognition, inference.
//
// Shape key: N batch, H height, W width, C channels, G groups (heads), P sampling points per group.

import Checkpoint
import TensorCore

extension Family {
    /// U-InternImage (DCNv3).
    public static let dcnv3 = Family("dcnv3")
}

/// `block_kwargs` of U-InternImage.
public struct DCNv3Settings: MixerSettings, Equatable {
    /// Groups (heads) per stage.
    public var num_heads: [Int]
    /// Sampling points per group (default 9).
    public var deform_points: Int?
    /// Side of the depth-wise kernel of the offset query (default 3).
    public var kernel_size: Int?
    /// The reference's padding flag (sampling outside the map reads zeros either way).
    public var deform_padding: Bool?

    public init(num_heads: [Int], deform_points: Int? = 9, kernel_size: Int? = 3, deform_padding: Bool? = true) {
        self.num_heads = num_heads
        self.deform_points = deform_points
        self.kernel_size = kernel_size
        self.deform_padding = deform_padding
    }

    public func validate(dims: [Int], source: String) throws {
        try requireHeads(num_heads, dims: dims, source: source)
        try requirePositive(deform_points, "deform_points", source: source)
        try requirePositive(kernel_size, "kernel_size", source: source)
        if let k = kernel_size, k % 2 == 0 { throw ModelError(source, "block_kwargs.kernel_size must be odd, got \(k)") }
    }
}

/// The U-InternImage mixer.
public enum DCNv3Mixer: Mixer {
    public static let family = Family.dcnv3
    public static let presetName = "dcn_v3"
    public static let presetAliases = ["internimage"]
    public static let blockClass = "DCNv3Block"
    public static let mixerName = "U-InternImage (DCNv3)"

    public static func preset(scale: String) -> ArchConfig? {
        let (dims, depths, heads): ([Int], [Int], [Int])
        switch scale {
        case "micro": (dims, depths, heads) = (Presets.doubling(32), [2, 2, 9, 2], [2, 4, 8, 16])
        case "tiny": (dims, depths, heads) = (Presets.doubling(64), [4, 4, 18, 4], [4, 8, 16, 32])
        case "small": (dims, depths, heads) = (Presets.doubling(80), [4, 4, 21, 4], [5, 10, 20, 40])
        case "base": (dims, depths, heads) = (Presets.doubling(112), [4, 4, 21, 4], [7, 14, 28, 56])
        default: return nil
        }
        return ArchConfig(family: family, dims: dims, depths: depths, block_kwargs: try! BlockKwargs(DCNv3Settings(num_heads: heads)))
    }

    public static func makeBlock(_ ctx: BlockContext, settings: DCNv3Settings) -> Block { DCNv3Block(ctx, settings) }

    public static func recognises(_ keys: [String]) -> Bool { keys.contains { $0.contains(".attn.sampling_offsets.") } }

    /// Groups from the offset rows (G * 9 points * 2), assuming the study's 9 points and kernel 3.
    public static func inferSettings(from state: StateDict, dims: [Int], depths: [Int], path: String) throws
        -> (settings: DCNv3Settings, assumptions: [String], imgSize: Int?) {
        let heads = try dims.indices.map { try requireShape(state, "stages.\($0).0.attn.sampling_offsets.weight", path: path)[0] / 18 }
        return (DCNv3Settings(num_heads: heads), ["9 sampling points, kernel 3, padding 1"], nil)
    }
}

/// `MSDeformAttnGrid_softmax` parameters and forward (one level).
public final class DCNv3Attention: Module {
    /// `dw_conv.0`: depth-wise KxK conv with bias.
    let dwConv: DepthwiseConv
    /// `dw_conv.1.norm`: LayerNorm (eps 1e-5) of the query.
    let dwNorm: LayerNorm
    let sampling_offsets: Linear   // [G*P*2, C]: (dx, dy) per point
    let attention_weights: Linear  // [G*P, C]
    let value_proj: Linear         // [C, C]
    let output_proj: Linear        // [C, C]
    let groups: Int, points: Int
    /// The `sampling_offsets` bias plus the kernel grid, in pixels. [G*P*2]
    private var offsetBias = Tensor.zeros([0])

    init(dim: Int, groups: Int, points: Int, kernel: Int) {
        dwConv = DepthwiseConv(dim, kernel: kernel, padding: (kernel - 1) / 2)
        dwNorm = LayerNorm(dim, eps: 1e-5)
        sampling_offsets = Linear(dim, groups * points * 2)
        attention_weights = Linear(dim, groups * points)
        value_proj = Linear(dim, dim)
        output_proj = Linear(dim, dim)
        self.groups = groups
        self.points = points
    }

    public var members: [(String, Any)] {
        [("dw_conv.0", dwConv), ("dw_conv.1.norm", dwNorm), ("sampling_offsets", sampling_offsets),
         ("attention_weights", attention_weights), ("value_proj", value_proj), ("output_proj", output_proj)]
    }

    public func prepare() {
        let grid = dcnv3KernelGrid(points: points)
        var bias = sampling_offsets.bias?.values ?? [Float](repeating: 0, count: groups * points * 2)
        for g in 0..<groups {
            for p in 0..<points {
                bias[(g * points + p) * 2] += grid[p].dx
                bias[(g * points + p) * 2 + 1] += grid[p].dy
            }
        }
        offsetBias = Tensor(shape: [groups * points * 2], values: bias)
    }

    /// x [N,H,W,C] (the block's normalised input) -> [N,H,W,C]
    func callAsFunction(_ x: Tensor) -> Tensor {
        let value = value_proj(x)
        let (offsets, weights) = sampling(x)
        return output_proj(deformableSampling(value, offsets: offsets, weights: weights, groups: groups))
    }
}

extension DCNv3Attention {
    /// Offsets [N,H,W,G*P*2] (pixels, kernel grid included) and softmax weights [N,H,W,G*P] of x [N,H,W,C].
    func sampling(_ x: Tensor) -> (offsets: Tensor, weights: Tensor) {
        let (n, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let query = gelu(dwNorm(dwConv(x)))
        let offsets = linear(query, weight: sampling_offsets.weight.tensor, bias: offsetBias)  // [N,H,W,G*P*2]
        let logits = attention_weights(query).reshaped([n, h, w, groups, points])
        return (offsets, softmax(logits).reshaped([n, h, w, groups * points]))
    }
}

/// The fixed displacement (in pixels) of each of the P = k*k points, before the learned offset.
///
/// The reference builds `meshgrid(l, l)` with l = linspace(-k//2 + 1, k//2, k) (Python floor
/// division; [-1, 0, 1] for k = 3), stacks it as (row, column) pairs and adds those pairs to (x, y)
/// locations, so point p = i*k + j moves by l[i] along x and by l[j] along y.
/// If P is not a square, the grid of the largest square below it is used for its first points
/// and the rest get none (the reference cannot build such a model).
func dcnv3KernelGrid(points: Int) -> [(dx: Float, dy: Float)] {
    let k = max(1, Int(Double(points).squareRoot()))
    let lo = -((k + 1) / 2) + 1, hi = k / 2  // -k//2 + 1 and k//2 for k >= 1
    let step = k > 1 ? Float(hi - lo) / Float(k - 1) : 0
    let l = (0..<k).map { Float(lo) + Float($0) * step }
    return (0..<points).map { p in p < k * k ? (l[p / k], l[p % k]) : (0, 0) }
}

/// The reference's `DCNv3Block`: gamma1, norm1, attn (DCNv3), gamma2, norm2, mlp.
public final class DCNv3Block: TwoStepBlock {
    let gamma1: Parameter  // [C]
    let gamma2: Parameter  // [C]
    let norm1: LayerNorm
    let attn: DCNv3Attention
    let norm2: LayerNorm
    let mlp: Mlp

    init(_ ctx: BlockContext, _ settings: DCNv3Settings) {
        let c = ctx.dim
        gamma1 = Parameter([c], init: .layerScale)
        gamma2 = Parameter([c], init: .layerScale)
        // The block's norm_layer is nn.LayerNorm with its default eps, not the model's LayerNorm2d eps.
        norm1 = LayerNorm(c, eps: 1e-5)
        attn = DCNv3Attention(dim: c, groups: settings.num_heads[ctx.stage], points: settings.deform_points ?? 9,
                              kernel: settings.kernel_size ?? 3)
        norm2 = LayerNorm(c, eps: 1e-5)
        mlp = Mlp(c, hidden: 4 * c)
    }

    /// x + gamma1 * mixer(x): x [N,H,W,C] -> [N,H,W,C]
    public func tokenMixing(_ x: Tensor) -> Tensor { residual(x, mixer(x), gamma1) }

    /// y + gamma2 * mlp(norm2(y)): y [N,H,W,C] -> [N,H,W,C]
    public func channelMixing(_ y: Tensor) -> Tensor { mlp.residual(norm2(y), onto: y, gamma2) }
}

extension DCNv3Block: InspectableBlock {
    /// The token-mixing branch: x [N,H,W,C] -> DCNv3(norm1(x)) [N,H,W,C].
    public func mixer(_ x: Tensor) -> Tensor { attn(norm1(x)) }

    /// The sampling points of the output at (y, x): per group, each point's softmax weight spread on
    /// its four bilinear taps (taps outside the map are dropped, as the sampling's zero padding does).
    public func aggregationKernel(_ x: Tensor, y: Int, x col: Int) -> MixerKernel {
        let (h, w) = (x.shape[1], x.shape[2])
        let (g, p) = (attn.groups, attn.points)
        let (offsets, weights) = attn.sampling(norm1(x))  // [N,H,W,G*P*2], [N,H,W,G*P]
        let pix = y * w + col
        let off = offsets.data + pix * g * p * 2, wt = weights.data + pix * g * p
        var maps = [[Float]](repeating: [Float](repeating: 0, count: h * w), count: g)
        var raw: [Float] = []
        for gi in 0..<g {
            for pi in 0..<p {
                let sx = Float(col) + off[(gi * p + pi) * 2], sy = Float(y) + off[(gi * p + pi) * 2 + 1]
                let m = wt[gi * p + pi]
                raw += [sx, sy, m]
                guard sx.isFinite, sy.isFinite else { continue }
                let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
                let fx = sx - Float(x0), fy = sy - Float(y0)
                for (dy, dx, share) in [(0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)] {
                    let yy = y0 + dy, xx = x0 + dx
                    if yy >= 0 && yy < h && xx >= 0 && xx < w { maps[gi][yy * w + xx] += m * share }
                }
            }
        }
        return MixerKernel(kind: .sampling, maps: maps, rawShape: [g * p, 3], raw: raw)
    }
}
