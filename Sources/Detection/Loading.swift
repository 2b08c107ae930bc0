// Detection: turning `--model` into a detector. An mmdetection checkpoint (`state_dict` with
// `backbone.`, `neck.`, `rpn_head.`, `roi_head.bbox_head.` keys) gives the backbone (through
// Models' prefix stripping and architecture inference, or `--arch`) and the heads, whose widths are
// read from the checkpoint's shapes; the mask head is skipped and counted. A preset name builds an
// untrained detector with mmdetection's Mask R-CNN sizes (FPN 256, RPN 256, fc 1024, 80 classes).
// A classification or backbone-only checkpoint is refused with one line saying what it is.
// Left out: other detector types (Cascade, RetinaNet), class-agnostic RPNs with several scales.
//
// Shape key: C stage channels, F FPN channels, A anchors per cell, D fc width, K classes.

import Checkpoint
import Diagnostics
import Foundation
import Models

/// How a detector was loaded.
public struct LoadedDetector {
    public var detector: Detector
    /// The checkpoint path; nil for an untrained preset.
    public var checkpoint: String?
    /// How the backbone's architecture was chosen.
    public var archSource: String
    /// Assumptions and notes (inference, untrained initialisation).
    public var notes: [String]
    /// Mask-head keys present in the checkpoint and not loaded.
    public var skippedMaskKeys: Int
    /// Tensors loaded (backbone and heads).
    public var loadedKeys: Int
}

/// The widths of a detector's heads.
public struct HeadWidths: Sendable, Equatable {
    /// FPN output channels F.
    public var fpn: Int
    /// RPN conv channels.
    public var rpn: Int
    /// Anchors per cell A.
    public var anchors: Int
    /// Shared fc width D.
    public var fc: Int
    /// Object classes K.
    public var classes: Int
    /// Class-wise box deltas.
    public var classWise: Bool

    /// mmdetection's Mask R-CNN (`mask_rcnn_r50_fpn.py`): FPN 256, RPN 256, 3 anchors, fc 1024, 80 classes.
    public static let maskRCNN = HeadWidths(fpn: 256, rpn: 256, anchors: 3, fc: 1024, classes: 80, classWise: true)
}

/// Loads detectors from mmdetection checkpoints or presets.
public enum DetectorLoader {
    /// True when the state dict holds an mmdetection detector's neck and heads.
    public static func isDetectorCheckpoint(_ state: StateDict) -> Bool {
        state["neck.lateral_convs.0.conv.weight"] != nil && state["rpn_head.rpn_conv.weight"] != nil
            && state["roi_head.bbox_head.fc_cls.weight"] != nil
    }

    /// The head widths stored in a detector checkpoint.
    public static func headWidths(_ state: StateDict, path: String) throws -> HeadWidths {
        func shape(_ key: String) throws -> [Int] {
            guard let r = state[key] else { throw ToolError(path, "has no '\(key)'", hint: "is it an mmdetection Mask R-CNN / Faster R-CNN checkpoint?") }
            return r.shape
        }
        let fpn = try shape("neck.lateral_convs.0.conv.weight")[0]
        let rpn = try shape("rpn_head.rpn_conv.weight")[0]
        let anchors = try shape("rpn_head.rpn_cls.weight")[0]
        let fc = try shape("roi_head.bbox_head.shared_fcs.0.weight")
        let cls = try shape("roi_head.bbox_head.fc_cls.weight")[0]
        let reg = try shape("roi_head.bbox_head.fc_reg.weight")[0]
        guard fc.count == 2, fc[1] == fpn * 49 else {
            throw ToolError(path, "roi_head.bbox_head.shared_fcs.0.weight is \(fc), not [D, \(fpn) x 7 x 7]",
                            hint: "only the Shared2FCBBoxHead on 7x7 RoIs is supported")
        }
        guard cls >= 2, reg == 4 * (cls - 1) || reg == 4 else {
            throw ToolError(path, "fc_cls has \(cls) rows and fc_reg \(reg): not K + 1 classes with 4K (or 4) deltas")
        }
        guard anchors == 3 else {
            throw ToolError(path, "rpn_cls has \(anchors) outputs per cell; the study's sigmoid RPN has 3 anchors (ratios 0.5, 1, 2)")
        }
        return HeadWidths(fpn: fpn, rpn: rpn, anchors: anchors, fc: fc[0], classes: cls - 1, classWise: reg != 4)
    }

    /// Loads `model`: an mmdetection checkpoint, or a preset name for an untrained detector.
    /// - Parameters:
    ///   - arch: the backbone's preset name or JSON file; inferred from the keys when nil.
    ///   - seed, initLayerScale: initialisation of an untrained detector.
    /// - Throws: `ToolError` / `ModelError` for a missing file, a classification or backbone-only
    ///   checkpoint, or keys that do not fit.
    public static func load(model: String, arch: String? = nil, initLayerScale: Double? = nil, seed: UInt64 = 0) throws -> LoadedDetector {
        if !FileManager.default.fileExists(atPath: model), let preset = Presets.named(model) {
            var config = preset
            if let arch {
                let (a, _) = try ModelLoader.resolveArch(arch)
                guard a.family == preset.family else {
                    throw ModelError(arch, "describes a \(a.family.rawValue) model but --model names \(model)")
                }
                config = a
            }
            try config.validate(source: model)
            let backbone = UnifiedModel(config: config, form: .detection)
            let ls = initLayerScale ?? config.layer_scale_init_value ?? 1e-6
            backbone.initialize(seed: seed, layerScale: Float(ls))
            let w = HeadWidths.maskRCNN
            let heads = DetectorHeads(stageChannels: config.dims, fpn: w.fpn, rpnFeat: w.rpn, anchors: w.anchors, fc: w.fc,
                                      classes: w.classes, classWise: w.classWise)
            heads.initialize(seed: seed)
            let detector = Detector(backbone: backbone, heads: heads, classNames: cocoClassNames,
                                    name: "\(config.displayName) (untrained)")
            return LoadedDetector(detector: detector, checkpoint: nil, archSource: "preset \(model)",
                                  notes: ["untrained: seeded random weights (seed \(seed), layer scale \(ls)); heads of mmdetection's Mask R-CNN (FPN 256, RPN 256, fc 1024)"],
                                  skippedMaskKeys: 0, loadedKeys: 0)
        }
        guard FileManager.default.fileExists(atPath: model) else {
            throw ModelError(model, "no such file or preset", hint: Presets.suggestion(for: model))
        }
        let state = try readCheckpoint(path: model)
        guard isDetectorCheckpoint(state) else {
            let stripped = try? CheckpointKeys.strip(state, source: model).0
            let what: String
            switch stripped.map(CheckpointKeys.form(of:)) {
            case .classifier?: what = "a classification checkpoint (it has a classifier head and no neck./rpn_head./roi_head.bbox_head. keys)"
            case .headless?: what = "a backbone-only checkpoint (no neck./rpn_head./roi_head.bbox_head. keys)"
            case .detection?: what = "a detection backbone without the detector's neck and heads (no neck./rpn_head./roi_head.bbox_head. keys)"
            case nil: what = "not a detector checkpoint (no neck./rpn_head./roi_head.bbox_head. keys)"
            }
            throw ToolError(model, "is \(what)",
                            hint: "detect and boxes need an mmdetection Mask R-CNN checkpoint, or a preset name such as unified_swin_tiny for an untrained detector")
        }
        let widths = try headWidths(state, path: model)
        let (backboneState, _) = try CheckpointKeys.strip(state, extra: "backbone.", source: model)
        var notes: [String] = []
        let config: ArchConfig, source: String
        if let arch {
            (config, source) = try ModelLoader.resolveArch(arch)
        } else {
            let inferred = try ArchInference.infer(from: backboneState, path: model)
            config = inferred.config
            notes = inferred.assumptions.filter { !$0.hasPrefix("no classification head") }
            source = "inferred from keys" + (config.name.map { " (matches \($0))" } ?? "")
        }
        try config.validate(source: arch ?? model)
        guard CheckpointKeys.form(of: backboneState) == .detection else {
            throw ToolError(model, "its backbone has no out_norm_i keys: not the study's detection backbone")
        }
        let backbone = UnifiedModel(config: config, form: .detection)
        let report = backbone.load(backboneState)
        guard report.fits else {
            throw ModelError(model, "its backbone does not fit \(config.displayName) (\(source)): \(report.summary)",
                             hint: "check --arch, or run 'stm-analyze inspect --model \(model)'")
        }
        guard widths.fpn > 0, let firstLateral = state["neck.lateral_convs.0.conv.weight"], firstLateral.shape.count == 4,
              firstLateral.shape[1] == config.dims[0] else {
            throw ToolError(model, "the FPN's first lateral conv does not take the backbone's \(config.dims[0]) channels")
        }
        let heads = DetectorHeads(stageChannels: config.dims, fpn: widths.fpn, rpnFeat: widths.rpn, anchors: widths.anchors,
                                  fc: widths.fc, classes: widths.classes, classWise: widths.classWise)
        let (headReport, skipped) = heads.load(state)
        guard headReport.fits else {
            throw ModelError(model, "its neck and heads do not fit a Mask R-CNN box path: \(headReport.summary)")
        }
        let names = widths.classes == cocoClassNames.count ? cocoClassNames : (0..<widths.classes).map { "class \($0)" }
        let detector = Detector(backbone: backbone, heads: heads, classNames: names,
                                name: URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent)
        return LoadedDetector(detector: detector, checkpoint: model, archSource: source, notes: notes,
                              skippedMaskKeys: skipped, loadedKeys: report.loaded + headReport.loaded)
    }
}

/// The 80 COCO class names in mmdetection's label order (label 0 = person).
public let cocoClassNames = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
]
