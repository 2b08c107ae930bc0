// classify end to end: the fixture image through the tool gives the reference logits (so its
// preprocessing reproduces the fixture's input tensor), at 224 and at other sizes.

import Checkpoint
import Foundation
import TestSupport
import XCTest

final class ClassifyTests: XCTestCase {
    let image = sharedDirectory() + "/images/imagenet-val/ILSVRC2012_val_00000004.JPEG"

    func testFixtureLogitsThroughTheTool() throws {
        let dir = temporaryDirectory()
        let run = try runTool(["classify", "--model", referencePath("swin_nano.pth"), "--arch", referencePath("swin_nano.json"),
                               "--images", image, "--logits", dir + "/logits.safetensors", "--json", dir + "/top.json", "--top", "3"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let got = try XCTUnwrap(SafeTensors.readDictionary(path: dir + "/logits.safetensors")["logits"])
        XCTAssertEqual(got.shape, [1, 1000])
        let ref = try XCTUnwrap(SafeTensors.readDictionary(path: referencePath("swin_nano_expected.safetensors"))["logits"])
        let check = maxAbsCheck(got.values, ref.values)
        XCTAssertLessThanOrEqual(check.diff, check.limit)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/top.json"))) as? [String: Any])
        let images = try XCTUnwrap(json["images"] as? [[String: Any]])
        let top = try XCTUnwrap(images.first?["top"] as? [[String: Any]])
        XCTAssertEqual(top.count, 3)
        let best = ref.values.indices.max { ref.values[$0] < ref.values[$1] }!
        XCTAssertEqual(top.first?["class"] as? Int, best)
        XCTAssertTrue(run.stdout.contains("ILSVRC2012_val_00000004.JPEG"))
    }

    func testOtherInputSizes() throws {
        for size in ["448", "320"] {
            let run = try runTool(["classify", "--model", referencePath("convnext_nano.pth"), "--arch", referencePath("convnext_nano.json"),
                                   "--images", image, "--size", size, "--top", "1"])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertTrue(run.stdout.contains("at \(size)px"), run.stdout)
        }
        let run = try runTool(["classify", "--model", referencePath("swin_nano.pth"), "--arch", referencePath("swin_nano.json"),
                               "--images", image, "--size", "320", "--top", "1"])
        XCTAssertEqual(run.status, 0, run.stderr)
    }

    func testUntrainedPresetSaysSo() throws {
        let run = try runTool(["classify", "--model", "unified_convnext_micro", "--images", image, "--top", "2"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("UNTRAINED"))
        XCTAssertTrue(run.stdout.contains("(untrained)"))
    }
}
