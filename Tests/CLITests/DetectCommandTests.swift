// detect and boxes end to end on the nano detector fixtures: detect's JSON layout and its boxes
// against the stored scale-1 detections, the --draw picture; boxes' JSON, CSV and plot with the
// box-consistency stats of boxcons_expected.json (within 0.01); an untrained preset detector runs;
// bad input (a classification checkpoint, scale 0, an annotations file that does not parse) ends in
// one error line and exit status 1.

import Checkpoint
import Foundation
import Imaging
import TestSupport
import XCTest

final class DetectCommandTests: XCTestCase {
    var coffee: String { sharedDirectory() + "/images/public-domain/coffee.png" }

    func testDetectJSONAndDrawing() throws {
        let dir = temporaryDirectory()
        let run = try runTool(["detect", "--model", referencePath("detection/swin_det_nano.pth"), "--images", coffee,
                               "--test-scale", "320x192", "--json", dir + "/d.json", "--draw", dir + "/draw", "--threads", "2"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/d.json"))) as? [String: Any])
        XCTAssertEqual(doc["model"] as? String, "swin_det_nano")
        XCTAssertEqual(doc["test_scale"] as? [Int], [320, 192])
        XCTAssertEqual(doc["scale"] as? Double, 1.0)
        let image = try XCTUnwrap((doc["images"] as? [[String: Any]])?.first)
        XCTAssertEqual(image["width"] as? Int, 600)
        XCTAssertEqual(image["height"] as? Int, 400)
        let dets = try XCTUnwrap(image["detections"] as? [[String: Any]])
        let stored = try SafeTensors.readDictionary(path: referencePath("detection/swin_det_nano_expected.safetensors"))
        let ref = try XCTUnwrap(stored["coffee/s1.0/dets"]).values
        XCTAssertEqual(dets.count, ref.count / 6, "the README's table: 65 detections")
        for (i, d) in dets.prefix(10).enumerated() {
            let box = try XCTUnwrap(d["box"] as? [Double])
            for k in 0..<4 { XCTAssertEqual(box[k], Double(ref[i * 6 + k]), accuracy: 0.05, "detection \(i) box") }
            XCTAssertEqual(try XCTUnwrap(d["score"] as? Double), Double(ref[i * 6 + 4]), accuracy: 1e-3)
            let label = try XCTUnwrap(d["label"] as? Int)
            XCTAssertEqual(label, Int(ref[i * 6 + 5]))
            XCTAssertNotNil(d["class"] as? String)
        }
        let picture = try PNGCodec.read(path: dir + "/draw/coffee.png")
        XCTAssertEqual([picture.width, picture.height], [600, 400])
        XCTAssertNotEqual(picture.pixels, try loadImage(path: coffee).pixels, "boxes are drawn")
    }

    func testBoxesAgainstBoxconsExpected() throws {
        let dir = temporaryDirectory()
        let families = ["convnext", "pvt"]
        var args = ["boxes", "--images", coffee, "--test-scale", "320x192", "--scales", "0.5,1,1.5", "--out", dir, "--threads", "2"]
        for f in families { args += ["--model", referencePath("detection/\(f)_det_nano.pth")] }
        args += ["--arch", referencePath("convnext_nano.json"), "--arch", referencePath("pvt_nano.json")]
        let run = try runTool(args)
        XCTAssertEqual(run.status, 0, run.stderr)
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/boxes.json"))) as? [String: Any])
        let models = try XCTUnwrap(doc["models"] as? [[String: Any]])
        XCTAssertEqual(models.count, 2)
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: referencePath("detection/boxcons_expected.json")))) as? [String: Any])
        let families0 = try XCTUnwrap(expected["families"] as? [String: Any])
        for (f, m) in zip(families, models) {
            let scales = try XCTUnwrap(m["scales"] as? [String: [Double]])
            XCTAssertEqual(scales["1.0"]?.first, 1, "\(f): scale 1 against itself")
            for s in ["0.5", "1.5"] {
                let want = try XCTUnwrap(((families0[f] as? [String: Any])?["s\(s)"] as? [String: Any])?["stats"] as? [Double])
                let got = try XCTUnwrap(scales[s], "\(f) s\(s)")
                for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 0.01, "\(f) s\(s)") }
            }
            let mean = try XCTUnwrap(m["mean"] as? [Double])
            XCTAssertEqual(mean[0], ([scales["0.5"]![0], 1, scales["1.5"]![0]]).reduce(0, +) / 3, accuracy: 1e-12)
        }
        let csv = try String(contentsOfFile: dir + "/boxes.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 1 + 2 * 3)
        let plot = try PNGCodec.read(path: dir + "/boxes.png")
        XCTAssertGreaterThan(plot.width, 1000)
    }

    func testUntrainedPresetDetectorRuns() throws {
        let run = try runTool(["detect", "--model", "unified_convnext_micro", "--images", coffee, "--test-scale", "320x192"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("UNTRAINED"), run.stderr)
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((doc["images"] as? [Any])?.count, 1)
    }

    func assertOneError(_ args: [String], contains text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try runTool(args)
        XCTAssertEqual(run.status, 1, "\(args): \(run.stderr)", file: file, line: line)
        let lines = run.stderr.split(separator: "\n").filter { !$0.isEmpty }
        XCTAssertEqual(lines.count, 1, run.stderr, file: file, line: line)
        XCTAssertTrue(run.stderr.contains(text), run.stderr, file: file, line: line)
    }

    func testBadInput() throws {
        let classifier = referencePath("convnext_nano.pth")
        let det = referencePath("detection/convnext_det_nano.pth")
        try assertOneError(["detect", "--model", classifier, "--images", coffee], contains: "classification checkpoint")
        try assertOneError(["boxes", "--model", classifier, "--images", coffee, "--out", temporaryDirectory()], contains: "classification checkpoint")
        try assertOneError(["detect", "--model", det, "--images", coffee, "--scale", "0"], contains: "--scale")
        try assertOneError(["boxes", "--model", det, "--images", coffee, "--scales", "0.5,0"], contains: "--scales")
        let dir = temporaryDirectory()
        try Data("{\"images\": [".utf8).write(to: URL(fileURLWithPath: dir + "/bad.json"))
        try assertOneError(["boxes", "--model", det, "--images", coffee, "--annotations", dir + "/bad.json", "--out", dir],
                           contains: "bad.json")
    }
}
