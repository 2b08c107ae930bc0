// stm-analyze erf end to end: the reference's four images with --resize crop give summary.json's
// ratios; every file is written; the PNGs decode through libpng to the figure's size with the colour
// map's ends at the map's maximum and minimum; bad input gives one error line, exit 1, no files.

import Analysis
import Checkpoint
import Foundation
import Imaging
import Rendering
import TestSupport
import XCTest

final class ErfCommandTests: XCTestCase {
    let summaryImages = ["ILSVRC2012_val_00000004.JPEG", "ILSVRC2012_val_00000019.JPEG",
                         "ILSVRC2012_val_00000078.JPEG", "ILSVRC2012_val_00000098.JPEG"]

    func testSwinFixtureThroughTheTool() throws {
        let out = temporaryDirectory() + "/erf"
        let images = summaryImages.map { sharedDirectory() + "/images/imagenet-val/" + $0 }
        let run = try runTool(["erf", "--model", referencePath("swin_nano.pth"), "--arch", referencePath("swin_nano.json"),
                               "--images"] + images + ["--resize", "crop", "--batch", "2", "--out", out])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("t=0.5"), run.stdout)
        for s in 1...4 {
            for ext in ["png", "safetensors"] { XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/erf_stage\(s).\(ext)")) }
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/erf_stages.png"))

        // Ratios against the reference summary.
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/erf.json"))) as? [String: Any])
        XCTAssertEqual(doc["size"] as? Int, 224)
        XCTAssertEqual(doc["resize"] as? String, "crop")
        XCTAssertEqual((doc["images"] as? [String])?.count, 4)
        let stages = try XCTUnwrap(doc["stages"] as? [String: [String: [String: Any]]])
        let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: referencePath("summary.json")))) as? [String: Any])
        let ref = try XCTUnwrap((summary["swin"] as? [String: Any])?["erf_ratios"] as? [String: [String: [Double]]])
        for s in 1...4 {
            for t in ["0.2", "0.3", "0.5", "0.99"] {
                let entry = try XCTUnwrap(stages["\(s)"]?[t])
                let side = try XCTUnwrap(entry["side"] as? Int)
                XCTAssertLessThanOrEqual(abs(Double(side) - ref["stage\(s)"]![t]![0]), 2, "stage \(s) t=\(t)")
                XCTAssertEqual(try XCTUnwrap(entry["side_ratio"] as? Double), Double(side) / 224, accuracy: 1e-12)
                XCTAssertEqual(try XCTUnwrap(entry["area_ratio"] as? Double), Double(side * side) / (224 * 224), accuracy: 1e-12)
                XCTAssertEqual(entry["reached"] as? Bool, true)
            }
        }

        // The stage-4 heatmap: decoded through libpng, size as laid out, colour-map ends at max and min.
        let mean = try XCTUnwrap(SafeTensors.readDictionary(path: out + "/erf_stage4.safetensors")["mean"])
        XCTAssertEqual(mean.shape, [224, 224])
        let png = try PNGCodec.read(path: out + "/erf_stage4.png")
        let stage = ERFStage(stage: 4, mean: mean.values, ratios: [])
        var settings = ERFSettings()
        settings.resize = .crop
        let result = ERFResult(settings: settings, images: [], skipped: [], stages: [stage], seconds: 0)
        let layout = try erfStageFigure(stage, of: result, model: "x", colormap: .viridis).layout()
        XCTAssertEqual(png.width, layout.width)
        XCTAssertEqual(png.height, layout.height)
        let norm = normalisedMap(mean.values)
        let hi = norm.indices.max { norm[$0] < norm[$1] }!, lo = norm.indices.min { norm[$0] < norm[$1] }!
        func pixel(_ index: Int) -> (UInt8, UInt8, UInt8) {
            let r = layout.mapRects[0], k = layout.scales[0]
            let x = Int(r.x) + (index % 224) * k + k / 2, y = Int(r.y) + (index / 224) * k + k / 2
            let p = (y * png.width + x) * png.channels
            return (png.pixels[p], png.pixels[p + 1], png.pixels[p + 2])
        }
        let top = Colormap.viridis.map(1), bottom = Colormap.viridis.map(0)
        XCTAssertTrue(pixel(hi) == top, "max pixel \(pixel(hi)) vs viridis top \(top)")
        XCTAssertTrue(pixel(lo) == bottom, "min pixel \(pixel(lo)) vs viridis bottom \(bottom)")
        let row = try PNGCodec.read(path: out + "/erf_stages.png")
        XCTAssertGreaterThan(row.width, 2 * row.height, "four panels in one row")
    }

    func assertFailsCleanly(_ extra: [String], mentions: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let out = temporaryDirectory() + "/erf-bad"
        let run = try runTool(["erf", "--model", "unified_convnext_micro", "--out", out] + extra)
        XCTAssertEqual(run.status, 1, run.stderr, file: file, line: line)
        let errors = run.stderr.split(separator: "\n").filter { $0.hasPrefix("stm-analyze: error:") }
        XCTAssertEqual(errors.count, 1, run.stderr, file: file, line: line)
        XCTAssertTrue(run.stderr.contains(mentions), run.stderr, file: file, line: line)
        let written = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        XCTAssertTrue(written.isEmpty, "nothing may be written, found \(written)", file: file, line: line)
    }

    func testBadInput() throws {
        let image = sharedDirectory() + "/images/imagenet-val/ILSVRC2012_val_00000004.JPEG"
        try assertFailsCleanly(["--images", temporaryDirectory()], mentions: "no images")
        try assertFailsCleanly(["--images", image, "--stages", "5"], mentions: "--stages")
        try assertFailsCleanly(["--images", image, "--size", "0"], mentions: "--size")
        try assertFailsCleanly(["--images", image, "--thresholds", "0.5,2"], mentions: "--thresholds")
        try assertFailsCleanly(["--images", image, "--scaling", "cube"], mentions: "--scaling")
        try assertFailsCleanly(["--images", image, "--colormap", "nope"], mentions: "--colormap")
        // An --out that cannot be a folder: a path below a regular file.
        let file = temporaryDirectory() + "/plain-file"
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        let run = try runTool(["erf", "--model", "unified_convnext_micro", "--images", image, "--out", file + "/erf"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("--out"), run.stderr)
    }
}
