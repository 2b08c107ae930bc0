// The command line on bad input: each case must end with exactly one error line on stderr that names
// the file or option and the problem, exit status 1, no crash or trap, and no output file written.

import Foundation
import TestSupport
import XCTest

final class BadInputTests: XCTestCase {
    let image = sharedDirectory() + "/images/imagenet-val/ILSVRC2012_val_00000004.JPEG"

    func assertOneLineError(_ args: [String], mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try runTool(args)
        XCTAssertEqual(run.status, 1, "exit status for \(args): stderr \(run.stderr)", file: file, line: line)
        let lines = run.stderr.split(separator: "\n").filter { !$0.hasPrefix("warning:") }
        XCTAssertEqual(lines.count, 1, "expected one error line, got: \(run.stderr)", file: file, line: line)
        XCTAssertTrue(lines.first?.hasPrefix("stm-analyze: error: ") ?? false, run.stderr, file: file, line: line)
        for m in mentions { XCTAssertTrue(run.stderr.contains(m), "error should mention '\(m)': \(run.stderr)", file: file, line: line) }
        XCTAssertFalse(run.stderr.contains("Fatal error"), file: file, line: line)
    }

    func testMissingCheckpoint() throws {
        try assertOneLineError(["inspect", "--model", "/nonexistent/model.pth"], mentions: ["/nonexistent/model.pth", "no such"])
        try assertOneLineError(["classify", "--model", "/nonexistent/model.pth", "--images", image], mentions: ["/nonexistent/model.pth"])
    }

    func testRandomBytes() throws {
        let dir = temporaryDirectory()
        let path = dir + "/random.pth"
        var rng = SystemRandomNumberGenerator()
        FileManager.default.createFile(atPath: path, contents: Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }))
        try assertOneLineError(["inspect", "--model", path], mentions: [path])
        try assertOneLineError(["classify", "--model", path, "--images", image], mentions: [path])
    }

    func testTruncatedArchive() throws {
        let dir = temporaryDirectory()
        let path = dir + "/truncated.pth"
        let full = try XCTUnwrap(FileManager.default.contents(atPath: referencePath("swin_nano.pth")))
        FileManager.default.createFile(atPath: path, contents: full.prefix(full.count / 2))
        try assertOneLineError(["inspect", "--model", path], mentions: [path])
        try assertOneLineError(["classify", "--model", path, "--arch", referencePath("swin_nano.json"), "--images", image], mentions: [path])
    }

    func testWrongFamilyForArch() throws {
        try assertOneLineError(["classify", "--model", referencePath("swin_nano.pth"), "--arch", referencePath("convnext_nano.json"), "--images", image],
                               mentions: ["swin_nano.pth", "missing", "swin"])
        try assertOneLineError(["inspect", "--model", referencePath("convnext_nano.pth"), "--arch", "unified_swin_tiny"],
                               mentions: ["convnext_nano.pth"])
    }

    func testImpossibleOptions() throws {
        try assertOneLineError(["classify", "--model", "unified_convnext_micro", "--images", image, "--size", "0"], mentions: ["--size"])
        try assertOneLineError(["classify", "--model", "unified_convnext_micro", "--images", image, "--crop-pct", "-1"], mentions: ["--crop-pct"])
        try assertOneLineError(["classify", "--model", "not_a_preset", "--images", image], mentions: ["not_a_preset"])
        try assertOneLineError(["classify", "--model", "unified_convnext_micro", "--images", "/nonexistent/dir"], mentions: ["/nonexistent/dir"])
        let dir = temporaryDirectory()
        try assertOneLineError(["classify", "--model", "unified_convnext_micro", "--images", image, "--json", dir + "/missing/out.json"], mentions: ["--json"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/missing"))
        try assertOneLineError(["classify", "--model", "unified_convnext_micro", "--images", dir], mentions: [dir])
    }

    func testCorruptImage() throws {
        let dir = temporaryDirectory()
        let path = dir + "/broken.jpg"
        let full = try XCTUnwrap(FileManager.default.contents(atPath: image))
        FileManager.default.createFile(atPath: path, contents: full.prefix(300))
        try assertOneLineError(["classify", "--model", "unified_convnext_micro", "--images", path], mentions: [path])
    }
}
