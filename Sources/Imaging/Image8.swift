// Imaging: the 8-bit image type every codec and transform works on. Row-major, channels interleaved
// (HWC), as Pillow holds an "RGB" or "RGBA" image. Float conversion and normalisation live elsewhere.

@_exported import Diagnostics

/// An 8-bit image: `height` rows of `width` pixels of `channels` interleaved bytes (1 = L, 3 = RGB, 4 = RGBA).
public struct Image8: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    /// `height * width * channels` bytes, row-major.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && channels > 0 && pixels.count == width * height * channels,
                     "Image8: \(width)x\(height)x\(channels) does not hold \(pixels.count) bytes")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// A blank image filled with `value`.
    public init(width: Int, height: Int, channels: Int, fill value: UInt8 = 0) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [UInt8](repeating: value, count: width * height * channels))
    }
}

/// Errors of this module: one line naming the subject and the problem (see Diagnostics).
public typealias ImagingError = ToolError
