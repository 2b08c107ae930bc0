// Models: U-Swin, the reference's `SwinBlock` with timm's `WindowAttention`. Window attention over
// 7x7 windows with a learned relative-position bias; odd blocks shift the windows by 3 and mask
// attention across the wrapped edge with -100. As in the reference, a stage whose map (at the
// config's img_size) is 7 or smaller uses one window the size of the map and no shift. Maps that are
// not multiples of the window are padded at the bottom and right with zeros after the first norm,
// as the study's detection backbone does; padded tokens are cropped after attention.
// The shift, padding and window partition are one row gather; their reverse is another.
//
// Shape key: N batch, H height, W width, C channels, Hp/Wp padded map, S window side,
// L = S*S tokens per window, Nw windows per image, Hd heads.

import TensorCore

/// timm's WindowAttention parameters: qkv and proj linears, the relative-position bias table.
public final class WindowAttention: Module {
    let qkv: Linear
    let proj: Linear
    let relative_position_bias_table: Parameter  // [(2S-1)^2, Hd]
    let heads: Int, window: Int
    /// Bias per head and token pair, gathered from the table. [Hd, L, L]
    private(set) var bias = Tensor.zeros([0])

    init(dim: Int, heads: Int, window: Int) {
        qkv = Linear(dim, 3 * dim)
        proj = Linear(dim, dim)
        relative_position_bias_table = Parameter([(2 * window - 1) * (2 * window - 1), heads], init: .truncatedNormal(std: 0.02))
        self.heads = heads
        self.window = window
    }

    public func prepare() {
        // index(i, j) = (dy + S - 1) * (2S - 1) + (dx + S - 1) for tokens i, j of a window.
        let s = window, l = s * s, span = 2 * s - 1
        let table = relative_position_bias_table.values
        var b = [Float](repeating: 0, count: heads * l * l)
        for i in 0..<l {
            for j in 0..<l {
                let dy = i / s - j / s, dx = i % s - j % s
                let row = (dy + s - 1) * span + (dx + s - 1)
                for h in 0..<heads { b[(h * l + i) * l + j] = table[row * heads + h] }
            }
        }
        bias = Tensor(shape: [heads, l, l], values: b)
    }
}

public final class SwinBlock: Block {
    let norm1: LayerNorm
    let attn: WindowAttention
    let gamma_1: Parameter  // [C]
    let norm2: LayerNorm
    let mlp: Mlp
    let gamma_2: Parameter  // [C]
    let window: Int, shift: Int, dim: Int
    private var geometry: [GeometryKey: Geometry] = [:]

    init(_ ctx: BlockContext) {
        var window = ctx.settings.window_size ?? 7
        var shift = ctx.depth % 2 == 0 ? 0 : window / 2
        if ctx.resolution <= window {
            shift = 0
            window = ctx.resolution
        }
        self.window = window
        self.shift = shift
        dim = ctx.dim
        let heads = ctx.config.heads[ctx.stage]
        norm1 = LayerNorm(ctx.dim, eps: ctx.eps)
        attn = WindowAttention(dim: ctx.dim, heads: heads, window: window)
        gamma_1 = Parameter([ctx.dim], init: .layerScale)
        norm2 = LayerNorm(ctx.dim, eps: ctx.eps)
        mlp = Mlp(ctx.dim, hidden: 4 * ctx.dim)
        gamma_2 = Parameter([ctx.dim], init: .layerScale)
    }

    public var members: [(String, Any)] {
        [("norm1", norm1), ("attn", attn), ("gamma_1", gamma_1), ("norm2", norm2), ("mlp", mlp), ("gamma_2", gamma_2)]
    }

    /// x [N,H,W,C] -> [N,H,W,C]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let g = geometryFor(n: n, h: h, w: w)
        let l = window * window
        // [N*Nw, L, C]: padded, shifted, partitioned
        let windows = gatherRows(norm1(x), plan: g.partition, outShape: [n * g.windows, l, c])
        let qkv = attn.qkv(windows)  // [N*Nw, L, 3C]
        let hd = c / attn.heads
        let mixed = attention(q: AttentionOperand(qkv, offset: 0), k: AttentionOperand(qkv, offset: c),
                              v: AttentionOperand(qkv, offset: 2 * c), heads: attn.heads, keyWidth: hd, valueWidth: hd,
                              scale: 1 / Float(hd).squareRoot(),
                              bias: AttentionBias(perHead: attn.bias, perGroup: g.mask))
        let merged = gatherRows(attn.proj(mixed), plan: g.merge, outShape: [n, h, w, c])
        let y = residual(x, merged, gamma_1)
        return residual(y, mlp(norm2(y)), gamma_2)
    }

    private struct GeometryKey: Hashable { var n: Int, h: Int, w: Int }

    private struct Geometry {
        var windows: Int
        var partition: GatherPlan
        var merge: GatherPlan
        var mask: Tensor?  // [Nw, L, L]
    }

    private func geometryFor(n: Int, h: Int, w: Int) -> Geometry {
        let key = GeometryKey(n: n, h: h, w: w)
        if let g = geometry[key] { return g }
        let s = window
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
        let g = Geometry(windows: nw, partition: GatherPlan(index: partition, sourceRows: n * h * w),
                         merge: GatherPlan(index: merge, sourceRows: n * nw * l), mask: mask)
        geometry[key] = g
        return g
    }
}
