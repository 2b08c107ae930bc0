// Models: the backbone API that every analysis takes (ERF, invariance, classification; the detector
// next). A backbone runs an image batch to chosen stages and returns their feature maps (NHWC, with
// each stage's stride in input pixels), and, when it has a classifier head, the class logits.
// `UnifiedModel` in each of its forms (classifier, headless, detection) is one.
//
// Each model carries the input normalisation it was trained with (`InputNormalization`).
//
// Shape key: N batch, H/W input height/width, h/w stage map, C channels, K classes.

import TensorCore

/// What a forward pass returns.
public struct ForwardOutput {
    /// Each computed stage's output after its stage norm, [N,h,w,C] (stage 1 first).
    public var stages: [Tensor]
    /// Input pixels per feature pixel of each computed stage (4, 8, 16, 32).
    public var strides: [Int]
    /// [N, K], when the head was run.
    public var logits: Tensor?

    public init(stages: [Tensor], strides: [Int], logits: Tensor? = nil) {
        self.stages = stages
        self.strides = strides
        self.logits = logits
    }
}

/// One stage's features.
public struct StageFeatures {
    /// Stage number, 1-based.
    public var stage: Int
    /// Input pixels per feature pixel.
    public var stride: Int
    /// [N,h,w,C], channels-last.
    public var map: Tensor
}

/// The per-channel input normalisation a model was trained with: pixels in [0, 1] become
/// (value - mean) / std, channel by channel (R, G, B).
public struct InputNormalization: Equatable, Sendable, CustomStringConvertible {
    /// Channel means (R, G, B).
    public var mean: [Float]
    /// Channel standard deviations (R, G, B), all positive.
    public var std: [Float]
    /// Where these values come from ("ImageNet mean/std", "--mean/--std").
    public var source: String

    public init(mean: [Float], std: [Float], source: String) {
        precondition(mean.count == 3 && std.count == 3, "InputNormalization: three means and three standard deviations")
        self.mean = mean
        self.std = std
        self.source = source
    }

    /// timm's IMAGENET_DEFAULT_MEAN / IMAGENET_DEFAULT_STD, which the study's models were trained with.
    public static let imageNet = InputNormalization(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225],
                                                    source: "ImageNet mean/std")
    /// mean = std = 0.5: pixels scaled to [-1, 1], as the TensorFlow EfficientNet-Lite models were trained.
    public static let symmetric = InputNormalization(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5],
                                                     source: "[-1, 1] scaling (mean = std = 0.5)")

    /// "mean 0.485,0.456,0.406 std 0.229,0.224,0.225 (ImageNet mean/std)".
    public var description: String {
        func list(_ v: [Float]) -> String { v.map { "\($0)" }.joined(separator: ",") }
        return "mean \(list(mean)) std \(list(std)) (\(source))"
    }
}

/// A network from images to per-stage features, optionally with a classifier head.
public protocol Backbone: AnyObject {
    /// The architecture (name, family, dims, classes).
    var config: ArchConfig { get }
    /// Channels of each stage's output.
    var stageChannels: [Int] { get }
    /// Input pixels per feature pixel, per stage.
    var stageStrides: [Int] { get }
    /// True when `forward(..., logits: true)` returns logits.
    var hasHead: Bool { get }
    /// The input normalisation every analysis applies before `forward` (the one the model was trained
    /// with, unless a user overrides it).
    var normalization: InputNormalization { get set }
    /// Runs x [N,H,W,3] (normalised, channels-last) through stage `lastStage` (1-based), and the head
    /// when `logits` is set, `lastStage` is the last stage and the backbone has one.
    func forward(_ x: Tensor, through lastStage: Int, logits: Bool) -> ForwardOutput
    /// The stage outputs of `forward(x, through: lastStage, logits: false)`, except that the last is
    /// only its centre token (h/2, w/2), [N,1,1,C], with the bits it has in the whole map: what the ERF
    /// of that stage differentiates. A backbone computes less where it can; the default crops.
    func forwardToCentre(_ x: Tensor, through lastStage: Int) -> [Tensor]
    /// `forwardToCentre`'s outputs, with what each stage hands on (`trunk`, one per output): the
    /// tensor the next stage reads, which is the output itself unless the outputs are side branches
    /// (the detection form's `out_norm_i`). Several stages' backward passes cut the graph there
    /// (`Tape.backwardEach`). The default hands on the outputs.
    func forwardToCentreWithTrunk(_ x: Tensor, through lastStage: Int) -> (outputs: [Tensor], trunk: [Tensor])
}

extension Backbone {
    public func forwardToCentre(_ x: Tensor, through lastStage: Int) -> [Tensor] {
        var stages = forward(x, through: lastStage, logits: false).stages
        stages[stages.count - 1] = centreToken(stages[stages.count - 1])
        return stages
    }

    public func forwardToCentreWithTrunk(_ x: Tensor, through lastStage: Int) -> (outputs: [Tensor], trunk: [Tensor]) {
        let outputs = forwardToCentre(x, through: lastStage)
        return (outputs, outputs)
    }
}

/// Images per pass in `logits`: large batches run as passes of this many images, whose activations
/// stay small enough to be reused from cache (a batch of 32 at 224 ran about 15 % slower per image
/// than passes of 8 here). Every image's logits are the same either way.
public let inferenceMicroBatch = 8

extension Backbone {
    /// Number of stages.
    public var stageCount: Int { stageStrides.count }

    /// The features of the chosen stages (1-based), from one forward pass to the highest of them.
    public func features(_ x: Tensor, stages wanted: [Int]) -> [StageFeatures] {
        guard let last = wanted.max() else { return [] }
        let out = forward(x, through: last, logits: false)
        return wanted.map { StageFeatures(stage: $0, stride: out.strides[$0 - 1], map: out.stages[$0 - 1]) }
    }

    /// Class logits [N, K] for x [N,H,W,3]. Without gradients, runs in micro-batches.
    /// The backbone must have a head (`hasHead`).
    public func logits(_ x: Tensor) -> Tensor {
        precondition(hasHead, "logits: \(config.displayName) has no classifier head")
        let n = x.shape[0], per = inferenceMicroBatch
        guard n > per, !x.requiresGrad else { return forward(x, through: stageCount, logits: true).logits! }
        let imageSize = x.count / n
        var result: Tensor?
        for start in stride(from: 0, to: n, by: per) {
            let count = min(per, n - start)
            let part = Tensor(uninitializedShape: [count] + x.shape.dropFirst())
            part.data.update(from: x.data + start * imageSize, count: count * imageSize)
            let l = forward(part, through: stageCount, logits: true).logits!  // [count, K]
            let out = result ?? Tensor(uninitializedShape: [n, l.shape[1]])
            (out.data + start * l.shape[1]).update(from: l.data, count: l.count)
            result = out
        }
        return result!
    }
}

extension UnifiedModel {
    /// See `inferenceMicroBatch`.
    public static var inferenceMicroBatch: Int { Models.inferenceMicroBatch }
}
