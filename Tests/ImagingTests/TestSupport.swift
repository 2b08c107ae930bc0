// ImagingTests: shared helpers. Locates the test data in ../shared beside the package (tests that need
// it fail, never skip, when it is missing), hashes pixel buffers, and compares an image against an
// NCHW reference tensor in 8-bit levels. Layout key: Image8 is H x W x C (HWC); reference tensors are
// [1, 3, H, W] (NCHW), normalised with the ImageNet mean/std.

import XCTest
import Foundation
import Checkpoint
@testable import Imaging

enum TestData {
    /// The package root: the first folder above this file that holds Package.swift.
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
            url = url.deletingLastPathComponent()
        }
        return FileManager.default.currentDirectoryPath
    }()

    /// `../shared` next to the package root, resolved.
    static let shared = URL(fileURLWithPath: packageRoot).deletingLastPathComponent().appendingPathComponent("shared").standardized.path

    /// The path of a file under ../shared, failing the test when it is missing.
    static func path(_ relative: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let p = shared + "/" + relative
        guard FileManager.default.fileExists(atPath: p) else {
            XCTFail("test data missing: \(p) (the tests expect ../shared beside the package)", file: file, line: line)
            throw ImagingError(p, "test data missing")
        }
        return p
    }

    static let evalImage = "images/imagenet-val/ILSVRC2012_val_00000004.JPEG"
}

/// FNV-1a 64-bit hash of a byte buffer (matches the Python snippet quoted where reference hashes are used).
func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes {
        h ^= UInt64(b)
        h = h &* 0x0000_0100_0000_01b3
    }
    return h
}

/// Compares `image` (H x W x 3) after ToTensor + Normalize against a [1, 3, H, W] reference tensor.
/// - Returns: the share of values within one 8-bit level (|diff| * std <= 1/255 + 1e-4) and the
///   largest difference in 8-bit levels.
func shareWithinOneLevel(_ image: Image8, _ reference: TensorRecord) -> (share: Double, maxLevels: Double) {
    let h = image.height, w = image.width
    guard reference.shape == [1, 3, h, w], image.channels == 3 else { return (0, .infinity) }
    let ours = toTensorHWC(image, mean: imageNetMean, std: imageNetStd)
    var within = 0
    var worst = 0.0
    for c in 0..<3 {
        for y in 0..<h {
            for x in 0..<w {
                let a = ours[(y * w + x) * 3 + c]
                let b = reference.values[(c * h + y) * w + x]
                let levels = Double(abs(a - b)) * Double(imageNetStd[c]) * 255
                worst = max(worst, levels)
                if levels <= 1 + 255e-4 { within += 1 }
            }
        }
    }
    return (Double(within) / Double(3 * h * w), worst)
}

/// A small deterministic test image whose pixel values depend on position and channel.
func patternImage(width: Int, height: Int, channels: Int = 3) -> Image8 {
    var pixels = [UInt8](repeating: 0, count: width * height * channels)
    for y in 0..<height {
        for x in 0..<width {
            for c in 0..<channels {
                pixels[(y * width + x) * channels + c] = UInt8((x * 37 + y * 91 + c * 53 + (x * y) % 17) % 256)
            }
        }
    }
    return Image8(width: width, height: height, channels: channels, pixels: pixels)
}

/// The one-line description of a thrown error, failing the test when nothing or something else is thrown.
func imagingErrorText(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
    do {
        try body()
        XCTFail("expected an ImagingError, nothing was thrown", file: file, line: line)
    } catch let error as ImagingError {
        return error.description
    } catch {
        XCTFail("expected an ImagingError, got \(error)", file: file, line: line)
    }
    return ""
}
