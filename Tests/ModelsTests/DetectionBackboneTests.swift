// The study's detection backbones (../shared/reference/detection/*_det_nano) through the backbone API:
// each mmdetection checkpoint is loaded by `ModelLoader` (its `backbone.` prefix stripped, the neck
// and heads set aside, the detection form read from the `out_norm_i` keys) and run with
// `Backbone.features`. At s = 1 (input 192x288; stage maps 48x72, 24x36, 12x18, 6x9, multiples of
// neither 7 nor every PVT ratio) the four full stage maps are compared; at s = 0.5 (160x96: maps down
// to 5x3, smaller than a Swin window) and s = 1.5 (448x288) the channel means and the eight stored
// pixels. Every family thus runs at sizes other than its img_size (224) against the reference.

import Checkpoint
import Foundation
@testable import Models
import TensorCore
import TestSupport
import XCTest

final class DetectionBackboneTests: XCTestCase {
    /// The pixels the fixture stores at s = 0.5 and 1.5, as (y, x) before the non-negative modulo.
    static let pixels = [(0, 0), (1, 3), (5, 2), (7, 11), (13, 6), (17, 17), (-1, -1), (-2, -5)]

    func check(_ family: String) throws {
        let loaded = try ModelLoader.load(model: referencePath("detection/\(family)_det_nano.pth"),
                                          arch: referencePath("\(family)_nano.json"))
        let model: any Backbone = loaded.model
        XCTAssertEqual(loaded.form, .detection, family)
        XCTAssertFalse(model.hasHead, family)
        XCTAssertEqual(loaded.prefixes.stripped, ["backbone."], family)
        XCTAssertGreaterThan(loaded.prefixes.setAside, 0, "\(family): the neck and heads are set aside")
        XCTAssertEqual(model.stageStrides, [4, 8, 16, 32])
        let expected = try SafeTensors.readDictionary(path: referencePath("detection/\(family)_det_nano_expected.safetensors"))
        let inputs = try SafeTensors.readDictionary(path: referencePath("detection/inputs_expected.safetensors"))

        let input = try XCTUnwrap(inputs["coffee/s1.0/input"])
        let features = model.features(fromNCHW(input.values, n: 1, c: 3, h: 192, w: 288), stages: [1, 2, 3, 4])
        for f in features {
            let ref = try XCTUnwrap(expected["coffee/s1.0/stage\(f.stage)"])
            XCTAssertEqual(f.stride, 4 << (f.stage - 1))
            XCTAssertEqual([1, f.map.shape[3], f.map.shape[1], f.map.shape[2]], ref.shape, "\(family) stage \(f.stage) shape")
            let c = maxAbsCheck(toNCHW(f.map), ref.values)
            XCTAssertLessThanOrEqual(c.diff, c.limit, "\(family) detection stage \(f.stage) (map \(f.map.shape[1])x\(f.map.shape[2]))")
        }

        for scale in ["0.5", "1.5"] {
            let shape = try XCTUnwrap(expected["coffee/s\(scale)/input_shape"]).values.map { Int($0) }
            let (h, w) = (shape[2], shape[3])
            let x = try inputTensor(scale: scale, height: h, width: w, inputs: inputs)
            for f in model.features(x, stages: [1, 2, 3, 4]) {
                let (fh, fw, c) = (f.map.shape[1], f.map.shape[2], f.map.shape[3])
                var mean = [Float](repeating: 0, count: c)
                var picked: [Float] = []
                let v = f.map.values
                for p in 0..<(fh * fw) { for ch in 0..<c { mean[ch] += v[p * c + ch] / Float(fh * fw) } }
                for (y, xx) in Self.pixels {
                    let py = ((y % fh) + fh) % fh, px = ((xx % fw) + fw) % fw
                    picked += v[((py * fw) + px) * c..<((py * fw) + px + 1) * c]
                }
                let refMean = try XCTUnwrap(expected["coffee/s\(scale)/stage\(f.stage)_chmean"])
                let refPixels = try XCTUnwrap(expected["coffee/s\(scale)/stage\(f.stage)_pixels"])
                let m = maxAbsCheck(mean, refMean.values), q = maxAbsCheck(picked, refPixels.values)
                XCTAssertLessThanOrEqual(m.diff, m.limit, "\(family) s\(scale) stage \(f.stage) channel means (map \(fh)x\(fw))")
                XCTAssertLessThanOrEqual(q.diff, q.limit, "\(family) s\(scale) stage \(f.stage) pixels (map \(fh)x\(fw))")
            }
        }
    }

    /// The network input at scale s: the stored resized RGB image normalised (mmdet's mean/std) and
    /// zero-padded at the bottom/right to the stored input shape.
    private func inputTensor(scale: String, height: Int, width: Int, inputs: [String: TensorRecord]) throws -> Tensor {
        let rgb = try XCTUnwrap(inputs["coffee/s\(scale)/resized_rgb_u8"])
        let (ih, iw) = (rgb.shape[0], rgb.shape[1])
        let mean: [Float] = [123.675, 116.28, 103.53], std: [Float] = [58.395, 57.12, 57.375]
        let values = rgb.values
        var out = [Float](repeating: 0, count: height * width * 3)
        for y in 0..<ih { for x in 0..<iw { for c in 0..<3 {
            out[(y * width + x) * 3 + c] = (values[(y * iw + x) * 3 + c] - mean[c]) * (1 / std[c])
        } } }
        return Tensor(shape: [1, height, width, 3], values: out)
    }

    func testConvNeXt() throws { try check("convnext") }
    // Swin: window 7 on every map (padded), odd blocks shift even where the map is smaller than the window.
    func testSwinPaddedWindows() throws { try check("swin") }
    // HaloNet: its padded pixels stay valid keys (zeros after norm1), as the detection block pads them.
    func testHaloPaddedBlocks() throws { try check("halo") }
    // PVT: the position embedding (stored at 224's grid) is resized to every stage map and kept out of the residual.
    func testPVTPositionEmbedding() throws { try check("pvt") }
    func testDCNv3() throws { try check("dcnv3") }
}
