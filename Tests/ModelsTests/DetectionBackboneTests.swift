// The study's detection backbones (../shared/reference/detection/*_det_nano) run the same blocks on a
// 192x288 input, whose stage maps (48x72, 24x36, 12x18, 6x9) are multiples of neither 7 nor the PVT
// reduction ratios everywhere: this checks the padding rules (Swin's windows), ConvNeXt and DCNv3 on
// non-square maps against the reference stage outputs.
// Each detection stage output goes through `out_norm_i`, which does not feed the next stage.

@testable import Models
import Checkpoint
import TensorCore
import TestSupport
import XCTest

final class DetectionBackboneTests: XCTestCase {
    /// Loads `<family>_det_nano`'s backbone into the classification model of `<family>_nano.json` and
    /// compares stage outputs 1...`stages`.
    func check(_ family: String, stages: Int = 4) throws {
        let state = try readCheckpoint(path: referencePath("detection/\(family)_det_nano.pth"))
        let expected = try SafeTensors.readDictionary(path: referencePath("detection/\(family)_det_nano_expected.safetensors"))
        let inputs = try SafeTensors.readDictionary(path: referencePath("detection/inputs_expected.safetensors"))
        let model = UnifiedModel(config: try ArchConfig.load(path: referencePath("\(family)_nano.json")))
        var assigned = 0
        for (key, p) in model.namedParameters() {
            var source = "backbone." + key
            if key.hasPrefix("stage_norms.") { source = "backbone.out_norm_" + key.dropFirst("stage_norms.".count) }
            guard let record = state[source] else { continue }
            XCTAssertEqual(record.count, p.count, source)
            p.assign(record.values)
            assigned += 1
        }
        model.prepareAll()
        XCTAssertEqual(assigned, model.namedParameters().filter { !$0.0.hasPrefix("conv_head.") && !$0.0.hasPrefix("head.") }.count,
                       "\(family): every backbone parameter loaded")
        let input = try XCTUnwrap(inputs["coffee/s1.0/input"])
        var h = fromNCHW(input.values, n: 1, c: 3, h: 192, w: 288)
        for s in 0..<stages {
            h = s == 0 ? (model.downsample_layers[0] as! Stem)(h) : (model.downsample_layers[s] as! Transition)(h)
            for block in model.stages[s] { h = block(h) }
            let out = model.stage_norms[s](h)
            let ref = try XCTUnwrap(expected["coffee/s1.0/stage\(s + 1)"])
            XCTAssertEqual([1, out.shape[3], out.shape[1], out.shape[2]], ref.shape, "\(family) stage \(s + 1) shape")
            let c = maxAbsCheck(toNCHW(out), ref.values)
            XCTAssertLessThanOrEqual(c.diff, c.limit, "\(family) detection stage \(s + 1) (map \(out.shape[1])x\(out.shape[2]))")
        }
    }

    func testConvNeXt() throws { try check("convnext") }
    // HaloNet: its padded pixels stay valid keys (zeros after norm1), as the detection block pads them.
    func testHaloPaddedBlocks() throws { try check("halo") }
    // Stage 4: the classification model (which this toolkit runs) uses one unshifted window when the
    // stage map is 7 at img_size 224; the detection backbone removed that rule and shifts there.
    func testSwinPaddedWindows() throws { try check("swin", stages: 3) }
    // PVT is not compared: the detection PvtBlock keeps the position embedding out of the residual
    // stream (its shortcut is the input before `pos_embed` is added), the classification block that
    // this toolkit runs adds it to the stream, so the two differ by design. PVTSizeTests covers the
    // run-time resize of the embedding.
    func testDCNv3() throws { try check("dcnv3") }
}
