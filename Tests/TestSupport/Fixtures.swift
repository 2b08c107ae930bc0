// Test support: locating ../shared and comparing with the reference's tolerances.

import Checkpoint
import Foundation
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
