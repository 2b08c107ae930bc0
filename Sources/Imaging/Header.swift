// Imaging: what can be known about an image file without decoding it. `readImageHeader` reads a JPEG's
// or PNG's size from its header and checks that the file is complete (a JPEG's last scan is followed by
// its end-of-image marker; every PNG chunk up to IEND lies inside the file), so that a run can refuse or
// skip a bad image before its first forward pass instead of after all the compute. The pixel limit
// (Pillow's default, 89,478,485 pixels) is checked here and again by the decoders, before any pixel is
// decoded. Not checked here: the entropy-coded data itself (only a full decode can).

import CJPEG
import Foundation

/// The largest image the decoders accept, in pixels.
public enum ImageLimits {
    /// Pillow's `Image.MAX_IMAGE_PIXELS`, 89,478,485: a decompression-bomb guard (a 20000 x 20000 PNG
    /// is a few megabytes on disk and 1.2 GB decoded).
    public static let defaultMaxPixels = 89_478_485
    /// The limit in force; the command line's `--max-pixels` sets it once, before any image is read.
    nonisolated(unsafe) public static var maxPixels = defaultMaxPixels

    /// Throws when a `width` x `height` image exceeds `maxPixels`.
    static func check(width: Int, height: Int, format: String, path: String) throws {
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, pixels <= maxPixels else {
            throw ImagingError(path, "\(format) of \(width)x\(height) pixels exceeds the limit of \(maxPixels) pixels; not decoded",
                               hint: "--max-pixels raises the limit (the default is Pillow's); or downscale the image")
        }
    }
}

/// An image file's format and size, read from its header.
public struct ImageHeader: Sendable, Equatable {
    /// "JPEG" or "PNG".
    public var format: String
    public var width: Int
    public var height: Int
}

/// Reads the format and size of a JPEG or PNG file and checks that it is complete and within
/// `ImageLimits.maxPixels`, without decoding its pixels.
/// - Throws: `ImagingError` naming the file: missing, not a regular file, not JPEG or PNG, a corrupt
///   header, truncated, or over the pixel limit.
public func readImageHeader(path: String) throws -> ImageHeader {
    let bytes = try readFileBytes(path)
    if JPEGCodec.looksLike(bytes) {
        var message = [CChar](repeating: 0, count: 256)
        var width: Int32 = 0, height: Int32 = 0
        let status = bytes.withUnsafeBufferPointer { data in
            stm_jpeg_decode_rgb(data.baseAddress, data.count, &width, &height, nil, &message, message.count)
        }
        guard status == 0 else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImagingError(path, "cannot read the JPEG header: \(text.isEmpty ? "unknown libjpeg error" : text)",
                               hint: "the file is corrupt or not a JPEG")
        }
        guard width > 0, height > 0 else { throw ImagingError(path, "JPEG header gives an empty image (\(width)x\(height))") }
        // Inside entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so the last
        // start-of-scan (FF DA) of a complete file is followed by its end-of-image marker (FF D9).
        guard let sos = lastMarker(bytes, 0xDA), let eoi = lastMarker(bytes, 0xD9), eoi > sos else {
            throw ImagingError(path, "JPEG is truncated: no end-of-image marker after its last scan",
                               hint: "the file is incomplete; copy or download it again")
        }
        try ImageLimits.check(width: Int(width), height: Int(height), format: "JPEG", path: path)
        return ImageHeader(format: "JPEG", width: Int(width), height: Int(height))
    }
    if bytes.starts(with: PNGCodec.signature) {
        let (width, height) = try PNGCodec.headerSize(bytes, path: path)
        // Walk the chunks (length, type, data, CRC) up to IEND: a truncated file ends inside one.
        var p = 8
        var sawEnd = false
        while p + 8 <= bytes.count {
            let length = Int(bytes[p]) << 24 | Int(bytes[p + 1]) << 16 | Int(bytes[p + 2]) << 8 | Int(bytes[p + 3])
            let type = String(decoding: bytes[(p + 4)..<(p + 8)], as: UTF8.self)
            guard length <= bytes.count - p - 12 else { break }
            p += 12 + length
            if type == "IEND" { sawEnd = true; break }
        }
        guard sawEnd else {
            throw ImagingError(path, "PNG is truncated: its chunks end before the IEND chunk",
                               hint: "the file is incomplete; copy or download it again")
        }
        try ImageLimits.check(width: width, height: height, format: "PNG", path: path)
        return ImageHeader(format: "PNG", width: width, height: height)
    }
    let lead = bytes.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")
    throw ImagingError(path, bytes.isEmpty ? "is empty, not an image" : "is not a JPEG or PNG image (starts with \(lead))",
                       hint: "convert it to JPEG or PNG")
}

/// The offset of the last `FF <code>` marker in `bytes`.
private func lastMarker(_ bytes: [UInt8], _ code: UInt8) -> Int? {
    var i = bytes.count - 2
    while i >= 2 {
        if bytes[i] == 0xFF && bytes[i + 1] == code { return i }
        i -= 1
    }
    return nil
}
