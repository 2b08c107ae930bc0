// Models: the unified 4-stage architecture shared by all five mixers (the reference's MetaArch):
// overlapping 3x3 stride-2 stem (conv, LayerNorm2d, GELU, conv, LayerNorm2d), 3x3 stride-2
// transitions (conv without bias, LayerNorm2d), stages of mixer blocks, a LayerNorm2d after every
// stage, the `conv_head` (1x1 conv, BatchNorm, GELU), global average pooling and the linear head.
// Which block fills the stages comes from the registry. Training-only parts (drop path) are absent.
// Three forms (`ModelForm`): the classifier; the same without `conv_head`/`head` (a backbone-only
// checkpoint: features and ERF, no classes); and the study's detection backbone, whose stage outputs
// go through `out_norm_i` norms that do not feed the next stage, with no head (and, inside the
// blocks, Swin's unshrunk windows and PVT's position embedding kept out of the residual).
// The model is a `Backbone` (Backbone.swift), which is what the analyses take.
//
// Shape key: N batch, H height, W width, C channels (NHWC throughout).

import TensorCore

/// `downsample_layers.i`: the stem (i = 0) or a transition between stages.
public protocol DownsampleLayer: Module {
    /// x [N,H,W,Cin] -> [N,H/2^k,W/2^k,Cout]
    func callAsFunction(_ x: Tensor) -> Tensor
}

/// `downsample_layers.0`: the overlapping stem.
public final class Stem: Module, DownsampleLayer {
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
    public func callAsFunction(_ x: Tensor) -> Tensor { norm2(conv2(gelu(norm1(conv1(x))))) }
}

/// `downsample_layers.i` (i = 1...3): 3x3 stride-2 conv without bias, then LayerNorm2d.
public final class Transition: Module, DownsampleLayer {
    let conv: Conv2d, norm: LayerNorm

    init(_ inChannels: Int, _ outChannels: Int, eps: Float) {
        conv = Conv2d(inChannels, outChannels, kernel: 3, stride: 2, padding: 1, bias: false)
        norm = LayerNorm(outChannels, eps: eps)
    }

    public var members: [(String, Any)] { [("reduction.0", conv), ("reduction.1", norm)] }

    /// x [N,H,W,C] -> [N,H/2,W/2,O]
    public func callAsFunction(_ x: Tensor) -> Tensor { norm(conv(x)) }
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

/// Which parts of the unified model exist and how stage outputs are normalised.
public enum ModelForm: String, Sendable, CaseIterable {
    /// The classification model: `stage_norms.i` feed the next stage; `conv_head` and `head`.
    case classifier
    /// The classification model without `conv_head`/`head` (a backbone-only checkpoint).
    case headless
    /// The study's detection backbone: `out_norm_i` on each stage output (not fed forward), no head,
    /// detection block rules (Swin's window never shrinks; PVT's position embedding out of the residual).
    case detection

    /// Whether the classifier head exists.
    public var hasHead: Bool { self == .classifier }
}

/// `conv_head` then global average pooling and `head`.
final class ClassifierHead {
    let conv_head: ConvHead
    let head: Linear

    init(_ inChannels: Int, features: Int, classes: Int) {
        conv_head = ConvHead(inChannels, features)
        head = Linear(features, classes)
    }

    /// x [N,H,W,C] -> [N, classes]
    func callAsFunction(_ x: Tensor) -> Tensor { head(globalAveragePool(conv_head(x))) }
}

/// A unified model: stem, transitions, stages of mixer blocks, stage norms, and (classifier form) the head.
public final class UnifiedModel: Module, Backbone {
    public let config: ArchConfig
    public let form: ModelForm
    /// The study's models are trained on ImageNet-normalised inputs.
    public var normalization = InputNormalization.imageNet
    /// `downsample_layers.0`.
    let stem: Stem
    /// `downsample_layers.1...`: the transition in front of stage i + 1.
    let transitions: [Transition]
    /// `stages.i.j`: block j of stage i.
    let stages: [[Block]]
    /// `stage_norms.i` (classifier and headless forms) or `out_norm_i` (detection form).
    let stageNorms: [LayerNorm]
    let classifier: ClassifierHead?

    /// Builds the model described by `config` in the given form, with zero parameters; load or
    /// initialise it next. The mixer must be registered (`MixerRegistry`).
    public init(config: ArchConfig, form: ModelForm = .classifier) {
        self.config = config
        self.form = form
        let eps = Float(config.layer_norm_eps)
        let d = config.dims
        stem = Stem(outChannels: d[0], eps: eps)
        transitions = (1..<d.count).map { Transition(d[$0 - 1], d[$0], eps: eps) }
        // Configs from files, presets and inference are validated; one built in code must be too.
        let make: (BlockContext) -> Block
        do {
            make = try MixerRegistry.require(config.family, source: config.displayName).factory(config.block_kwargs)
        } catch {
            preconditionFailure("UnifiedModel: \(error) (call ArchConfig.validate before building)")
        }
        stages = d.indices.map { s in
            (0..<config.depths[s]).map { j in
                make(BlockContext(config: config, stage: s, depth: j, dim: d[s],
                                  resolution: (config.img_size / 4) >> s, detection: form == .detection))
            }
        }
        stageNorms = d.map { LayerNorm($0, eps: eps) }
        classifier = form.hasHead
            ? ClassifierHead(d[d.count - 1], features: Int(Double(d[d.count - 1]) * config.extra_transform_ratio), classes: config.num_classes)
            : nil
    }

    public var members: [(String, Any)] {
        var m: [(String, Any)] = [("downsample_layers", [stem as Module] + transitions.map { $0 as Module }),
                                  ("stages", stages.map { $0.map { $0 as Module } })]
        if form == .detection {
            m += stageNorms.enumerated().map { ("out_norm_\($0.offset)", $0.element as Any) }
        } else {
            m.append(("stage_norms", stageNorms.map { $0 as Module }))
        }
        if let classifier { m += [("conv_head", classifier.conv_head), ("head", classifier.head)] }
        return m
    }

    public var stageChannels: [Int] { config.dims }
    public var stageStrides: [Int] { config.dims.indices.map { 4 << $0 } }
    public var hasHead: Bool { classifier != nil }

    /// The stem (`stage` 0) or the transition in front of `stage` (0-based), on x.
    public func runTransition(_ stage: Int, on x: Tensor) -> Tensor {
        stage == 0 ? stem(x) : transitions[stage - 1](x)
    }

    /// The blocks of `stage` (0-based) on x, without the stage norm.
    public func runStage(_ stage: Int, on x: Tensor) -> Tensor {
        stages[stage].reduce(x) { h, block in block(h) }
    }

    /// Runs the network on x [N,H,W,3] (normalised, channels-last).
    /// - Parameters:
    ///   - lastStage: stop after this stage (1...4); the head runs only when it is the last stage,
    ///     `logits` is set and the model has a head.
    ///   - logits: whether to run the head.
    public func forward(_ x: Tensor, through lastStage: Int = 4, logits: Bool = true) -> ForwardOutput {
        let count = max(1, min(lastStage, stages.count))
        let (outputs, _, h) = runStages(x, count: count, centreOfLast: false)
        var out = ForwardOutput(stages: outputs, strides: Array(stageStrides.prefix(count)), logits: nil)
        if logits && count == stages.count, let classifier {
            out.logits = classifier(h)
        }
        return out
    }

    /// As `forward`, but the last stage's last block gives only its centre token (`Block.centre`: its
    /// channel MLP runs on that token alone), which its stage norm then normalises: [N,1,1,C].
    public func forwardToCentre(_ x: Tensor, through lastStage: Int) -> [Tensor] {
        forwardToCentreWithTrunk(x, through: lastStage).outputs
    }

    public func forwardToCentreWithTrunk(_ x: Tensor, through lastStage: Int) -> (outputs: [Tensor], trunk: [Tensor]) {
        let r = runStages(x, count: max(1, min(lastStage, stages.count)), centreOfLast: true)
        return (r.outputs, r.trunk)
    }

    /// Stages 1...count on x [N,H,W,3]: each stage's normed output, what each stage hands on (the
    /// normed output, or in the detection form the stage's output before its side-branch norm), and
    /// what the next stage (or the head) would take. With `centreOfLast` the last stage's last block
    /// runs `centre`: [N,1,1,C] on.
    private func runStages(_ x: Tensor, count: Int, centreOfLast: Bool) -> (outputs: [Tensor], trunk: [Tensor], last: Tensor) {
        precondition(x.rank == 4 && x.shape[3] == 3, "forward: input must be [N,H,W,3], got \(x.shape)")
        var h = x
        var outputs: [Tensor] = [], trunk: [Tensor] = []
        for s in 0..<count {
            h = runTransition(s, on: h)
            if centreOfLast && s == count - 1, let lastBlock = stages[s].last {
                h = lastBlock.centre(stages[s].dropLast().reduce(h) { h, block in block(h) })
            } else {
                h = runStage(s, on: h)
            }
            let normed = stageNorms[s](h)
            outputs.append(normed)
            if form != .detection { h = normed }
            trunk.append(h)
        }
        return (outputs, trunk, h)
    }
}
