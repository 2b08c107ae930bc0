// The test pipeline against ../shared/reference/detection/inputs_expected.safetensors and the
// families' geometry: coffee.png resized by our OpenCV INTER_LINEAR must equal cv2's uint8 image in
// every value at s = 0.5, 1 and 1.5 of the fixture's test scale (320, 192); the shapes, scale factors
// and the normalised input follow, and the study's (1333, 800) gives the stored geometry.

import Checkpoint
import Detection
import Foundation
import Imaging
import TensorCore
import TestSupport
import XCTest

/// coffee.png of ../shared/images/public-domain (the fixtures' image).
func coffeeImage() throws -> Image8 {
    try loadImage(path: sharedDirectory() + "/images/public-domain/coffee.png")
}

final class PreprocessReferenceTests: XCTestCase {
    func testResizeIsBitExactAtEveryScale() throws {
        let inputs = try SafeTensors.readDictionary(path: referencePath("detection/inputs_expected.safetensors"))
        let image = try coffeeImage()
        for s in ["0.5", "1.0", "1.5"] {
            let pipeline = DetectionPipeline(testScale: (320, 192)).scaled(by: Double(s)!)
            let prepared = try pipeline.prepare(image)
            let ref = try XCTUnwrap(inputs["coffee/s\(s)/resized_rgb_u8"])
            XCTAssertEqual(ref.shape, [prepared.imageHeight, prepared.imageWidth, 3], "s\(s) resized shape")
            let want = ref.values.map { UInt8($0) }
            let differing = zip(prepared.resized.pixels, want).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "s\(s): \(differing) of \(want.count) uint8 values differ from cv2.resize")
            XCTAssertEqual(prepared.resized.pixels.count, want.count)
            let shape = try XCTUnwrap(inputs["coffee/s\(s)/input_shape"]).values.map { Int($0) }
            XCTAssertEqual(shape, [1, 3, prepared.input.shape[1], prepared.input.shape[2]], "s\(s) input shape")
        }
        // The normalised input at s = 1 (288 x 192 needs no padding).
        let prepared = try DetectionPipeline(testScale: (320, 192)).prepare(image)
        let ref = try XCTUnwrap(inputs["coffee/s1.0/input"])
        let c = maxAbsCheck(toNCHW(prepared.input), ref.values)
        XCTAssertLessThanOrEqual(c.diff, 1e-5, "s1.0 normalised input")
    }

    func testGeometryOfEveryRun() throws {
        let expected = try SafeTensors.readDictionary(path: referencePath("detection/convnext_det_nano_expected.safetensors"))
        let image = try coffeeImage()
        let runs: [(String, DetectionPipeline)] = [
            ("coffee/s0.5", DetectionPipeline(testScale: (320, 192)).scaled(by: 0.5)),
            ("coffee/s1.0", DetectionPipeline(testScale: (320, 192))),
            ("coffee/s1.5", DetectionPipeline(testScale: (320, 192)).scaled(by: 1.5)),
            ("coffee/real1333x800", DetectionPipeline()),
        ]
        for (prefix, pipeline) in runs {
            let p = try pipeline.prepare(image)
            let img = try XCTUnwrap(expected["\(prefix)/img_shape"]).values.map { Int($0) }
            XCTAssertEqual(img, [p.imageHeight, p.imageWidth, 3], "\(prefix) img_shape")
            let input = try XCTUnwrap(expected["\(prefix)/input_shape"]).values.map { Int($0) }
            XCTAssertEqual(input, [1, 3, p.paddedSize.height, p.paddedSize.width], "\(prefix) input_shape")
            if let pad = expected["\(prefix)/pad_shape"] {
                XCTAssertEqual(pad.values.map { Int($0) }, [p.paddedSize.height, p.paddedSize.width, 3], "\(prefix) pad_shape")
            }
            let sf = try XCTUnwrap(expected["\(prefix)/scale_factor"]).values
            for (a, b) in zip(p.scaleFactor, sf) { XCTAssertEqual(a, b, accuracy: 1e-7 * abs(b), "\(prefix) scale_factor") }
            // Padding is zeros after normalisation.
            let v = p.input.values, (ph, pw) = p.paddedSize
            for y in 0..<ph { for x in 0..<pw where y >= p.imageHeight || x >= p.imageWidth {
                XCTAssertEqual(v[(y * pw + x) * 3], 0); break
            } }
        }
    }

    /// cv2.resize's special cases, by hand: the identity, an exact 2x reduction (the mean of each 2x2
    /// block, rounded half up) and a 1-pixel-wide source (every column the same).
    func testResizeHandMadeCases() {
        let src = Image8(width: 4, height: 2, channels: 1, pixels: [0, 10, 20, 31, 100, 110, 120, 255])
        XCTAssertEqual(resizeBilinearOpenCV(src, width: 4, height: 2).pixels, src.pixels)
        // 2x down: (0+10+100+110+2)/4 = 55, (20+31+120+255+2)/4 = 107.
        XCTAssertEqual(resizeBilinearOpenCV(src, width: 2, height: 1).pixels, [55, 107])
        let column = Image8(width: 1, height: 2, channels: 1, pixels: [7, 9])
        let wide = resizeBilinearOpenCV(column, width: 3, height: 2)
        XCTAssertEqual(wide.pixels, [7, 7, 7, 9, 9, 9])
        // Up-sampling 0,255 to 4 columns: fx = -0.25, 0.25, 0.75, 1.25 -> 0, 64, 191, 255.
        let pair = Image8(width: 2, height: 1, channels: 1, pixels: [0, 255])
        XCTAssertEqual(resizeBilinearOpenCV(pair, width: 4, height: 1).pixels, [0, 64, 191, 255])
    }
}
