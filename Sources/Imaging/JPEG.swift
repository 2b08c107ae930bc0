// Imaging: JPEG decoding through libjpeg-turbo, to 8-bit RGB exactly as Pillow's
// `Image.open(p).convert("RGB")` gives it (see Sources/CJPEG/shim.h for the colour handling and the
// setjmp error trap). Layout of the result: H rows of W pixels of 3 interleaved bytes (HWC).
// Not here: JPEG encoding, scaled/draft decoding, 12-bit JPEGs, EXIF orientation, ICC profiles.

import CJPEG

/// JPEG reading through libjpeg-turbo.
public enum JPEGCodec {
    /// Largest image accepted, in pixels: `ImageLimits.maxPixels` (Pillow's `Image.MAX_IMAGE_PIXELS`
    /// by default, `--max-pixels` on the command line).
    public static var maxPixels: Int { ImageLimits.maxPixels }

    /// True when `bytes` start with the JPEG start-of-image marker followed by another marker.
    public static func looksLike(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF
    }

    /// Decodes JPEG bytes held in memory to RGB. `path` is used in messages only.
    /// - Throws: `ImagingError` naming `path` for corrupt, truncated or unsupported data.
    public static func decode(_ bytes: [UInt8], path: String) throws -> Image8 {
        var message = [CChar](repeating: 0, count: 256)
        var width: Int32 = 0
        var height: Int32 = 0
        let header = bytes.withUnsafeBufferPointer { data in
            stm_jpeg_decode_rgb(data.baseAddress, data.count, &width, &height, nil, &message, message.count)
        }
        guard header == 0 else { throw failure(path, message) }
        let w = Int(width), h = Int(height)
        guard w > 0, h > 0 else { throw ImagingError(path, "JPEG header gives an empty image (\(w)x\(h))") }
        try ImageLimits.check(width: w, height: h, format: "JPEG", path: path)
        var status: Int32 = 0
        let pixels = [UInt8](unsafeUninitializedCapacity: w * h * 3) { buffer, count in
            status = bytes.withUnsafeBufferPointer { data in
                stm_jpeg_decode_rgb(data.baseAddress, data.count, &width, &height, buffer.baseAddress,
                                    &message, message.count)
            }
            if status != 0 { buffer.initialize(repeating: 0) }  // never hand out uninitialised bytes
            count = w * h * 3
        }
        guard status == 0 else { throw failure(path, message) }
        return Image8(width: w, height: h, channels: 3, pixels: pixels)
    }

    /// Reads and decodes a JPEG file to RGB.
    public static func read(path: String) throws -> Image8 {
        try decode(readFileBytes(path), path: path)
    }

    private static func failure(_ path: String, _ message: [CChar]) -> ImagingError {
        let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return ImagingError(path, "cannot decode JPEG: \(text.isEmpty ? "unknown libjpeg error" : text)",
                            hint: "the file is corrupt, truncated or not a baseline/progressive 8-bit JPEG")
    }
}
