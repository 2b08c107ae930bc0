// COCOEval: box consistency, the score of `stm-analyze boxes`: the detections of a model at one
// scale (mapped back to the original frame) evaluated as COCO results against its own detections at
// scale 1, kept at a score threshold and turned into ground truth (class-aware, annotation ids from 1,
// area w*h, iscrowd 0, image ids from 1). Running the detector and mapping boxes back are left out:
// this file only scores boxes it is given.

/// A detector output box in corner form, in the original image frame, with its 0-based class label.
public struct LabeledBox: Sendable, Equatable {
    /// Left edge.
    public var x1: Double
    /// Top edge.
    public var y1: Double
    /// Right edge.
    public var x2: Double
    /// Bottom edge.
    public var y2: Double
    /// Detection score.
    public var score: Double
    /// 0-based class (mmdetection's label; the COCO category id is `label + 1`).
    public var label: Int

    /// A box from its corners, score and label.
    public init(x1: Double, y1: Double, x2: Double, y2: Double, score: Double, label: Int) {
        self.x1 = x1
        self.y1 = y1
        self.x2 = x2
        self.y2 = y2
        self.score = score
        self.label = label
    }

    /// The COCO box `[x1, y1, x2 - x1, y2 - y1]`.
    public var cocoBox: COCOBox { COCOBox(x1: x1, y1: y1, x2: x2, y2: y2) }
}

/// Box-consistency mAP: one scale's detections scored against the scale-1 detections.
public enum BoxConsistency {
    /// The ground truth made from the reference (scale-1) detections of each image: the boxes with
    /// `score >= scoreThreshold`, in the given order; image `n` (0-based) gets id `n + 1`, annotation
    /// ids run 1, 2, ... over all images, category id `label + 1` out of `1...classes`, area
    /// `w * h`, not crowd.
    public static func groundTruth(reference: [[LabeledBox]], scoreThreshold: Double, classes: Int) throws -> COCOGroundTruth {
        var annotations: [COCOAnnotation] = []
        for (n, boxes) in reference.enumerated() {
            for box in boxes where box.score >= scoreThreshold {
                try checkLabel(box, classes: classes, image: n)
                let b = box.cocoBox
                annotations.append(COCOAnnotation(id: annotations.count + 1, imageId: n + 1, categoryId: box.label + 1,
                                                  bbox: b, area: b.width * b.height, isCrowd: false))
            }
        }
        return COCOGroundTruth(imageIds: reference.indices.map { $0 + 1 }, categoryIds: (0..<max(0, classes)).map { $0 + 1 },
                               annotations: annotations)
    }

    /// Every candidate box of each image as a COCO result (image `n` gets id `n + 1`).
    public static func detections(candidate: [[LabeledBox]], classes: Int) throws -> [COCODetection] {
        var detections: [COCODetection] = []
        for (n, boxes) in candidate.enumerated() {
            for box in boxes {
                try checkLabel(box, classes: classes, image: n)
                detections.append(COCODetection(imageId: n + 1, categoryId: box.label + 1, bbox: box.cocoBox, score: box.score))
            }
        }
        return detections
    }

    /// Evaluates `candidate[n]` against the reference boxes of image `n` with score >= `scoreThreshold`,
    /// with COCOeval's defaults (class-aware, maxDets 1/10/100, COCO area ranges). Its `stats` are the 12
    /// numbers of the box-consistency mAP; -1 where no reference box falls in an area range.
    public static func evaluate(reference: [[LabeledBox]], candidate: [[LabeledBox]], scoreThreshold: Double = 0.5,
                                classes: Int = 80) throws -> COCOEvaluation {
        guard reference.count == candidate.count else {
            throw COCOEvalError("box consistency", "\(reference.count) reference images but \(candidate.count) candidate images")
        }
        let gt = try groundTruth(reference: reference, scoreThreshold: scoreThreshold, classes: classes)
        let dt = try detections(candidate: candidate, classes: classes)
        return try COCOEvaluator.evaluate(groundTruth: gt, detections: dt)
    }

    private static func checkLabel(_ box: LabeledBox, classes: Int, image: Int) throws {
        guard box.label >= 0 && box.label < classes else {
            throw COCOEvalError("box consistency", "image \(image + 1) has a box of label \(box.label), outside 0..<\(classes)")
        }
    }
}
