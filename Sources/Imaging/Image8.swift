// Imaging: the 8-bit image type every codec and transform works on. Row-major, channels interleaved
// (HWC), as Pillow holds an "RGB" or "RGBA" image. Float conversion and normalisation live elsewhere.

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

/// A codec or transform failure: one line naming the file (or operation) and the problem.
public struct ImagingError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var problem: String
    public var hint: String?

    public init(_ path: String, _ problem: String, hint: String? = nil) {
        self.path = path
        self.problem = problem
        self.hint = hint
    }

    public var description: String {
        var s = "\(path): \(problem)"
        if let hint { s += " (hint: \(hint))" }
        return s
    }
}
