// Models: what a block shows of its aggregation kernel, the sampling set and weights w_pk of the
// STM study's token-mixer equation M(p) = W_o sum_k w_pk X(k), for one output position p: attention
// weights per head (Swin, halo, PVT), DCNv3's sampling points with their bilinear footprints, the
// static depth-wise kernel (U-DWConv). Every block also exposes its token-mixing branch (from the
// block input to the branch output before layer scale and residual), whose Jacobian at p
// (Analysis/Kernel.swift) compares all mixers the same way.
//
// Shape key: H/W the block's input map, Hd heads (or groups), C channels, K kernel side.

import TensorCore

/// One mixer's aggregation kernel at one output position.
public struct MixerKernel {
    /// What the weights are.
    public enum Kind: String, Sendable {
        /// Attention weights: one map per head.
        case attention
        /// DCNv3 sampling points: one map per group (each point's weight spread on its bilinear taps).
        case sampling
        /// A static depth-wise kernel: one map, the mean |w| over channels.
        case staticKernel = "static"
        /// No explicit kernel (depth-wise attention): the Jacobian view only.
        case none
    }

    public var kind: Kind
    /// One map per head (or group) over the block's input map, each H*W row-major.
    public var maps: [[Float]]
    /// The raw weights: attention [Hd, Lk] (the query's row), DCNv3 [G*P, 3] (x, y, weight), dwconv [C, K, K].
    public var rawShape: [Int]
    public var raw: [Float]

    public init(kind: Kind, maps: [[Float]], rawShape: [Int], raw: [Float]) {
        self.kind = kind
        self.maps = maps
        self.rawShape = rawShape
        self.raw = raw
    }

    /// The maps summed (over heads or groups).
    public var summed: [Float] {
        guard let first = maps.first else { return [] }
        return maps.dropFirst().reduce(first) { acc, m in zip(acc, m).map { $0 + $1 } }
    }
}

/// A block whose token mixer can be inspected.
public protocol InspectableBlock: Block {
    /// The token-mixing branch: x [N,H,W,C] (block input) -> [N,H,W,C] (before layer scale and residual).
    func mixer(_ x: Tensor) -> Tensor
    /// The aggregation kernel of image 0 at map position (row y, column x). x [N,H,W,C] (block input).
    func aggregationKernel(_ x: Tensor, y: Int, x: Int) -> MixerKernel
}

/// Attention weights of query `query` of sequence `sequence` from the last recorded attention, spread
/// on the map: `keyPixels(j)` gives the (pixel, share) pairs key j covers.
func attentionKernel(_ weights: Tensor, sequence: Int, query: Int, pixels: Int,
                     keyPixels: (Int) -> [(Int, Float)]) -> MixerKernel {
    let (heads, lq, lk) = (weights.shape[1], weights.shape[2], weights.shape[3])
    let w = weights.data
    var maps = [[Float]](repeating: [Float](repeating: 0, count: pixels), count: heads)
    var raw = [Float](repeating: 0, count: heads * lk)
    for h in 0..<heads {
        let row = w + ((sequence * heads + h) * lq + query) * lk
        for j in 0..<lk {
            raw[h * lk + j] = row[j]
            for (p, share) in keyPixels(j) { maps[h][p] += row[j] * share }
        }
    }
    return MixerKernel(kind: .attention, maps: maps, rawShape: [heads, lk], raw: raw)
}

extension UnifiedModel {
    /// Blocks per stage.
    public var blockCounts: [Int] { stages.map(\.count) }

    /// Block `index` of `stage` (both 0-based).
    public func block(stage: Int, index: Int) -> Block { stages[stage][index] }

    /// The input of block `index` of `stage` (0-based) for images x [N,H,W,3]: [N,h,w,C].
    public func blockInput(_ x: Tensor, stage: Int, index: Int) -> Tensor {
        var h = x
        for s in 0..<stage {
            h = runStage(s, on: runTransition(s, on: h))
            if form != .detection { h = stageNorms[s](h) }
        }
        h = runTransition(stage, on: h)
        for b in 0..<index { h = stages[stage][b](h) }
        return h
    }
}
