// coco-eval end to end: the cases of ../shared/reference/detection/boxmap_expected.json written out as
// COCO files and run through the tool give pycocotools' 12 stats (JSON, within 1e-12) and its
// summary table (stdout); bad files end in one error line naming the file, exit status 1 and no JSON.

import Foundation
import TestSupport
import XCTest

final class CocoEvalCommandTests: XCTestCase {
    /// The cases as JSON objects (the keys images/categories/annotations make a COCO ground truth).
    func cases() throws -> [[String: Any]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: referencePath("detection/boxmap_expected.json")))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [[String: Any]])
    }

    func write(_ value: Any, _ path: String) throws {
        try JSONSerialization.data(withJSONObject: value).write(to: URL(fileURLWithPath: path))
    }

    func testBoxMapCasesThroughTheTool() throws {
        let dir = temporaryDirectory()
        var ran = 0
        for c in try cases() {
            let name = try XCTUnwrap(c["name"] as? String)
            let params = c["params"] as? [String: Any] ?? [:]
            if params["maxDets"] != nil { continue }  // the command keeps the default maxDets
            let want = try XCTUnwrap(c["stats"] as? [Double])
            let gt = dir + "/\(name)_gt.json", dt = dir + "/\(name)_dt.json", out = dir + "/\(name).json"
            try write(["images": c["images"]!, "categories": c["categories"]!, "annotations": c["annotations"]!], gt)
            try write(c["detections"]!, dt)
            var args = ["coco-eval", "--annotations", gt, "--detections", dt, "--json", out]
            if (params["useCats"] as? Int) == 0 { args.append("--class-agnostic") }
            let run = try runTool(args)
            XCTAssertEqual(run.status, 0, "\(name): \(run.stderr)")
            let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: Any], name)
            let stats = try XCTUnwrap(doc["stats"] as? [Double], name)
            XCTAssertEqual(stats.count, 12, name)
            for (i, (got, w)) in zip(stats, want).enumerated() {
                XCTAssertEqual(got, w, accuracy: w == -1 ? 0 : 1e-12, "\(name) stats[\(i)]")
            }
            // stdout is pycocotools' table: 12 lines ending in the stats with 3 decimals.
            let lines = run.stdout.split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.count, 12, "\(name): \(run.stdout)")
            for (line, w) in zip(lines, want) {
                XCTAssertTrue(line.hasSuffix("] = " + String(format: "%0.3f", w)), "\(name): \(line)")
            }
            ran += 1
        }
        XCTAssertEqual(ran, 34, "every case but custom_max_dets")
    }

    func testSummaryTableLayout() throws {
        let dir = temporaryDirectory()
        try write(["images": [["id": 1]], "categories": [["id": 1]],
                   "annotations": [["id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "area": 10000, "iscrowd": 0]]],
                  dir + "/gt.json")
        try write([["image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 90], "score": 0.9]], dir + "/dt.json")
        let run = try runTool(["coco-eval", "--annotations", dir + "/gt.json", "--detections", dir + "/dt.json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = run.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.900")
        XCTAssertEqual(lines.last, " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.900")
        XCTAssertEqual(lines[2], " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 1.000")
        XCTAssertEqual(lines[7], " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.900")
        XCTAssertEqual(lines[9], " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000")
    }

    func assertOneLineError(_ args: [String], mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try runTool(args)
        XCTAssertEqual(run.status, 1, "exit status for \(args): stderr \(run.stderr)", file: file, line: line)
        let lines = run.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "expected one error line, got: \(run.stderr)", file: file, line: line)
        XCTAssertTrue(lines.first?.hasPrefix("stm-analyze: error: ") ?? false, run.stderr, file: file, line: line)
        for m in mentions { XCTAssertTrue(run.stderr.contains(m), "error should mention '\(m)': \(run.stderr)", file: file, line: line) }
        XCTAssertEqual(run.stdout, "", file: file, line: line)
    }

    func testBadInput() throws {
        let dir = temporaryDirectory()
        let gt = dir + "/gt.json", dt = dir + "/dt.json", out = dir + "/out.json"
        try write(["images": [["id": 1], ["id": 2]], "categories": [["id": 1]],
                   "annotations": [["id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0]]], gt)
        try write([["image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9]], dt)
        XCTAssertEqual(try runTool(["coco-eval", "--annotations", gt, "--detections", dt]).status, 0, "the good pair runs")

        // An annotations file that does not parse.
        let broken = dir + "/broken.json"
        let text = try String(contentsOfFile: gt, encoding: .utf8)
        try String(text.prefix(text.count / 2)).write(toFile: broken, atomically: true, encoding: .utf8)
        try assertOneLineError(["coco-eval", "--annotations", broken, "--detections", dt, "--json", out], mentions: [broken, "JSON"])
        // Valid JSON that is not COCO ground truth, and an annotation without area.
        try write(["images": [["id": 1]]], broken)
        try assertOneLineError(["coco-eval", "--annotations", broken, "--detections", dt], mentions: [broken, "categories"])
        try write(["images": [["id": 1]], "categories": [["id": 1]],
                   "annotations": [["id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]]]], broken)
        try assertOneLineError(["coco-eval", "--annotations", broken, "--detections", dt], mentions: [broken, "area"])
        // Detections naming an image the annotations do not list.
        let unknown = dir + "/unknown.json"
        try write([["image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9],
                   ["image_id": 77, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.8]], unknown)
        try assertOneLineError(["coco-eval", "--annotations", gt, "--detections", unknown, "--json", out], mentions: [unknown, "77"])
        // A detection without a box, and missing files.
        try write([["image_id": 1, "category_id": 1, "segmentation": [[0, 0, 1, 1]], "score": 0.9]], unknown)
        try assertOneLineError(["coco-eval", "--annotations", gt, "--detections", unknown], mentions: [unknown, "bbox"])
        try assertOneLineError(["coco-eval", "--annotations", dir + "/none.json", "--detections", dt], mentions: [dir + "/none.json"])
        try assertOneLineError(["coco-eval", "--annotations", gt, "--detections", dt, "--json", dir + "/missing/out.json"], mentions: ["--json"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no JSON after a failure")
    }
}
