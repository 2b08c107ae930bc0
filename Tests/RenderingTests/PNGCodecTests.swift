// RenderingTests: the libpng codec (Imaging's PNGCodec), which the figures write through. Checks round
// trips for 1/3/4 channels, byte-identical re-encoding, the pHYs chunk, the shared public-domain photos,
// colour types the writer never produces (palette + tRNS, 16-bit and 1-bit grey, grey + alpha) built by
// hand, and one-line errors for corrupt, truncated and unwritable files with no temporary file left over.
// Left out: interlaced files (libpng's own test suite covers its de-interlacer).
// Layout key: images are H x W x C bytes, row-major.

import Foundation
import Imaging
import XCTest

final class PNGCodecTests: XCTestCase {
    func testRoundTripKeepsPixelsForOneThreeAndFourChannels() throws {
        let dir = try TestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for channels in [1, 3, 4] {
            let (w, h) = (37, 23)
            let image = Image8(width: w, height: h, channels: channels,
                               pixels: TestSupport.bytes(w * h * channels, seed: UInt32(channels)))
            let path = dir.appendingPathComponent("c\(channels).png").path
            try PNGCodec.write(image, to: path)
            let back = try PNGCodec.read(path: path, keepAlpha: channels == 4)
            XCTAssertEqual(back.width, w)
            XCTAssertEqual(back.height, h)
            switch channels {
            case 1:
                XCTAssertEqual(back.channels, 3)
                XCTAssertEqual(back.pixels, image.pixels.flatMap { [$0, $0, $0] })
            default:
                XCTAssertEqual(back, image)
            }
        }
    }

    func testReadingWithoutAlphaDropsItAndOpaqueFilesGainAlpha() throws {
        let rgba = Image8(width: 5, height: 4, channels: 4, pixels: TestSupport.bytes(80, seed: 9))
        let encoded = try PNGCodec.encode(rgba)
        let rgb = try PNGCodec.decode(encoded, path: "rgba.png")
        XCTAssertEqual(rgb.channels, 3)
        for p in 0..<20 {
            XCTAssertEqual(Array(rgb.pixels[(3 * p)..<(3 * p + 3)]), Array(rgba.pixels[(4 * p)..<(4 * p + 3)]))
        }
        let opaque = Image8(width: 3, height: 2, channels: 3, pixels: TestSupport.bytes(18, seed: 4))
        let withAlpha = try PNGCodec.decode(PNGCodec.encode(opaque), path: "rgb.png", keepAlpha: true)
        XCTAssertEqual(withAlpha.channels, 4)
        XCTAssertEqual(stride(from: 3, to: 24, by: 4).map { withAlpha.pixels[$0] }, [UInt8](repeating: 255, count: 6))
    }

    func testEncodingIsDeterministicAndRecordsDpi() throws {
        let image = Image8(width: 64, height: 48, channels: 3, pixels: TestSupport.bytes(64 * 48 * 3, seed: 7))
        let a = try PNGCodec.encode(image, dpi: 200)
        let b = try PNGCodec.encode(image, dpi: 200)
        XCTAssertEqual(a, b)
        // pHYs: 4-byte x and y pixels per metre, then unit 1 (metre); 200 dpi = 200 / 0.0254 = 7874 per metre.
        guard let at = (0..<(a.count - 13)).first(where: { Array(a[$0..<($0 + 4)]) == Array("pHYs".utf8) }) else {
            return XCTFail("no pHYs chunk written")
        }
        let x = a[(at + 4)..<(at + 8)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let y = a[(at + 8)..<(at + 12)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        XCTAssertEqual(x, 7874)
        XCTAssertEqual(y, 7874)
        XCTAssertEqual(a[at + 12], 1)
        XCTAssertFalse(containsChunk(try PNGCodec.encode(image), "pHYs"), "no dpi, no pHYs chunk")
    }

    private func containsChunk(_ bytes: [UInt8], _ name: String) -> Bool {
        let tag = Array(name.utf8)
        return (0..<(bytes.count - 4)).contains { Array(bytes[$0..<($0 + 4)]) == tag }
    }

    func testReadsTheSharedPublicDomainPhotos() throws {
        let dir = TestSupport.shared.appendingPathComponent("images/public-domain")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".png") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 3, "expected the public-domain PNGs in \(dir.path)")
        for name in names {
            let image = try PNGCodec.read(path: dir.appendingPathComponent(name).path)
            XCTAssertGreaterThan(image.width, 0, name)
            XCTAssertGreaterThan(image.height, 0, name)
            XCTAssertEqual(image.channels, 3, name)
            XCTAssertEqual(image.pixels.count, image.width * image.height * 3, name)
            XCTAssertGreaterThan(Set(image.pixels).count, 100, "\(name) decodes to a real photo")
        }
        let astronaut = try PNGCodec.read(path: dir.appendingPathComponent("astronaut.png").path)
        XCTAssertEqual([astronaut.width, astronaut.height], [512, 512])
    }

    func testPaletteWithTransparencyExpandsToRGBAndOptionallyRGBA() throws {
        // 2-bit palette, 4 entries, entry 1 half transparent; one row of 4 pixels with indices 0, 1, 2, 3.
        let palette: [UInt8] = [10, 20, 30, 40, 50, 60, 70, 80, 90, 200, 210, 220]
        let file = TestSupport.png(width: 4, height: 1, bitDepth: 2, colorType: 3,
                                   scanlines: [[0b0001_1011]], palette: palette, transparency: [255, 128])
        let rgb = try PNGCodec.decode(file, path: "palette.png")
        XCTAssertEqual(rgb.channels, 3)
        XCTAssertEqual(rgb.pixels, palette)
        let rgba = try PNGCodec.decode(file, path: "palette.png", keepAlpha: true)
        XCTAssertEqual(rgba.pixels, [10, 20, 30, 255, 40, 50, 60, 128, 70, 80, 90, 255, 200, 210, 220, 255])
    }

    func testGreyscaleDepthsAndGreyAlphaBecomeRGB() throws {
        // 16-bit grey keeps the high byte.
        let grey16 = TestSupport.png(width: 2, height: 1, bitDepth: 16, colorType: 0, scanlines: [[0x12, 0x34, 0xAB, 0xCD]])
        XCTAssertEqual(try PNGCodec.decode(grey16, path: "g16.png").pixels, [0x12, 0x12, 0x12, 0xAB, 0xAB, 0xAB])
        // 1-bit grey expands 0/1 to 0/255.
        let grey1 = TestSupport.png(width: 3, height: 1, bitDepth: 1, colorType: 0, scanlines: [[0b1010_0000]])
        XCTAssertEqual(try PNGCodec.decode(grey1, path: "g1.png").pixels, [255, 255, 255, 0, 0, 0, 255, 255, 255])
        // Grey + alpha: grey replicated, alpha dropped or kept.
        let greyAlpha = TestSupport.png(width: 1, height: 1, bitDepth: 8, colorType: 4, scanlines: [[77, 99]])
        XCTAssertEqual(try PNGCodec.decode(greyAlpha, path: "ga.png").pixels, [77, 77, 77])
        XCTAssertEqual(try PNGCodec.decode(greyAlpha, path: "ga.png", keepAlpha: true).pixels, [77, 77, 77, 99])
        // 16-bit RGB keeps each sample's high byte.
        let rgb16 = TestSupport.png(width: 1, height: 1, bitDepth: 16, colorType: 2, scanlines: [[1, 2, 3, 4, 5, 6]])
        XCTAssertEqual(try PNGCodec.decode(rgb16, path: "rgb16.png").pixels, [1, 3, 5])
    }

    func testCorruptAndTruncatedFilesGiveOneLineErrorsNamingTheFile() throws {
        let dir = try TestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = try PNGCodec.encode(Image8(width: 40, height: 30, channels: 3,
                                              pixels: TestSupport.bytes(3600, seed: 3)))
        var flipped = good
        flipped[good.count / 2] ^= 0x5A
        let cases: [(String, [UInt8])] = [
            ("garbage.png", Array("this is not a PNG file at all".utf8)),
            ("truncated.png", Array(good[0..<(good.count / 2)])),
            ("header-only.png", Array(good[0..<20])),
            ("corrupt.png", flipped),
            ("empty.png", []),
        ]
        for (name, bytes) in cases {
            let path = dir.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try PNGCodec.read(path: path), name) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(path), "error names the file: \(text)")
                XCTAssertFalse(text.contains("\n"), "one line: \(text)")
            }
        }
        XCTAssertThrowsError(try PNGCodec.read(path: dir.appendingPathComponent("missing.png").path)) { error in
            XCTAssertTrue("\(error)".contains("missing.png"))
        }
    }

    func testFailedWritesLeaveNoFileBehind() throws {
        let dir = try TestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = Image8(width: 4, height: 4, channels: 3, fill: 128)
        // A missing directory: an error naming the path, nothing created.
        let missing = dir.appendingPathComponent("no/such/dir/out.png").path
        XCTAssertThrowsError(try PNGCodec.write(image, to: missing)) { error in
            XCTAssertTrue("\(error)".contains(missing))
            XCTAssertFalse("\(error)".contains("\n"))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
        // The final rename fails (a directory sits at the target): the temporary file must be removed.
        let blocked = dir.appendingPathComponent("blocked.png")
        try FileManager.default.createDirectory(at: blocked.appendingPathComponent("inside"), withIntermediateDirectories: true)
        XCTAssertThrowsError(try PNGCodec.write(image, to: blocked.path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["blocked.png"])
        // Impossible images are refused before any file is touched.
        let bad = dir.appendingPathComponent("two-channel.png").path
        XCTAssertThrowsError(try PNGCodec.write(Image8(width: 2, height: 2, channels: 2, fill: 0), to: bad))
        XCTAssertFalse(FileManager.default.fileExists(atPath: bad))
        // A successful write replaces an existing file.
        let target = dir.appendingPathComponent("replace.png").path
        try PNGCodec.write(Image8(width: 2, height: 2, channels: 3, fill: 10), to: target)
        try PNGCodec.write(image, to: target)
        XCTAssertEqual(try PNGCodec.read(path: target), image)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["blocked.png", "replace.png"])
    }
}
