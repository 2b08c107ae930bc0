// ImagingTests: loading and listing files, and the one-line errors for missing, foreign, corrupt and
// truncated files and for directories without images. Uses a temporary folder it removes again.

import XCTest
import Foundation
@testable import Imaging

final class LoadingTests: XCTestCase {
    private var tmp = ""

    override func setUpWithError() throws {
        tmp = NSTemporaryDirectory() + "imaging-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: tmp)
    }

    private func write(_ bytes: [UInt8], _ name: String) -> String {
        let p = tmp + "/" + name
        XCTAssertTrue(FileManager.default.createFile(atPath: p, contents: Data(bytes)), "cannot write \(p)")
        return p
    }

    private func assertOneLine(_ text: String, naming path: String, contains words: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(text.contains("\n"), "not one line: \(text)", file: file, line: line)
        XCTAssertTrue(text.contains(path), "does not name \(path): \(text)", file: file, line: line)
        XCTAssertTrue(text.lowercased().contains(words), "does not say '\(words)': \(text)", file: file, line: line)
    }

    func testMissingFile() {
        let p = tmp + "/nope.jpg"
        assertOneLine(imagingErrorText { _ = try loadImage(path: p) }, naming: p, contains: "no such file")
    }

    func testRandomBytes() {
        // A fixed pseudo-random byte sequence (linear congruential), no JPEG or PNG signature possible.
        var state: UInt32 = 12345
        let bytes: [UInt8] = (0..<1000).map { _ in
            state = state &* 1_103_515_245 &+ 12345
            return UInt8(truncatingIfNeeded: state >> 16) & 0x7F
        }
        let p = write(bytes, "random.jpg")
        assertOneLine(imagingErrorText { _ = try loadImage(path: p) }, naming: p, contains: "not a jpeg or png")
    }

    func testGarbageAfterTheJPEGMarker() {
        let p = write([0xFF, 0xD8, 0xFF] + [UInt8](repeating: 0x42, count: 500), "garbage.jpg")
        assertOneLine(imagingErrorText { _ = try loadImage(path: p) }, naming: p, contains: "cannot decode jpeg")
    }

    func testTruncatedJPEGHeader() throws {
        let full = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TestData.path(TestData.evalImage))))
        let p = write(Array(full.prefix(300)), "head.jpg")
        assertOneLine(imagingErrorText { _ = try loadImage(path: p) }, naming: p, contains: "truncated")
    }

    func testJPEGTruncatedInsideTheScan() throws {
        let full = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TestData.path(TestData.evalImage))))
        let p = write(Array(full.prefix(full.count / 2)), "half.jpg")
        assertOneLine(imagingErrorText { _ = try loadImage(path: p) }, naming: p, contains: "truncated")
    }

    func testEmptyFileAndDirectoryAsImage() {
        let p = write([], "empty.png")
        assertOneLine(imagingErrorText { _ = try loadImage(path: p) }, naming: p, contains: "empty")
        assertOneLine(imagingErrorText { _ = try loadImage(path: tmp) }, naming: tmp, contains: "directory")
    }

    func testEmptyDirectoryHasNoImages() {
        assertOneLine(imagingErrorText { _ = try listImages([tmp]) }, naming: tmp, contains: "no images found")
    }

    func testListingFiltersAndSortsByName() throws {
        let jpeg = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TestData.path(TestData.evalImage))))
        _ = write(jpeg, "b.JPG")
        _ = write(jpeg, "a.jpeg")
        _ = write([1, 2, 3], "c.png")
        _ = write([1, 2, 3], "notes.txt")
        _ = write([1, 2, 3], "Z.Png")
        try FileManager.default.createDirectory(atPath: tmp + "/sub.jpg", withIntermediateDirectories: false)
        _ = write(jpeg, "sub.jpg/inner.jpg")
        let explicit = tmp + "/notes.txt"
        let listed = try listImages([tmp, explicit])
        XCTAssertEqual(listed, ["Z.Png", "a.jpeg", "b.JPG", "c.png"].map { tmp + "/" + $0 } + [explicit])
        let missing = tmp + "/gone"
        assertOneLine(imagingErrorText { _ = try listImages([missing]) }, naming: missing, contains: "no such file")
    }

    func testLoadsByContentNotByName() throws {
        let jpeg = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TestData.path(TestData.evalImage))))
        let p = write(jpeg, "actually-a-jpeg.png")
        let image = try loadImage(path: p)
        XCTAssertEqual(image.width, 500)
        XCTAssertEqual(image.height, 375)
        XCTAssertEqual(image.channels, 3)
    }
}
