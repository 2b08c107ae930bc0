// invariance --fail-below: the regression check a CI job holds on a new checkpoint. Consistency at
// scale ratio 0.875 (the standard crop itself) is 100 %, so a 100 % bar passes; a level that changes
// predictions fails a 100 % bar with one line and exit status 2 (a check tripped, not a broken run),
// after writing the outputs.

import Foundation
import TestSupport
import XCTest

final class RegressionCheckTests: XCTestCase {
    func run(levels: String, out: String) throws -> ToolRun {
        let images = ["ILSVRC2012_val_00000004.JPEG", "ILSVRC2012_val_00000019.JPEG", "ILSVRC2012_val_00000078.JPEG"]
            .map { sharedDirectory() + "/images/imagenet-val/" + $0 }
        return try runTool(["invariance", "scale", "--model", referencePath("convnext_nano.pth"), "--arch", referencePath("convnext_nano.json"),
                            "--images"] + images + ["--levels", levels, "--out", out, "--fail-below", "100"])
    }

    func testPassesAtTheStandardCrop() throws {
        let out = temporaryDirectory()
        let r = try run(levels: "0.875", out: out)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("regression check passed"), r.stdout)
    }

    func testFailsWhenConsistencyDrops() throws {
        let out = temporaryDirectory()
        let r = try run(levels: "0.875,0.2", out: out)
        XCTAssertEqual(r.status, 2, r.stdout)
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("stm-analyze: check failed:") }
        XCTAssertEqual(errors.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("below --fail-below"), r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/scale.json"), "the outputs are written before the check")
    }

    func testRejectsImpossibleBar() throws {
        let r = try runTool(["invariance", "scale", "--model", "unified_convnext_micro", "--images", temporaryDirectory(), "--fail-below", "150"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--fail-below"), r.stderr)
    }
}
