// Models: U-Swin, the reference's `SwinBlock` with timm's `WindowAttention`. Window attention over
// 7x7 windows with a learned relative-position bias; odd blocks shift the windows by 3 and mask
// attention across the wrapped edge with -100. Window, shift and mask follow the size of the map the
// block runs on, as the reference does when the model is built at the size it runs at: in the
// classification form a map whose shorter side is 7 or smaller uses one window of that side and no
// shift (its bias is the centre of the stored (2*7-1)^2 table, see README "Other input sizes"); the
// detection form keeps the 7x7 window and the odd-block shift on every map. Maps that are not
// multiples of the window are padded at the bottom and right with zeros after the first norm, as
// the study's detection backbone does; padded tokens are cropped after attention.
// The shift, padding and window partition are one row gather; their reverse is another. Geometry and
// bias caches are locked, so one model may run on several threads at once.
// This file is the whole mixer: settings, presets, block, key recognition, inference.
//
// Shape key: N batch, H height, W width, C channels, Hp/Wp padded map, S window side,
// L = S*S tokens per window, Nw windows per image, Hd heads.

import Checkpoint
import Foundation
import TensorCore

extension Family {
    /// U-Swin.
    public static let swin = Family("swin")
}

/// `block_kwargs` of U-Swin.
public struct SwinSettings: MixerSettings, Equatable {
    /// Heads per stage.
    public var num_heads: [Int]
    /// Window side (default 7).
    public var window_size: Int?
    /// softmax (default), scale, scale-relu, layernorm, layernorm-relu (AttentionVariants.swift).
    public var attention_activation: String?
    /// keys (default) or head_dim: the constant of the scale variants.
    public var attention_scale: String?
    /// dot (default) or depthwise.
    public var attention_kind: String?

    public init(num_heads: [Int], window_size: Int? = 7, attention_activation: String? = nil,
                attention_scale: String? = nil, attention_kind: String? = nil) {
        self.num_heads = num_heads
        self.window_size = window_size
        self.attention_activation = attention_activation
        self.attention_scale = attention_scale
        self.attention_kind = attention_kind
    }

    public func validate(dims: [Int], source: String) throws {
        try requireHeads(num_heads, dims: dims, source: source)
        try requirePositive(window_size, "window_size", source: source)
        _ = try variant(source: source)
    }

    /// The attention variant these settings ask for.
    public func variant(source: String) throws -> AttentionVariant {
        try AttentionVariant.parse(activation: attention_activation, scale: attention_scale, kind: attention_kind,
                                   depthwiseAllowed: true, source: source)
    }
}

/// The U-Swin mixer.
public enum SwinMixer: Mixer {
    public static let family = Family.swin
    public static let presetName = "swin"
    public static let blockClass = "SwinBlock"
    public static let mixerName = "U-Swin"

    /// The dims, depths and heads of the Swin and HaloNet factories.
    static func scaleShape(_ scale: String) -> (dims: [Int], depths: [Int], heads: [Int])? {
        switch scale {
        case "micro": return (Presets.doubling(32), [2, 2, 9, 2], [1, 2, 4, 8])
        case "tiny": return (Presets.doubling(96), [2, 2, 6, 2], [3, 6, 12, 24])
        case "small": return (Presets.doubling(96), [2, 2, 18, 2], [3, 6, 12, 24])
        case "base": return (Presets.doubling(128), [2, 2, 18, 2], [4, 8, 16, 32])
        default: return nil
        }
    }

    public static func preset(scale: String) -> ArchConfig? {
        guard let (dims, depths, heads) = scaleShape(scale) else { return nil }
        return ArchConfig(family: family, dims: dims, depths: depths,
                          block_kwargs: try! BlockKwargs(SwinSettings(num_heads: heads, window_size: 7)))
    }

    public static func makeBlock(_ ctx: BlockContext, settings: SwinSettings) -> Block { SwinBlock(ctx, settings) }

    public static func recognises(_ keys: [String]) -> Bool { keys.contains { $0.contains(".attn.relative_position_bias_table") } }

    /// Heads from the bias tables' columns, the window from their rows ((2S - 1)^2); depth-wise
    /// attention from its `attn.qk` projection. The activation is not in the shapes (softmax is
    /// assumed; a LayerNorm variant's `logit_norm` keys then stop strict loading: pass --arch).
    public static func inferSettings(from state: StateDict, dims: [Int], depths: [Int], path: String) throws
        -> (settings: SwinSettings, assumptions: [String], imgSize: Int?) {
        let shapes = try dims.indices.map { try requireShape(state, "stages.\($0).0.attn.relative_position_bias_table", path: path) }
        let rows = shapes[0][0]
        let depthwise = state["stages.0.0.attn.qk.weight"] != nil
        return (SwinSettings(num_heads: shapes.map { $0[1] }, window_size: (Int(Double(rows).squareRoot().rounded()) + 1) / 2,
                             attention_kind: depthwise ? "depthwise" : nil), [], nil)
    }
}

/// timm's WindowAttention parameters: qkv and proj linears, the relative-position bias table; the
/// depth-wise variant has a `qk` linear (no values) instead of `qkv`; the LayerNorm variants add
/// `logit_norm`, an nn.LayerNorm over the S*S keys of a window.
public final class WindowAttention: Module {
    let qkv: Linear?
    let qk: Linear?
    let proj: Linear
    let relative_position_bias_table: Parameter  // [(2S-1)^2, Hd]
    let logit_norm: LayerNorm?  // [S*S]
    let heads: Int, window: Int
    let variant: AttentionVariant
    /// Bias per head and token pair for each window side in use, gathered from the table. [Hd, L, L]
    private var biases: [Int: Tensor] = [:]
    private let lock = NSLock()

    init(dim: Int, heads: Int, window: Int, variant: AttentionVariant = .standard) {
        let depthwise = variant.kind == .depthwise
        qkv = depthwise ? nil : Linear(dim, 3 * dim)
        qk = depthwise ? Linear(dim, 2 * dim) : nil
        proj = Linear(dim, dim)
        relative_position_bias_table = Parameter([(2 * window - 1) * (2 * window - 1), heads], init: .truncatedNormal(std: 0.02))
        logit_norm = variant.hasLogitNorm ? LayerNorm(window * window, eps: 1e-5) : nil
        self.heads = heads
        self.window = window
        self.variant = variant
    }

    /// The row activation on an s x s window: key (jy, jx) uses entry jy * S0 + jx of the stored affine.
    func activation(window s: Int, headDim: Int) -> AttentionActivation {
        let take = s == window ? nil : (0..<(s * s)).map { ($0 / s) * window + $0 % s }
        return variant.rowActivation(keys: s * s, headDim: headDim, norm: logit_norm, take: take)
    }

    public func prepare() {
        lock.lock()
        biases = [:]
        lock.unlock()
    }

    /// The bias [Hd, L, L] of an s x s window (s <= the stored window S0): token pair (i, j) reads
    /// table row (dy + S0 - 1) * (2 S0 - 1) + (dx + S0 - 1), the stored window's own index.
    func bias(window s: Int) -> Tensor {
        lock.lock()
        defer { lock.unlock() }
        if let b = biases[s] { return b }
        precondition(s <= window, "Swin window \(s) is larger than the stored table's \(window)")
        let s0 = window, l = s * s, span = 2 * s0 - 1
        let table = relative_position_bias_table.values
        var b = [Float](repeating: 0, count: heads * l * l)
        for i in 0..<l {
            for j in 0..<l {
                let dy = i / s - j / s, dx = i % s - j % s
                let row = (dy + s0 - 1) * span + (dx + s0 - 1)
                for h in 0..<heads { b[(h * l + i) * l + j] = table[row * heads + h] }
            }
        }
        let t = Tensor(shape: [heads, l, l], values: b)
        biases[s] = t
        return t
    }
}

public final class SwinBlock: TwoStepBlock {
    let norm1: LayerNorm
    let attn: WindowAttention
    let gamma_1: Parameter  // [C]
    let norm2: LayerNorm
    let mlp: Mlp
    let gamma_2: Parameter  // [C]
    /// The configured window side (the stored table's), and whether this block shifts (odd blocks).
    let window: Int, shifted: Bool, dim: Int
    /// Detection form: the window never shrinks to the map, odd blocks always shift.
    let detection: Bool
    private var geometry: [GeometryKey: Geometry] = [:]
    private let geometryLock = NSLock()

    init(_ ctx: BlockContext, _ settings: SwinSettings) {
        window = settings.window_size ?? 7
        shifted = ctx.depth % 2 == 1
        detection = ctx.detection
        dim = ctx.dim
        let heads = settings.num_heads[ctx.stage]
        norm1 = LayerNorm(ctx.dim, eps: ctx.eps)
        attn = WindowAttention(dim: ctx.dim, heads: heads, window: window, variant: try! settings.variant(source: "block_kwargs"))
        gamma_1 = Parameter([ctx.dim], init: .layerScale)
        norm2 = LayerNorm(ctx.dim, eps: ctx.eps)
        mlp = Mlp(ctx.dim, hidden: 4 * ctx.dim)
        gamma_2 = Parameter([ctx.dim], init: .layerScale)
    }

    public var members: [(String, Any)] {
        [("norm1", norm1), ("attn", attn), ("gamma_1", gamma_1), ("norm2", norm2), ("mlp", mlp), ("gamma_2", gamma_2)]
    }

    /// x + gamma_1 * mixer(x): x [N,H,W,C] -> [N,H,W,C]
    public func tokenMixing(_ x: Tensor) -> Tensor { residual(x, mixer(x), gamma_1) }

    /// y + gamma_2 * mlp(norm2(y)): y [N,H,W,C] -> [N,H,W,C]
    public func channelMixing(_ y: Tensor) -> Tensor { mlp.residual(norm2(y), onto: y, gamma_2) }

    /// The token-mixing branch: x [N,H,W,C] -> proj(window attention(norm1(x))) [N,H,W,C].
    public func mixer(_ x: Tensor) -> Tensor {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let g = geometryFor(n: n, h: h, w: w)
        let l = g.side * g.side
        // [N*Nw, L, C]: padded, shifted, partitioned
        let windows = gatherRows(norm1(x), plan: g.partition, outShape: [n * g.windows, l, c])
        let hd = c / attn.heads
        let mixed: Tensor  // [N*Nw, L, C]
        if let qkLinear = attn.qk {
            let qk = qkLinear(windows)  // [N*Nw, L, 2C]
            mixed = depthwiseAttention(q: AttentionOperand(qk, offset: 0), k: AttentionOperand(qk, offset: c), channels: c,
                                       heads: attn.heads, position: attn.bias(window: g.side), mask: g.mask)
        } else {
            let qkv = attn.qkv!(windows)  // [N*Nw, L, 3C]
            mixed = attention(q: AttentionOperand(qkv, offset: 0), k: AttentionOperand(qkv, offset: c),
                              v: AttentionOperand(qkv, offset: 2 * c), heads: attn.heads, keyWidth: hd, valueWidth: hd,
                              scale: 1 / Float(hd).squareRoot(),
                              bias: AttentionBias(perHead: attn.bias(window: g.side), perGroup: g.mask),
                              activation: attn.activation(window: g.side, headDim: hd))
        }
        return gatherRows(attn.proj(mixed), plan: g.merge, outShape: [n, h, w, c])
    }

    private struct GeometryKey: Hashable { var n: Int, h: Int, w: Int }

    private struct Geometry {
        /// Window side used on this map.
        var side: Int
        var windows: Int
        var partition: GatherPlan
        var merge: GatherPlan
        var mask: Tensor?  // [Nw, L, L]
    }

    private func geometryFor(n: Int, h: Int, w: Int) -> Geometry {
        let key = GeometryKey(n: n, h: h, w: w)
        geometryLock.lock()
        defer { geometryLock.unlock() }
        if let g = geometry[key] { return g }
        // timm's rule, applied to the running map: a map no larger than the window is one window, unshifted.
        let fits = !detection && min(h, w) <= window
        let s = fits ? min(h, w) : window
        let shift = shifted && !fits ? window / 2 : 0
        let hp = (h + s - 1) / s * s, wp = (w + s - 1) / s * s
        let nwy = hp / s, nwx = wp / s, nw = nwy * nwx, l = s * s
        // Window token (b, wy, wx, iy, ix) reads shifted position (py, px) = (wy*S+iy, wx*S+ix), i.e.
        // padded position ((py + shift) % Hp, (px + shift) % Wp); positions past H or W are padding.
        var partition = [Int32](repeating: -1, count: n * nw * l)
        var merge = [Int32](repeating: 0, count: n * h * w)
        for b in 0..<n {
            for py in 0..<hp {
                for px in 0..<wp {
                    let y = (py + shift) % hp, xx = (px + shift) % wp
                    let row = ((b * nw + (py / s) * nwx + px / s) * l) + (py % s) * s + px % s
                    if y < h && xx < w {
                        partition[row] = Int32((b * h + y) * w + xx)
                        merge[(b * h + y) * w + xx] = Int32(row)
                    }
                }
            }
        }
        var mask: Tensor? = nil
        if shift > 0 {
            // Regions of the padded map: [0, Hp-S), [Hp-S, Hp-shift), [Hp-shift, Hp), likewise for W.
            func region(_ p: Int, _ size: Int) -> Int { p < size - s ? 0 : (p < size - shift ? 1 : 2) }
            var m = [Float](repeating: 0, count: nw * l * l)
            for wy in 0..<nwy {
                for wx in 0..<nwx {
                    let win = wy * nwx + wx
                    var label = [Int](repeating: 0, count: l)
                    for t in 0..<l { label[t] = region(wy * s + t / s, hp) * 3 + region(wx * s + t % s, wp) }
                    for i in 0..<l { for j in 0..<l where label[i] != label[j] { m[(win * l + i) * l + j] = -100 } }
                }
            }
            mask = Tensor(shape: [nw, l, l], values: m)
        }
        let g = Geometry(side: s, windows: nw, partition: GatherPlan(index: partition, sourceRows: n * h * w),
                         merge: GatherPlan(index: merge, sourceRows: n * nw * l), mask: mask)
        // Bounded: a sweep over many input sizes (boxes' scales) must not keep every size's masks.
        if geometry.count >= maxCachedGeometries { geometry.removeAll() }
        geometry[key] = g
        return g
    }
}

extension SwinBlock: InspectableBlock {
    /// The softmax (or variant) weights of the query at (y, x) over its window, per head; depth-wise
    /// attention has no weight matrix (`.none`: see the Jacobian view).
    public func aggregationKernel(_ x: Tensor, y: Int, x col: Int) -> MixerKernel {
        let (n, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        guard attn.qk == nil else { return MixerKernel(kind: .none, maps: [], rawShape: [0], raw: []) }
        let g = geometryFor(n: n, h: h, w: w)
        let l = g.side * g.side
        let recorded = AttentionRecorder.recording { mixer(x) }.weights
        let row = Int(g.merge.index[y * w + col])
        let s = row / l
        return attentionKernel(recorded.last!, sequence: s, query: row % l, pixels: h * w) { j in
            let src = Int(g.partition.index[s * l + j])
            return src >= 0 ? [(src, Float(1))] : []
        }
    }
}
