// Inputs the fuzz targets (Fuzz/, `make fuzz`) found to misbehave, kept as files under
// Tests/ImagingTests/Fuzz/: every reader must give an image or one clean error naming the file. They
// are also seeds of every later fuzz run, where the sanitizers check what this test cannot (leaks).
//   empty.png  0 bytes. FuzzPNG: Foundation's FileManager.contents(atPath:) leaked 4 KiB per empty
//              file read by readImageHeader/loadImage; the files are now read with POSIX calls.

import Foundation
@testable import Imaging
import XCTest

final class FuzzRegressionTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fuzz").path

    func testEveryFuzzFindingGivesACleanError() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.folder).sorted()
        XCTAssertTrue(names.contains("empty.png"), "\(names)")
        for name in names {
            let path = Self.folder + "/" + name
            // (Read with the library's POSIX reader: Foundation's Data(contentsOf:) leaks 4 KiB on an empty file.)
            let bytes = try readFileBytes(path)
            let readers: [(String, () throws -> Void)] = [
                ("readImageHeader", { _ = try readImageHeader(path: path) }),
                ("loadImage", { _ = try loadImage(path: path) }),
                ("PNGCodec.decode", { _ = try PNGCodec.decode(bytes, path: path, keepAlpha: true) }),
                ("JPEGCodec.decode", { _ = try JPEGCodec.decode(bytes, path: path) }),
            ]
            for (reader, read) in readers {
                do {
                    try read()
                } catch let error as ImagingError {
                    XCTAssertTrue(error.description.hasPrefix(path + ": "), "\(reader) \(name): \(error)")
                    XCTAssertFalse(error.description.contains("\n"), "\(reader) \(name): \(error)")
                } catch {
                    XCTFail("\(reader) \(name): not an ImagingError: \(error)")
                }
            }
        }
    }

    func testAnEmptyFileIsNamedEmpty() {
        let path = Self.folder + "/empty.png"
        XCTAssertThrowsError(try readImageHeader(path: path)) { XCTAssertTrue("\($0)".contains("is empty, not an image"), "\($0)") }
        XCTAssertThrowsError(try loadImage(path: path)) { XCTAssertTrue("\($0)".contains("is empty"), "\($0)") }
    }
}
