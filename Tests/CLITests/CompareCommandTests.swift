// stm-analyze compare: an unchanged result passes (exit 0) even when only its provenance differs; a
// planted regression trips the check (exit 2) and is named in the table; moves within the tolerance
// pass; --metric narrows the check; --format markdown prints a table; ERF ratios regress either way;
// a missing metric trips; unreadable input is exit 1 with one error line.

import Foundation
import TestSupport
import XCTest

final class CompareCommandTests: XCTestCase {
    private var dir = ""
    private var invariance = ""
    private var erf = ""

    override func setUpWithError() throws {
        dir = temporaryDirectory("compare")
        let image = sharedDirectory() + "/images/imagenet-val/ILSVRC2012_val_00000004.JPEG"
        let inv = try runTool(["invariance", "rotate", "--model", "unified_convnext_micro", "--init-layer-scale", "1", "--images", image,
                               sharedDirectory() + "/images/imagenet-val/ILSVRC2012_val_00000019.JPEG",
                               "--levels", "0,10,20", "--size", "64", "--out", dir + "/inv"])
        XCTAssertEqual(inv.status, 0, inv.stderr)
        invariance = dir + "/inv/rotate.json"
        let e = try runTool(["erf", "--model", "unified_convnext_micro", "--init-layer-scale", "1", "--images", image,
                             "--size", "64", "--stages", "3,4", "--out", dir + "/erf"])
        XCTAssertEqual(e.status, 0, e.stderr)
        erf = dir + "/erf/erf.json"
    }

    /// Writes a copy of `path` changed by `edit` and returns its path.
    private func planted(_ path: String, _ name: String, _ edit: (inout [String: Any]) throws -> Void) throws -> String {
        var doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        try edit(&doc)
        let out = dir + "/" + name
        try JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys]).write(to: URL(fileURLWithPath: out))
        return out
    }

    /// Sets models[0].levels[level][metric].
    private func setLevel(_ doc: inout [String: Any], _ level: String, _ metric: String, _ f: (Double) -> Double) throws {
        var models = try XCTUnwrap(doc["models"] as? [[String: Any]])
        var levels = try XCTUnwrap(models[0]["levels"] as? [String: [String: Any]])
        levels[level]![metric] = f(try XCTUnwrap(levels[level]![metric] as? Double))
        models[0]["levels"] = levels
        doc["models"] = models
    }

    func testAnUnchangedResultPassesWhateverItsProvenance() throws {
        let same = try planted(invariance, "same.json") { doc in
            var p = try XCTUnwrap(doc["provenance"] as? [String: Any])
            p["tool"] = "stm-analyze 9.9.9"
            doc["provenance"] = p
        }
        let run = try runTool(["compare", "--baseline", invariance, "--current", same])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("no change"), run.stdout)
    }

    func testAPlantedRegressionTripsTheCheck() throws {
        let worse = try planted(invariance, "worse.json") { doc in
            try self.setLevel(&doc, "10", "consistency") { $0 - 5 }
        }
        let run = try runTool(["compare", "--baseline", invariance, "--current", worse, "--tolerance", "0.5"])
        XCTAssertEqual(run.status, 2, run.stderr)
        XCTAssertTrue(run.stdout.contains("levels.10.consistency"), run.stdout)
        XCTAssertTrue(run.stdout.contains("-5.000 pt") && run.stdout.contains("worse"), run.stdout)
        XCTAssertTrue(run.stderr.contains("check failed"), run.stderr)
        XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)

        // The same move within a larger tolerance passes, and is still printed.
        let lenient = try runTool(["compare", "--baseline", invariance, "--current", worse, "--tolerance", "6"])
        XCTAssertEqual(lenient.status, 0, lenient.stderr)
        XCTAssertTrue(lenient.stdout.contains("levels.10.consistency") && lenient.stdout.contains("moved"), lenient.stdout)
        // Better is never a regression.
        let better = try runTool(["compare", "--baseline", worse, "--current", invariance])
        XCTAssertEqual(better.status, 0, better.stderr)
        XCTAssertTrue(better.stdout.contains("better"), better.stdout)
    }

    func testLossesRegressUpwardsRelativelyAndMetricNarrowsTheCheck() throws {
        let worse = try planted(invariance, "ce.json") { doc in
            try self.setLevel(&doc, "20", "ce") { $0 * 1.02 + 0.01 }
        }
        let run = try runTool(["compare", "--baseline", invariance, "--current", worse, "--format", "markdown"])
        XCTAssertEqual(run.status, 2, run.stderr)
        XCTAssertTrue(run.stdout.hasPrefix("| metric | baseline | current | change | verdict |\n| --- |"), run.stdout)
        XCTAssertTrue(run.stdout.contains("levels.20.ce |"), run.stdout)
        let narrowed = try runTool(["compare", "--baseline", invariance, "--current", worse, "--metric", "consistency"])
        XCTAssertEqual(narrowed.status, 0, narrowed.stderr)
    }

    func testERFRatiosRegressEitherWayAndAMissingMetricTrips() throws {
        let moved = try planted(erf, "erf_moved.json") { doc in
            var stages = try XCTUnwrap(doc["stages"] as? [String: [String: [String: Any]]])
            let r = try XCTUnwrap(stages["4"]?["0.5"]?["side_ratio"] as? Double)
            stages["4"]!["0.5"]!["side_ratio"] = r * 1.02
            doc["stages"] = stages
        }
        let run = try runTool(["compare", "--baseline", erf, "--current", moved])
        XCTAssertEqual(run.status, 2, run.stderr)
        XCTAssertTrue(run.stdout.contains("stages.4.0.5.side_ratio") && run.stdout.contains("+2.000 %"), run.stdout)
        let back = try runTool(["compare", "--baseline", moved, "--current", erf])
        XCTAssertEqual(back.status, 2, back.stderr)

        let missing = try planted(erf, "erf_missing.json") { doc in
            var stages = try XCTUnwrap(doc["stages"] as? [String: Any])
            stages["3"] = nil
            doc["stages"] = stages
        }
        let gone = try runTool(["compare", "--baseline", erf, "--current", missing])
        XCTAssertEqual(gone.status, 2, gone.stderr)
        XCTAssertTrue(gone.stdout.contains("missing"), gone.stdout)
    }

    func testUnreadableInputIsExitOne() throws {
        let text = dir + "/not.json"
        try "not json".write(toFile: text, atomically: true, encoding: .utf8)
        for args in [["--baseline", text, "--current", erf], ["--baseline", erf, "--current", dir + "/nothing.json"]] {
            let run = try runTool(["compare"] + args)
            XCTAssertEqual(run.status, 1, run.stderr)
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
        }
        let disjoint = try runTool(["compare", "--baseline", erf, "--current", invariance, "--metric", "nothing_like_this"])
        XCTAssertEqual(disjoint.status, 1, disjoint.stderr)
        XCTAssertTrue(disjoint.stderr.contains("no number in common"), disjoint.stderr)
    }
}
