// The five nano detectors of ../shared/reference/detection against mmdetection's float64 run, with
// the README's tolerances: FPN levels (full maps at s = 1 on the stored input; channel means and the
// eight stored pixels at s = 0.5 and 1.5), the first 16 box-head outputs on the reference proposals,
// the proposals, the final detections end to end from coffee.png at s = 0.5, 1, 1.5 and at the
// study's 1333x800, and the box-consistency stats of our own detections against boxcons_expected.json.

import COCOEval
import Checkpoint
import Detection
import Foundation
import Imaging
import TensorCore
import TestSupport
import XCTest

/// Rows of a stored [M, 6] detections tensor.
func storedDetections(_ t: TensorRecord) -> [Detection] {
    let v = t.values
    return stride(from: 0, to: v.count, by: 6).map { Detection(box: Array(v[$0..<($0 + 4)]), score: v[$0 + 4], label: Int(v[$0 + 5])) }
}

func iou(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
    let a = a.map(Double.init), b = b.map(Double.init)
    let w = max(0, min(a[2], b[2]) - max(a[0], b[0])), h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    let inter = w * h
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return union > 0 ? inter / union : 0
}

/// The README's detection match: one-to-one, same label, greedy in reference order by best IoU;
/// a pair counts when IoU >= 0.99 and |score diff| <= 1e-3. Returns (matched / reference, matched / candidate).
func matchDetections(reference: [Detection], candidate: [Detection]) -> (Double, Double) {
    var used = [Bool](repeating: false, count: candidate.count)
    var matched = 0
    for r in reference {
        var best = -1, bestIoU = -1.0
        for (j, c) in candidate.enumerated() where !used[j] && c.label == r.label {
            let v = iou(r.box[...], c.box[...])
            if v > bestIoU { bestIoU = v; best = j }
        }
        if best >= 0 && bestIoU >= 0.99 && abs(candidate[best].score - r.score) <= 1e-3 {
            used[best] = true
            matched += 1
        }
    }
    return (reference.isEmpty ? 1 : Double(matched) / Double(reference.count),
            candidate.isEmpty ? 1 : Double(matched) / Double(candidate.count))
}

final class DetectorReferenceTests: XCTestCase {
    static let pixels = [(0, 0), (1, 3), (5, 2), (7, 11), (13, 6), (17, 17), (-1, -1), (-2, -5)]

    /// The family's detector; the architecture is inferred from the keys except for PVT, whose heads
    /// the shapes do not tell (its nano JSON is passed as --arch would be).
    func load(_ family: String) throws -> (Detector, [String: TensorRecord]) {
        let arch = family == "pvt" ? referencePath("pvt_nano.json") : nil
        let loaded = try DetectorLoader.load(model: referencePath("detection/\(family)_det_nano.pth"), arch: arch)
        XCTAssertGreaterThan(loaded.skippedMaskKeys, 0, "\(family): the mask head is in the checkpoint and skipped")
        XCTAssertEqual(loaded.detector.heads.neck.channels, 32)
        XCTAssertEqual(loaded.detector.classCount, 80)
        let expected = try SafeTensors.readDictionary(path: referencePath("detection/\(family)_det_nano_expected.safetensors"))
        return (loaded.detector, expected)
    }

    /// Maps, proposals and the box head on the stored inputs.
    func checkStages(_ family: String) throws {
        let (detector, expected) = try load(family)
        let inputs = try SafeTensors.readDictionary(path: referencePath("detection/inputs_expected.safetensors"))
        let input = try XCTUnwrap(inputs["coffee/s1.0/input"])
        let (stages, pyramid) = detector.features(fromNCHW(input.values, n: 1, c: 3, h: 192, w: 288))
        for (i, map) in stages.enumerated() {
            let ref = try XCTUnwrap(expected["coffee/s1.0/stage\(i + 1)"])
            let c = maxAbsCheck(toNCHW(map), ref.values)
            XCTAssertLessThanOrEqual(c.diff, c.limit, "\(family) stage\(i + 1)")
        }
        XCTAssertEqual(pyramid.count, 5)
        for (i, map) in pyramid.enumerated() {
            let ref = try XCTUnwrap(expected["coffee/s1.0/fpn_p\(i + 2)"])
            XCTAssertEqual(ref.shape, [1, map.shape[3], map.shape[1], map.shape[2]], "\(family) P\(i + 2) shape")
            let c = maxAbsCheck(toNCHW(map), ref.values)
            XCTAssertLessThanOrEqual(c.diff, c.limit, "\(family) P\(i + 2)")
        }
        // The first 16 box-head outputs, on the reference's own proposals.
        let refProposals = try XCTUnwrap(expected["coffee/s1.0/proposals"])
        let rows = refProposals.values
        let rois = (0..<16).flatMap { rows[($0 * 5)..<($0 * 5 + 4)] }
        let (logits, deltas) = detector.boxHead(pyramid: pyramid, rois: rois)
        let cls = maxAbsCheck(logits.values, try XCTUnwrap(expected["coffee/s1.0/roi_cls_score_first16"]).values)
        let reg = maxAbsCheck(deltas.values, try XCTUnwrap(expected["coffee/s1.0/roi_bbox_pred_first16"]).values)
        XCTAssertLessThanOrEqual(cls.diff, cls.limit, "\(family) roi_cls_score_first16")
        XCTAssertLessThanOrEqual(reg.diff, reg.limit, "\(family) roi_bbox_pred_first16")
        // Proposals from our own maps.
        let ours = detector.proposals(pyramid: pyramid, imageWidth: 288, imageHeight: 192)
        checkProposals(ours, reference: rows, label: "\(family) s1.0")

        // s = 0.5 and 1.5: FPN channel means and pixels, proposals, from the stored uint8 images.
        for s in ["0.5", "1.5"] {
            let rgb = try XCTUnwrap(inputs["coffee/s\(s)/resized_rgb_u8"])
            let shape = try XCTUnwrap(expected["coffee/s\(s)/input_shape"]).values.map { Int($0) }
            let resized = Image8(width: rgb.shape[1], height: rgb.shape[0], channels: 3, pixels: rgb.values.map { UInt8($0) })
            let x = DetectionPipeline().normalizeAndPad(resized, paddedHeight: shape[2], paddedWidth: shape[3])
            let (_, levels) = detector.features(x)
            for (i, map) in levels.enumerated() {
                let (fh, fw, c) = (map.shape[1], map.shape[2], map.shape[3])
                let v = map.values
                var mean = [Float](repeating: 0, count: c), picked: [Float] = []
                for p in 0..<(fh * fw) { for ch in 0..<c { mean[ch] += v[p * c + ch] / Float(fh * fw) } }
                for (y, xx) in Self.pixels {
                    let py = ((y % fh) + fh) % fh, px = ((xx % fw) + fw) % fw
                    picked += v[((py * fw) + px) * c..<((py * fw) + px + 1) * c]
                }
                let m = maxAbsCheck(mean, try XCTUnwrap(expected["coffee/s\(s)/fpn_p\(i + 2)_chmean"]).values)
                let q = maxAbsCheck(picked, try XCTUnwrap(expected["coffee/s\(s)/fpn_p\(i + 2)_pixels"]).values)
                XCTAssertLessThanOrEqual(m.diff, m.limit, "\(family) s\(s) P\(i + 2) channel means")
                XCTAssertLessThanOrEqual(q.diff, q.limit, "\(family) s\(s) P\(i + 2) pixels")
            }
            let props = detector.proposals(pyramid: levels, imageWidth: resized.width, imageHeight: resized.height)
            checkProposals(props, reference: try XCTUnwrap(expected["coffee/s\(s)/proposals"]).values, label: "\(family) s\(s)")
        }
    }

    /// At least 99 % of the reference rows have a proposal with IoU >= 0.99 and |score diff| <= 1e-4;
    /// the counts differ by at most 1 %.
    func checkProposals(_ ours: Proposals, reference rows: [Float], label: String) {
        let n = rows.count / 5
        XCTAssertLessThanOrEqual(abs(ours.count - n), max(n / 100, 0), "\(label): \(ours.count) proposals, reference \(n)")
        var found = 0
        for i in 0..<n {
            let r = rows[(i * 5)..<(i * 5 + 4)]
            for j in 0..<ours.count where abs(ours.scores[j] - rows[i * 5 + 4]) <= 1e-4 {
                if iou(r, ours.boxes[(4 * j)..<(4 * j + 4)]) >= 0.99 { found += 1; break }
            }
        }
        XCTAssertGreaterThanOrEqual(Double(found), 0.99 * Double(n), "\(label): \(found) of \(n) reference proposals found")
    }

    /// Detections end to end from coffee.png, and box consistency from our own detections.
    func checkDetections(_ family: String) throws {
        let (detector, expected) = try load(family)
        let image = try coffeeImage()
        var ours: [String: [Detection]] = [:]
        let runs: [(String, DetectionPipeline)] = [
            ("s0.5", DetectionPipeline(testScale: (320, 192)).scaled(by: 0.5)),
            ("s1.0", DetectionPipeline(testScale: (320, 192))),
            ("s1.5", DetectionPipeline(testScale: (320, 192)).scaled(by: 1.5)),
            ("real1333x800", DetectionPipeline()),
        ]
        for (run, pipeline) in runs {
            let dets = try detector.detect(image, pipeline: pipeline)
            let ref = storedDetections(try XCTUnwrap(expected["coffee/\(run)/dets"]))
            let (r, c) = matchDetections(reference: ref, candidate: dets)
            XCTAssertGreaterThanOrEqual(r, 0.95, "\(family) \(run): reference rows matched (\(ref.count) reference, \(dets.count) ours)")
            XCTAssertGreaterThanOrEqual(c, 0.95, "\(family) \(run): our rows matched (\(ref.count) reference, \(dets.count) ours)")
            XCTAssertFalse(dets.isEmpty, "\(family) \(run)")
            ours[run] = dets
        }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: referencePath("detection/boxcons_expected.json"))))
        let families = try XCTUnwrap((json as? [String: Any])?["families"] as? [String: Any])
        let entry = try XCTUnwrap(families[family] as? [String: Any])
        func labeled(_ d: [Detection]) -> [LabeledBox] {
            d.map { LabeledBox(x1: Double($0.box[0]), y1: Double($0.box[1]), x2: Double($0.box[2]), y2: Double($0.box[3]),
                               score: Double($0.score), label: $0.label) }
        }
        for s in ["0.5", "1.5"] {
            let want = try XCTUnwrap((entry["s\(s)"] as? [String: Any])?["stats"] as? [Double])
            let got = try BoxConsistency.evaluate(reference: [labeled(ours["s1.0"]!)], candidate: [labeled(ours["s\(s)"]!)]).stats
            XCTAssertEqual(got.count, 12)
            for (i, (g, w)) in zip(got, want).enumerated() {
                XCTAssertEqual(g, w, accuracy: 0.01, "\(family) s\(s) box-consistency stats[\(i)]")
            }
        }
    }

    func testConvNeXtMaps() throws { try checkStages("convnext") }
    func testSwinMaps() throws { try checkStages("swin") }
    func testHaloMaps() throws { try checkStages("halo") }
    func testPVTMaps() throws { try checkStages("pvt") }
    func testDCNv3Maps() throws { try checkStages("dcnv3") }
    func testConvNeXtDetections() throws { try checkDetections("convnext") }
    func testSwinDetections() throws { try checkDetections("swin") }
    func testHaloDetections() throws { try checkDetections("halo") }
    func testPVTDetections() throws { try checkDetections("pvt") }
    func testDCNv3Detections() throws { try checkDetections("dcnv3") }
}
