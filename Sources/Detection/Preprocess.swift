// Detection: the test pipeline of the study's mmdetection config, from a decoded 8-bit image to the
// network input: keep-ratio target size, OpenCV's fixed-point bilinear resize of uint8 images
// (INTER_LINEAR, bit-exact with cv2 4.x on x86-64), normalisation with mmdet's RGB mean and std,
// and zero padding at the bottom/right to a multiple of 32.
// Left out: OpenCV's other interpolations, antialiasing (cv2 does none when shrinking), flips, and
// decoding (the image comes in as `Image8`, RGB; the resize works per channel, so the order of
// channels does not matter to it).
//
// Shape key: H/W resized height/width, Hp/Wp padded height/width, C channels (3).

import Diagnostics
import Imaging
import TensorCore

/// OpenCV's `cv2.resize(img, (width, height), interpolation=INTER_LINEAR)` on an 8-bit image:
/// fixed-point coefficients (11 bits), a horizontal pass into integers and the vertical pass with
/// the shifts of OpenCV's SIMD loop. Any channel count.
public func resizeBilinearOpenCV(_ image: Image8, width dw: Int, height dh: Int) -> Image8 {
    let (sw, sh, cn) = (image.width, image.height, image.channels)
    precondition(dw > 0 && dh > 0 && sw > 0 && sh > 0, "resizeBilinearOpenCV: empty image")
    // Horizontal taps and weights.
    let scaleX = 1.0 / (Double(dw) / Double(sw))
    var xofs = [Int](repeating: 0, count: dw), xa0 = [Int32](repeating: 0, count: dw), xa1 = [Int32](repeating: 0, count: dw)
    var xlast = [Bool](repeating: false, count: dw)
    for dx in 0..<dw {
        var fx = Float((Double(dx) + 0.5) * scaleX - 0.5)
        var sx = Int(fx.rounded(.down))
        fx -= Float(sx)
        if sx < 0 { sx = 0; fx = 0 }
        if sx >= sw - 1 { sx = sw - 1; fx = 0 }
        xofs[dx] = sx
        xa0[dx] = Int32(((1 - fx) * 2048).rounded(.toNearestOrEven))
        xa1[dx] = Int32((fx * 2048).rounded(.toNearestOrEven))
        xlast[dx] = sx + 1 >= sw
    }
    // Vertical taps and weights (no border moves: the rows are clamped instead).
    let scaleY = 1.0 / (Double(dh) / Double(sh))
    var r0 = [Int](repeating: 0, count: dh), r1 = [Int](repeating: 0, count: dh)
    var yb0 = [Int32](repeating: 0, count: dh), yb1 = [Int32](repeating: 0, count: dh)
    for dy in 0..<dh {
        var fy = Float((Double(dy) + 0.5) * scaleY - 0.5)
        let sy = Int(fy.rounded(.down))
        fy -= Float(sy)
        yb0[dy] = Int32(((1 - fy) * 2048).rounded(.toNearestOrEven))
        yb1[dy] = Int32((fy * 2048).rounded(.toNearestOrEven))
        r0[dy] = min(max(sy, 0), sh - 1)
        r1[dy] = min(max(sy + 1, 0), sh - 1)
    }
    // The horizontal pass of one source row into `row` [dw * cn].
    func horizontal(_ src: UnsafePointer<UInt8>, _ row: UnsafeMutablePointer<Int32>) {
        for dx in 0..<dw {
            let s = src + xofs[dx] * cn, d = row + dx * cn
            if xlast[dx] {
                for c in 0..<cn { d[c] = Int32(s[c]) * xa0[dx] }
            } else {
                let a0 = xa0[dx], a1 = xa1[dx]
                for c in 0..<cn { d[c] = Int32(s[c]) * a0 + Int32(s[c + cn]) * a1 }
            }
        }
    }
    var out = [UInt8](repeating: 0, count: dw * dh * cn)
    image.pixels.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            let rowLength = dw * cn
            let base = dst.baseAddress!
            parallelFor(dh, grain: grainFor(dh, cost: rowLength * 4)) { range in
                let h0 = UnsafeMutablePointer<Int32>.allocate(capacity: rowLength)
                let h1 = UnsafeMutablePointer<Int32>.allocate(capacity: rowLength)
                defer { h0.deallocate(); h1.deallocate() }
                for dy in range {
                    horizontal(src.baseAddress! + r0[dy] * sw * cn, h0)
                    horizontal(src.baseAddress! + r1[dy] * sw * cn, h1)
                    let b0 = yb0[dy], b1 = yb1[dy]
                    let d = base + dy * rowLength
                    for i in 0..<rowLength {
                        let v = ((((h0[i] >> 4) &* b0) >> 16) &+ (((h1[i] >> 4) &* b1) >> 16) &+ 2) >> 2
                        d[i] = UInt8(clamping: v)
                    }
                }
            }
        }
    }
    return Image8(width: dw, height: dh, channels: cn, pixels: out)
}

/// The test-time input pipeline (`Resize(keep_ratio)`, `Normalize(to_rgb)`, `Pad(32)`).
public struct DetectionPipeline: Sendable, Equatable {
    /// Target `(long, short)` of the keep-ratio rescale (mmdet's `img_scale`), e.g. (1333, 800).
    public var testScale: (Double, Double)
    /// RGB mean subtracted from the 0...255 values.
    public var mean: [Float] = [123.675, 116.28, 103.53]
    /// RGB standard deviation the values are divided by (as multiplication by its reciprocal).
    public var std: [Float] = [58.395, 57.12, 57.375]
    /// The padded size is a multiple of this.
    public var sizeDivisor = 32

    /// The study's pipeline at the given test scale (default mmdet's (1333, 800)).
    public init(testScale: (Double, Double) = (1333, 800)) { self.testScale = testScale }

    public static func == (a: Self, b: Self) -> Bool {
        a.testScale == b.testScale && a.mean == b.mean && a.std == b.std && a.sizeDivisor == b.sizeDivisor
    }

    /// The same pipeline with the target size multiplied by `s` (the scale sweep of `boxes`).
    public func scaled(by s: Double) -> DetectionPipeline {
        var p = self
        p.testScale = (testScale.0 * s, testScale.1 * s)
        return p
    }

    /// mmcv's `rescale_size` for keep-ratio resizing: (width, height) of the resized image.
    public func resizedSize(width w: Int, height h: Int) -> (width: Int, height: Int) {
        let long = max(testScale.0, testScale.1), short = min(testScale.0, testScale.1)
        let f = min(long / Double(max(h, w)), short / Double(min(h, w)))
        return (Int(Double(w) * f + 0.5), Int(Double(h) * f + 0.5))
    }

    /// Runs the pipeline on an RGB image.
    /// - Throws: `ToolError` when the target size rounds to an empty image.
    public func prepare(_ image: Image8) throws -> PreparedImage {
        precondition(image.channels == 3, "DetectionPipeline: the image must be RGB")
        let (nw, nh) = resizedSize(width: image.width, height: image.height)
        guard nw > 0 && nh > 0 else {
            throw ToolError("test scale \(testScale.0)x\(testScale.1)", "resizes a \(image.width)x\(image.height) image to \(nw)x\(nh) pixels",
                            hint: "use a larger scale")
        }
        let resized = resizeBilinearOpenCV(image, width: nw, height: nh)
        let factors = (Float(Double(nw) / Double(image.width)), Float(Double(nh) / Double(image.height)))
        let ph = (nh + sizeDivisor - 1) / sizeDivisor * sizeDivisor, pw = (nw + sizeDivisor - 1) / sizeDivisor * sizeDivisor
        let input = normalizeAndPad(resized, paddedHeight: ph, paddedWidth: pw)
        return PreparedImage(input: input, resized: resized, imageHeight: nh, imageWidth: nw,
                             originalHeight: image.height, originalWidth: image.width,
                             scaleFactor: [factors.0, factors.1, factors.0, factors.1])
    }

    /// `(x - mean) * (1 / std)` per RGB channel in float32, zeros below and right of the image.
    /// resized [H, W, 3] -> [1, Hp, Wp, 3]
    public func normalizeAndPad(_ resized: Image8, paddedHeight ph: Int, paddedWidth pw: Int) -> Tensor {
        let (h, w) = (resized.height, resized.width)
        let out = Tensor(shape: [1, ph, pw, 3], repeating: 0)
        let inv = std.map { 1 / $0 }
        let d = out.data
        resized.pixels.withUnsafeBufferPointer { src in
            for y in 0..<h {
                for x in 0..<w {
                    for c in 0..<3 {
                        d[(y * pw + x) * 3 + c] = (Float(src[(y * w + x) * 3 + c]) - mean[c]) * inv[c]
                    }
                }
            }
        }
        return out
    }
}

/// One image after the pipeline, with the geometry the detector needs (mmdet's `img_meta`).
public struct PreparedImage {
    /// [1, Hp, Wp, 3], normalised and padded.
    public var input: Tensor
    /// The resized 8-bit image before normalisation, [H, W, 3] RGB.
    public var resized: Image8
    /// `img_shape`: the resized size, before padding.
    public var imageHeight: Int
    public var imageWidth: Int
    /// `ori_shape`: the decoded image's size.
    public var originalHeight: Int
    public var originalWidth: Int
    /// `scale_factor`: float32 `[w, h, w, h]` factors from the original to the resized frame.
    public var scaleFactor: [Float]

    /// `pad_shape` (height, width).
    public var paddedSize: (height: Int, width: Int) { (input.shape[1], input.shape[2]) }
}
