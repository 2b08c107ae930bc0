// Small cases worked out by hand: anchors, delta decoding and clipping, NMS (strict threshold,
// per-group independence, order), RoI levels, RoIAlign (constant and linear maps, borders), the
// FPN's nearest upsampling, and the refusal of classification checkpoints.

import Checkpoint
@testable import Detection
import Foundation
import Imaging
import Models
import TensorCore
import TestSupport
import XCTest

final class HandMadeTests: XCTestCase {
    func testAnchors() {
        let g = AnchorGenerator()
        let base = g.baseAnchors(stride: 4)
        // ratio 1: a 32 x 32 square around (0, 0); ratio 0.5: w = 32 * sqrt(2), h = 32 / sqrt(2).
        XCTAssertEqual(Array(base[4..<8]), [-16, -16, 16, 16])
        XCTAssertEqual(base[0], -16 * 2.0.squareRoot().floatValue, accuracy: 1e-4)
        XCTAssertEqual(base[1], -16 / 2.0.squareRoot().floatValue, accuracy: 1e-4)
        XCTAssertEqual(base[8], -16 / 2.0.squareRoot().floatValue, accuracy: 1e-4)
        XCTAssertEqual(base[9], -16 * 2.0.squareRoot().floatValue, accuracy: 1e-4)
        // Order: row y, column x, then the ratios; shifted by (x, y) * stride.
        let a = g.anchors(level: 1, height: 2, width: 3)
        XCTAssertEqual(a.count, 2 * 3 * 3 * 4)
        func cell(_ y: Int, _ x: Int, _ k: Int) -> [Float] {
            let o: Int = ((y * 3 + x) * 3 + k) * 4
            return Array(a[o..<(o + 4)])
        }
        XCTAssertEqual(cell(0, 0, 1), [-32, -32, 32, 32])
        XCTAssertEqual(cell(1, 2, 1), [-16, -24, 48, 40])
    }

    func testDeltaDecoding() {
        let rpn = DeltaDecoder(stds: [1, 1, 1, 1])
        // Zero deltas give the box back; clipping to the image.
        XCTAssertEqual(rpn.decode(refs: [10, 20, 30, 60], deltas: [0, 0, 0, 0], clipWidth: 100, clipHeight: 100), [10, 20, 30, 60])
        XCTAssertEqual(rpn.decode(refs: [-10, 20, 30, 160], deltas: [0, 0, 0, 0], clipWidth: 100, clipHeight: 100), [0, 20, 30, 100])
        // dx = 0.5 moves the centre by half the width; dw = ln 2 doubles the width.
        let d = rpn.decode(refs: [10, 10, 30, 20], deltas: [0.5, 0, Float(log(2.0)), 0], clipWidth: 100, clipHeight: 100)
        XCTAssertEqual(d[0], 10, accuracy: 1e-5)
        XCTAssertEqual(d[2], 50, accuracy: 1e-5)
        XCTAssertEqual([d[1], d[3]], [10, 20])
        // dw is clamped to |ln(16/1000)|: exp(4.1352) * 10 = 625.
        let big = rpn.decode(refs: [0, 0, 10, 10], deltas: [0, 0, 100, 0], clipWidth: 10_000, clipHeight: 10_000)
        XCTAssertEqual(big[2] - 5, 625 / 2, accuracy: 1e-2)
        // The box head's stds: delta 1 in x is 0.1 widths.
        let rcnn = DeltaDecoder(stds: [0.1, 0.1, 0.2, 0.2])
        let e = rcnn.decode(refs: [0, 0, 10, 10], deltas: [1, 0, 0, 0], clipWidth: 100, clipHeight: 100)
        XCTAssertEqual(e[0], 1, accuracy: 1e-6)
        XCTAssertEqual(e[2], 11, accuracy: 1e-6)
    }

    func testNMS() {
        // A (score 0.9), B overlapping A with IoU 0.6, C far away, D with IoU exactly 0.5 against A.
        let boxes: [Float] = [0, 0, 10, 10,   0, 0, 10, 6,   50, 50, 60, 60,   0, 0, 10, 5]
        let scores: [Float] = [0.9, 0.8, 0.7, 0.95]
        // D (0.95) first: A has IoU 0.5 with D (kept at 0.5, IoU must be greater), B IoU 5/6 with D: dropped.
        XCTAssertEqual(NMS.suppress(boxes: boxes, scores: scores, iouThreshold: 0.5), [3, 0, 2])
        XCTAssertEqual(NMS.suppress(boxes: boxes, scores: scores, iouThreshold: 0.49), [3, 2])
        XCTAssertEqual(NMS.suppress(boxes: boxes, scores: scores, iouThreshold: 0.9), [3, 0, 1, 2])
        // Per group: B in its own group survives; output sorted by score.
        XCTAssertEqual(NMS.batched(boxes: boxes, scores: scores, groups: [0, 1, 0, 0], iouThreshold: 0.5), [3, 0, 1, 2])
        // Ties keep the lower index first.
        XCTAssertEqual(NMS.order([0.5, 0.7, 0.5]), [1, 0, 2])
    }

    func testRoILevels() {
        func level(_ side: Float) -> Int { [0, 0, side, side].withUnsafeBufferPointer { NMS.roiLevel($0.baseAddress!) } }
        XCTAssertEqual(level(10), 0)
        XCTAssertEqual(level(111), 0)
        XCTAssertEqual(level(112), 1)   // sqrt(area) / 56 = 2
        XCTAssertEqual(level(224), 2)
        XCTAssertEqual(level(448), 3)
        XCTAssertEqual(level(5000), 3)
    }

    func testRoIAlign() {
        // A map whose value is 10 y + x (two channels: the same and its negative).
        let (h, w) = (6, 8)
        var values: [Float] = []
        for y in 0..<h { for x in 0..<w { values += [Float(10 * y + x), -Float(10 * y + x)] } }
        let map = Tensor(shape: [1, h, w, 2], values: values)
        // A box from input (2, 2) to (9, 9) at scale 1/2: feature box (0.5, 0.5)-(4, 4) after -0.5, bins
        // 0.5 wide with one sample each at the bin centres; bilinear on a linear map is exact.
        let out = UnsafeMutablePointer<Float>.allocate(capacity: 49 * 2)
        defer { out.deallocate() }
        roiAlign(map: map, boxes: [2, 2, 9, 9], spatialScale: 0.5, outputSize: 7, into: out, rows: [0])
        for py in 0..<7 { for px in 0..<7 {
            let y = 0.5 + 0.5 * (Float(py) + 0.5), x = 0.5 + 0.5 * (Float(px) + 0.5)
            XCTAssertEqual(out[(py * 7 + px) * 2], 10 * y + x, accuracy: 1e-4)
            XCTAssertEqual(out[(py * 7 + px) * 2 + 1], -(10 * y + x), accuracy: 1e-4)
        } }
        // Two samples per bin side when the bin is 2 pixels wide: the mean of 4 samples of a linear map is its centre value.
        roiAlign(map: map, boxes: [1, 1, 29, 15], spatialScale: 1, outputSize: 7, into: out, rows: [0])
        // x bins 4 wide (4 samples per side), y bins 2 wide (2 per side).
        let binX: Float = 4, binY: Float = 2
        let y0: Float = 0.5 + binY * 0.5, x0: Float = 0.5 + binX * 0.5
        XCTAssertEqual(out[0], 10 * y0 + x0, accuracy: 1e-4)
        // A bin entirely beyond the map (x > w) contributes zero.
        roiAlign(map: map, boxes: [100, 0, 114, 4], spatialScale: 1, outputSize: 7, into: out, rows: [0])
        XCTAssertEqual(out[0], 0)
        // Samples at or beyond the last column read the last column: x = 7.15 in (w - 1, w], y = 0.05.
        roiAlign(map: map, boxes: [7.6, 0.5, 8.3, 1.2], spatialScale: 1, outputSize: 7, into: out, rows: [0])
        XCTAssertEqual(out[0], 10 * 0.05 + 7, accuracy: 1e-4)
    }

    func testNearestUpsampleAndSubsample() {
        let coarse = Tensor(shape: [1, 2, 2, 1], values: [1, 2, 3, 4])
        let fine = Tensor(shape: [1, 4, 4, 1], repeating: 10)
        XCTAssertEqual(addNearestUpsampled(fine, coarse).values,
                       [11, 11, 12, 12, 11, 11, 12, 12, 13, 13, 14, 14, 13, 13, 14, 14])
        let p5 = Tensor(shape: [1, 3, 3, 1], values: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        let p6 = subsample2(p5)
        XCTAssertEqual(p6.shape, [1, 2, 2, 1])
        XCTAssertEqual(p6.values, [1, 3, 7, 9])
    }

    /// The banded 3x3 convolution equals the whole map's convolution bit for bit, at band edges too.
    func testBandedConvolutionIsExact() {
        let conv = BandedConv2d(5, 7, kernel: 3)
        var rng = SeededNormal(seed: 3)
        conv.weight.assign((0..<conv.weight.count).map { _ in Float(rng.normal()) })
        conv.bias.assign((0..<7).map { _ in Float(rng.normal()) })
        conv.prepare()
        let x = Tensor(shape: [1, 11, 6, 5], values: (0..<(11 * 6 * 5)).map { _ in Float(rng.normal()) })
        let whole = conv(x).values
        conv.bandBytes = 6 * 9 * 5 * 4 * 2   // two rows per band
        let banded = conv(x).values
        XCTAssertEqual(banded, whole)
        conv.bandBytes = 6 * 9 * 5 * 4 * 3   // three rows: a short last band
        XCTAssertEqual(conv(x).values, whole)
    }

    func testClassificationCheckpointIsRefused() {
        XCTAssertThrowsError(try DetectorLoader.load(model: referencePath("convnext_nano.pth"))) { error in
            XCTAssertTrue("\(error)".contains("classification checkpoint"), "\(error)")
        }
    }

    func testUntrainedDetectorFromPreset() throws {
        let loaded = try DetectorLoader.load(model: "unified_convnext_micro")
        let d = loaded.detector
        XCTAssertEqual(d.heads.neck.channels, 256)
        XCTAssertEqual(d.classCount, 80)
        let image = Image8Fixture.gradient(width: 96, height: 64)
        let prepared = try DetectionPipeline(testScale: (160, 96)).prepare(image)
        let t = d.trace(prepared)
        XCTAssertEqual(t.pyramid.map { $0.shape[3] }, [256, 256, 256, 256, 256])
        XCTAssertEqual(t.logits.shape[1], 81)
        XCTAssertEqual(t.deltas.shape[1], 320)
        XCTAssertGreaterThan(t.proposals.count, 0)
        // Seeded: a second build gives the same detections.
        let again = try DetectorLoader.load(model: "unified_convnext_micro").detector.detect(prepared)
        XCTAssertEqual(again, t.detections)
    }
}

private extension Double { var floatValue: Float { Float(self) } }

enum Image8Fixture {
    static func gradient(width: Int, height: Int) -> Image8 {
        var p: [UInt8] = []
        for y in 0..<height { for x in 0..<width { p += [UInt8((x * 255) / width), UInt8((y * 255) / height), UInt8(((x + y) * 7) % 256)] } }
        return Image8(width: width, height: height, channels: 3, pixels: p)
    }
}
