// Models: the unified 4-stage architecture shared by all five mixers (the reference's MetaArch):
// overlapping 3x3 stride-2 stem (conv, LayerNorm2d, GELU, conv, LayerNorm2d), 3x3 stride-2
// transitions (conv without bias, LayerNorm2d), stages of mixer blocks, a LayerNorm2d after every
// stage, the `conv_head` (1x1 conv, BatchNorm, GELU), global average pooling and the linear head.
// Which block fills the stages comes from the registry. Training-only parts (drop path) are absent.
//
// Shape key: N batch, H height, W width, C channels (NHWC throughout).

import TensorCore

/// `downsample_layers.0`: the overlapping stem.
public final class Stem: Module {
    let conv1: Conv2d, norm1: LayerNorm, conv2: Conv2d, norm2: LayerNorm

    init(outChannels: Int, eps: Float) {
        let mid = outChannels / 2
        conv1 = Conv2d(3, mid, kernel: 3, stride: 2, padding: 1)
        norm1 = LayerNorm(mid, eps: eps)
        conv2 = Conv2d(mid, outChannels, kernel: 3, stride: 2, padding: 1)
        norm2 = LayerNorm(outChannels, eps: eps)
    }

    public var members: [(String, Any)] { [("stem.0", conv1), ("stem.1", norm1), ("stem.3", conv2), ("stem.4", norm2)] }

    /// x [N,H,W,3] -> [N,H/4,W/4,C]
    func callAsFunction(_ x: Tensor) -> Tensor { norm2(conv2(gelu(norm1(conv1(x))))) }
}

/// `downsample_layers.i` (i = 1...3): 3x3 stride-2 conv without bias, then LayerNorm2d.
public final class Transition: Module {
    let conv: Conv2d, norm: LayerNorm

    init(_ inChannels: Int, _ outChannels: Int, eps: Float) {
        conv = Conv2d(inChannels, outChannels, kernel: 3, stride: 2, padding: 1, bias: false)
        norm = LayerNorm(outChannels, eps: eps)
    }

    public var members: [(String, Any)] { [("reduction.0", conv), ("reduction.1", norm)] }

    /// x [N,H,W,C] -> [N,H/2,W/2,O]
    func callAsFunction(_ x: Tensor) -> Tensor { norm(conv(x)) }
}

/// `conv_head`: 1x1 conv without bias, BatchNorm2d, GELU.
public final class ConvHead: Module {
    let conv: PointwiseConv, bn: BatchNorm2d

    init(_ inChannels: Int, _ outChannels: Int) {
        conv = PointwiseConv(inChannels, outChannels, bias: false)
        bn = BatchNorm2d(outChannels)
    }

    public var members: [(String, Any)] { [("0", conv), ("1", bn)] }

    /// x [N,H,W,C] -> [N,H,W,O]
    func callAsFunction(_ x: Tensor) -> Tensor { gelu(bn(conv(x))) }
}

/// What a forward pass returns.
public struct ForwardOutput {
    /// Each computed stage's output after its stage norm, [N,H,W,C] (stage 1 first).
    public var stages: [Tensor]
    /// [N, classes], when the head was run.
    public var logits: Tensor?
}

/// A unified model: stem, transitions, four stages of mixer blocks, stage norms, head.
public final class UnifiedModel: Module {
    public let config: ArchConfig
    let downsample_layers: [Module]
    let stages: [[Block]]
    let stage_norms: [LayerNorm]
    let conv_head: ConvHead
    let head: Linear

    /// Builds the model described by `config` with zero parameters; load or initialise it next.
    public init(config: ArchConfig) {
        self.config = config
        let eps = Float(config.layer_norm_eps)
        let d = config.dims
        downsample_layers = [Stem(outChannels: d[0], eps: eps)] + (0..<3).map { Transition(d[$0], d[$0 + 1], eps: eps) }
        let make = BlockRegistry.factory(for: config.family)
        stages = (0..<4).map { s in
            (0..<config.depths[s]).map { j in
                make(BlockContext(config: config, stage: s, depth: j, dim: d[s],
                                  resolution: (config.img_size / 4) >> s))
            }
        }
        stage_norms = d.map { LayerNorm($0, eps: eps) }
        let features = Int(Double(d[3]) * config.extra_transform_ratio)
        conv_head = ConvHead(d[3], features)
        head = Linear(features, config.num_classes)
    }

    public var members: [(String, Any)] {
        [("downsample_layers", downsample_layers), ("stages", stages.map { $0.map { $0 as Module } }),
         ("stage_norms", stage_norms.map { $0 as Module }), ("conv_head", conv_head), ("head", head)]
    }

    /// Runs the network on x [N,H,W,3] (normalised, channels-last).
    /// - Parameters:
    ///   - lastStage: stop after this stage (1...4); the head runs only when it is 4 and `logits` is set.
    ///   - logits: whether to run the head.
    public func forward(_ x: Tensor, through lastStage: Int = 4, logits: Bool = true) -> ForwardOutput {
        precondition(x.rank == 4 && x.shape[3] == 3, "forward: input must be [N,H,W,3], got \(x.shape)")
        var h = x
        var outputs: [Tensor] = []
        for s in 0..<max(1, min(lastStage, 4)) {
            if s == 0 { h = (downsample_layers[0] as! Stem)(h) } else { h = (downsample_layers[s] as! Transition)(h) }
            for block in stages[s] { h = block(h) }
            h = stage_norms[s](h)
            outputs.append(h)
        }
        var out = ForwardOutput(stages: outputs, logits: nil)
        if logits && lastStage >= 4 {
            out.logits = head(globalAveragePool(conv_head(h)))
        }
        return out
    }

    /// Images per pass in `logits`: large batches run as passes of this many images, whose
    /// activations stay small enough to be reused from cache (a batch of 32 at 224 ran about 15 %
    /// slower per image than passes of 8 here). Every image's logits are the same either way.
    public static let inferenceMicroBatch = 8

    /// Class logits [N, classes] for x [N,H,W,3]. Without gradients, runs in micro-batches.
    public func logits(_ x: Tensor) -> Tensor {
        let n = x.shape[0], per = Self.inferenceMicroBatch
        guard n > per, !x.requiresGrad else { return forward(x).logits! }
        let imageSize = x.count / n
        var result: Tensor?
        for start in stride(from: 0, to: n, by: per) {
            let count = min(per, n - start)
            let part = Tensor(uninitializedShape: [count] + x.shape.dropFirst())
            part.data.update(from: x.data + start * imageSize, count: count * imageSize)
            let l = forward(part).logits!  // [count, classes]
            let out = result ?? Tensor(uninitializedShape: [n, l.shape[1]])
            (out.data + start * l.shape[1]).update(from: l.data, count: l.count)
            result = out
        }
        return result!
    }
}
