// Imaging: crops with zero fill and Pillow-exact rotation of 8-bit images.
//
// Layout: images are H rows x W columns x C interleaved channels (HWC). Coordinates: x = column
// (0 at the left), y = row (0 at the top); a pixel's centre is at (x + 0.5, y + 0.5).
//
// `rotate` reproduces Pillow's `Image.rotate(angle, resample=BICUBIC)` (expand=False, centre of the
// image, black fill): its fast paths for 0/90/180/270 degrees, the inverse affine matrix with entries
// rounded to 15 decimals as Pillow's Python code does, and libImaging/Geometry.c's bicubic sampler
// (a = -1 cubic convolution on a 4x4 neighbourhood, edge columns replicated, missing rows replaced by
// the previous row's value, result clipped and truncated to 8 bits; samples whose source point lies
// outside the image are left black).
// Not here: nearest/bilinear affine sampling, `expand=True`, other centres, translations, fill colours.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Copies the `width` x `height` window of `image` whose top-left corner is at (`left`, `top`) (either
/// may be negative, and the window may reach past the image); parts outside the image are zero, like
/// Pillow's `Image.crop`. A zero or negative size gives an empty image.
public func crop(_ image: Image8, left: Int, top: Int, width: Int, height: Int) -> Image8 {
    let w = max(width, 0), h = max(height, 0)
    return place(image, rows: top..<(top + h), columns: left..<(left + w),
                 outWidth: w, outHeight: h, atTop: 0, atLeft: 0)
}

/// Makes a `outWidth` x `outHeight` zero image and copies the source window `rows` x `columns`
/// (clipped to the source) into it with the window's top-left corner at (`atLeft`, `atTop`).
func place(_ image: Image8, rows: Range<Int>, columns: Range<Int>,
           outWidth: Int, outHeight: Int, atTop: Int, atLeft: Int) -> Image8 {
    let c = image.channels
    var out = Image8(width: outWidth, height: outHeight, channels: c)
    // Source rows/columns that exist, then shifted into output coordinates and clipped again.
    let r0 = max(rows.lowerBound, 0, rows.lowerBound + (0 - atTop))
    let r1 = min(rows.upperBound, image.height, rows.lowerBound + (outHeight - atTop))
    let c0 = max(columns.lowerBound, 0, columns.lowerBound + (0 - atLeft))
    let c1 = min(columns.upperBound, image.width, columns.lowerBound + (outWidth - atLeft))
    guard r1 > r0, c1 > c0 else { return out }
    let span = (c1 - c0) * c
    image.pixels.withUnsafeBufferPointer { src in
        out.pixels.withUnsafeMutableBufferPointer { dst in
            for y in r0..<r1 {
                let from = src.baseAddress! + (y * image.width + c0) * c
                let oy = y - rows.lowerBound + atTop
                let ox = c0 - columns.lowerBound + atLeft
                (dst.baseAddress! + (oy * outWidth + ox) * c).update(from: from, count: span)
            }
        }
    }
    return out
}

/// Python's `round(x, 15)`: the double nearest to `x` rounded to 15 decimal places (half to even on
/// the exact binary value), which Pillow applies to the rotation matrix entries.
func roundTo15Decimals(_ x: Double) -> Double {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([x]) { vsnprintf(&buffer, buffer.count, "%.15f", $0) }
    return strtod(buffer, nil)
}

/// Python's `angle % 360.0` (the result has the sign of the divisor).
private func pythonModulo360(_ angle: Double) -> Double {
    var m = fmod(angle, 360.0)
    if m != 0 && m < 0 { m += 360.0 }
    return m
}

/// Rotates `image` counter-clockwise by `degrees` about its centre, keeping its size, with Pillow's
/// bicubic affine sampling and black fill: bit-identical to `Image.rotate(degrees, resample=BICUBIC)`.
/// A non-finite angle gives a black image.
public func rotate(_ image: Image8, degrees: Double) -> Image8 {
    guard degrees.isFinite else { return Image8(width: image.width, height: image.height, channels: image.channels) }
    let angle = pythonModulo360(degrees)
    if angle == 0 { return image }
    if angle == 180 { return rotate180(image) }
    if (angle == 90 || angle == 270) && image.width == image.height {
        return angle == 90 ? rotate90(image) : rotate270(image)
    }
    let w = Double(image.width), h = Double(image.height)
    let radians = -(angle * (Double.pi / 180.0))
    let cosA = roundTo15Decimals(cos(radians))
    let sinA = roundTo15Decimals(sin(radians))
    let negSinA = roundTo15Decimals(-sin(radians))
    let cx = w / 2, cy = h / 2
    // Inverse map, output pixel centre -> source point:  xs = a0 x + a1 y + a2,  ys = a3 x + a4 y + a5.
    let a0 = cosA, a1 = sinA, a3 = negSinA, a4 = cosA
    let a2 = (a0 * -cx + a1 * -cy + 0.0) + cx
    let a5 = (a3 * -cx + a4 * -cy + 0.0) + cy
    return affineBicubic(image, a: (a0, a1, a2, a3, a4, a5))
}

/// Pillow's a = -1 cubic through four samples at offset `d` in [0, 1) from the second one.
@inline(__always)
private func cubic(_ v1: Double, _ v2: Double, _ v3: Double, _ v4: Double, _ d: Double) -> Double {
    let p1 = v2
    let p2 = -v1 + v3
    let p3 = 2 * (v1 - v2) + v3 - v4
    let p4 = -v1 + v2 - v3 + v4
    return p1 + d * (p2 + d * (p3 + d * p4))
}

/// The cubic along one source row at the four clamped column offsets (already multiplied by C).
@inline(__always)
private func cubicAlongRow(_ row: UnsafePointer<UInt8>, _ x0: Int, _ x1: Int, _ x2: Int, _ x3: Int,
                           _ d: Double) -> Double {
    cubic(Double(row[x0]), Double(row[x1]), Double(row[x2]), Double(row[x3]), d)
}

/// Geometry.c's generic transform with the affine map and the bicubic filter, fill = black.
private func affineBicubic(_ image: Image8, a: (Double, Double, Double, Double, Double, Double)) -> Image8 {
    let width = image.width, height = image.height, c = image.channels
    var out = Image8(width: width, height: height, channels: c)
    let fw = Double(width), fh = Double(height)
    let rowStride = width * c
    image.pixels.withUnsafeBufferPointer { src in
        out.pixels.withUnsafeMutableBufferPointer { dst in
            let s = src.baseAddress!
            for oy in 0..<height {
                let yc = Double(oy) + 0.5
                for ox in 0..<width {
                    let xc = Double(ox) + 0.5
                    var xin = a.0 * xc + a.1 * yc + a.2
                    var yin = a.3 * xc + a.4 * yc + a.5
                    if xin < 0.0 || xin >= fw || yin < 0.0 || yin >= fh { continue }
                    xin -= 0.5
                    yin -= 0.5
                    var x = xin < 0.0 ? Int(xin.rounded(.down)) : Int(xin)
                    var y = yin < 0.0 ? Int(yin.rounded(.down)) : Int(yin)
                    let dx = xin - Double(x)
                    let dy = yin - Double(y)
                    x -= 1
                    y -= 1
                    // Columns are clamped to the image; rows past an edge reuse the previous row's value.
                    let x0 = min(max(x, 0), width - 1) * c
                    let x1 = min(max(x + 1, 0), width - 1) * c
                    let x2 = min(max(x + 2, 0), width - 1) * c
                    let x3 = min(max(x + 3, 0), width - 1) * c
                    let row0 = s + min(max(y, 0), height - 1) * rowStride
                    let row1: UnsafePointer<UInt8>? = y + 1 >= 0 && y + 1 < height ? s + (y + 1) * rowStride : nil
                    let row2: UnsafePointer<UInt8>? = y + 2 >= 0 && y + 2 < height ? s + (y + 2) * rowStride : nil
                    let row3: UnsafePointer<UInt8>? = y + 3 >= 0 && y + 3 < height ? s + (y + 3) * rowStride : nil
                    let o = (oy * width + ox) * c
                    for b in 0..<c {
                        let v1 = cubicAlongRow(row0 + b, x0, x1, x2, x3, dx)
                        let v2 = row1.map { cubicAlongRow($0 + b, x0, x1, x2, x3, dx) } ?? v1
                        let v3 = row2.map { cubicAlongRow($0 + b, x0, x1, x2, x3, dx) } ?? v2
                        let v4 = row3.map { cubicAlongRow($0 + b, x0, x1, x2, x3, dx) } ?? v3
                        let v = cubic(v1, v2, v3, v4, dy)
                        dst[o + b] = v <= 0.0 ? 0 : (v >= 255.0 ? 255 : UInt8(v))
                    }
                }
            }
        }
    }
    return out
}

/// Pillow's ROTATE_180 transpose.
private func rotate180(_ image: Image8) -> Image8 {
    let n = image.width * image.height, c = image.channels
    var out = image
    image.pixels.withUnsafeBufferPointer { src in
        out.pixels.withUnsafeMutableBufferPointer { dst in
            for i in 0..<n {
                for b in 0..<c { dst[(n - 1 - i) * c + b] = src[i * c + b] }
            }
        }
    }
    return out
}

/// Pillow's ROTATE_90 transpose (counter-clockwise): out[W-1-x][y] = in[y][x].
private func rotate90(_ image: Image8) -> Image8 {
    transposed(image) { x, y, w, _ in (w - 1 - x, y) }
}

/// Pillow's ROTATE_270 transpose (clockwise): out[x][H-1-y] = in[y][x].
private func rotate270(_ image: Image8) -> Image8 {
    transposed(image) { x, y, _, h in (x, h - 1 - y) }
}

/// Builds the H x W-swapped image where input (x, y) lands at output (row, column) = `map(x, y, W, H)`.
private func transposed(_ image: Image8, _ map: (Int, Int, Int, Int) -> (Int, Int)) -> Image8 {
    let w = image.width, h = image.height, c = image.channels
    var out = Image8(width: h, height: w, channels: c)
    image.pixels.withUnsafeBufferPointer { src in
        out.pixels.withUnsafeMutableBufferPointer { dst in
            for y in 0..<h {
                for x in 0..<w {
                    let (row, col) = map(x, y, w, h)
                    for b in 0..<c { dst[(row * h + col) * c + b] = src[(y * w + x) * c + b] }
                }
            }
        }
    }
    return out
}
