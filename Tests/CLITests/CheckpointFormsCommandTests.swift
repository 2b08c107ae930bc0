// Checkpoints as users have them, end to end through the tool: a backbone-only checkpoint under an
// mmdetection `backbone.` prefix runs `erf`; `classify` and `invariance` refuse it in one line;
// `inspect` says which prefix was stripped and which form the model has; the released files'
// preset spellings are accepted; a mistyped preset gets the closest names; `inspect --arch` is
// honoured for a preset; `--key-prefix` names another prefix.

import Checkpoint
import Foundation
import TestSupport
import XCTest

final class CheckpointFormsCommandTests: XCTestCase {
    let image = sharedDirectory() + "/images/imagenet-val/ILSVRC2012_val_00000004.JPEG"

    /// convnext nano without conv_head/head, keys under `prefix`.
    private func backboneOnly(prefix: String) throws -> String {
        let entries = try readCheckpoint(path: referencePath("convnext_nano.pth")).entries
            .filter { !$0.0.hasPrefix("conv_head.") && !$0.0.hasPrefix("head.") }
        let path = temporaryDirectory() + "/backbone_only.safetensors"
        try SafeTensors.write(path: path, tensors: entries.map { (prefix + $0.0, $0.1) })
        return path
    }

    private func assertOneLineError(_ run: ToolRun, mentions: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(run.status, 1, run.stderr, file: file, line: line)
        let lines = run.stderr.split(separator: "\n").filter { !$0.hasPrefix("warning:") }
        XCTAssertEqual(lines.count, 1, run.stderr, file: file, line: line)
        for m in mentions { XCTAssertTrue(run.stderr.contains(m), "should mention '\(m)': \(run.stderr)", file: file, line: line) }
    }

    func testBackboneOnlyCheckpointRunsErfOnly() throws {
        let path = try backboneOnly(prefix: "backbone.")
        let out = temporaryDirectory()
        let erf = try runTool(["erf", "--model", path, "--images", image, "--num-images", "1", "--stages", "2", "--size", "96", "--out", out])
        XCTAssertEqual(erf.status, 0, erf.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/erf.json"))
        assertOneLineError(try runTool(["classify", "--model", path, "--images", image]), mentions: [path, "no classification head"])
        assertOneLineError(try runTool(["invariance", "rotate", "--model", path, "--images", image, "--levels", "0,5", "--out", temporaryDirectory()]),
                           mentions: [path, "no classification head"])
        let inspect = try runTool(["inspect", "--model", path])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("key prefix   'backbone.' stripped"), inspect.stdout)
        XCTAssertTrue(inspect.stdout.contains("form         backbone only"), inspect.stdout)
    }

    func testNamedKeyPrefix() throws {
        let path = try backboneOnly(prefix: "trunk.")
        assertOneLineError(try runTool(["inspect", "--model", path]), mentions: [path, "--key-prefix trunk."])
        let inspect = try runTool(["inspect", "--model", path, "--key-prefix", "trunk."])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("key prefix   'trunk.' stripped"), inspect.stdout)
    }

    func testPresetSpellingsAndSuggestions() throws {
        let halonet = try runTool(["inspect", "--model", "unified_halonet_micro"])
        XCTAssertEqual(halonet.status, 0, halonet.stderr)
        XCTAssertTrue(halonet.stdout.contains("family       halo"), halonet.stdout)
        let internimage = try runTool(["inspect", "--model", "unified_internimage_micro"])
        XCTAssertEqual(internimage.status, 0, internimage.stderr)
        XCTAssertTrue(internimage.stdout.contains("family       dcnv3"), internimage.stdout)
        assertOneLineError(try runTool(["classify", "--model", "unified_swin_huge", "--images", image]),
                           mentions: ["unified_swin_huge: no such file or preset", "closest presets: unified_swin_"])
        let arch = try runTool(["inspect", "--model", "unified_swin_micro", "--arch", referencePath("swin_nano.json")])
        XCTAssertEqual(arch.status, 0, arch.stderr)
        XCTAssertTrue(arch.stdout.contains("dims         [16, 32, 64, 128]"), arch.stdout)
    }
}
