// erf.json as a typed report: the keys of the command's contract, no timing (two runs that differ
// only in how long they took give the same bytes), and the files `ERFReport.write` puts in a folder.

import Analysis
import Checkpoint
import Foundation
import TestSupport
import XCTest

final class ERFReportTests: XCTestCase {
    private func result(seconds: Double) -> ERFResult {
        var settings = ERFSettings()
        settings.size = 8
        settings.stages = [2]
        settings.thresholds = [0.2, 0.99]
        let mean = (0..<64).map { Float($0 % 8 == 4 ? 3 : 1) }
        let ratios = erfRatios(normalised: normalisedMap(mean), height: 8, width: 8, thresholds: settings.thresholds)
        return ERFResult(settings: settings, images: ["a.jpg"], skipped: [(path: "b.jpg", reason: "NaN")],
                         stages: [ERFStage(stage: 2, mean: mean, ratios: ratios)], seconds: seconds)
    }

    func testReportHasTheContractKeysAndNoTiming() throws {
        let a = ERFReport(result(seconds: 1.5), model: "m.pth", arch: "swin_nano", family: "swin", untrained: false)
        let b = ERFReport(result(seconds: 99), model: "m.pth", arch: "swin_nano", family: "swin", untrained: false)
        XCTAssertEqual(try a.jsonData(), try b.jsonData(), "timing must not reach erf.json")
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: a.jsonData()) as? [String: Any])
        XCTAssertEqual(Set(doc.keys), ["model", "arch", "family", "untrained", "size", "resize", "grad", "scaling",
                                       "stm_legacy_scaling", "images", "skipped", "stages"])
        let stage = try XCTUnwrap((doc["stages"] as? [String: Any])?["2"] as? [String: Any])
        XCTAssertEqual(Set(stage.keys), ["0.2", "0.99"])
        let entry = try XCTUnwrap(stage["0.2"] as? [String: Any])
        XCTAssertEqual(Set(entry.keys), ["side", "side_ratio", "area_ratio", "reached"])
        XCTAssertEqual((doc["skipped"] as? [[String: String]])?.first, ["path": "b.jpg", "reason": "NaN"])
        XCTAssertEqual(doc["resize"] as? String, "square")
        XCTAssertEqual(try JSONDecoder().decode(ERFReport.self, from: a.jsonData()), a)
    }

    func testWriteMakesTheJSONAndTheMaps() throws {
        let dir = temporaryDirectory()
        let r = result(seconds: 0)
        let report = ERFReport(r, model: "m.pth", arch: "x", family: "swin", untrained: true)
        let written = try ERFReport.write(r, report: report, title: "x", to: dir)
        XCTAssertEqual(written, [dir + "/erf_stage2.safetensors", dir + "/erf.csv", dir + "/erf.json"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/erf.json")), try report.jsonData())
        // erf.csv: one row per stage and threshold, numbers as in the JSON.
        let csv = try String(contentsOfFile: dir + "/erf.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 1 + r.stages.count * r.settings.thresholds.count)
        let first = r.stages[0].ratios[0]
        XCTAssertEqual(csv[1], "m.pth,x,2,\(first.threshold),\(first.side),\(first.sideRatio),\(first.areaRatio),\(first.reached)")
        let map = try XCTUnwrap(SafeTensors.readDictionary(path: dir + "/erf_stage2.safetensors")["mean"])
        XCTAssertEqual(map.shape, [8, 8])
        XCTAssertEqual(map.values, r.stages[0].mean)
    }
}
