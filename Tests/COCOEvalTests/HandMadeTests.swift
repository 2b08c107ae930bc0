// COCOEval on small hand-made scenes whose answers follow from the rules of COCOeval by hand: crowd
// regions, the maxDets cut per image and category, categories without ground truth, ids of 0, the
// IoU formula and the thresholds as numpy makes them, and numpy's pairwise summation.

import COCOEval
import Foundation
import XCTest

final class HandMadeTests: XCTestCase {
    func box(_ x: Double, _ y: Double, _ w: Double, _ h: Double) -> COCOBox { COCOBox(x: x, y: y, width: w, height: h) }

    func gt(_ id: Int, image: Int = 1, category: Int = 1, _ b: COCOBox, crowd: Bool = false) -> COCOAnnotation {
        COCOAnnotation(id: id, imageId: image, categoryId: category, bbox: b, area: b.area, isCrowd: crowd)
    }

    func dt(image: Int = 1, category: Int = 1, _ b: COCOBox, _ score: Double) -> COCODetection {
        COCODetection(imageId: image, categoryId: category, bbox: b, score: score)
    }

    /// 1 / (1 + spacing(1)): the precision of a single true positive.
    let one = 1 / (1 + 2.220446049250313e-16)

    // MARK: IoU and thresholds

    func testIoUFormula() {
        XCTAssertEqual(COCOEvaluator.iou(detection: box(0, 0, 10, 10), groundTruth: box(5, 0, 10, 10), crowd: false), 50.0 / 150.0)
        XCTAssertEqual(COCOEvaluator.iou(detection: box(0, 0, 10, 10), groundTruth: box(10, 0, 10, 10), crowd: false), 0, "touching boxes")
        XCTAssertEqual(COCOEvaluator.iou(detection: box(0, 0, 10, 10), groundTruth: box(0, 0, 100, 100), crowd: false), 0.01)
        // A crowd region: intersection over the detection's own area.
        XCTAssertEqual(COCOEvaluator.iou(detection: box(0, 0, 10, 10), groundTruth: box(0, 0, 100, 100), crowd: true), 1)
        XCTAssertEqual(COCOEvaluator.iou(detection: box(90, 90, 20, 20), groundTruth: box(0, 0, 100, 100), crowd: true), 0.25)
        // Zero-size boxes give 0, not 0/0.
        XCTAssertEqual(COCOEvaluator.iou(detection: box(5, 5, 0, 0), groundTruth: box(5, 5, 0, 0), crowd: false), 0)
    }

    func testThresholdsAsNumpyMakesThem() {
        let p = COCOParameters()
        XCTAssertEqual(p.iouThresholds.count, 10)
        XCTAssertEqual(p.iouThresholds[7], 0.85)
        XCTAssertEqual(p.iouThresholds[8], 0.8999999999999999)
        XCTAssertEqual(p.iouThresholds[9], 0.95)
        XCTAssertEqual(p.recallThresholds.count, 101)
        XCTAssertEqual(p.recallThresholds[70], 0.7000000000000001)
        XCTAssertEqual(p.recallThresholds[35], 0.35000000000000003)
        XCTAssertEqual(p.recallThresholds[10], 0.1)
        XCTAssertEqual(p.recallThresholds[100], 1.0)
    }

    func testPairwiseSum() {
        // Eight lanes: lane j adds values j and j + 8, so the large pair cancels within lane 7.
        let values: [Double] = [1, 1, 1, 1, 1, 1, 1, 1e16, 1, 1, 1, 1, 1, 1, 1, -1e16]
        XCTAssertEqual(numpyPairwiseSum(values), 14)
        XCTAssertNotEqual(values.reduce(0, +), 14, "a left-to-right sum loses the ones")
        // Below 8 values the sum is left to right.
        XCTAssertEqual(numpyPairwiseSum([1e16, 1, 1, -1e16]), [1e16, 1, 1, -1e16].reduce(0, +))
        // Above 128 values the halves (split at a multiple of 8) are summed apart: against a plain
        // slice-based transcription of the rule, on values whose sum depends on the order.
        func reference(_ a: ArraySlice<Double>) -> Double {
            let n = a.count, s = a.startIndex
            if n < 8 { return a.reduce(0, +) }
            if n <= 128 {
                var r = Array(a[s..<s + 8])
                var i = 8
                while i + 8 <= n { for j in 0..<8 { r[j] += a[s + i + j] }; i += 8 }
                var sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
                while i < n { sum += a[s + i]; i += 1 }
                return sum
            }
            let half = n / 2 - (n / 2) % 8
            return reference(a[s..<s + half]) + reference(a[(s + half)...])
        }
        var rng = SystemRandomNumberGenerator()
        for n in [129, 136, 300, 1010, 6060] {
            let a = (0..<n).map { _ in Double.random(in: 0..<1, using: &rng) * pow(10, Double(Int.random(in: -3...12, using: &rng))) }
            XCTAssertEqual(numpyPairwiseSum(a), reference(a[...]), "n = \(n)")
        }
        XCTAssertEqual(numpyMean([1, 2, 3, 4]), 2.5)
    }

    // MARK: Matching

    func testCrowdAbsorbsManyDetectionsAndIsIgnored() throws {
        let truth = COCOGroundTruth(imageIds: [1], categoryIds: [1], annotations: [
            gt(1, box(0, 0, 300, 300), crowd: true),
            gt(2, box(400, 0, 100, 100)),
        ])
        // Two detections inside the crowd outrank the one true positive; both are absorbed, so neither
        // is a false positive and the true positive keeps precision 1 at recall 1.
        let dets = [dt(box(10, 10, 50, 50), 0.95), dt(box(100, 100, 50, 50), 0.9), dt(box(400, 0, 100, 100), 0.8)]
        let r = try COCOEvaluator.evaluate(groundTruth: truth, detections: dets)
        XCTAssertEqual(r.stats[0], one, accuracy: 1e-13)
        XCTAssertEqual(r.stats[8], 1)
        // Without the crowd box the two become false positives ranked first: precision 1/3 at recall 1.
        let plain = COCOGroundTruth(imageIds: [1], categoryIds: [1], annotations: [truth.annotations[1]])
        let r2 = try COCOEvaluator.evaluate(groundTruth: plain, detections: dets)
        XCTAssertEqual(r2.stats[0], 1 / (3 + 2.220446049250313e-16), accuracy: 1e-13)
    }

    func testMatchedGroundTruthIsUsedOnce() throws {
        let truth = COCOGroundTruth(imageIds: [1], categoryIds: [1], annotations: [gt(1, box(0, 0, 100, 100))])
        let dets = [dt(box(0, 0, 100, 100), 0.9), dt(box(0, 0, 100, 100), 0.8)]
        let r = try COCOEvaluator.evaluate(groundTruth: truth, detections: dets)
        // TP then FP: the envelope keeps precision 1 up to recall 1.
        XCTAssertEqual(r.stats[0], one, accuracy: 1e-13)
        // The duplicate scoring first: FP, then TP at precision 1/2.
        let r2 = try COCOEvaluator.evaluate(groundTruth: truth, detections: [dt(box(50, 50, 100, 100), 0.95)] + dets.dropFirst())
        XCTAssertEqual(r2.stats[1], 0.5, accuracy: 1e-12)
    }

    func testAnnotationIdZeroNeverCountsAsMatched() throws {
        let dets = [dt(box(0, 0, 100, 100), 0.9)]
        let zero = COCOGroundTruth(imageIds: [1], categoryIds: [1], annotations: [gt(0, box(0, 0, 100, 100))])
        let fromOne = COCOGroundTruth(imageIds: [1], categoryIds: [1], annotations: [gt(1, box(0, 0, 100, 100))])
        XCTAssertEqual(try COCOEvaluator.evaluate(groundTruth: zero, detections: dets).stats[0], 0)
        XCTAssertEqual(try COCOEvaluator.evaluate(groundTruth: fromOne, detections: dets).stats[0], one, accuracy: 1e-13)
    }

    func testRepeatedAnnotationIdLoadsAsTheLastAnnotation() throws {
        // COCO indexes annotations by id: both places of id 5 hold the second box, so a detection on
        // the first box finds nothing, and one on the second box finds one of the two copies.
        let truth = COCOGroundTruth(imageIds: [1], categoryIds: [1], annotations: [
            gt(5, box(0, 0, 100, 100)), gt(5, box(200, 0, 100, 100)),
        ])
        let onFirst = try COCOEvaluator.evaluate(groundTruth: truth, detections: [dt(box(0, 0, 100, 100), 0.9)])
        XCTAssertEqual(onFirst.stats[8], 0)
        let onSecond = try COCOEvaluator.evaluate(groundTruth: truth, detections: [dt(box(200, 0, 100, 100), 0.9)])
        XCTAssertEqual(onSecond.stats[8], 0.5)
    }

    // MARK: maxDets

    func testMaxDetsCutPerImageAndCategory() throws {
        let truth = COCOGroundTruth(imageIds: [1], categoryIds: [1, 2], annotations: [gt(1, box(0, 0, 100, 100))])
        let tp = dt(box(0, 0, 100, 100), 0.5)
        let wrong = (0..<100).map { dt(box(Double(200 + $0), 200, 10, 10), 0.9 - Double($0) * 0.001) }
        // 100 better false positives in the same category push the true positive out of the 100 kept.
        let same = try COCOEvaluator.evaluate(groundTruth: truth, detections: wrong + [tp])
        XCTAssertEqual(same.stats[8], 0, "AR@100")
        XCTAssertEqual(same.stats[0], 0)
        // 99 of them keep it at rank 100: found at maxDets 100, not at 10 or 1.
        let kept = try COCOEvaluator.evaluate(groundTruth: truth, detections: Array(wrong.prefix(99)) + [tp])
        XCTAssertEqual(kept.stats[8], 1)
        XCTAssertEqual(kept.stats[7], 0)
        XCTAssertEqual(kept.stats[6], 0)
        XCTAssertEqual(kept.stats[0], 1 / (100 + 2.220446049250313e-16), accuracy: 1e-12, "precision 1/100 at every recall threshold")
        // The same 100 in another category (without ground truth) do not count against category 1.
        let other = wrong.map { d -> COCODetection in var d = d; d.categoryId = 2; return d }
        let split = try COCOEvaluator.evaluate(groundTruth: truth, detections: other + [tp])
        XCTAssertEqual(split.stats[8], 1)
        XCTAssertEqual(split.stats[0], one, accuracy: 1e-13)
    }

    func testCustomMaxDetsWithout100LeavesStat0Undefined() throws {
        let truth = COCOGroundTruth(imageIds: [1], categoryIds: [1], annotations: [gt(1, box(0, 0, 100, 100))])
        let r = try COCOEvaluator.evaluate(groundTruth: truth, detections: [dt(box(0, 0, 100, 100), 0.9)],
                                           parameters: COCOParameters(maxDetections: [20, 1, 5]))
        XCTAssertEqual(r.parameters.maxDetections, [1, 5, 20])
        XCTAssertEqual(r.stats[0], -1)
        XCTAssertEqual(r.stats[1], one, accuracy: 1e-13)
        XCTAssertThrowsError(try COCOEvaluator.evaluate(groundTruth: truth, detections: [], parameters: COCOParameters(maxDetections: [1, 10])))
    }

    // MARK: Empty settings

    func testCategoriesWithoutGroundTruthAreLeftOut() throws {
        let truth = COCOGroundTruth(imageIds: [1], categoryIds: [3, 1, 2], annotations: [
            gt(1, category: 1, box(0, 0, 100, 100)), gt(2, category: 2, box(200, 0, 100, 100)),
        ])
        // Category 1 found, category 2 missed (AP 0, counted), category 3 only false positives (no
        // ground truth: left out of the means).
        let dets = [dt(category: 1, box(0, 0, 100, 100), 0.9), dt(category: 3, box(0, 200, 50, 50), 0.99)]
        let r = try COCOEvaluator.evaluate(groundTruth: truth, detections: dets)
        XCTAssertEqual(r.stats[0], one / 2, accuracy: 1e-13)
        XCTAssertEqual(r.stats[8], 0.5)
        XCTAssertEqual(r.stats[3], -1, "no small ground truth")
        XCTAssertEqual(r.stats[9], -1)
        XCTAssertEqual(r.stats[5], one / 2, accuracy: 1e-13, "both boxes are large (area 10000)")
        XCTAssertEqual(r.categoryIds, [1, 2, 3])
        // Category 3's slot stays -1 everywhere.
        XCTAssertEqual(r.recall(t: 0, k: 2, a: 0, m: 2), -1)
        XCTAssertEqual(r.precision(t: 0, r: 0, k: 1, a: 0, m: 2), 0)
    }

    func testNoDetectionsAndNoGroundTruth() throws {
        let truth = COCOGroundTruth(imageIds: [1, 2], categoryIds: [1], annotations: [gt(1, box(0, 0, 40, 40))])
        let none = try COCOEvaluator.evaluate(groundTruth: truth, detections: [])
        XCTAssertEqual(none.stats, [0, 0, 0, -1, 0, -1, 0, 0, 0, -1, 0, -1], "area 1600 is medium only")
        let empty = COCOGroundTruth(imageIds: [1], categoryIds: [1], annotations: [])
        let r = try COCOEvaluator.evaluate(groundTruth: empty, detections: [dt(box(0, 0, 10, 10), 0.5)])
        XCTAssertEqual(r.stats, [Double](repeating: -1, count: 12))
    }

    func testUnknownImageIsRefused() {
        let truth = COCOGroundTruth(imageIds: [1], categoryIds: [1], annotations: [])
        XCTAssertThrowsError(try COCOEvaluator.evaluate(groundTruth: truth, detections: [dt(image: 7, box(0, 0, 1, 1), 0.5)])) { error in
            XCTAssertTrue("\(error)".contains("7"), "\(error)")
        }
    }

    func testClassAgnosticPoolsCategories() throws {
        let truth = COCOGroundTruth(imageIds: [1], categoryIds: [1, 2], annotations: [gt(1, category: 1, box(0, 0, 100, 100))])
        let dets = [dt(category: 2, box(0, 0, 100, 100), 0.9)]
        XCTAssertEqual(try COCOEvaluator.evaluate(groundTruth: truth, detections: dets).stats[0], 0)
        let agnostic = try COCOEvaluator.evaluate(groundTruth: truth, detections: dets, parameters: COCOParameters(useCategories: false))
        XCTAssertEqual(agnostic.stats[0], one, accuracy: 1e-13)
    }

    func testSummaryLines() throws {
        let truth = COCOGroundTruth(imageIds: [1], categoryIds: [1], annotations: [gt(1, box(0, 0, 100, 100))])
        let r = try COCOEvaluator.evaluate(groundTruth: truth, detections: [dt(box(0, 0, 100, 90), 0.9)])
        let lines = r.summaryLines
        XCTAssertEqual(lines.count, 12)
        // IoU 0.9 (not >= 0.95): matched at 9 of 10 thresholds.
        XCTAssertEqual(lines[0], " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.900")
        XCTAssertEqual(lines[1], " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 1.000")
        XCTAssertEqual(lines[3], " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000")
        XCTAssertEqual(lines[6], " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.900")
        XCTAssertEqual(lines[10], " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000")
    }
}
