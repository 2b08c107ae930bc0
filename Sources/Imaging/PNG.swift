// Imaging: PNG reading and writing through libpng (the C side lives in Sources/CPNG/shim.h, which keeps
// libpng's setjmp/longjmp error handling away from Swift frames). Reading gives 8-bit RGB (or RGBA on
// request) whatever the file's colour type and bit depth; writing takes 1, 3 or 4 channels and goes
// through the shared output path (`OutputFile`: atomic for files, write-through for devices). Left out:
// colour management (gAMA, iCCP and sRGB chunks are ignored, as Pillow ignores them when converting to
// RGB), 16-bit output, animated PNG and text chunks.
// Layout key: H height, W width, C channels; pixels are H x W x C bytes, row-major.

import CPNG

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// PNG reading and writing through libpng.
public enum PNGCodec {
    /// Decodes a PNG file to 8-bit RGB (alpha dropped, palettes and grey expanded) unless `keepAlpha`,
    /// which gives RGBA (opaque files get alpha 255). 16-bit samples keep their high byte.
    public static func read(path: String, keepAlpha: Bool = false) throws -> Image8 {
        try decode(FileBytes.contents(of: path), path: path, keepAlpha: keepAlpha)
    }

    /// The 8-byte PNG signature.
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Width and height from the IHDR chunk (the first chunk of every PNG), read without libpng.
    static func headerSize(_ bytes: [UInt8], path: String) throws -> (width: Int, height: Int) {
        guard bytes.count >= 24, bytes.starts(with: signature), Array(bytes[12..<16]) == Array("IHDR".utf8) else {
            throw ImagingError(path, "corrupt PNG: no IHDR chunk after the signature", hint: "is the file a complete, valid PNG?")
        }
        func be32(_ at: Int) -> Int { Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3]) }
        return (be32(16), be32(20))
    }

    /// Decodes PNG bytes held in memory. `path` is used in messages only. Images over
    /// `ImageLimits.maxPixels` are refused before any pixel is decoded.
    public static func decode(_ bytes: [UInt8], path: String, keepAlpha: Bool = false) throws -> Image8 {
        if bytes.count >= 24, bytes.starts(with: signature) {
            let (w, h) = try headerSize(bytes, path: path)
            try ImageLimits.check(width: w, height: h, format: "PNG", path: path)
        }
        var pixels: UnsafeMutablePointer<UInt8>? = nil
        var width: UInt32 = 0
        var height: UInt32 = 0
        var channels: Int32 = 0
        var message = [CChar](repeating: 0, count: 320)
        let status = bytes.withUnsafeBufferPointer { source in
            message.withUnsafeMutableBufferPointer { text in
                stm_png_decode(source.baseAddress, source.count, keepAlpha ? 1 : 0,
                               &pixels, &width, &height, &channels, text.baseAddress, text.count)
            }
        }
        defer { free(pixels) }
        guard status == 0, let pixels else {
            throw ImagingError(path, String(cString: message), hint: "is the file a complete, valid PNG?")
        }
        let w = Int(width), h = Int(height), c = Int(channels)
        let decoded = [UInt8](UnsafeBufferPointer(start: pixels, count: w * h * c))
        return Image8(width: w, height: h, channels: c, pixels: decoded)
    }

    /// Encodes `image` (1, 3 or 4 channels) as 8-bit PNG bytes; `dpi` is recorded in a pHYs chunk when
    /// given. Equal images give equal bytes.
    public static func encode(_ image: Image8, dpi: Int? = nil) throws -> [UInt8] {
        try encode(image, dpi: dpi, path: "<memory>")
    }

    /// Writes `image` (1, 3 or 4 channels) as an 8-bit PNG through `OutputFile.write` (atomic for files).
    /// `dpi` is recorded in the pHYs chunk when given.
    public static func write(_ image: Image8, to path: String, dpi: Int? = nil) throws {
        let bytes = try encode(image, dpi: dpi, path: path)
        try OutputFile.write(bytes, to: path)
    }

    private static func encode(_ image: Image8, dpi: Int?, path: String) throws -> [UInt8] {
        guard [1, 3, 4].contains(image.channels) else {
            throw ImagingError(path, "PNG writing needs 1, 3 or 4 channels, got \(image.channels)")
        }
        guard image.width > 0, image.height > 0, image.width <= 0x7fff_ffff, image.height <= 0x7fff_ffff else {
            throw ImagingError(path, "cannot write a \(image.width)x\(image.height) image as PNG",
                               hint: "width and height must be at least 1")
        }
        var pixelsPerMetre: UInt32 = 0
        if let dpi {
            guard dpi > 0, dpi <= 1_000_000 else {
                throw ImagingError(path, "dpi must be between 1 and 1000000, got \(dpi)")
            }
            pixelsPerMetre = UInt32((Double(dpi) / 0.0254).rounded())
        }
        var output: UnsafeMutablePointer<UInt8>? = nil
        var size = 0
        var message = [CChar](repeating: 0, count: 320)
        let status = image.pixels.withUnsafeBufferPointer { source in
            message.withUnsafeMutableBufferPointer { text in
                stm_png_encode(source.baseAddress, UInt32(image.width), UInt32(image.height),
                               Int32(image.channels), pixelsPerMetre, &output, &size,
                               text.baseAddress, text.count)
            }
        }
        defer { free(output) }
        guard status == 0, let output else {
            throw ImagingError(path, String(cString: message))
        }
        return [UInt8](UnsafeBufferPointer(start: output, count: size))
    }
}

/// Whole-file reads with one-line errors naming the file (writes go through `OutputFile`).
private enum FileBytes {
    static func contents(of path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ImagingError(path, "cannot open: \(errnoText())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ImagingError(path, "cannot stat: \(errnoText())") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw ImagingError(path, "not a regular file") }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var filled = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while filled < buffer.count {
                let got = read(fd, buffer.baseAddress! + filled, buffer.count - filled)
                if got < 0 {
                    if errno == EINTR { continue }
                    throw ImagingError(path, "read failed: \(errnoText())")
                }
                if got == 0 { break }
                filled += got
            }
        }
        return filled == bytes.count ? bytes : Array(bytes[0..<filled])
    }

    private static func errnoText() -> String {
        String(cString: strerror(errno))
    }
}
