// Detection: the test-time box path of the study's mmdetection 2.x Mask R-CNN, end to end: backbone
// (the unified model in its detection form), FPN, RPN proposals (sigmoid, per-level top 1000, NMS 0.7
// per level, 1000 kept), RoI levels, RoIAlign 7x7, the box head (softmax over K + 1, background last),
// class-wise decoding clipped to the resized image, rescale to the original frame, and multiclass NMS.
// Each step is a method, so tests can check it on the reference's own inputs.
// Left out: the mask branch, test-time augmentation, batches of more than one image, gradients.
//
// Shape key: Hp/Wp padded input, h/w level map, C stage channels, F FPN channels, A anchors per cell,
// R proposals, K classes, P RoI size.

import Foundation
import Imaging
import Models
import TensorCore

/// The thresholds and limits of mmdet's `test_cfg` (the study's values by default).
public struct DetectionTestConfig: Sendable, Equatable {
    /// Proposals kept per level before the RPN's NMS (`nms_pre`).
    public var rpnPreNMS = 1000
    /// Proposals kept after it (`max_per_img`).
    public var rpnMaxPerImage = 1000
    /// IoU threshold of the RPN's per-level NMS.
    public var rpnIoU: Float = 0.7
    /// A (proposal, class) pair is a candidate when its score is greater than this (`score_thr`).
    public var scoreThreshold: Float = 0.05
    /// IoU threshold of the per-class NMS.
    public var iou: Float = 0.5
    /// Detections kept per image.
    public var maxPerImage = 100
    /// `finest_scale` of the RoI level rule.
    public var finestScale: Float = 56

    /// The study's test configuration.
    public init() {}
}

/// One detection in the original image frame.
public struct Detection: Sendable, Equatable {
    /// Corners (x1, y1, x2, y2), original frame.
    public var box: [Float]
    /// Class probability.
    public var score: Float
    /// 0-based class (0 = person for COCO).
    public var label: Int

    /// A detection from its corners (4 values), score and label.
    public init(box: [Float], score: Float, label: Int) {
        self.box = box
        self.score = score
        self.label = label
    }
}

/// RPN proposals in the resized frame.
public struct Proposals {
    /// [R * 4] corners.
    public var boxes: [Float]
    /// [R] objectness (sigmoid).
    public var scores: [Float]
    /// R.
    public var count: Int { scores.count }
}

/// Everything a detection pass computed, for tests and inspection.
public struct DetectionTrace {
    /// Backbone stage outputs after `out_norm_i`, [1,h,w,C] each.
    public var stages: [Tensor]
    /// P2...P6, [1,h,w,F] each.
    public var pyramid: [Tensor]
    public var proposals: Proposals
    /// Box-head class logits [R, K+1].
    public var logits: Tensor
    /// Box-head deltas [R, 4K] before the stds.
    public var deltas: Tensor
    /// Final detections, highest score first.
    public var detections: [Detection]
}

/// A Mask R-CNN box path: a detection-form backbone and its heads.
public final class Detector {
    /// The backbone (detection form).
    public let backbone: UnifiedModel
    /// Neck, RPN and box head.
    public let heads: DetectorHeads
    /// Anchor generator of the RPN.
    public var anchors = AnchorGenerator()
    /// Test-time thresholds.
    public var testConfig = DetectionTestConfig()
    /// Class names, one per label.
    public var classNames: [String]
    /// A name for reports: the checkpoint's file name, or the preset with "(untrained)".
    public var name: String

    /// A detector from a backbone and heads built to fit it.
    public init(backbone: UnifiedModel, heads: DetectorHeads, classNames: [String], name: String) {
        precondition(backbone.form == .detection, "Detector: the backbone must be in its detection form")
        self.backbone = backbone
        self.heads = heads
        self.classNames = classNames
        self.name = name
    }

    /// Object classes K.
    public var classCount: Int { heads.bboxHead.classes }

    /// Backbone stages and the FPN levels. input [1,Hp,Wp,3] -> stages [1,h,w,C] x 4, pyramid [1,h,w,F] x 5.
    public func features(_ input: Tensor) -> (stages: [Tensor], pyramid: [Tensor]) {
        let stages = backbone.forward(input, through: backbone.stageCount, logits: false).stages
        return (stages, heads.neck(stages))
    }

    /// The RPN's proposals for an image of `imageWidth` x `imageHeight` (the unpadded resized size).
    /// pyramid: P2...P6 [1,h,w,F].
    public func proposals(pyramid: [Tensor], imageWidth: Int, imageHeight: Int) -> Proposals {
        let cfg = testConfig
        let decoder = DeltaDecoder(stds: [1, 1, 1, 1])
        var boxes: [Float] = [], scores: [Float] = [], levels: [Int] = []
        for (l, map) in pyramid.enumerated() {
            let (logits, deltas) = heads.rpn_head(map)
            let (h, w) = (map.shape[1], map.shape[2])
            let anchorBoxes = anchors.anchors(level: l, height: h, width: w)
            let raw = logits.values, d = deltas.values
            let s = raw.map { 1 / (1 + expf(-$0)) }
            let picked = s.count > cfg.rpnPreNMS ? Array(NMS.order(s).prefix(cfg.rpnPreNMS)) : Array(s.indices)
            anchorBoxes.withUnsafeBufferPointer { a in d.withUnsafeBufferPointer { dd in
                var box = [Float](repeating: 0, count: 4)
                for i in picked {
                    decoder.decode(a.baseAddress! + 4 * i, dd.baseAddress! + 4 * i, into: &box,
                                   clipWidth: Float(imageWidth), clipHeight: Float(imageHeight))
                    guard box[2] - box[0] > 0 && box[3] - box[1] > 0 else { continue }
                    boxes += box
                    scores.append(s[i])
                    levels.append(l)
                }
            } }
        }
        let keep = NMS.batched(boxes: boxes, scores: scores, groups: levels, iouThreshold: cfg.rpnIoU).prefix(cfg.rpnMaxPerImage)
        var out = Proposals(boxes: [], scores: [])
        out.boxes.reserveCapacity(keep.count * 4)
        for i in keep {
            out.boxes += boxes[(4 * i)..<(4 * i + 4)]
            out.scores.append(scores[i])
        }
        return out
    }

    /// RoI features of `rois` [R * 4] (resized frame) from P2...P5, each box from its level: [R, P*P*F].
    public func roiFeatures(pyramid: [Tensor], rois: [Float]) -> Tensor {
        let p = heads.bboxHead.roiSize, f = pyramid[0].shape[3]
        let r = rois.count / 4
        let out = Tensor(uninitializedShape: [r, p * p * f])
        let levelCount = min(4, pyramid.count)
        var byLevel = [[Int]](repeating: [], count: levelCount)
        rois.withUnsafeBufferPointer { b in
            for i in 0..<r {
                byLevel[NMS.roiLevel(b.baseAddress! + 4 * i, finestScale: testConfig.finestScale, levels: levelCount)].append(i)
            }
        }
        for (l, rows) in byLevel.enumerated() where !rows.isEmpty {
            var boxes: [Float] = []
            boxes.reserveCapacity(rows.count * 4)
            for i in rows { boxes += rois[(4 * i)..<(4 * i + 4)] }
            roiAlign(map: pyramid[l], boxes: boxes, spatialScale: 1 / Float(anchors.strides[l]), outputSize: p,
                     into: out.data, rows: rows)
        }
        return out
    }

    /// The box head on `rois` [R * 4]: logits [R, K+1], deltas [R, 4K].
    public func boxHead(pyramid: [Tensor], rois: [Float]) -> (logits: Tensor, deltas: Tensor) {
        heads.bboxHead(roiFeatures(pyramid: pyramid, rois: rois))
    }

    /// Class-wise boxes and multiclass NMS: the final detections in the original frame.
    /// - Parameters:
    ///   - logits: [R, K+1]; deltas: [R, 4K] (or [R, 4] for a class-agnostic head).
    ///   - rois: [R * 4], resized frame.
    ///   - image: the geometry of the pass (clip size, scale factors).
    public func detections(logits: Tensor, deltas: Tensor, rois: [Float], image: PreparedImage) -> [Detection] {
        let k = classCount, r = rois.count / 4
        guard r > 0 else { return [] }
        let probs = softmax(logits).values
        let d = deltas.values
        let perRow = deltas.shape[1]
        let decoder = DeltaDecoder(stds: [0.1, 0.1, 0.2, 0.2])
        let sf = image.scaleFactor
        var boxes: [Float] = [], scores: [Float] = [], labels: [Int] = []
        var box = [Float](repeating: 0, count: 4)
        rois.withUnsafeBufferPointer { rb in d.withUnsafeBufferPointer { db in
            for i in 0..<r {
                for c in 0..<k {
                    let score = probs[i * (k + 1) + c]
                    guard score > testConfig.scoreThreshold else { continue }
                    let col = perRow == 4 ? 0 : 4 * c
                    decoder.decode(rb.baseAddress! + 4 * i, db.baseAddress! + i * perRow + col, into: &box,
                                   clipWidth: Float(image.imageWidth), clipHeight: Float(image.imageHeight))
                    for j in 0..<4 { boxes.append(box[j] / sf[j]) }
                    scores.append(score)
                    labels.append(c)
                }
            }
        } }
        let keep = NMS.batched(boxes: boxes, scores: scores, groups: labels, iouThreshold: testConfig.iou).prefix(testConfig.maxPerImage)
        return keep.map { Detection(box: Array(boxes[(4 * $0)..<(4 * $0 + 4)]), score: scores[$0], label: labels[$0]) }
    }

    /// The whole box path on a prepared image.
    public func trace(_ image: PreparedImage) -> DetectionTrace {
        let (stages, pyramid) = features(image.input)
        let props = proposals(pyramid: pyramid, imageWidth: image.imageWidth, imageHeight: image.imageHeight)
        let (logits, deltas) = boxHead(pyramid: pyramid, rois: props.boxes)
        let dets = detections(logits: logits, deltas: deltas, rois: props.boxes, image: image)
        return DetectionTrace(stages: stages, pyramid: pyramid, proposals: props, logits: logits, deltas: deltas, detections: dets)
    }

    /// Detections for a prepared image, highest score first, in the original frame.
    public func detect(_ image: PreparedImage) -> [Detection] { trace(image).detections }

    /// Detections for an RGB image through `pipeline`.
    public func detect(_ image: Image8, pipeline: DetectionPipeline) throws -> [Detection] {
        detect(try pipeline.prepare(image))
    }
}
