// Detection: the parts of the study's Mask R-CNN after the backbone, under mmdetection's key names:
// the FPN neck (1x1 laterals, nearest top-down sum, 3x3 outputs, P6 by stride-2 subsampling), the
// RPN head (shared 3x3 conv + ReLU, 1x1 objectness and deltas) and the Shared2FC box head (two fc
// layers with ReLU on the RoI features, class scores and class-wise deltas). Widths come from the
// constructor (the loader reads them from the checkpoint). Strict loading of these keys and mmdet's
// default initialisation of untrained heads are here too.
// Left out: the mask head (its keys are skipped by the loader), extra FPN convs, norms in the neck,
// training-time parts (losses, samplers, target assignment).
//
// Shape key: N batch (1), H/W map height/width, C channels, F FPN channels, R regions, P RoI size (7),
// K classes (80), D fc width.

import Checkpoint
import Foundation
import Models
import TensorCore

/// mmcv's `ConvModule` without norm or activation: its convolution sits under `conv`.
public final class ConvModule: Module {
    /// The convolution (1x1 as a pointwise layer, else dense).
    let conv: Module
    private let run: (Tensor) -> Tensor

    init(_ inChannels: Int, _ outChannels: Int, kernel: Int) {
        if kernel == 1 {
            let c = PointwiseConv(inChannels, outChannels)
            conv = c
            run = { c($0) }
        } else {
            let c = BandedConv2d(inChannels, outChannels, kernel: kernel)
            conv = c
            run = { c($0) }
        }
    }

    public var members: [(String, Any)] { [("conv", conv)] }

    /// x [N,H,W,C] -> [N,H,W,O]
    func callAsFunction(_ x: Tensor) -> Tensor { run(x) }
}

/// A stride-1 "same" convolution (odd kernel K, padding K / 2) run on bands of rows, so that its
/// unfolded input stays small on large maps (a 3x3 conv of 256 channels on the P2 map of a 1333x800
/// image would unfold 560 MB at once). Each band is convolved with K / 2 rows of its neighbours
/// around it and those rows' outputs are dropped; every output equals the whole map's convolution
/// bit for bit (each output element is the same product over the same taps).
public final class BandedConv2d: Module {
    public let weight: Parameter
    public let bias: Parameter
    let kernel: Int
    private var ohwi = Tensor.zeros([0])  // [O, K*K*C]
    /// Most bytes of unfolded input per band.
    var bandBytes = 64 << 20

    init(_ inChannels: Int, _ outChannels: Int, kernel: Int) {
        weight = Parameter([outChannels, inChannels, kernel, kernel], init: .zeros)
        bias = Parameter([outChannels], init: .zeros)
        self.kernel = kernel
    }

    public func prepare() {
        let s = weight.shape
        ohwi = convWeightOHWI(weight.values, o: s[0], c: s[1], kh: s[2], kw: s[3]).frozen()
    }

    /// x [1,H,W,C] -> [1,H,W,O]
    func callAsFunction(_ x: Tensor) -> Tensor {
        let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
        let o = weight.shape[0], halo = kernel / 2
        let rowsPerBand = max(1, bandBytes / max(1, w * kernel * kernel * c * 4))
        if rowsPerBand >= h {
            return conv2d(x, weight: ohwi, bias: bias.tensor, kernel: (kernel, kernel), stride: 1, pad: halo)
        }
        let out = Tensor(uninitializedShape: [1, h, w, o])
        for r0 in stride(from: 0, to: h, by: rowsPerBand) {
            let r1 = min(h, r0 + rowsPerBand)
            let s0 = max(0, r0 - halo), s1 = min(h, r1 + halo)
            let band = Tensor(uninitializedShape: [1, s1 - s0, w, c])
            band.data.update(from: x.data + s0 * w * c, count: (s1 - s0) * w * c)
            let y = conv2d(band, weight: ohwi, bias: bias.tensor, kernel: (kernel, kernel), stride: 1, pad: halo)
            (out.data + r0 * w * o).update(from: y.data + (r0 - s0) * w * o, count: (r1 - r0) * w * o)
        }
        return out
    }
}

/// mmdet's `FPN` with `num_outs` = levels + 1 and the extra level from max-pooling P5 (kernel 1, stride 2).
public final class FPN: Module {
    let lateral_convs: [ConvModule]
    let fpn_convs: [ConvModule]
    /// Output channels F.
    public let channels: Int

    /// An FPN on maps of `inChannels` channels (finest first) with `channels` outputs.
    public init(inChannels: [Int], channels: Int) {
        lateral_convs = inChannels.map { ConvModule($0, channels, kernel: 1) }
        fpn_convs = inChannels.map { _ in ConvModule(channels, channels, kernel: 3) }
        self.channels = channels
    }

    public var members: [(String, Any)] {
        [("lateral_convs", lateral_convs.map { $0 as Module }), ("fpn_convs", fpn_convs.map { $0 as Module })]
    }

    /// stages [[1,H_i,W_i,C_i]] finest first -> P2...P6 [[1,h,w,F]].
    public func callAsFunction(_ stages: [Tensor]) -> [Tensor] {
        var laterals = zip(lateral_convs, stages).map { $0($1) }
        for i in stride(from: laterals.count - 1, to: 0, by: -1) {
            laterals[i - 1] = addNearestUpsampled(laterals[i - 1], laterals[i])
        }
        var outs = zip(fpn_convs, laterals).map { $0($1) }
        outs.append(subsample2(outs[outs.count - 1]))
        return outs
    }
}

/// `fine + interpolate(coarse, size=fine's size, mode='nearest')`, PyTorch's nearest rule
/// (source index floor(i * in/out) in float32, at most in - 1). fine [1,H,W,C], coarse [1,h,w,C] -> [1,H,W,C].
func addNearestUpsampled(_ fine: Tensor, _ coarse: Tensor) -> Tensor {
    let (h, w, c) = (fine.shape[1], fine.shape[2], fine.shape[3])
    let (ch, cw) = (coarse.shape[1], coarse.shape[2])
    let sy = Float(ch) / Float(h), sx = Float(cw) / Float(w)
    let out = Tensor(uninitializedShape: fine.shape)
    let f = fine.data, g = coarse.data, o = out.data
    parallelFor(h, grain: grainFor(h, cost: w * c)) { range in
        for y in range {
            let yy = min(Int((Float(y) * sy).rounded(.down)), ch - 1)
            for x in 0..<w {
                let xx = min(Int((Float(x) * sx).rounded(.down)), cw - 1)
                let d = o + (y * w + x) * c, a = f + (y * w + x) * c, b = g + (yy * cw + xx) * c
                for k in 0..<c { d[k] = a[k] + b[k] }
            }
        }
    }
    return out
}

/// `max_pool2d(x, kernel 1, stride 2)`: every other row and column. x [1,H,W,C] -> [1,(H+1)/2,(W+1)/2,C].
func subsample2(_ x: Tensor) -> Tensor {
    let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
    let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1)
    let out = Tensor(uninitializedShape: [1, oh, ow, c])
    for y in 0..<oh { for x2 in 0..<ow {
        (out.data + (y * ow + x2) * c).update(from: x.data + (2 * y * w + 2 * x2) * c, count: c)
    } }
    return out
}

/// mmdet's `RPNHead`: 3x3 conv + ReLU shared by every level, 1x1 objectness (sigmoid) and deltas.
public final class RPNHead: Module {
    let rpn_conv: BandedConv2d
    let rpn_cls: PointwiseConv
    let rpn_reg: PointwiseConv
    /// Anchors per cell A.
    public let anchors: Int

    /// A head on F-channel maps with `feat` channels in its conv and A anchors per cell.
    public init(inChannels: Int, feat: Int, anchors: Int) {
        rpn_conv = BandedConv2d(inChannels, feat, kernel: 3)
        rpn_cls = PointwiseConv(feat, anchors)
        rpn_reg = PointwiseConv(feat, anchors * 4)
        self.anchors = anchors
    }

    /// level [1,H,W,F] -> objectness logits [1,H,W,A] and deltas [1,H,W,4A].
    public func callAsFunction(_ level: Tensor) -> (logits: Tensor, deltas: Tensor) {
        let h = relu(rpn_conv(level))
        return (rpn_cls(h), rpn_reg(h))
    }
}

/// A linear layer on RoI features that PyTorch flattens channel-major (C, P, P): the weight's
/// columns are reordered once to the channels-last (P, P, C) order of `roiAlign`'s output.
public final class RoIFeatureLinear: Module {
    public let weight: Parameter
    public let bias: Parameter
    let channels: Int, size: Int
    private var matrix = Tensor.zeros([0])  // [D, P*P*C]

    init(channels: Int, size: Int, out: Int) {
        weight = Parameter([out, channels * size * size], init: .zeros)
        bias = Parameter([out], init: .zeros)
        self.channels = channels
        self.size = size
    }

    public func prepare() {
        let o = weight.shape[0], pp = size * size, c = channels
        let v = weight.values
        var m = [Float](repeating: 0, count: v.count)
        for r in 0..<o { for ch in 0..<c { for p in 0..<pp { m[r * pp * c + p * c + ch] = v[r * pp * c + ch * pp + p] } } }
        matrix = Tensor(shape: [o, pp * c], values: m).frozen()
    }

    /// x [R, P*P*C] (channels-last RoI features) -> [R, D]
    func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: matrix, bias: bias.tensor) }
}

/// mmdet's `Shared2FCBBoxHead`: fc, ReLU, fc, ReLU, then `fc_cls` (K + 1, background last) and `fc_reg`.
public final class BBoxHead: Module {
    let shared_fcs: [Module]
    let fc_cls: Linear
    let fc_reg: Linear
    /// Object classes K (background excluded).
    public let classes: Int
    /// True when `fc_reg` has 4 outputs for every class (else one box for all).
    public let classWise: Bool
    /// RoI feature size P.
    public let roiSize: Int

    /// A head on P x P x C RoI features with fc width D.
    public init(inChannels: Int, roiSize: Int = 7, fc: Int, classes: Int, classWise: Bool = true) {
        let first = RoIFeatureLinear(channels: inChannels, size: roiSize, out: fc)
        shared_fcs = [first, Linear(fc, fc)]
        fc_cls = Linear(fc, classes + 1)
        fc_reg = Linear(fc, classWise ? 4 * classes : 4)
        self.classes = classes
        self.classWise = classWise
        self.roiSize = roiSize
    }

    /// features [R, P*P*C] -> class logits [R, K+1] and deltas [R, 4K] (before the stds).
    public func callAsFunction(_ features: Tensor) -> (logits: Tensor, deltas: Tensor) {
        let h1 = relu((shared_fcs[0] as! RoIFeatureLinear)(features))
        let h2 = relu((shared_fcs[1] as! Linear)(h1))
        return (fc_cls(h2), fc_reg(h2))
    }
}

/// `roi_head`: only its box head is used.
public final class RoIHead: Module {
    let bbox_head: BBoxHead
    init(_ head: BBoxHead) { bbox_head = head }
}

/// Everything of the detector after the backbone, keyed as in an mmdetection checkpoint.
public final class DetectorHeads: Module {
    public let neck: FPN
    public let rpn_head: RPNHead
    let roi_head: RoIHead
    /// The box head.
    public var bboxHead: BBoxHead { roi_head.bbox_head }

    /// Heads of the given widths on a backbone with `stageChannels`.
    public init(stageChannels: [Int], fpn: Int, rpnFeat: Int, anchors: Int, fc: Int, classes: Int, classWise: Bool = true) {
        neck = FPN(inChannels: stageChannels, channels: fpn)
        rpn_head = RPNHead(inChannels: fpn, feat: rpnFeat, anchors: anchors)
        roi_head = RoIHead(BBoxHead(inChannels: fpn, fc: fc, classes: classes, classWise: classWise))
    }

    /// Loads every head key of `state` (full mmdet keys) strictly; keys under `roi_head.mask_head.`
    /// are skipped. Returns the problems (missing, mis-shaped) and how many keys were skipped.
    func load(_ state: StateDict) -> (report: LoadReport, skippedMask: Int) {
        var report = LoadReport()
        var assignments: [(Parameter, TensorRecord)] = []
        var known = Set<String>()
        for (key, p) in namedParameters() {
            known.insert(key)
            guard let r = state[key] else { report.missing.append(key); continue }
            guard r.count == p.count && r.shape.filter({ $0 != 1 }) == p.shape.filter({ $0 != 1 }) else {
                report.misShaped.append((key, p.shape, r.shape)); continue
            }
            assignments.append((p, r))
        }
        var skipped = 0
        for key in state.keys where !known.contains(key) && !key.hasPrefix("backbone.") {
            if key.hasPrefix("roi_head.mask_head.") { skipped += 1 } else if !isRecomputedBufferKey(key) { report.unused.append(key) }
        }
        guard report.fits else { return (report, skipped) }
        for (p, r) in assignments { p.assign(r.values) }
        report.loaded = assignments.count
        prepareAll()
        return (report, skipped)
    }

    /// mmdet's default initialisation of untrained heads, from a seed: the FPN's and the shared fcs'
    /// weights Xavier-uniform, the RPN's convs normal(0, 0.01), `fc_cls` normal(0, 0.01), `fc_reg`
    /// normal(0, 0.001), biases 0.
    func initialize(seed: UInt64) {
        for (index, (key, p)) in namedParameters().enumerated() {
            var rng = SeededNormal(seed: seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(index))
            if key.hasSuffix(".bias") { p.assign([Float](repeating: 0, count: p.count)); continue }
            let std: Double?
            if key.hasPrefix("rpn_head.") || key.hasSuffix("fc_cls.weight") { std = 0.01 }
            else if key.hasSuffix("fc_reg.weight") { std = 0.001 }
            else { std = nil }
            if let std {
                p.assign((0..<p.count).map { _ in Float(rng.normal() * std) })
            } else {
                // Xavier uniform: bound sqrt(6 / (fan_in + fan_out)); a uniform value from a normal's CDF.
                let receptive = p.shape.dropFirst(2).reduce(1, *)
                let fanIn = p.shape[1] * receptive, fanOut = p.shape[0] * receptive
                let bound = (6.0 / Double(fanIn + fanOut)).squareRoot()
                p.assign((0..<p.count).map { _ in Float(bound * erf(rng.normal() / 2.0.squareRoot())) })
            }
        }
        prepareAll()
    }
}
