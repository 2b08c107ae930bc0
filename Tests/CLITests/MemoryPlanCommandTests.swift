// Runs too large for the memory and absurd architectures: one error line with a hint, exit status 1,
// nothing written, never the tensor core's out-of-memory trap.

import Foundation
import TestSupport
import XCTest

final class MemoryPlanCommandTests: XCTestCase {
    static let images = sharedDirectory() + "/images/imagenet-val"
    static let image = images + "/ILSVRC2012_val_00000004.JPEG"

    private func assertOneLineError(_ args: [String], _ words: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try runTool(args)
        XCTAssertEqual(run.status, 1, run.stderr, file: file, line: line)
        let lines = run.stderr.split(separator: "\n").filter { !$0.hasPrefix("warning:") }
        XCTAssertEqual(lines.count, 1, run.stderr, file: file, line: line)
        for w in words { XCTAssertTrue(run.stderr.contains(w), "'\(w)' not in: \(run.stderr)", file: file, line: line) }
        XCTAssertFalse(run.stderr.contains("Fatal error") || run.stderr.contains("out of memory allocating"), run.stderr, file: file, line: line)
    }

    private func arch(dims: [Int], depths: [Int] = [2, 2, 2, 2]) -> String {
        let path = temporaryDirectory() + "/wide.json"
        let text = #"{"family": "convnext", "img_size": 224, "dims": \#(dims), "depths": \#(depths), "block_kwargs": {}, "extra_transform_ratio": 1.5, "num_classes": 1000, "layer_norm_eps": 1e-6}"#
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }

    func testLargeBatchAndSizeOverTheBudgetIsRefusedWithAHint() throws {
        let out = temporaryDirectory() + "/erf"
        try assertOneLineError(["erf", "--model", "unified_convnext_micro", "--images", Self.images, "--size", "1024", "--batch", "8",
                                "--max-memory", "1G", "--out", out],
                               ["unified_convnext_micro: the run would need about", "over the 1.0 GiB allowed by --max-memory", "--batch 1", "a smaller --size"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        try assertOneLineError(["classify", "--model", "unified_convnext_micro", "--images", Self.image, "--size", "4096", "--max-memory", "100M"],
                               ["the run would need about", "a smaller --size"])
        try assertOneLineError(["invariance", "rotate", "--model", "unified_convnext_micro", "--images", Self.image, "--levels", "0,5",
                                "--max-memory", "64M", "--size", "2048", "--out", temporaryDirectory() + "/inv"],
                               ["the run would need about", "--batch 1"])
        // The same run within the budget works.
        let ok = try runTool(["erf", "--model", "unified_convnext_micro", "--init-layer-scale", "1", "--images", Self.image, "--size", "64",
                              "--stages", "4", "--max-memory", "1G", "--out", out])
        XCTAssertEqual(ok.status, 0, ok.stderr)
    }

    func testWideArchitecturesNeverTrap() throws {
        // Past the field's range: refused while reading the file.
        let huge = arch(dims: [100_000, 100_000, 100_000, 100_000])
        try assertOneLineError(["classify", "--model", "unified_convnext_micro", "--arch", huge, "--images", Self.image],
                               [huge, "dims[0] must be between 2 and 16384, got 100000"])
        // Inside the range but far over the memory: refused before a single weight is allocated.
        let wide = arch(dims: [16_384, 16_384, 16_384, 16_384])
        try assertOneLineError(["erf", "--model", "unified_convnext_micro", "--arch", wide, "--images", Self.image, "--max-memory", "8G",
                                "--out", temporaryDirectory() + "/e"],
                               ["the model's parameters alone need", "use a smaller architecture"])
    }

    func testMaxMemoryMustBeASize() throws {
        let run = try runTool(["erf", "--model", "unified_convnext_micro", "--images", Self.image, "--max-memory", "lots"])
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("--max-memory takes a positive size such as 3G"), run.stderr)
    }
}
