// Imaging: Pillow-exact antialiased resizing of 8-bit images (`Image.resize(size, BICUBIC | BILINEAR)`).
//
// Layout: images are H rows x W columns x C interleaved channels (HWC), C = 1...4.
//
// The arithmetic follows Pillow's libImaging/Resample.c step for step, so results are bit-identical:
//  * per output index i the filter is centred at in0 + (i + 0.5) * scale (scale = in / out); when
//    downscaling, the filter support is widened by the scale and its argument shrunk by it (antialiasing);
//  * the taps run from round(centre - support) to round(centre + support), clipped to the image;
//  * weights are normalised to sum 1 in double precision, then turned into fixed point with 22
//    fractional bits (PRECISION_BITS = 32 - 8 - 2), rounding half away from zero;
//  * each pass accumulates integer products on top of a half-unit, shifts right by 22 and clips to
//    0...255; the horizontal pass runs first, only over the rows the vertical pass will read, and
//    leaves an 8-bit intermediate image.
// Not here: box/hamming/lanczos filters, Pillow's `box=` and `reducing_gap=` options, 16-bit and float
// images, premultiplied alpha (Pillow premultiplies RGBA before resizing; this file does not).

/// The resampling filters of `resize`, with Pillow's definitions.
public enum ResampleFilter: Sendable {
    /// Triangle filter, support 1.
    case bilinear
    /// Keys cubic convolution with a = -0.5, support 2 (Pillow's BICUBIC).
    case bicubic

    var support: Double {
        switch self {
        case .bilinear: return 1.0
        case .bicubic: return 2.0
        }
    }

    @inline(__always)
    func weight(_ t: Double) -> Double {
        let x = t < 0.0 ? -t : t
        switch self {
        case .bilinear:
            return x < 1.0 ? 1.0 - x : 0.0
        case .bicubic:
            let a = -0.5
            if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
            if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0.0
        }
    }
}

/// Fixed-point fractional bits of the 8-bit resampling weights.
private let precisionBits = 22

/// One pass's weights: for output index i, taps `start[i] ..< start[i] + count[i]` of the input with
/// weights `weights[i * kernelSize ..< i * kernelSize + count[i]]` (fixed point, 22 fractional bits).
struct ResampleKernel {
    var kernelSize: Int
    var start: [Int]
    var count: [Int]
    var weights: [Int32]

    /// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the input span [in0, in1] of an axis of
    /// `inSize` pixels mapped onto `outSize` pixels.
    init(inSize: Int, in0: Float, in1: Float, outSize: Int, filter: ResampleFilter) {
        let scale = Double(in1 - in0) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = filter.support * filterScale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        kernelSize = ksize
        start = [Int](repeating: 0, count: outSize)
        count = [Int](repeating: 0, count: outSize)
        weights = [Int32](repeating: 0, count: outSize * ksize)
        var k = [Double](repeating: 0, count: ksize)
        let ss = 1.0 / filterScale
        let one = Double(1 << precisionBits)
        for i in 0..<outSize {
            let center = Double(in0) + (Double(i) + 0.5) * scale
            // C's (int) conversion truncates toward zero, which Int(_:) does too.
            let lo = max(Int(center - support + 0.5), 0)
            let hi = min(Int(center + support + 0.5), inSize)
            let n = max(hi - lo, 0)
            var sum = 0.0
            for x in 0..<n {
                let w = filter.weight((Double(x + lo) - center + 0.5) * ss)
                k[x] = w
                sum += w
            }
            for x in 0..<n {
                let w = sum != 0.0 ? k[x] / sum : k[x]
                weights[i * ksize + x] = Int32(w < 0 ? -0.5 + w * one : 0.5 + w * one)
            }
            start[i] = lo
            count[i] = n
        }
    }
}

@inline(__always)
private func clip8(_ acc: Int32) -> UInt8 {
    let v = acc >> Int32(precisionBits)
    return v < 0 ? 0 : (v > 255 ? 255 : UInt8(truncatingIfNeeded: v))
}

/// Resizes `image` to `width` x `height` with Pillow's antialiased resampling (bit-identical to
/// `Image.resize((width, height), filter)` for L, RGB and RGBX images).
/// An unchanged size returns the image as it is; a zero or negative size gives an empty image.
public func resize(_ image: Image8, width: Int, height: Int, filter: ResampleFilter = .bicubic) -> Image8 {
    let c = image.channels
    guard width > 0, height > 0 else {
        return Image8(width: max(width, 0), height: max(height, 0), channels: c)
    }
    if width == image.width && height == image.height { return image }
    guard image.width > 0, image.height > 0 else {
        return Image8(width: width, height: height, channels: c)
    }
    var vertical = ResampleKernel(inSize: image.height, in0: 0, in1: Float(image.height),
                                  outSize: height, filter: filter)
    let needHorizontal = width != image.width
    let needVertical = height != image.height

    var current = image
    if needHorizontal {
        // Only the rows the vertical pass reads are resampled horizontally.
        let firstRow = vertical.start[0]
        let lastRow = vertical.start[height - 1] + vertical.count[height - 1]
        for i in 0..<height { vertical.start[i] -= firstRow }
        let horizontal = ResampleKernel(inSize: image.width, in0: 0, in1: Float(image.width),
                                        outSize: width, filter: filter)
        current = resampleRows(image, rows: firstRow..<lastRow, kernel: horizontal, outWidth: width)
    }
    if needVertical {
        current = resampleColumns(current, kernel: vertical, outHeight: height)
    }
    return current
}

/// The horizontal pass: each output pixel of `rows` is a weighted sum of input pixels of the same row.
private func resampleRows(_ image: Image8, rows: Range<Int>, kernel: ResampleKernel, outWidth: Int) -> Image8 {
    let c = image.channels
    let inStride = image.width * c
    let outStride = outWidth * c
    let half = Int32(1 << (precisionBits - 1))
    let pixels = [UInt8](unsafeUninitializedCapacity: rows.count * outStride) { out, initialized in
        image.pixels.withUnsafeBufferPointer { src in
            kernel.weights.withUnsafeBufferPointer { wts in
                kernel.start.withUnsafeBufferPointer { starts in
                    kernel.count.withUnsafeBufferPointer { counts in
                        for (r, y) in rows.enumerated() {
                            let inRow = src.baseAddress! + y * inStride
                            let outRow = out.baseAddress! + r * outStride
                            for xx in 0..<outWidth {
                                let w = wts.baseAddress! + xx * kernel.kernelSize
                                let p = inRow + starts[xx] * c
                                let n = counts[xx]
                                if c == 3 {
                                    var s0 = half, s1 = half, s2 = half
                                    for t in 0..<n {
                                        let k = w[t]
                                        s0 &+= Int32(p[3 * t]) &* k
                                        s1 &+= Int32(p[3 * t + 1]) &* k
                                        s2 &+= Int32(p[3 * t + 2]) &* k
                                    }
                                    outRow[3 * xx] = clip8(s0)
                                    outRow[3 * xx + 1] = clip8(s1)
                                    outRow[3 * xx + 2] = clip8(s2)
                                } else {
                                    for ch in 0..<c {
                                        var s = half
                                        for t in 0..<n { s &+= Int32(p[c * t + ch]) &* w[t] }
                                        outRow[c * xx + ch] = clip8(s)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        initialized = rows.count * outStride
    }
    return Image8(width: outWidth, height: rows.count, channels: c, pixels: pixels)
}

/// The vertical pass: each output row is a weighted sum of input rows, accumulated row by row.
private func resampleColumns(_ image: Image8, kernel: ResampleKernel, outHeight: Int) -> Image8 {
    let stride = image.width * image.channels
    let half = Int32(1 << (precisionBits - 1))
    var acc = [Int32](repeating: 0, count: stride)
    let pixels = [UInt8](unsafeUninitializedCapacity: outHeight * stride) { out, initialized in
        image.pixels.withUnsafeBufferPointer { src in
            kernel.weights.withUnsafeBufferPointer { wts in
                acc.withUnsafeMutableBufferPointer { acc in
                    for yy in 0..<outHeight {
                        for i in 0..<stride { acc[i] = half }
                        let first = kernel.start[yy]
                        for t in 0..<kernel.count[yy] {
                            let k = wts[yy * kernel.kernelSize + t]
                            let row = src.baseAddress! + (first + t) * stride
                            for i in 0..<stride { acc[i] &+= Int32(row[i]) &* k }
                        }
                        let outRow = out.baseAddress! + yy * stride
                        for i in 0..<stride { outRow[i] = clip8(acc[i]) }
                    }
                }
            }
        }
        initialized = outHeight * stride
    }
    return Image8(width: image.width, height: outHeight, channels: image.channels, pixels: pixels)
}
