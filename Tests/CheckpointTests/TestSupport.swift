// Test support: where the shared reference data lives (`../shared` beside the package root, found from
// this file's path) and scratch files for archives the tests build. Missing shared data makes the tests
// fail, never skip.

import Checkpoint
import Foundation
import XCTest

enum TestData {
    /// The folder holding Package.swift, found by walking up from this source file.
    static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
            url = url.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    }()

    /// A file of `../shared/reference/`; the calling test fails if it is missing.
    static func reference(_ name: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        let path = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/reference/\(name)").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: path), "missing shared test data \(path)", file: file, line: line)
        return path
    }
}

/// A fresh scratch folder, removed when the test case ends.
final class ScratchFolder {
    let url: URL

    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("checkpoint-tests-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// Writes `bytes` to a file called `name` in the folder and returns its path.
    func write(_ bytes: [UInt8], as name: String) -> String {
        let path = url.appendingPathComponent(name).path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)), "cannot write \(path)")
        return path
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

/// Runs `body`, which must throw a `CheckpointError`; returns its one-line description.
func checkpointErrorDescription(_ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line) -> String {
    do {
        _ = try body()
        XCTFail("expected a CheckpointError, but reading succeeded", file: file, line: line)
        return ""
    } catch let error as CheckpointError {
        return error.description
    } catch {
        XCTFail("expected a CheckpointError, got \(type(of: error)): \(error)", file: file, line: line)
        return "\(error)"
    }
}
