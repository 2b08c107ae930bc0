// Models: EfficientNet-Lite (Tan & Le's EfficientNet without squeeze-excite, with ReLU6 and a fixed
// stem and head, as TensorFlow's efficientnet/lite builder defines it), in the checkpoint layout of
// PyPI's `efficientnet-lite-pytorch` (`_conv_stem`, `_bn0`, `_blocks.N.*`, `_conv_head`, `_bn1`, `_fc`).
// A stem (3x3 conv, stride 2, BN, ReLU6), sixteen or more MBConv blocks (1x1 expansion, k x k
// depth-wise conv, 1x1 projection, each with BatchNorm eps 1e-3, ReLU6 after the first two, an
// identity skip when stride is 1 and the widths agree), then the head (1x1 conv to 1280, BN, ReLU6,
// global average pool, linear). Convolutions pad as TensorFlow's "same" does, for the size they are
// run at: at stride 2 the odd pixel goes after (the stem pads (0, 1, 0, 1) at 224), so they run as
// an explicit `pad2d` followed by an unpadded convolution. The models were trained on pixels scaled
// to [-1, 1] (mean = std = 0.5).
//
// Analysis stages: stage s is the output of the last block at stride 4, 8, 16, 32 (s = 1..4), as it
// leaves that block (no norm after it).
//
// Shape key: N batch, H/W map height/width, C channels, O output channels, K kernel, K1 classes.

import Checkpoint
import Foundation
import TensorCore

extension Family {
    /// EfficientNet-Lite: not one of the study's mixers, not in the mixer registry.
    public static let efficientNetLite = Family("efficientnet_lite")
}

/// One MBConv block's shape.
public struct LiteBlockSpec: Equatable, Sendable {
    public var inChannels: Int
    public var outChannels: Int
    /// Expansion ratio: 1 means no `_expand_conv`.
    public var expand: Int
    public var kernel: Int
    public var stride: Int

    /// Channels of the depth-wise convolution.
    public var hidden: Int { inChannels * expand }
    /// True when the block adds its input back.
    public var hasSkip: Bool { stride == 1 && inChannels == outChannels }
}

/// The layout of an EfficientNet-Lite model.
public struct LiteSpec: Equatable, Sendable {
    /// "efficientnet_lite0" ... "efficientnet_lite4".
    public var name: String
    /// The resolution the model was trained at.
    public var resolution: Int
    public var stemChannels: Int
    public var blocks: [LiteBlockSpec]
    public var headChannels: Int
    public var numClasses: Int

    /// The released variants: (width coefficient, depth coefficient, resolution) of lite0 to lite4.
    public static let coefficients: [(Double, Double, Int)] = [
        (1.0, 1.0, 224), (1.0, 1.1, 240), (1.1, 1.2, 260), (1.2, 1.4, 280), (1.4, 1.8, 300),
    ]
    /// The base block groups (repeats, kernel, stride, expansion, in, out) before scaling.
    static let baseGroups: [(Int, Int, Int, Int, Int, Int)] = [
        (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
        (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320),
    ]

    /// Preset names, lite0 first.
    public static var names: [String] { coefficients.indices.map { "efficientnet_lite\($0)" } }

    /// The preset called `name` (`efficientnet_lite0`, also spelled `efficientnet-lite0`), or nil.
    public static func named(_ name: String, numClasses: Int = 1000) -> LiteSpec? {
        let n = name.replacingOccurrences(of: "-", with: "_")
        guard let i = names.firstIndex(of: n) else { return nil }
        return variant(i, numClasses: numClasses)
    }

    /// Variant `index` (0 for lite0): widths scaled by the width coefficient (rounded to multiples of
    /// 8, never more than 10 % down), repeats by the depth coefficient (rounded up), except the stem,
    /// the head and the first and last block groups, which Lite keeps fixed.
    public static func variant(_ index: Int, numClasses: Int = 1000) -> LiteSpec {
        let (width, depth, resolution) = coefficients[index]
        func filters(_ f: Int) -> Int {
            let scaled = Double(f) * width
            var rounded = max(8, Int(scaled + 4) / 8 * 8)
            if Double(rounded) < 0.9 * scaled { rounded += 8 }
            return rounded
        }
        var blocks: [LiteBlockSpec] = []
        for (g, (repeats, kernel, stride, expand, cin, cout)) in baseGroups.enumerated() {
            let fixed = g == 0 || g == baseGroups.count - 1
            let count = fixed ? repeats : Int((depth * Double(repeats)).rounded(.up))
            let inC = g == 0 ? 32 : filters(cin), outC = filters(cout)
            for r in 0..<count {
                blocks.append(LiteBlockSpec(inChannels: r == 0 ? inC : outC, outChannels: outC, expand: expand,
                                            kernel: kernel, stride: r == 0 ? stride : 1))
            }
        }
        return LiteSpec(name: names[index], resolution: resolution, stemChannels: 32, blocks: blocks,
                        headChannels: 1280, numClasses: numClasses)
    }

    /// Input pixels per map pixel after each block (the stem halves the input).
    public var blockStrides: [Int] {
        var s = 2
        return blocks.map { s *= $0.stride; return s }
    }

    /// Index of the block ending each analysis stage: the last block at stride 4, 8, 16 and 32.
    public var stageEnds: [Int] {
        let strides = blockStrides
        return [4, 8, 16, 32].map { s in strides.lastIndex(of: s) ?? -1 }
    }

    /// Every parameter's key and PyTorch shape, in the model's order (what a checkpoint must hold).
    public var parameterShapes: [(String, [Int])] {
        func bn(_ p: String, _ c: Int) -> [(String, [Int])] {
            ["weight", "bias", "running_mean", "running_var"].map { ("\(p).\($0)", [c]) }
        }
        var out: [(String, [Int])] = [("_conv_stem.weight", [stemChannels, 3, 3, 3])] + bn("_bn0", stemChannels)
        for (i, b) in blocks.enumerated() {
            let p = "_blocks.\(i)."
            if b.expand != 1 { out += [(p + "_expand_conv.weight", [b.hidden, b.inChannels, 1, 1])] + bn(p + "_bn0", b.hidden) }
            out += [(p + "_depthwise_conv.weight", [b.hidden, 1, b.kernel, b.kernel])] + bn(p + "_bn1", b.hidden)
            out += [(p + "_project_conv.weight", [b.outChannels, b.hidden, 1, 1])] + bn(p + "_bn2", b.outChannels)
        }
        out += [("_conv_head.weight", [headChannels, blocks.last!.outChannels, 1, 1])] + bn("_bn1", headChannels)
        out += [("_fc.weight", [numClasses, headChannels]), ("_fc.bias", [numClasses])]
        return out
    }
}

/// A convolution with TensorFlow "same" padding, dense: weight [O, C, K, K], no bias.
public final class SameConv2d: Module {
    public let weight: Parameter
    public let kernel: Int, stride: Int
    private var ohwi = Tensor.zeros([0])  // [O, K*K*C]

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int) {
        weight = Parameter([outChannels, inChannels, kernel, kernel], init: .truncatedNormal(std: 0.02))
        self.kernel = kernel
        self.stride = stride
    }

    public var members: [(String, Any)] { [("weight", weight)] }

    public func prepare() {
        let s = weight.shape
        ohwi = convWeightOHWI(weight.values, o: s[0], c: s[1], kh: s[2], kw: s[3]).frozen()
    }

    /// The padding applied to an input of `height` x `width`.
    public func padding(height: Int, width: Int) -> Padding2d {
        .same(height: height, width: width, kernel: kernel, stride: stride)
    }

    /// x [N,H,W,C] -> [N, ceil(H/s), ceil(W/s), O]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let p = padding(height: x.shape[1], width: x.shape[2])
        return conv2d(pad2d(x, p), weight: ohwi, kernel: (kernel, kernel), stride: stride, pad: 0)
    }
}

/// A depth-wise convolution with TensorFlow "same" padding: weight [C, 1, K, K], no bias. At stride 1
/// (odd K) the padding is (K-1)/2 on every side and the symmetric kernel runs; at stride 2 it is
/// explicit padding and the strided unpadded kernel.
public final class SameDepthwiseConv: Module {
    public let weight: Parameter
    public let kernel: Int, stride: Int
    private var hwc = Tensor.zeros([0])  // [K, K, C]

    public init(_ channels: Int, kernel: Int, stride: Int) {
        weight = Parameter([channels, 1, kernel, kernel], init: .truncatedNormal(std: 0.02))
        self.kernel = kernel
        self.stride = stride
    }

    public var members: [(String, Any)] { [("weight", weight)] }

    public func prepare() {
        let s = weight.shape
        hwc = depthwiseWeightHWC(weight.values, c: s[0], kh: s[2], kw: s[3]).frozen()
    }

    /// The kernel in [K, K, C] layout.
    public var kernelHWC: Tensor { hwc }

    /// The padding applied to an input of `height` x `width`.
    public func padding(height: Int, width: Int) -> Padding2d {
        .same(height: height, width: width, kernel: kernel, stride: stride)
    }

    /// x [N,H,W,C] -> [N, ceil(H/s), ceil(W/s), C]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        if stride == 1 && kernel % 2 == 1 { return depthwiseConv2d(x, weight: hwc, pad: kernel / 2) }
        return depthwiseConv2dValid(pad2d(x, padding(height: x.shape[1], width: x.shape[2])), weight: hwc, stride: stride)
    }
}

/// One MBConv block without squeeze-excite.
public final class MBConvBlock: Module {
    public let spec: LiteBlockSpec
    public let expandConv: PointwiseConv?
    public let bn0: BatchNorm2d?
    public let depthwiseConv: SameDepthwiseConv
    public let bn1: BatchNorm2d
    public let projectConv: PointwiseConv
    public let bn2: BatchNorm2d

    public init(_ spec: LiteBlockSpec, eps: Float) {
        self.spec = spec
        expandConv = spec.expand != 1 ? PointwiseConv(spec.inChannels, spec.hidden, bias: false) : nil
        bn0 = spec.expand != 1 ? BatchNorm2d(spec.hidden, eps: eps) : nil
        depthwiseConv = SameDepthwiseConv(spec.hidden, kernel: spec.kernel, stride: spec.stride)
        bn1 = BatchNorm2d(spec.hidden, eps: eps)
        projectConv = PointwiseConv(spec.hidden, spec.outChannels, bias: false)
        bn2 = BatchNorm2d(spec.outChannels, eps: eps)
    }

    public var members: [(String, Any)] {
        var m: [(String, Any)] = []
        if let expandConv, let bn0 { m += [("_expand_conv", expandConv), ("_bn0", bn0)] }
        return m + [("_depthwise_conv", depthwiseConv), ("_bn1", bn1), ("_project_conv", projectConv), ("_bn2", bn2)]
    }

    /// x [N,H,W,C] -> [N, ceil(H/s), ceil(W/s), O]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        if let expandConv, let bn0 { h = relu6(bn0(expandConv(h))) }
        h = relu6(bn1(depthwiseConv(h)))
        h = bn2(projectConv(h))
        return spec.hasSkip ? add(h, x) : h
    }
}

/// An EfficientNet-Lite classifier.
public final class EfficientNetLite: Module, Backbone {
    public let spec: LiteSpec
    public let config: ArchConfig
    public var normalization = InputNormalization.symmetric
    /// BatchNorm epsilon of every norm (TensorFlow's 1e-3).
    public static let batchNormEps: Float = 1e-3

    public let convStem: SameConv2d
    public let bnStem: BatchNorm2d
    public let blocks: [MBConvBlock]
    public let convHead: PointwiseConv
    public let bnHead: BatchNorm2d
    public let fc: Linear

    public init(spec: LiteSpec) {
        self.spec = spec
        let eps = Self.batchNormEps
        convStem = SameConv2d(3, spec.stemChannels, kernel: 3, stride: 2)
        bnStem = BatchNorm2d(spec.stemChannels, eps: eps)
        blocks = spec.blocks.map { MBConvBlock($0, eps: eps) }
        convHead = PointwiseConv(spec.blocks.last!.outChannels, spec.headChannels, bias: false)
        bnHead = BatchNorm2d(spec.headChannels, eps: eps)
        fc = Linear(spec.headChannels, spec.numClasses)
        let ends = spec.stageEnds
        // dims: stage widths; depths: blocks up to each stage's end (for reports).
        config = ArchConfig(family: .efficientNetLite, name: spec.name, img_size: spec.resolution,
                            dims: ends.map { spec.blocks[$0].outChannels },
                            depths: ends.indices.map { s in ends[s] - (s == 0 ? -1 : ends[s - 1]) },
                            block_kwargs: BlockKwargs(), extra_transform_ratio: Double(spec.headChannels) / Double(spec.blocks.last!.outChannels),
                            num_classes: spec.numClasses, layer_norm_eps: Double(Self.batchNormEps))
    }

    public var members: [(String, Any)] {
        [("_conv_stem", convStem), ("_bn0", bnStem), ("_blocks", blocks as [Module]), ("_conv_head", convHead),
         ("_bn1", bnHead), ("_fc", fc)]
    }

    public var stageChannels: [Int] { spec.stageEnds.map { spec.blocks[$0].outChannels } }
    public var stageStrides: [Int] { [4, 8, 16, 32] }
    public var hasHead: Bool { true }

    /// Runs x [N,H,W,3] through the blocks up to stage `lastStage`'s end, then (when `logits` is set
    /// and `lastStage` is 4) the remaining blocks and the head -> stages [N,h,w,C] and logits [N,K1].
    public func forward(_ x: Tensor, through lastStage: Int = 4, logits: Bool = true) -> ForwardOutput {
        precondition((1...4).contains(lastStage), "EfficientNetLite.forward: stage \(lastStage) outside 1...4")
        let ends = spec.stageEnds
        let runHead = logits && lastStage == 4
        let lastBlock = runHead ? blocks.count - 1 : ends[lastStage - 1]
        var h = relu6(bnStem(convStem(x)))
        var stages: [Tensor] = []
        for i in 0...lastBlock {
            h = blocks[i](h)
            if stages.count < lastStage, i == ends[stages.count] { stages.append(h) }
        }
        var out = ForwardOutput(stages: stages, strides: Array(stageStrides.prefix(lastStage)))
        if runHead {
            out.logits = fc(globalAveragePool(relu6(bnHead(convHead(h)))))
        }
        return out
    }

    /// Initialises an untrained model: convolution and linear weights truncated-normal (std 0.02),
    /// biases 0, BatchNorm weight 1, bias 0, mean 0, variance 1 (seeded as the unified models are).
    public func initialize(seed: UInt64 = 0) {
        for (index, (_, p)) in namedParameters().enumerated() {
            switch p.initializer {
            case .zeros: p.assign([Float](repeating: 0, count: p.count))
            case .ones: p.assign([Float](repeating: 1, count: p.count))
            case .constant(let v): p.assign([Float](repeating: v, count: p.count))
            case .layerScale: p.assign([Float](repeating: 1, count: p.count))
            case .normal(let std):
                var rng = SeededNormal(seed: seed &+ UInt64(index) &* 0x1_0000_0001)
                p.assign((0..<p.count).map { _ in Float(rng.normal() * Double(std)) })
            case .truncatedNormal(let std):
                var rng = SeededNormal(seed: seed &+ UInt64(index) &* 0x1_0000_0001)
                p.assign((0..<p.count).map { _ in
                    while true { let v = rng.normal() * Double(std); if abs(v) <= 2 { return Float(v) } }
                })
            }
        }
        prepareAll()
    }

    /// Strict loading, as for the unified models: every key with its shape, nothing left over
    /// (`num_batches_tracked` aside). Values are assigned only when everything fits.
    @discardableResult
    public func load(_ state: StateDict) -> LoadReport {
        var report = LoadReport()
        var known = Set<String>()
        var assignments: [(Parameter, TensorRecord)] = []
        for (key, p) in namedParameters() {
            known.insert(key)
            guard let record = state[key] else { report.missing.append(key); continue }
            guard record.shape == p.shape else { report.misShaped.append((key, p.shape, record.shape)); continue }
            assignments.append((p, record))
        }
        for key in state.keys where !known.contains(key) {
            if isRecomputedBufferKey(key) { report.recomputed.append(key) } else { report.unused.append(key) }
        }
        guard report.fits else { return report }
        for (p, record) in assignments { p.assign(record.values) }
        report.loaded = assignments.count
        prepareAll()
        return report
    }
}

/// Recognising and building EfficientNet-Lite models from checkpoints.
public enum LiteInference {
    /// True when the keys are an EfficientNet-Lite (or EfficientNet) state dict in the
    /// efficientnet-pytorch naming.
    public static func recognises(_ keys: [String]) -> Bool {
        keys.contains("_conv_stem.weight") && keys.contains { $0.hasPrefix("_blocks.") && $0.contains("._depthwise_conv.") }
    }

    /// The variant whose keys and shapes the checkpoint matches best (all of them for a complete
    /// checkpoint), with the class count of its `_fc`. A checkpoint with squeeze-excite keys (a full
    /// EfficientNet, not Lite) is refused.
    public static func spec(for state: StateDict, path: String) throws -> LiteSpec {
        if let se = state.keys.first(where: { $0.contains("._se_reduce.") }) {
            throw ModelError(path, "is an EfficientNet with squeeze-excite blocks (\(se)), not EfficientNet-Lite",
                             hint: "only the Lite variants (no squeeze-excite, ReLU6) are supported")
        }
        let classes = state["_fc.weight"]?.shape.first ?? 1000
        var best: (LiteSpec, Int)?
        for i in LiteSpec.coefficients.indices {
            let spec = LiteSpec.variant(i, numClasses: classes)
            let fit = spec.parameterShapes.reduce(0) { n, e in n + (state[e.0]?.shape == e.1 ? 1 : 0) }
            if best == nil || fit > best!.1 { best = (spec, fit) }
        }
        return best!.0
    }
}
