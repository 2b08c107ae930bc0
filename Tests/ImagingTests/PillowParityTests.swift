// ImagingTests: bit-exactness against Pillow 13. The expected values are FNV-1a 64-bit hashes of the
// pixel bytes that Pillow 13.0 (with its bundled libjpeg-turbo) produced on this project's test images:
// `Image.open(p).convert("RGB").tobytes()` for decoding, `.resize((w, h), BICUBIC | BILINEAR)` for
// resizing and `.rotate(angle, BICUBIC)` for rotation, hashed with the same FNV-1a as `fnv1a` here.
// Two tiny JPEGs made with Pillow (a CMYK one with an Adobe marker, a progressive RGB one) are embedded
// as base64 with the hash and first pixels of Pillow's RGB decode.
// Layout key: Image8 is H x W x 3 (HWC); hashes cover the bytes row by row.

import XCTest
import Foundation
@testable import Imaging

final class PillowParityTests: XCTestCase {
    private let decodeHashes: [(String, UInt64)] = [
        ("imagenet-val/ILSVRC2012_val_00000004.JPEG", 0x7244586e02ab9ae5),
        ("imagenet-val/ILSVRC2012_val_00000019.JPEG", 0x76eca449795e9240),
        ("imagenet-val/ILSVRC2012_val_00000078.JPEG", 0xefa2260f91df7c95),
        ("imagenet-val/ILSVRC2012_val_00000098.JPEG", 0xe75d77e86de0d004),
        ("imagenet-val/ILSVRC2012_val_00000109.JPEG", 0x98c5288d13bf6e93),
        ("imagenet-val/ILSVRC2012_val_00000118.JPEG", 0xa2ffd6d19f250d85),  // a grayscale JPEG
        ("imagenet-val/ILSVRC2012_val_00000160.JPEG", 0xb47d1bf9bce63b30),
        ("imagenet-val/ILSVRC2012_val_00000302.JPEG", 0xd2586a7434ebabf5),
        ("public-domain/rocket.jpg", 0x34b9b35d9b0edb19),
    ]

    func testJPEGDecodingMatchesPillow() throws {
        for (name, hash) in decodeHashes {
            let image = try loadImage(path: TestData.path("images/" + name))
            XCTAssertEqual(image.channels, 3, name)
            XCTAssertEqual(fnv1a(image.pixels), hash, "decoded pixels of \(name) differ from Pillow's")
        }
    }

    func testGrayscaleJPEGIsReplicatedIntoRGB() throws {
        let image = try loadImage(path: TestData.path("images/imagenet-val/ILSVRC2012_val_00000118.JPEG"))
        XCTAssertEqual(image.width, 500)
        XCTAssertEqual(image.height, 500)
        for i in Swift.stride(from: 0, to: image.pixels.count, by: 3) {
            guard image.pixels[i] == image.pixels[i + 1], image.pixels[i] == image.pixels[i + 2] else {
                return XCTFail("pixel \(i / 3) of a grayscale JPEG is not grey")
            }
        }
    }

    func testResizeMatchesPillow() throws {
        let image = try loadImage(path: TestData.path("images/imagenet-val/ILSVRC2012_val_00000019.JPEG"))
        let cases: [(Int, Int, ResampleFilter, UInt64)] = [
            (341, 256, .bicubic, 0xc3a5e2a6f326287f),
            (256, 341, .bicubic, 0x6bf08f46ea8452f3),
            (731, 613, .bicubic, 0x2afd04fac8682051),
            (123, 300, .bicubic, 0x9293387b6167a9a9),
            (500, 200, .bicubic, 0xf3a0f67a1a9a3571),
            (341, 256, .bilinear, 0xa597d77e81600a28),
            (640, 480, .bilinear, 0x6a676f7c1fcd56bb),
            (37, 29, .bilinear, 0x4d4b6c294bdc145e),
        ]
        for (w, h, filter, hash) in cases {
            let out = resize(image, width: w, height: h, filter: filter)
            XCTAssertEqual(out.width, w)
            XCTAssertEqual(out.height, h)
            XCTAssertEqual(fnv1a(out.pixels), hash, "\(filter) resize to \(w)x\(h) differs from Pillow's")
        }
    }

    func testRotateMatchesPillow() throws {
        let image = try loadImage(path: TestData.path("images/imagenet-val/ILSVRC2012_val_00000019.JPEG"))
        let wide = resize(image, width: 341, height: 256)
        let square = crop(wide, left: 58, top: 16, width: 224, height: 224)
        // (angle, hash of the rotated 341x256 image, hash of the rotated 224x224 crop)
        let cases: [(Double, UInt64, UInt64)] = [
            (15, 0x474c779a8b42e313, 0x94c6107064499ffa),
            (37.5, 0x27a70f8b6e1784f8, 0x792abd4bc3c84795),
            (-20, 0xfcf6a0fadcb9c5bb, 0x9dd860b6ec205eea),
            (90, 0xb272a1e0647a387d, 0x0e1f80368b161d98),
            (270, 0x73d926ea05524fc9, 0x787470938656493a),
            (180, 0xe1d2aaf2e660827b, 0x98b14a452604b37a),
            (123.25, 0x19de4579fc43c5a7, 0x5b175f72bda4a869),
        ]
        for (angle, wideHash, squareHash) in cases {
            XCTAssertEqual(fnv1a(rotate(wide, degrees: angle).pixels), wideHash, "rotate(\(angle)) of 341x256")
            XCTAssertEqual(fnv1a(rotate(square, degrees: angle).pixels), squareHash, "rotate(\(angle)) of 224x224")
        }
    }

    /// A 13x9 CMYK JPEG with an Adobe APP14 marker (transform 0), written by Pillow.
    private let cmykJPEG = [
        "/9j/7gAOQWRvYmUAZAAAAAAA/9sAQwADAgIDAgIDAwMDBAMDBAUIBQUEBAUKBwcGCAwKDAwLCgsLDQ4SEA0OEQ4LCxAWEBETFBUV",
        "FQwPFxgWFBgSFBUU/8AAFAgACQANBEMRAE0RAFkRAEsRAP/EAB8AAAEFAQEBAQEBAAAAAAAAAAABAgMEBQYHCAkKC//EALUQAAIB",
        "AwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZH",
        "SElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV",
        "1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5+v/aAA4EQwBNAFkASwAAPwDzHwBbXpntbi8uA8M8hku7O8GDJbCT5EKqgZTGqu+9QQCT",
        "yVwa8xvP2b4bO1uNQj0gzLJ5CC8uLVpfPcq3KuWJRHG04QKSdykDYFrmvA3w90q08EXXibxlA2j2F1Z+Sjxym6FzOYSI1PzEeYRF",
        "EpVeZA2c4RiP1Tr7G8K232bR7e08zVZoNguo2TUJYciUljnyYpGJGNv7wg/JwOpOzB+zVq92EisNL37Io5JmhV1tg7jLLGFgfGG3",
        "Ag42javReOps/DGi6QrQaxo2jG8GwvZ3WlXur30JMakNOsMWYS6GM5dBvYSEO5DBCvg79l7/AJCf/bdP/SG6r660P/jz8T/7un/+",
        "iFrndB/5F34S/wDYa1H/ANKLCiv0T+EP/IIuP+udn/6SQ15/8UP+Qjo//YLg/ka9M/Zu/wCQv4+/7Cbf+jriiv/Z",
    ].joined()

    /// A 13x9 progressive RGB JPEG written by Pillow.
    private let progressiveJPEG = [
        "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAUDBAQEAwUEBAQFBQUGBwwIBwcHBw8LCwkMEQ8SEhEPERETFhwXExQaFRERGCEYGh0d",
        "Hx8fExciJCIeJBweHx7/2wBDAQUFBQcGBw4ICA4eFBEUHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4e",
        "Hh4eHh4eHh7/wgARCAAJAA0DASIAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAABQT/xAAVAQEBAAAAAAAAAAAAAAAAAAAAA//a",
        "AAwDAQACEAMQAAABJXqQm//EABkQAAMAAwAAAAAAAAAAAAAAAAIEEQExQf/aAAgBAQABBQIE5gFCimu//8QAGBEAAgMAAAAAAAAA",
        "AAAAAAAAAAMBBAX/2gAIAQMBAT8By7jGwf/EABoRAAICAwAAAAAAAAAAAAAAAAECAAMRMfD/2gAIAQIBAT8BF5ZxX2sz/8QAHhAA",
        "AgEDBQAAAAAAAAAAAAAAAAECETGBElGRsfD/2gAIAQEABj8C1uN91coo+4Hjowj/xAAdEAACAgEFAAAAAAAAAAAAAAABEQAhMXGB",
        "oeHw/9oACAEBAAE/IQFoIyzptEhJoEpq9CnNkcPVT//aAAwDAQACAAMAAAAQf//EABoRAAEFAQAAAAAAAAAAAAAAABEAASExQVH/",
        "2gAIAQMBAT8QvgPZxl//xAAaEQACAgMAAAAAAAAAAAAAAAABESExQVFh/9oACAECAQE/EASAoSZsJJbQrrx//8QAGxABAQACAwEA",
        "AAAAAAAAAAAAAREhMQAQQWH/2gAIAQEAAT8QoTlS9JHYgP1TRzCtWknJCjdMyQPOzTv/2Q==",
    ].joined()

    func testCMYKJPEGConvertsLikePillow() throws {
        let bytes = try XCTUnwrap(Data(base64Encoded: cmykJPEG))
        let image = try JPEGCodec.decode([UInt8](bytes), path: "cmyk.jpg")
        XCTAssertEqual(image.width, 13)
        XCTAssertEqual(image.height, 9)
        XCTAssertEqual(Array(image.pixels.prefix(9)), [90, 62, 93, 108, 58, 105, 100, 25, 23])
        XCTAssertEqual(fnv1a(image.pixels), 0xcd23d05d0b327b54)
    }

    func testProgressiveJPEGDecodesLikePillow() throws {
        let bytes = try XCTUnwrap(Data(base64Encoded: progressiveJPEG))
        let image = try JPEGCodec.decode([UInt8](bytes), path: "progressive.jpg")
        XCTAssertEqual(Array(image.pixels.prefix(9)), [91, 53, 74, 112, 69, 97, 82, 25, 70])
        XCTAssertEqual(fnv1a(image.pixels), 0x627867c08eed5046)
    }
}
