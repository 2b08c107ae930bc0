// U-HaloNet beyond the 224 parity input: the nano fixture at 448 (maps 112/56/28/14, all multiples
// of the 7-pixel block) and at 320 (maps 80/40/20/10, which need bottom/right padding) runs a forward
// pass and the centre-point ERF gradients without NaN and with the expected stage shapes; an untrained
// `unified_halo_micro` runs forward and an input gradient at 224; and architecture inference reads
// the fixture's dims, depths, heads and block settings from its keys. (The detection backbone's
// padding rules are checked in DetectionBackboneTests.)

import Analysis
import Checkpoint
@testable import Models
import TensorCore
import TestSupport
import XCTest

final class HaloSizeTests: XCTestCase {
    private func image(_ side: Int, seed: Int) -> Tensor {
        // A smooth deterministic pattern of ImageNet-normalised magnitude.
        var values = [Float](repeating: 0, count: side * side * 3)
        for y in 0..<side { for x in 0..<side { for c in 0..<3 {
            let t = Float(y * 3 + x * 5 + c * 7 + seed)
            values[(y * side + x) * 3 + c] = 1.5 * sinf(t * 0.013) + 0.5 * cosf(Float(x * y + seed) * 0.001)
        } } }
        return Tensor(shape: [1, side, side, 3], values: values)
    }

    private func checkFixture(at side: Int) throws {
        let loaded = try ModelLoader.load(model: referencePath("halo_nano.pth"), arch: referencePath("halo_nano.json"))
        let model = loaded.model
        let x = image(side, seed: side)
        let out = model.forward(x)
        let dims = [16, 32, 64, 128]
        for s in 0..<4 {
            let map = (side / 4) >> s
            XCTAssertEqual(out.stages[s].shape, [1, map, map, dims[s]], "\(side): stage \(s + 1) shape")
            XCTAssertFalse(out.stages[s].values.contains { !$0.isFinite }, "\(side): stage \(s + 1) has NaN or infinity")
        }
        let logits = try XCTUnwrap(out.logits)
        XCTAssertEqual(logits.shape, [1, 1000])
        XCTAssertFalse(logits.values.contains { !$0.isFinite }, "\(side): logits")
        let maps = centreContributions(model: model, input: x, stages: [1, 2, 3, 4])
        for s in 1...4 {
            let m = try XCTUnwrap(maps[s])
            XCTAssertEqual(m.shape, [1, side, side])
            XCTAssertFalse(m.values.contains { !$0.isFinite }, "\(side): ERF stage \(s) has NaN")
            XCTAssertGreaterThan(m.values.reduce(0, +), 0, "\(side): ERF stage \(s) is all zero")
        }
    }

    func testFixtureAt448() throws { try checkFixture(at: 448) }

    func testFixtureAt320NeedsPadding() throws { try checkFixture(at: 320) }

    func testUntrainedMicroForwardAndInputGradient() throws {
        // Micro rather than tiny: seeding tiny's 31 M weights alone takes ~20 s in a debug build.
        let loaded = try ModelLoader.load(model: "unified_halo_micro")
        let model = loaded.model
        let x = image(224, seed: 1).requiringGrad()
        let out = model.forward(x)
        let logits = try XCTUnwrap(out.logits)
        XCTAssertEqual(out.stages.map(\.shape), [[1, 56, 56, 32], [1, 28, 28, 64], [1, 14, 14, 128], [1, 7, 7, 256]])
        XCTAssertFalse(logits.values.contains { !$0.isFinite })
        Tape.backward(logits, seed: Tensor(shape: logits.shape, repeating: 1e-3))
        let g = Tape.gradient(of: x)
        XCTAssertFalse(g.values.contains { !$0.isFinite })
        XCTAssertGreaterThan(g.values.map(abs).max() ?? 0, 0)
    }

    func testArchInferenceReadsTheFixture() throws {
        let state = try readCheckpoint(path: referencePath("halo_nano.pth"))
        let (config, _) = try ArchInference.infer(from: state, path: "halo_nano.pth")
        let expected = try ArchConfig.load(path: referencePath("halo_nano.json"))
        XCTAssertEqual(config.family, .halo)
        XCTAssertEqual(config.dims, expected.dims)
        XCTAssertEqual(config.depths, expected.depths)
        XCTAssertEqual(config.heads, expected.heads)
        XCTAssertEqual(try config.settings(HaloSettings.self).block_size, try expected.settings(HaloSettings.self).block_size)
        XCTAssertEqual(try config.settings(HaloSettings.self).halo_size, try expected.settings(HaloSettings.self).halo_size)
        XCTAssertEqual(try config.settings(HaloSettings.self).pos_embed_type, try expected.settings(HaloSettings.self).pos_embed_type)
        XCTAssertEqual(config.extra_transform_ratio, expected.extra_transform_ratio)
    }
}
