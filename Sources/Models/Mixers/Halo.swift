// Models: U-HaloNet, the reference's `UnifiedHaloBlock` with its `HaloAttn` (STM-Evaluation's
// modification of timm's halo attention). Each S x S block of queries (S = 7) attends to the
// Wn x Wn window around it (Wn = S + 2 * halo = 13), keys and values coming from a 1x1 conv over the
// map zero-padded by the halo. Logits are `scale * q·k` plus timm's query-related relative logits
// (`PosEmbedRel`, unscaled q against `height_rel`/`width_rel`); window positions that fall outside the
// map are set to the most negative float before the softmax (one mask per block, the same for all of
// its queries). Block and halo sizes do not change with the map size: a 7x7 map is one block whose
// window is mostly masked. Maps that are not multiples of S are zero-padded at the bottom and right
// after `norm1`, as the study's detection backbone does; those padded pixels are valid keys (their
// k and v are zero, the projections have no bias) and the output is cropped before `proj`.
// Not covered: the reference's `query_free` position embedding, strides other than 1, and
// widths whose query/key head width differs from the value head width (the reference's fold assumes
// they agree, which holds whenever the width is a multiple of 8, as in every preset).
// The norms are PyTorch's default `nn.LayerNorm` (eps 1e-5): the reference block does not pass the
// model's `layer_norm_eps` to them.
//
// The geometry cache (per batch and map size) is locked: one model may run on several threads.
// This file is the whole mixer: settings, presets, block, key recognition, inference.
//
// Shape key: N batch, H height, W width, C channels, Hp/Wp map padded to multiples of S, S block
// side, L = S*S queries per block, Wn window side, K = Wn*Wn keys per window, Nb blocks per image,
// Hd heads, Dk query/key width per head, Dv value width per head.

import Checkpoint
import Foundation
import TensorCore

extension Family {
    /// U-HaloNet.
    public static let halo = Family("halo")
}

/// `block_kwargs` of U-HaloNet.
public struct HaloSettings: MixerSettings, Equatable {
    /// Heads per stage.
    public var num_heads: [Int]
    /// Query block side (default 7).
    public var block_size: Int?
    /// Halo width around each block (default 3).
    public var halo_size: Int?
    /// Relative position type: only "query_related" (the study's) is implemented.
    public var pos_embed_type: String?
    /// softmax (default), scale, scale-relu, layernorm, layernorm-relu (AttentionVariants.swift).
    public var attention_activation: String?
    /// keys (default) or head_dim: the constant of the scale variants.
    public var attention_scale: String?
    /// Only dot (the default): depth-wise attention is the Swin block's; read to refuse it in one line.
    public var attention_kind: String?

    public init(num_heads: [Int], block_size: Int? = 7, halo_size: Int? = 3, pos_embed_type: String? = "query_related",
                attention_activation: String? = nil, attention_scale: String? = nil) {
        self.num_heads = num_heads
        self.block_size = block_size
        self.halo_size = halo_size
        self.pos_embed_type = pos_embed_type
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
        try requirePositive(block_size, "block_size", source: source)
        try requirePositive(halo_size, "halo_size", source: source)
        if let p = pos_embed_type, p != "query_related" {
            throw ModelError(source, "block_kwargs.pos_embed_type '\(p)' is not implemented", hint: "the study's models use query_related")
        }
        _ = try variant(source: source)
    }
}

/// The U-HaloNet mixer.
public enum HaloMixer: Mixer {
    public static let family = Family.halo
    public static let presetName = "halo"
    public static let presetAliases = ["halonet"]
    public static let blockClass = "UnifiedHaloBlock"
    public static let mixerName = "U-HaloNet"

    public static func preset(scale: String) -> ArchConfig? {
        guard let (dims, depths, heads) = SwinMixer.scaleShape(scale) else { return nil }
        return ArchConfig(family: family, dims: dims, depths: depths, block_kwargs: try! BlockKwargs(HaloSettings(num_heads: heads)))
    }

    public static func makeBlock(_ ctx: BlockContext, settings: HaloSettings) -> Block { UnifiedHaloBlock(ctx, settings) }

    public static func recognises(_ keys: [String]) -> Bool { keys.contains { $0.contains(".attn.pos_embed.height_rel") } }

    /// Heads from q's rows over the relative tables' width; halo from the tables' span
    /// 2 * (block + 2 * halo) - 1, assuming block 7.
    public static func inferSettings(from state: StateDict, dims: [Int], depths: [Int], path: String) throws
        -> (settings: HaloSettings, assumptions: [String], imgSize: Int?) {
        let heads = try dims.indices.map { s in
            try requireShape(state, "stages.\(s).0.attn.q.weight", path: path)[0]
                / requireShape(state, "stages.\(s).0.attn.pos_embed.height_rel", path: path)[1]
        }
        let span = try requireShape(state, "stages.0.0.attn.pos_embed.height_rel", path: path)[0]
        let halo = ((span + 1) / 2 - 7) / 2
        return (HaloSettings(num_heads: heads, block_size: 7, halo_size: halo),
                ["block size 7 (halo \(halo) follows from the relative tables)"], nil)
    }
}

/// timm's `make_divisible` with divisor 8: rounds to the nearest multiple, never more than 10 % down.
func makeDivisible(_ v: Int, divisor: Int = 8) -> Int {
    var rounded = max(divisor, (v + divisor / 2) / divisor * divisor)
    if Double(rounded) < 0.9 * Double(v) { rounded += divisor }
    return rounded
}

/// `attn.pos_embed`: the query-related relative tables, [2*Wn - 1, Dk] each.
public final class HaloPositionTables: Module {
    let height_rel: Parameter
    let width_rel: Parameter

    init(window: Int, headWidth: Int) {
        // The reference draws them as randn * Dk^-0.5 (no truncation); the bound of 2 is many
        // standard deviations away for every preset width.
        let std = 1 / Float(headWidth).squareRoot()
        height_rel = Parameter([2 * window - 1, headWidth], init: .normal(std: std))
        width_rel = Parameter([2 * window - 1, headWidth], init: .normal(std: std))
    }

    public var members: [(String, Any)] { [("height_rel", height_rel), ("width_rel", width_rel)] }
}

/// `attn`: the reference's `HaloAttn` parameters (kv conv and q linear without bias, relative
/// tables, output projection) and the constants derived from them; the LayerNorm variants add
/// `logit_norm`, an nn.LayerNorm over the Wn*Wn keys of a window.
public final class HaloAttention: Module {
    let kv: PointwiseConv
    let q: Linear
    let pos_embed: HaloPositionTables
    let proj: Linear
    let logit_norm: LayerNorm?  // [K]
    let heads: Int, headWidthQK: Int, headWidthV: Int
    let variant: AttentionVariant
    /// kv weight as [Hd*Dk + Hd*Dv, C] with all keys first, then all values (the checkpoint
    /// interleaves them per head: k of head 0, v of head 0, k of head 1, ...).
    private(set) var kvMatrix = Tensor.zeros([0])
    private(set) var heightTable = Tensor.zeros([0])
    private(set) var widthTable = Tensor.zeros([0])

    init(dim: Int, heads: Int, window: Int, variant: AttentionVariant = .standard) {
        self.heads = heads
        self.variant = variant
        logit_norm = variant.hasLogitNorm ? LayerNorm(window * window, eps: 1e-5) : nil
        headWidthQK = makeDivisible(dim) / heads
        headWidthV = dim / heads
        kv = PointwiseConv(dim, heads * (headWidthQK + headWidthV), bias: false)
        q = Linear(dim, heads * headWidthQK, bias: false)
        pos_embed = HaloPositionTables(window: window, headWidth: headWidthQK)
        proj = Linear(heads * headWidthV, heads * headWidthV)
    }

    public var members: [(String, Any)] {
        var m: [(String, Any)] = [("kv", kv), ("q", q), ("pos_embed", pos_embed), ("proj", proj)]
        if let logit_norm { m.append(("logit_norm", logit_norm)) }
        return m
    }

    public func prepare() {
        let (heads, dk, dv) = (self.heads, headWidthQK, headWidthV)
        let c = kv.weight.shape[1], per = dk + dv, rows = heads * per
        // kv.weight row (h * per + j) -> kvMatrix row: all heads' keys first, then all heads' values.
        let rowOf = { (r: Int) -> Int in
            let h = r / per, j = r % per
            return j < dk ? h * dk + j : heads * dk + h * dv + (j - dk)
        }
        let w = kv.weight.values
        var reordered = [Float](repeating: 0, count: w.count)
        for r in 0..<rows { for i in 0..<c { reordered[rowOf(r) * c + i] = w[r * c + i] } }
        let m = Tensor(shape: [rows, c], values: reordered).frozen()
        kvMatrix = m
        // kv's own weight is read only if someone asks for it: its pages are handed back and written
        // again from the reordered matrix on such a read.
        kv.weight.tensor.storage.releaseDerived { w in
            for r in 0..<rows { (w + r * c).update(from: m.data + rowOf(r) * c, count: c) }
        }
        heightTable = pos_embed.height_rel.tensor.detached()
        widthTable = pos_embed.width_rel.tensor.detached()
    }
}

/// The reference's `UnifiedHaloBlock`: x + gamma_1 * proj(halo attention(norm1(x))), then
/// x + gamma_2 * mlp(norm2(x)), channels-last.
public final class UnifiedHaloBlock: TwoStepBlock {
    let norm1: LayerNorm
    let attn: HaloAttention
    let gamma_1: Parameter  // [1, 1, 1, C]
    let norm2: LayerNorm
    let mlp: Mlp
    let gamma_2: Parameter  // [1, 1, 1, C]
    let blockSize: Int, halo: Int
    private var geometry: [GeometryKey: Geometry] = [:]
    private let geometryLock = NSLock()

    /// PyTorch's default LayerNorm eps, which the reference block's norms use.
    static let normEps: Float = 1e-5

    init(_ ctx: BlockContext, _ settings: HaloSettings) {
        blockSize = settings.block_size ?? 7
        halo = settings.halo_size ?? 3
        norm1 = LayerNorm(ctx.dim, eps: Self.normEps)
        attn = HaloAttention(dim: ctx.dim, heads: settings.num_heads[ctx.stage], window: blockSize + 2 * halo,
                             variant: try! settings.variant(source: "block_kwargs"))
        gamma_1 = Parameter([1, 1, 1, ctx.dim], init: .layerScale)
        norm2 = LayerNorm(ctx.dim, eps: Self.normEps)
        mlp = Mlp(ctx.dim, hidden: 4 * ctx.dim)
        gamma_2 = Parameter([1, 1, 1, ctx.dim], init: .layerScale)
    }

    public var members: [(String, Any)] {
        [("norm1", norm1), ("attn", attn), ("gamma_1", gamma_1), ("norm2", norm2), ("mlp", mlp), ("gamma_2", gamma_2)]
    }

    /// x + gamma_1 * mixer(x): x [N,H,W,C] -> [N,H,W,C]
    public func tokenMixing(_ x: Tensor) -> Tensor { residual(x, mixer(x), gamma_1) }

    /// y + gamma_2 * mlp(norm2(y)): y [N,H,W,C] -> [N,H,W,C]
    public func channelMixing(_ y: Tensor) -> Tensor { mlp.residual(norm2(y), onto: y, gamma_2) }

    /// The token-mixing branch: x [N,H,W,C] -> proj(halo attention(norm1(x))) [N,H,W,C].
    public func mixer(_ x: Tensor) -> Tensor {
        let (n, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let g = geometryFor(n: n, h: h, w: w)
        let s = blockSize, wn = s + 2 * halo
        let (heads, dk, dv) = (attn.heads, attn.headWidthQK, attn.headWidthV)
        let xn = norm1(x)
        // Queries in block order [N*Nb, L, Hd*Dk]; keys and values [N, H, W, Hd*(Dk+Dv)], which the
        // attention reads in window order through the plan, a (window, head) at a time: the windows
        // overlap, and written whole they were 3.4x the map (and cold by the time each was read).
        let q = gatherRows(attn.q(xn), plan: g.blocks, outShape: [n * g.count, s * s, heads * dk])
        let kv = linear(xn, weight: attn.kvMatrix)
        // Softmax takes the outside-the-map mask in its logits; the other activations as a presence mask.
        let softmax = attn.variant.activation == .softmax
        // The relative logits enter as a factored term: [B, Hd, L, K] of them is never stored.
        let rel = HaloRelativeTerm(coefficients: haloRelativeCoefficients(q, heightTable: attn.heightTable, widthTable: attn.widthTable, heads: heads),
                                   heads: heads, block: s, window: wn, keyBias: softmax ? g.mask : nil)
        let mixed = attention(q: AttentionOperand(q), k: AttentionOperand(kv, offset: 0, rows: g.windows),
                              v: AttentionOperand(kv, offset: heads * dk, rows: g.windows), heads: heads, keyWidth: dk, valueWidth: dv,
                              scale: 1 / Float(dk).squareRoot(),
                              bias: AttentionBias(perGroup: softmax ? nil : presence(g, queries: s * s)), term: rel,
                              activation: attn.variant.rowActivation(keys: wn * wn, headDim: dk, norm: attn.logit_norm),
                              // Kept for the backward rather than remade: halo_tiny's stage-4 ERF new/old 0.955
                              // (6 pairs, 0.92-0.96) for 542 -> 683 MB of peak RSS (0.39 of PyTorch eager's).
                              remakeWeights: false)
        return attn.proj(gatherRows(mixed, plan: g.merge, outShape: [n, h, w, heads * dv]))
    }

    /// The mask [Nb, K] repeated for each of the L queries of a block: [Nb, L, K].
    private func presence(_ g: Geometry, queries l: Int) -> Tensor {
        let k = g.mask.count / g.count
        let src = g.mask.data
        let out = Tensor(uninitializedShape: [g.count, l, k])
        for b in 0..<g.count { for i in 0..<l { (out.data + (b * l + i) * k).update(from: src + b * k, count: k) } }
        return out
    }

    private struct GeometryKey: Hashable { var n: Int, h: Int, w: Int }

    private struct Geometry {
        /// Blocks per image.
        var count: Int
        /// Map pixel -> block-ordered query row (-1 for the bottom/right padding).
        var blocks: GatherPlan
        /// Map pixel -> window-ordered key row (-1 for the halo and the bottom/right padding).
        var windows: GatherPlan
        /// Block-ordered row -> map pixel (drops the padding).
        var merge: GatherPlan
        /// [Nb, K]: the most negative float where a window position lies outside the padded map.
        var mask: Tensor
    }

    private func geometryFor(n: Int, h: Int, w: Int) -> Geometry {
        let key = GeometryKey(n: n, h: h, w: w)
        geometryLock.lock()
        defer { geometryLock.unlock() }
        if let g = geometry[key] { return g }
        let s = blockSize, wn = s + 2 * halo, l = s * s, k = wn * wn
        let hp = (h + s - 1) / s * s, wp = (w + s - 1) / s * s
        let nby = hp / s, nbx = wp / s, nb = nby * nbx
        var blocks = [Int32](repeating: -1, count: n * nb * l)
        var windows = [Int32](repeating: -1, count: n * nb * k)
        var merge = [Int32](repeating: 0, count: n * h * w)
        var mask = [Float](repeating: 0, count: nb * k)
        for by in 0..<nby {
            for bx in 0..<nbx {
                let blk = by * nbx + bx
                for b in 0..<n {
                    let base = b * nb + blk
                    for iy in 0..<s {
                        for ix in 0..<s {
                            let y = by * s + iy, xx = bx * s + ix
                            guard y < h && xx < w else { continue }
                            let pixel = (b * h + y) * w + xx
                            blocks[base * l + iy * s + ix] = Int32(pixel)
                            merge[pixel] = Int32(base * l + iy * s + ix)
                        }
                    }
                    for ky in 0..<wn {
                        for kx in 0..<wn {
                            let y = by * s - halo + ky, xx = bx * s - halo + kx
                            if y >= 0 && y < h && xx >= 0 && xx < w { windows[base * k + ky * wn + kx] = Int32((b * h + y) * w + xx) }
                        }
                    }
                }
                for ky in 0..<wn {
                    for kx in 0..<wn {
                        let y = by * s - halo + ky, xx = bx * s - halo + kx
                        if y < 0 || y >= hp || xx < 0 || xx >= wp { mask[blk * k + ky * wn + kx] = -Float.greatestFiniteMagnitude }
                    }
                }
            }
        }
        let g = Geometry(count: nb, blocks: GatherPlan(index: blocks, sourceRows: n * h * w),
                         windows: GatherPlan(index: windows, sourceRows: n * h * w),
                         merge: GatherPlan(index: merge, sourceRows: n * nb * l),
                         mask: Tensor(shape: [nb, k], values: mask))
        // Bounded: a sweep over many input sizes (boxes' scales) must not keep every size's masks.
        if geometry.count >= maxCachedGeometries { geometry.removeAll() }
        geometry[key] = g
        return g
    }
}

extension UnifiedHaloBlock: InspectableBlock {
    /// The weights of the query at (y, x) over its block's halo window, per head.
    public func aggregationKernel(_ x: Tensor, y: Int, x col: Int) -> MixerKernel {
        let (n, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let g = geometryFor(n: n, h: h, w: w)
        let l = blockSize * blockSize, k = (blockSize + 2 * halo) * (blockSize + 2 * halo)
        let recorded = AttentionRecorder.recording { mixer(x) }.weights
        let row = Int(g.merge.index[y * w + col])
        let s = row / l
        return attentionKernel(recorded.last!, sequence: s, query: row % l, pixels: h * w) { j in
            let src = Int(g.windows.index[s * k + j])
            return src >= 0 ? [(src, Float(1))] : []
        }
    }
}
