// Box consistency against ../shared/reference/detection/boxcons_expected.json: for each of the five
// nano detectors, the stored detections at scales 0.5 and 1.5 scored against the stored scale-1
// detections with score >= 0.5 (read from F_det_nano_expected.safetensors) give the 12 stats that
// pycocotools gave, within 1e-12, for the float64 run and for mmdetection's float32 run.

import COCOEval
import Checkpoint
import Foundation
import TestSupport
import XCTest

final class BoxConsistencyReferenceTests: XCTestCase {
    let families = ["convnext", "swin", "halo", "pvt", "dcnv3"]

    /// Rows `[x1, y1, x2, y2, score, label]` of a stored `[M, 6]` float32 tensor, widened to double.
    func boxes(_ tensors: [String: TensorRecord], _ key: String) throws -> [LabeledBox] {
        let t = try XCTUnwrap(tensors[key], "missing \(key)")
        XCTAssertEqual(t.dtype, .float32, key)
        XCTAssertEqual(t.shape.count, 2, key)
        XCTAssertEqual(t.shape.last, 6, key)
        let v = t.values.map(Double.init)
        return stride(from: 0, to: v.count, by: 6).map {
            LabeledBox(x1: v[$0], y1: v[$0 + 1], x2: v[$0 + 2], y2: v[$0 + 3], score: v[$0 + 4], label: Int(v[$0 + 5]))
        }
    }

    func testStoredDetectionsGiveTheReferenceStats() throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: referencePath("detection/boxcons_expected.json"))))
        let doc = try XCTUnwrap(json as? [String: Any])
        let expected = try XCTUnwrap(doc["families"] as? [String: Any])
        var checked = 0
        for family in families {
            let tensors = try SafeTensors.readDictionary(path: referencePath("detection/\(family)_det_nano_expected.safetensors"))
            let entry = try XCTUnwrap(expected[family] as? [String: Any], family)
            for (run, statsKey) in [("dets", "stats"), ("dets_mmdet_float32", "stats_mmdet_float32")] {
                let reference = try boxes(tensors, "coffee/s1.0/\(run)")
                for scale in ["0.5", "1.5"] {
                    let e = try XCTUnwrap(entry["s\(scale)"] as? [String: Any], "\(family) s\(scale)")
                    let want = try XCTUnwrap(e[statsKey] as? [Double], "\(family) s\(scale) \(statsKey)")
                    let candidate = try boxes(tensors, "coffee/s\(scale)/\(run)")
                    let result = try BoxConsistency.evaluate(reference: [reference], candidate: [candidate], scoreThreshold: 0.5)
                    let label = "\(family) s\(scale) \(run)"
                    if run == "dets" {
                        XCTAssertEqual(reference.filter { $0.score >= 0.5 }.count, e["n_gt"] as? Int, label)
                        XCTAssertEqual(candidate.count, e["n_dt"] as? Int, label)
                    }
                    XCTAssertEqual(result.stats.count, 12, label)
                    for (i, (got, w)) in zip(result.stats, want).enumerated() {
                        if w == -1 { XCTAssertEqual(got, -1, "\(label) stats[\(i)]") }
                        else { XCTAssertEqual(got, w, accuracy: 1e-12, "\(label) stats[\(i)]") }
                    }
                    checked += 1
                }
            }
        }
        XCTAssertEqual(checked, 20)
    }

    func testGroundTruthConventions() throws {
        let ref = [
            [LabeledBox(x1: 10, y1: 20, x2: 50, y2: 30, score: 0.9, label: 0),
             LabeledBox(x1: 0, y1: 0, x2: 5, y2: 5, score: 0.49, label: 2),
             LabeledBox(x1: 1, y1: 2, x2: 4, y2: 8, score: 0.5, label: 79)],
            [LabeledBox(x1: 3, y1: 3, x2: 9, y2: 9, score: 0.7, label: 5)],
        ]
        let gt = try BoxConsistency.groundTruth(reference: ref, scoreThreshold: 0.5, classes: 80)
        XCTAssertEqual(gt.imageIds, [1, 2])
        XCTAssertEqual(gt.categoryIds, Array(1...80))
        XCTAssertEqual(gt.annotations.map(\.id), [1, 2, 3], "ids from 1 over all images, below-threshold boxes left out")
        XCTAssertEqual(gt.annotations.map(\.categoryId), [1, 80, 6])
        XCTAssertEqual(gt.annotations.map(\.imageId), [1, 1, 2])
        XCTAssertEqual(gt.annotations[0].bbox, COCOBox(x: 10, y: 20, width: 40, height: 10))
        XCTAssertEqual(gt.annotations[0].area, 400)
        XCTAssertFalse(gt.annotations.contains { $0.isCrowd })
        // The reference scored against itself finds every box.
        let same = try BoxConsistency.evaluate(reference: ref, candidate: ref)
        XCTAssertEqual(same.stats[8], 1, "AR@100 of the reference against itself")
        XCTAssertThrowsError(try BoxConsistency.evaluate(reference: ref, candidate: [ref[0]]))
        XCTAssertThrowsError(try BoxConsistency.groundTruth(reference: [[LabeledBox(x1: 0, y1: 0, x2: 1, y2: 1, score: 1, label: 80)]],
                                                            scoreThreshold: 0.5, classes: 80))
    }
}
