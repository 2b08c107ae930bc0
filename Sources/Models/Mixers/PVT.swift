// Models: U-PVT, the reference's `PvtBlock` (PVT v1 block inside the unified architecture).
// The first block of each stage adds a learned absolute position embedding to its input; every block
// then runs spatial-reduction attention (queries from every token; keys and values from the normed
// map shrunk by a `sr x sr` conv with stride `sr` and a LayerNorm, when `sr > 1`), layer scale and a
// residual, then LayerNorm, MLP (per-stage ratio, GELU), layer scale and a residual.
//
// Details taken from the reference: the block's own norms (norm1, norm2, attn.norm) are nn.LayerNorm
// with PyTorch's default eps 1e-5, not the model's 1e-6; heads come from the config (their count is
// not in any tensor shape); a map that is not a multiple of `sr` is reduced with PyTorch's conv
// semantics (floor: trailing rows and columns do not reach the keys and values).
// The position embedding is stored for the config's img_size; on other map sizes it is resized
// bilinearly with corners aligned (what the reference's loader does to a table of another size),
// once per map size, as a constant (the cache is locked). In the detection form the embedding is
// added to the attention input only: the residual is taken before it is added.
// Dropout and drop path are inference no-ops and absent.
// This file is the whole mixer: settings, presets, block, key recognition, inference.
//
// Shape key: N batch, H height, W width, C channels, L = H*W query tokens, Hr/Wr reduced map,
// Lk = Hr*Wr key tokens, Hd heads, H0/W0 stored position-table size.

import Checkpoint
import Foundation
import TensorCore

extension Family {
    /// U-PVT.
    public static let pvt = Family("pvt")
}

/// `block_kwargs` of U-PVT.
public struct PVTSettings: MixerSettings, Equatable {
    /// Heads per stage (not in any tensor shape).
    public var num_heads: [Int]
    /// MLP width over channels, per stage (default 4).
    public var mlp_ratios: [Double]?
    /// Whether q and kv have biases (default false).
    public var qkv_bias: Bool?
    /// Spatial-reduction ratio per stage (default 1).
    public var sr_ratios: [Int]?
    /// softmax (default), scale, scale-relu, layernorm, layernorm-relu (AttentionVariants.swift).
    public var attention_activation: String?
    /// keys (default) or head_dim: the constant of the scale variants.
    public var attention_scale: String?
    /// Only dot (the default): depth-wise attention is the Swin block's; read to refuse it in one line.
    public var attention_kind: String?

    public init(num_heads: [Int], mlp_ratios: [Double]? = nil, qkv_bias: Bool? = nil, sr_ratios: [Int]? = nil,
                attention_activation: String? = nil, attention_scale: String? = nil) {
        self.num_heads = num_heads
        self.mlp_ratios = mlp_ratios
        self.qkv_bias = qkv_bias
        self.sr_ratios = sr_ratios
        self.attention_activation = attention_activation
        self.attention_scale = attention_scale
    }

    /// The attention variant these settings ask for.
    public func variant(source: String) throws -> AttentionVariant {
        try AttentionVariant.parse(activation: attention_activation, scale: attention_scale, kind: attention_kind,
                                   depthwiseAllowed: false, source: source)
    }

    public func validate(dims: [Int], source: String) throws {
        try requireHeads(num_heads, dims: dims, source: source)
        try requirePerStage(mlp_ratios, "mlp_ratios", stages: dims.count, source: source)
        try requirePerStage(sr_ratios, "sr_ratios", stages: dims.count, source: source)
        _ = try variant(source: source)
    }
}

/// The U-PVT mixer.
public enum PVTMixer: Mixer {
    public static let family = Family.pvt
    public static let presetName = "pvt"
    public static let blockClass = "PvtBlock"
    public static let mixerName = "U-PVT"

    public static func preset(scale: String) -> ArchConfig? {
        let (dims, depths, mlp): ([Int], [Int], [Double])
        switch scale {
        case "micro": (dims, depths, mlp) = ([32, 64, 160, 256], [2, 2, 3, 2], [8, 8, 4, 4])
        case "tiny": (dims, depths, mlp) = ([64, 128, 320, 512], [3, 4, 9, 3], [8, 8, 4, 4])
        case "small": (dims, depths, mlp) = ([64, 128, 320, 512], [3, 4, 21, 3], [8, 8, 4, 4])
        case "base": (dims, depths, mlp) = ([64, 128, 320, 512], [3, 8, 45, 3], [4, 4, 4, 4])
        default: return nil
        }
        let settings = PVTSettings(num_heads: [1, 2, 5, 8], mlp_ratios: mlp, qkv_bias: true, sr_ratios: [8, 4, 2, 1])
        return ArchConfig(family: family, dims: dims, depths: depths, block_kwargs: try! BlockKwargs(settings))
    }

    public static func makeBlock(_ ctx: BlockContext, settings: PVTSettings) -> Block { PvtBlock(ctx, settings) }

    public static func recognises(_ keys: [String]) -> Bool {
        keys.contains { $0.contains(".attn.kv.weight") } && keys.contains { $0.contains(".attn.q.weight") }
    }

    /// qkv bias, MLP and reduction ratios from shapes, img_size from the stage-1 position grid; the
    /// heads are in no shape: they come from the preset with the same dims and depths, else an error.
    public static func inferSettings(from state: StateDict, dims: [Int], depths: [Int], path: String) throws
        -> (settings: PVTSettings, assumptions: [String], imgSize: Int?) {
        let mlp = try dims.indices.map { s -> Double in
            let key = "stages.\(s).0.mlp.fc1.weight"
            guard let rows = try requireShape(state, key, path: path).first else { throw ModelError(path, "\(key) has no dimensions", hint: "pass --arch") }
            return Double(rows) / Double(dims[s])
        }
        let sr = try dims.indices.map { s -> Int in
            let key = "stages.\(s).0.attn.sr.weight"
            guard let w = state[key] else { return 1 }
            guard w.shape.count == 4 else { throw ModelError(path, "\(key) has shape \(w.shape), expected [C, C, r, r]", hint: "pass --arch") }
            return w.shape[2]
        }
        var imgSize: Int? = nil
        if let pos = state["stages.0.0.pos_embed"]?.shape, pos.count == 4 { imgSize = pos[2] * 4 }
        guard let match = Presets.scales.compactMap({ preset(scale: $0) }).first(where: { $0.dims == dims && $0.depths == depths }) else {
            throw ModelError(path, "PVT heads cannot be read from tensor shapes and dims \(dims) / depths \(depths) match no preset",
                             hint: "pass --arch with a preset name or an architecture JSON file")
        }
        let heads = match.heads
        let scale = Presets.scales.first { preset(scale: $0)?.dims == dims && preset(scale: $0)?.depths == depths } ?? "?"
        return (PVTSettings(num_heads: heads, mlp_ratios: mlp, qkv_bias: state["stages.0.0.attn.q.bias"] != nil, sr_ratios: sr),
                ["heads \(heads) from preset unified_pvt_\(scale) (PVT heads are not in the shapes)"], imgSize)
    }
}

/// The reference's PVT `Attention`: `q` and `kv` projections, optional spatial reduction
/// (`sr` conv + `norm`), output `proj`; the LayerNorm variants add `logit_norm`, an nn.LayerNorm
/// over the (R/sr)^2 keys at the model's img_size (R the stage's map side there).
public final class SpatialReductionAttention: Module {
    let q: Linear
    let kv: Linear
    let proj: Linear
    let sr: Conv2d?
    let norm: LayerNorm?
    let logit_norm: LayerNorm?  // [Lk at img_size]
    let heads: Int
    let ratio: Int
    let variant: AttentionVariant

    init(dim: Int, heads: Int, qkvBias: Bool, ratio: Int, variant: AttentionVariant = .standard, resolution: Int = 0) {
        self.variant = variant
        let side = resolution / ratio
        logit_norm = variant.hasLogitNorm ? LayerNorm(side * side, eps: 1e-5) : nil
        q = Linear(dim, dim, bias: qkvBias)
        kv = Linear(dim, 2 * dim, bias: qkvBias)
        proj = Linear(dim, dim)
        if ratio > 1 {
            sr = Conv2d(dim, dim, kernel: ratio, stride: ratio, padding: 0)
            norm = LayerNorm(dim, eps: 1e-5)
        } else {
            sr = nil
            norm = nil
        }
        self.heads = heads
        self.ratio = ratio
    }

    public var members: [(String, Any)] {
        var m: [(String, Any)] = [("q", q), ("kv", kv), ("proj", proj)]
        if let sr, let norm { m += [("sr", sr), ("norm", norm)] }
        if let logit_norm { m.append(("logit_norm", logit_norm)) }
        return m
    }

    /// x [N,H,W,C] (already normed) -> [N,L,C].
    func callAsFunction(_ x: Tensor) -> Tensor {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let tokens = x.reshaped([n, h * w, c])
        let queries = q(tokens)  // [N,L,C]
        var source = tokens      // [N,Lk,C]
        if let sr, let norm {
            let reduced = sr(x)  // [N,Hr,Wr,C], Hr = floor(H / sr)
            source = norm(reduced.reshaped([n, reduced.shape[1] * reduced.shape[2], c]))
        }
        let keysValues = kv(source)  // [N,Lk,2C]: keys in columns 0..<C, values in C..<2C
        let hd = c / heads
        let mixed = attention(q: AttentionOperand(queries), k: AttentionOperand(keysValues, offset: 0),
                              v: AttentionOperand(keysValues, offset: c), heads: heads, keyWidth: hd, valueWidth: hd,
                              scale: 1 / Float(hd).squareRoot(),
                              activation: variant.rowActivation(keys: keysValues.shape[1], headDim: hd, norm: logit_norm))
        return proj(mixed)
    }
}

/// The reference's `PvtBlock`: [position embedding,] LayerNorm, spatial-reduction attention,
/// layer scale, residual; LayerNorm, MLP, layer scale, residual.
public final class PvtBlock: TwoStepBlock {
    /// [1, C, H0, W0]; only on the first block of a stage.
    let pos_embed: Parameter?
    let norm1: LayerNorm
    let attn: SpatialReductionAttention
    let gamma_1: Parameter  // [C]
    let norm2: LayerNorm
    let mlp: Mlp
    let gamma_2: Parameter  // [C]
    /// Detection form: the position embedding stays out of the residual stream.
    let detection: Bool

    /// Position tables in channels-last order, keyed by map size; the stored size is filled by `prepare()`.
    private var positionTables: [MapSize: Tensor] = [:]  // each [H, W, C]
    private let tableLock = NSLock()

    init(_ ctx: BlockContext, _ settings: PVTSettings) {
        let c = ctx.dim, s = ctx.stage
        detection = ctx.detection
        pos_embed = ctx.depth == 0 ? Parameter([1, c, ctx.resolution, ctx.resolution], init: .truncatedNormal(std: 0.02)) : nil
        norm1 = LayerNorm(c, eps: 1e-5)
        attn = SpatialReductionAttention(dim: c, heads: settings.num_heads[s], qkvBias: settings.qkv_bias ?? false,
                                         ratio: settings.sr_ratios?[s] ?? 1, variant: try! settings.variant(source: "block_kwargs"),
                                         resolution: ctx.resolution)
        gamma_1 = Parameter([c], init: .layerScale)
        norm2 = LayerNorm(c, eps: 1e-5)
        let ratio = settings.mlp_ratios?[s] ?? 4
        mlp = Mlp(c, hidden: Int(Double(c) * ratio))
        gamma_2 = Parameter([c], init: .layerScale)
    }

    public var members: [(String, Any)] {
        var m: [(String, Any)] = []
        if let pos_embed { m.append(("pos_embed", pos_embed)) }
        m += [("norm1", norm1), ("attn", attn), ("gamma_1", gamma_1), ("norm2", norm2), ("mlp", mlp), ("gamma_2", gamma_2)]
        return m
    }

    public func prepare() {
        tableLock.lock()
        defer { tableLock.unlock() }
        positionTables = [:]
        guard let pos_embed else { return }
        let (c, h0, w0) = (pos_embed.shape[1], pos_embed.shape[2], pos_embed.shape[3])
        positionTables[MapSize(h: h0, w: w0)] = resizePositionTable(pos_embed.values, channels: c, height: h0, width: w0,
                                                                      toHeight: h0, toWidth: w0)
    }

    /// (x + position) + gamma_1 * attn(norm1(x + position)), the detection form's residual onto x:
    /// x [N,H,W,C] -> [N,H,W,C]
    public func tokenMixing(_ x: Tensor) -> Tensor {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let input = withPosition(x)
        let mixed = attn(norm1(input)).reshaped([n, h, w, c])
        return residual(detection ? x : input, mixed, gamma_1)
    }

    /// y + gamma_2 * mlp(norm2(y)): y [N,H,W,C] -> [N,H,W,C]
    public func channelMixing(_ y: Tensor) -> Tensor { mlp.residual(norm2(y), onto: y, gamma_2) }

    /// x plus the position embedding on a stage's first block, x elsewhere. [N,H,W,C]
    private func withPosition(_ x: Tensor) -> Tensor {
        guard let pos_embed else { return x }
        return addBroadcast(x, positionTable(pos_embed, h: x.shape[1], w: x.shape[2]))
    }

    /// The token-mixing branch: x [N,H,W,C] -> attention(norm1(x [+ position])) [N,H,W,C].
    public func mixer(_ x: Tensor) -> Tensor {
        attn(norm1(withPosition(x))).reshaped(x.shape)
    }

    private struct MapSize: Hashable { var h: Int, w: Int }

    /// The position embedding for an H x W map, [H, W, C] (resized once per size, then cached).
    private func positionTable(_ p: Parameter, h: Int, w: Int) -> Tensor {
        let key = MapSize(h: h, w: w)
        tableLock.lock()
        defer { tableLock.unlock() }
        if let t = positionTables[key] { return t }
        let t = resizePositionTable(p.values, channels: p.shape[1], height: p.shape[2], width: p.shape[3], toHeight: h, toWidth: w)
        if positionTables.count >= maxCachedGeometries { positionTables.removeAll() }
        positionTables[key] = t
        return t
    }
}

/// Bilinear resize with corners aligned (PyTorch's `interpolate(mode='bilinear', align_corners=True)`)
/// of a channels-first table [C, H0, W0] to a channels-last table [H, W, C]. With H = H0 and W = W0 it
/// is the plain transpose. Output pixel y samples source row y * (H0 - 1) / (H - 1) (0 when H = 1),
/// mixing the two rows around it linearly; likewise along x. Weights are computed in double precision.
func resizePositionTable(_ values: [Float], channels c: Int, height h0: Int, width w0: Int,
                         toHeight h: Int, toWidth w: Int) -> Tensor {
    // For each output coordinate: the lower source index, the upper one, and the upper one's weight.
    func taps(_ from: Int, _ to: Int) -> [(Int, Int, Double)] {
        let step = to > 1 ? Double(from - 1) / Double(to - 1) : 0
        return (0..<to).map { i in
            let src = step * Double(i)
            let lo = min(Int(src), from - 1)
            return (lo, min(lo + 1, from - 1), src - Double(lo))
        }
    }
    let ys = taps(h0, h), xs = taps(w0, w)
    let out = Tensor(uninitializedShape: [h, w, c])
    let op = out.data
    values.withUnsafeBufferPointer { v in
        for (y, (y0, y1, fy)) in ys.enumerated() {
            for (x, (x0, x1, fx)) in xs.enumerated() {
                let dst = op + (y * w + x) * c
                for ch in 0..<c {
                    let plane = ch * h0 * w0
                    let top = (1 - fx) * Double(v[plane + y0 * w0 + x0]) + fx * Double(v[plane + y0 * w0 + x1])
                    let bottom = (1 - fx) * Double(v[plane + y1 * w0 + x0]) + fx * Double(v[plane + y1 * w0 + x1])
                    dst[ch] = Float((1 - fy) * top + fy * bottom)
                }
            }
        }
    }
    return out
}

extension PvtBlock: InspectableBlock {
    /// The weights of the query at (y, x) over the reduced map, per head; each key's weight is spread
    /// evenly over the sr x sr input pixels its reduction conv reads.
    public func aggregationKernel(_ x: Tensor, y: Int, x col: Int) -> MixerKernel {
        let (h, w) = (x.shape[1], x.shape[2])
        let r = attn.ratio, wr = w / r
        let recorded = AttentionRecorder.recording { mixer(x) }.weights
        let share = 1 / Float(r * r)
        return attentionKernel(recorded.last!, sequence: 0, query: y * w + col, pixels: h * w) { j in
            let (ky, kx) = (j / wr, j % wr)
            var out: [(Int, Float)] = []
            for a in 0..<r { for b in 0..<r { out.append(((ky * r + a) * w + kx * r + b, share)) } }
            return out
        }
    }
}
