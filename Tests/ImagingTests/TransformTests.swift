// ImagingTests: small cases checkable by hand: resizing constants and a worked bilinear example,
// torchvision's size and crop-offset arithmetic (odd sizes, padding), rotation identities, the jitter
// directions, and the float conversion. Layout key: Image8 is H x W x C (HWC).

import XCTest
@testable import Imaging

final class TransformTests: XCTestCase {
    func testResizingAConstantImageKeepsItConstant() {
        let flat = Image8(width: 37, height: 23, channels: 3, fill: 173)
        for filter in [ResampleFilter.bicubic, .bilinear] {
            for (w, h) in [(10, 7), (100, 61), (37, 5), (3, 23), (1, 1)] {
                let out = resize(flat, width: w, height: h, filter: filter)
                XCTAssertEqual(out.width, w)
                XCTAssertEqual(out.height, h)
                XCTAssertTrue(out.pixels.allSatisfy { $0 == 173 }, "\(filter) \(w)x\(h)")
            }
        }
    }

    func testBilinearHalvingByHand() {
        // Row 0, 70, 140, 210 halved: output 0 is centred at 1.0 with support 2, taps 0...2 weighted
        // 0.75, 0.75, 0.25 (normalised by 1.75) -> 87.5 / 1.75 = 50; output 1 at 3.0 takes taps 1...3
        // weighted 0.25, 0.75, 0.75 -> 280 / 1.75 = 160.
        let row = Image8(width: 4, height: 1, channels: 1, pixels: [0, 70, 140, 210])
        XCTAssertEqual(resize(row, width: 2, height: 1, filter: .bilinear).pixels, [50, 160])
    }

    func testResizeToTheSameSizeIsTheIdentity() {
        let image = patternImage(width: 9, height: 5)
        XCTAssertEqual(resize(image, width: 9, height: 5), image)
        XCTAssertEqual(resize(image, width: 0, height: 5).pixels.count, 0)
    }

    func testShortSideResize() {
        // int(256 * 500 / 375) = int(341.33) = 341, whichever side is the short one.
        XCTAssertTrue(shortSideResizedSize(width: 500, height: 375, shortSide: 256) == (341, 256))
        XCTAssertTrue(shortSideResizedSize(width: 375, height: 500, shortSide: 256) == (256, 341))
        XCTAssertTrue(shortSideResizedSize(width: 300, height: 300, shortSide: 256) == (256, 256))
        // int(224 / 1.25) = 179 and int(179 * 500 / 375) = int(238.67) = 238.
        XCTAssertEqual(resizeTarget(size: 224, cropPct: 1.25), 179)
        XCTAssertEqual(resizeTarget(size: 224, cropPct: 0.875), 256)
        XCTAssertTrue(shortSideResizedSize(width: 500, height: 375, shortSide: 179) == (238, 179))
    }

    func testCenterCropOffsetsOnOddSizes() {
        // int(round(n / 2.0)) with half-to-even rounding.
        XCTAssertEqual(centerCropOffset(length: 256, crop: 224), 16)
        XCTAssertEqual(centerCropOffset(length: 257, crop: 224), 16)  // 16.5 -> 16
        XCTAssertEqual(centerCropOffset(length: 259, crop: 224), 18)  // 17.5 -> 18
        XCTAssertEqual(centerCropOffset(length: 225, crop: 224), 0)   // 0.5 -> 0
        XCTAssertEqual(centerCropOffset(length: 227, crop: 224), 2)   // 1.5 -> 2
        XCTAssertEqual(centerCropOffset(length: 341, crop: 224), 58)  // 58.5 -> 58
        // Larger crops: (crop - length) // 2 zeros before the image.
        XCTAssertEqual(centerCropOffset(length: 200, crop: 224), -12)
        XCTAssertEqual(centerCropOffset(length: 201, crop: 224), -11)
    }

    func testCenterCropPadsWithZeros() {
        let image = Image8(width: 3, height: 2, channels: 1, pixels: [1, 2, 3, 4, 5, 6])
        // 4 wide: pad 0 left, 1 right; 5 high: pad 1 top, 2 bottom.
        let out = centerCrop(image, width: 4, height: 5)
        XCTAssertEqual(out.pixels, [0, 0, 0, 0,
                                    1, 2, 3, 0,
                                    4, 5, 6, 0,
                                    0, 0, 0, 0,
                                    0, 0, 0, 0])
        // Cropping 2x1 out of 3x2: offsets round(0.5) = 0 and round(0.5) = 0.
        XCTAssertEqual(centerCrop(image, width: 2, height: 1).pixels, [1, 2])
    }

    func testCropOutsideTheImageIsZero() {
        let image = Image8(width: 2, height: 2, channels: 1, pixels: [1, 2, 3, 4])
        XCTAssertEqual(crop(image, left: -1, top: 1, width: 3, height: 2).pixels, [0, 3, 4, 0, 0, 0])
        XCTAssertEqual(crop(image, left: 5, top: 5, width: 2, height: 1).pixels, [0, 0])
    }

    func testRotateByZeroAndFullTurnsIsTheIdentity() {
        let image = patternImage(width: 11, height: 7)
        XCTAssertEqual(rotate(image, degrees: 0), image)
        XCTAssertEqual(rotate(image, degrees: 360), image)
        XCTAssertEqual(rotate(image, degrees: -720), image)
        XCTAssertEqual(rotate(rotate(image, degrees: 180), degrees: 180), image)
    }

    func testRotate90OnASquareIsATransposeFlip() {
        let n = 9
        let image = patternImage(width: n, height: n)
        let out = rotate(image, degrees: 90)
        // Counter-clockwise: output (row r, column c) shows input (row c, column n-1-r).
        for r in 0..<n {
            for c in 0..<n {
                for b in 0..<3 {
                    XCTAssertEqual(out.pixels[(r * n + c) * 3 + b], image.pixels[(c * n + (n - 1 - r)) * 3 + b])
                }
            }
        }
        XCTAssertEqual(rotate(out, degrees: -90), image)
    }

    func testRotate90OnAWideImageSamplesPixelCentres() {
        // Not square, so the general bicubic path runs. Its inverse map sends the output pixel centre
        // (x + 0.5, y + 0.5) to the source point (cx + cy - (y + 0.5), (x + 0.5) - cx + cy) with
        // (cx, cy) = (W/2, H/2): a pixel centre, where the cubic reproduces the sample exactly.
        let w = 10, h = 6
        let image = patternImage(width: w, height: h)
        let out = rotate(image, degrees: 90)
        let cx = Double(w) / 2, cy = Double(h) / 2
        var checked = 0
        for y in 0..<h {
            for x in 0..<w {
                let sx = cx + cy - (Double(y) + 0.5)
                let sy = (Double(x) + 0.5) - cx + cy
                let inside = sx >= 0 && sx < Double(w) && sy >= 0 && sy < Double(h)
                for b in 0..<3 {
                    let got = out.pixels[(y * w + x) * 3 + b]
                    if inside {
                        XCTAssertEqual(got, image.pixels[(Int(sy) * w + Int(sx)) * 3 + b], "(\(x), \(y))")
                        checked += 1
                    } else {
                        XCTAssertEqual(got, 0, "(\(x), \(y)) lies outside the source and must be black")
                    }
                }
            }
        }
        XCTAssertEqual(checked, 6 * 6 * 3)  // the centred 6x6 square of the 10x6 image is covered
    }

    func testJitterOfZeroEqualsTheEvaluationCrop() {
        // For 341x256: centre (128, 170) minus 112 gives (16, 58), CenterCrop's round(16.0), round(58.5) = 58.
        let image = patternImage(width: 500, height: 375)
        for direction in JitterDirection.allCases {
            XCTAssertEqual(jitterTransform(image, jitter: 0, direction: direction), evalTransform(image))
        }
    }

    func testJitterMovesTheWindowAndCentresThePadding() {
        let image = patternImage(width: 500, height: 375)
        let resized = resizeShortSide(image, to: 256)  // 341 x 256
        // Down by 32: rows 48..<256 (208 rows) kept, padded by 8 above and 8 below; columns 58..<282.
        let down = jitterTransform(image, jitter: 32, direction: .down)
        XCTAssertEqual(down, place(resized, rows: 48..<256, columns: 58..<282, outWidth: 224, outHeight: 224, atTop: 8, atLeft: 0))
        XCTAssertTrue(down.pixels[0..<(8 * 224 * 3)].allSatisfy { $0 == 0 })
        XCTAssertEqual(Array(down.pixels[(8 * 224 * 3)..<(8 * 224 * 3 + 3)]), Array(resized.pixels[(48 * 341 + 58) * 3..<(48 * 341 + 58) * 3 + 3]))
        // Up-left by 32: rows 0..<208, columns 26..<250: no column padding, 8 rows above and below.
        let upLeft = jitterTransform(image, jitter: 32, direction: .upLeft)
        XCTAssertEqual(Array(upLeft.pixels[(8 * 224 * 3)..<(8 * 224 * 3 + 3)]), Array(resized.pixels[26 * 3..<26 * 3 + 3]))
        // Right by 64: columns 122..<341 (219 kept), padded 2 left and 3 right.
        let right = jitterTransform(image, jitter: 64, direction: .right)
        XCTAssertEqual(Array(right.pixels[0..<6]), [0, 0, 0, 0, 0, 0])
        XCTAssertEqual(Array(right.pixels[6..<9]), Array(resized.pixels[(16 * 341 + 122) * 3..<(16 * 341 + 122) * 3 + 3]))
    }

    func testDirectionNumberingFollowsTheStudy() {
        XCTAssertTrue(JitterDirection(rawValue: 0)!.step == (1, 0))    // down
        XCTAssertTrue(JitterDirection(rawValue: 4)!.step == (1, 1))    // down-right
        XCTAssertTrue(JitterDirection(rawValue: 6)!.step == (-1, -1))  // up-left
        XCTAssertEqual(JitterDirection.allCases.count, 8)
    }

    func testScaleTransformPadsWhenTheImageIsSmaller() {
        let image = Image8(width: 500, height: 375, channels: 3, fill: 200)
        let out = scaleTransform(image, ratio: 1.25)  // 238 x 179, so 22 rows above, 23 below are zero
        XCTAssertEqual(out.width, 224)
        XCTAssertEqual(out.height, 224)
        XCTAssertTrue(out.pixels[0..<(22 * 224 * 3)].allSatisfy { $0 == 0 })
        XCTAssertTrue(out.pixels[(22 * 224 * 3)..<((22 + 179) * 224 * 3)].allSatisfy { $0 == 200 })
        XCTAssertTrue(out.pixels[((22 + 179) * 224 * 3)...].allSatisfy { $0 == 0 })
    }

    func testSquareResizeAndRotateTransformShapes() {
        let image = patternImage(width: 500, height: 375)
        let square = squareResize(image, size: 224)
        XCTAssertEqual(square.width, 224)
        XCTAssertEqual(square.height, 224)
        let post = rotateTransform(image, degrees: 0, preCrop: false)
        XCTAssertEqual(post, evalTransform(image))
        XCTAssertEqual(rotateTransform(image, degrees: 0, preCrop: true), post)
    }

    func testToTensorHWCNormalises() {
        let image = Image8(width: 2, height: 1, channels: 3, pixels: [0, 128, 255, 255, 0, 51])
        let t = toTensorHWC(image, mean: imageNetMean, std: imageNetStd)
        let expected: [Float] = [(0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (1 - 0.406) / 0.225,
                                 (1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0.2 - 0.406) / 0.225]
        XCTAssertEqual(t.count, 6)
        for (a, b) in zip(t, expected) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testBadTransformArgumentsAreReported() {
        XCTAssertThrowsError(try validateTransformArguments(size: 0, cropPct: 0.875))
        XCTAssertThrowsError(try validateTransformArguments(size: 224, cropPct: 0))
        XCTAssertThrowsError(try validateTransformArguments(size: 224, cropPct: .nan))
        XCTAssertThrowsError(try validateTransformArguments(size: 224, cropPct: 1e-9))
        XCTAssertThrowsError(try validateTransformArguments(size: 224, cropPct: 0.875, jitter: -1))
        XCTAssertThrowsError(try validateTransformArguments(size: 224, cropPct: 0.875, degrees: .infinity))
        XCTAssertNoThrow(try validateTransformArguments(size: 224, cropPct: 0.2, jitter: 64, degrees: 90))
        // The transforms themselves stay safe on such values.
        let image = patternImage(width: 20, height: 10)
        XCTAssertEqual(evalTransform(image, size: 8, cropPct: 0), evalTransform(image, size: 8, cropPct: 1))
        XCTAssertEqual(resizeTarget(size: 224, cropPct: 1e-12), maxResizeSide)
        XCTAssertTrue(rotate(image, degrees: .nan).pixels.allSatisfy { $0 == 0 })
    }
}
