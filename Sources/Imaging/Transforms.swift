// Imaging: the torchvision pipelines that prepare an image for the network, and the invariance
// transforms of the STM-Evaluation study (classification/tools/variance_transforms.py), on 8-bit images
// with Pillow's resampling between the steps, as the reference was made.
//
// Layout: images are H rows x W columns x 3 interleaved channels (HWC, RGB). The network input is
// float32 H x W x 3 (channels last), i.e. one NHWC sample.
//
// Semantics reproduced:
//  * Resize(int s): the short side becomes s, the long side int(s * long / short) (truncated);
//    Resize((h, w)): exactly h x w. Both bicubic (antialiased, Pillow).
//  * CenterCrop(s): offsets int(round((H - s) / 2.0)) with Python's half-to-even rounding; where the
//    crop is larger than the image, zero padding of (s - H) // 2 before and (s - H + 1) // 2 after.
//  * ToTensor + Normalize: (v / 255 - mean) / std in float32.
//  * Position jitter: the crop centre (H // 2, W // 2) of the resized image moves by `jitter` pixels
//    along one of eight directions; the window [c - s/2, c + s/2) is clipped to the image and the
//    clipped window is zero-padded back to s x s *centred* ((s - n) // 2 before, the rest after), which
//    is what the study's code does (the padding does not sit on the side where the window left the image).
//  * Rotation: Pillow's Image.rotate(angle, BICUBIC) (see Geometry.swift), after the centre crop
//    ("post") or on the resized image before it ("pre").
//  * Scale: the evaluation transform with crop ratio r: Resize(int(s / r)) then CenterCrop(s).
// Not here: random augmentation, max_size in Resize, tensor-side (non-PIL) torchvision resizing.

/// ImageNet channel means (R, G, B), as timm's IMAGENET_DEFAULT_MEAN.
public let imageNetMean: [Float] = [0.485, 0.456, 0.406]
/// ImageNet channel standard deviations (R, G, B), as timm's IMAGENET_DEFAULT_STD.
public let imageNetStd: [Float] = [0.229, 0.224, 0.225]

/// The largest short side the transforms resize to; larger requests (from absurd crop ratios) are capped here.
public let maxResizeSide = 8192

/// Checks the arguments shared by the transforms, so that a caller can report bad values as one-line
/// errors instead of getting a capped or empty image.
/// - Throws: `ImagingError` (named `what`) for a size below 1, a crop ratio that is not a positive
///   finite number or that asks for a resize above `maxResizeSide`, a negative jitter or a non-finite angle.
public func validateTransformArguments(size: Int, cropPct: Double, jitter: Int = 0, degrees: Double = 0,
                                       what: String = "transform") throws {
    guard size >= 1 else { throw ImagingError(what, "image size \(size) must be at least 1") }
    guard cropPct.isFinite, cropPct > 0 else {
        throw ImagingError(what, "crop ratio \(cropPct) must be a positive number", hint: "0.875 is the usual value")
    }
    guard Double(size) / cropPct <= Double(maxResizeSide) else {
        throw ImagingError(what, "crop ratio \(cropPct) asks for a resize to more than \(maxResizeSide) pixels")
    }
    guard jitter >= 0 else { throw ImagingError(what, "jitter \(jitter) must not be negative") }
    guard degrees.isFinite else { throw ImagingError(what, "rotation angle \(degrees) is not a finite number") }
}

/// `int(size / cropPct)` as Python computes it. A crop ratio that is not a positive finite number
/// counts as 1 (no enlargement), and the result is kept within 1...`maxResizeSide`.
func resizeTarget(size: Int, cropPct: Double) -> Int {
    let ratio = cropPct.isFinite && cropPct > 0 ? cropPct : 1
    let value = Double(size) / ratio
    if value < 1 { return 1 }
    return value >= Double(maxResizeSide) ? maxResizeSide : Int(value)
}

/// torchvision's output size for `Resize(shortSide)` of a `width` x `height` image: the short side
/// becomes `shortSide`, the long side `int(shortSide * long / short)`.
public func shortSideResizedSize(width: Int, height: Int, shortSide: Int) -> (width: Int, height: Int) {
    guard width > 0, height > 0 else { return (shortSide, shortSide) }
    let (short, long) = width <= height ? (width, height) : (height, width)
    let newLong = Int(Double(shortSide * long) / Double(short))
    return width <= height ? (shortSide, newLong) : (newLong, shortSide)
}

/// torchvision `Resize(shortSide, BICUBIC)` on a PIL image.
public func resizeShortSide(_ image: Image8, to shortSide: Int, filter: ResampleFilter = .bicubic) -> Image8 {
    let size = shortSideResizedSize(width: image.width, height: image.height, shortSide: shortSide)
    return resize(image, width: size.width, height: size.height, filter: filter)
}

/// Where torchvision's CenterCrop puts the crop along one axis of `length` pixels, as the source index
/// of the crop's first pixel (negative when the crop is larger and zero padding precedes the image).
public func centerCropOffset(length: Int, crop: Int) -> Int {
    if crop > length { return -((crop - length) / 2) }
    // int(round((length - crop) / 2.0)) with Python's round-half-to-even.
    let n = length - crop
    let half = n / 2
    return n % 2 == 0 || half % 2 == 0 ? half : half + 1
}

/// torchvision `CenterCrop((height, width))`: a centred window, zero-padded where it is larger than the image.
public func centerCrop(_ image: Image8, width: Int, height: Int) -> Image8 {
    crop(image, left: centerCropOffset(length: image.width, crop: width),
         top: centerCropOffset(length: image.height, crop: height), width: width, height: height)
}

/// torchvision `CenterCrop(size)`.
public func centerCrop(_ image: Image8, size: Int) -> Image8 {
    centerCrop(image, width: size, height: size)
}

/// The evaluation transform: `Resize(int(size / cropPct), BICUBIC)` then `CenterCrop(size)`.
public func evalTransform(_ image: Image8, size: Int = 224, cropPct: Double = 0.875) -> Image8 {
    centerCrop(resizeShortSide(image, to: resizeTarget(size: size, cropPct: cropPct)), size: size)
}

/// `Resize((size, size), BICUBIC)` without a crop (the ERF tool's input).
public func squareResize(_ image: Image8, size: Int = 224) -> Image8 {
    resize(image, width: size, height: size, filter: .bicubic)
}

/// The eight directions of the position-jitter transform, numbered as the study's `mode`
/// (rows grow downwards, columns to the right).
public enum JitterDirection: Int, CaseIterable, Sendable {
    case down = 0, right = 1, up = 2, left = 3, downRight = 4, upRight = 5, upLeft = 6, downLeft = 7

    /// The unit step (rows, columns) of this direction.
    public var step: (dy: Int, dx: Int) {
        switch self {
        case .down: return (1, 0)
        case .right: return (0, 1)
        case .up: return (-1, 0)
        case .left: return (0, -1)
        case .downRight: return (1, 1)
        case .upRight: return (-1, 1)
        case .upLeft: return (-1, -1)
        case .downLeft: return (1, -1)
        }
    }
}

/// The study's `PositionJitterTransform` (before normalisation): `Resize(int(size / cropPct))`, then a
/// `size` x `size` window whose centre is moved `jitter` pixels along `direction`; the part of the
/// window inside the image is kept and zero-padded back to `size` x `size`, centred.
/// A negative jitter is treated as 0.
public func jitterTransform(_ image: Image8, size: Int = 224, cropPct: Double = 0.875,
                            jitter: Int, direction: JitterDirection) -> Image8 {
    let resized = resizeShortSide(image, to: resizeTarget(size: size, cropPct: cropPct))
    let s = max(size, 0), j = max(jitter, 0)
    let cy = resized.height / 2 + direction.step.dy * j
    let cx = resized.width / 2 + direction.step.dx * j
    let half = s / 2
    let rowStart = max(cy - half, 0), rowEnd = min(cy + half, resized.height)
    let colStart = max(cx - half, 0), colEnd = min(cx + half, resized.width)
    let rows = max(rowEnd - rowStart, 0), cols = max(colEnd - colStart, 0)
    // Python slicing gives an empty window when the start passes the end; padding is centred.
    return place(resized, rows: rowStart..<(rowStart + rows), columns: colStart..<(colStart + cols),
                 outWidth: s, outHeight: s,
                 atTop: rows < s ? (s - rows) / 2 : 0, atLeft: cols < s ? (s - cols) / 2 : 0)
}

/// The study's `RotateTransform` (before normalisation): `Resize(int(size / cropPct))`, then either
/// `CenterCrop(size)` and a rotation (`preCrop == false`, "post") or a rotation of the resized image
/// and then the crop (`preCrop == true`, "pre"). Rotations are counter-clockwise, bicubic, black fill.
public func rotateTransform(_ image: Image8, size: Int = 224, cropPct: Double = 0.875,
                            degrees: Double, preCrop: Bool) -> Image8 {
    let resized = resizeShortSide(image, to: resizeTarget(size: size, cropPct: cropPct))
    if preCrop {
        return centerCrop(rotate(resized, degrees: degrees), size: size)
    }
    return rotate(centerCrop(resized, size: size), degrees: degrees)
}

/// The study's scale transform: the evaluation transform with crop ratio `ratio`
/// (short side to `int(size / ratio)`, centre crop `size`, zero padding when the image is smaller).
public func scaleTransform(_ image: Image8, size: Int = 224, ratio: Double) -> Image8 {
    evalTransform(image, size: size, cropPct: ratio)
}

/// `ToTensor` + `Normalize(mean, std)` into channels-last float32: H*W*C values, (v / 255 - mean[c]) / std[c].
/// `mean` and `std` need one entry per channel (missing entries count as mean 0, std 1).
public func toTensorHWC(_ image: Image8, mean: [Float] = imageNetMean, std: [Float] = imageNetStd) -> [Float] {
    let n = image.pixels.count
    return [Float](unsafeUninitializedCapacity: n) { buffer, count in
        writeTensorHWC(image, mean: mean, std: std, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<n]))
        count = n
    }
}

/// `toTensorHWC` writing into `destination` (at least H*W*C floats), e.g. one sample of a batch.
public func writeTensorHWC(_ image: Image8, mean: [Float], std: [Float], into destination: UnsafeMutableBufferPointer<Float>) {
    let c = image.channels
    // One float per (channel, byte value): the same float32 operations torchvision performs.
    var table = [Float](repeating: 0, count: 256 * c)
    for ch in 0..<c {
        let m = ch < mean.count ? mean[ch] : 0
        let s = ch < std.count ? std[ch] : 1
        for v in 0..<256 { table[ch * 256 + v] = (Float(v) / 255 - m) / s }
    }
    let n = min(image.pixels.count, destination.count)
    image.pixels.withUnsafeBufferPointer { src in
        table.withUnsafeBufferPointer { lut in
            if c == 3 {
                var i = 0
                while i + 2 < n {
                    destination[i] = lut[Int(src[i])]
                    destination[i + 1] = lut[256 + Int(src[i + 1])]
                    destination[i + 2] = lut[512 + Int(src[i + 2])]
                    i += 3
                }
            } else {
                for i in 0..<n { destination[i] = lut[(i % c) * 256 + Int(src[i])] }
            }
        }
    }
}
