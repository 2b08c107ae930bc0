// Imaging: PNG through libpng. (Interface stub: the implementation is being written.)

/// PNG reading and writing through libpng.
public enum PNGCodec {
    /// Decodes a PNG file to 8-bit RGB (alpha dropped, palettes and grey expanded) unless `keepAlpha`.
    public static func read(path: String, keepAlpha: Bool = false) throws -> Image8 {
        throw ImagingError(path, "PNG reading is not implemented yet")
    }

    /// Decodes PNG bytes held in memory. `path` is used in messages only.
    public static func decode(_ bytes: [UInt8], path: String, keepAlpha: Bool = false) throws -> Image8 {
        throw ImagingError(path, "PNG decoding is not implemented yet")
    }

    /// Writes `image` (1, 3 or 4 channels) as an 8-bit PNG, atomically (temporary file, then rename).
    /// `dpi` is recorded in the pHYs chunk when given.
    public static func write(_ image: Image8, to path: String, dpi: Int? = nil) throws {
        throw ImagingError(path, "PNG writing is not implemented yet")
    }
}
