// U-InternImage (DCNv3) beyond the reference's 224 fixture: the nano checkpoint at other input
// sizes (448, 320, and 304, whose stage maps 76, 38, 19, 10 are not all halvings of each other),
// an untrained preset's forward and input gradient, the kernel grid's point order, and
// architecture inference from the nano checkpoint's keys.
//
// Shape key: N batch, S input side, H/W map height/width, C channels.

import Analysis
import Checkpoint
import Foundation
@testable import Models
import TensorCore
import TestSupport
import XCTest

final class DCNv3SizeTests: XCTestCase {
    private func allFinite(_ t: Tensor) -> Bool { t.values.allSatisfy { $0.isFinite } }

    func testNanoRunsAtOtherInputSizes() throws {
        let model = try ModelLoader.load(model: referencePath("dcnv3_nano.pth"), arch: referencePath("dcnv3_nano.json")).model
        let dims = model.config.dims
        for side in [448, 320, 304] {
            let x = syntheticImage(side: side)
            let out = model.forward(x)
            // Stem and transitions are 3x3 stride-2 convs with padding 1: each halves, rounding up.
            var map = (side + 1) / 2
            for s in 0..<4 {
                map = (map + 1) / 2
                XCTAssertEqual(out.stages[s].shape, [1, map, map, dims[s]], "stage \(s + 1) at \(side)")
                XCTAssertTrue(allFinite(out.stages[s]), "stage \(s + 1) at \(side) has NaN or infinity")
            }
            let logits = try XCTUnwrap(out.logits)
            XCTAssertEqual(logits.shape, [1, 1000])
            XCTAssertTrue(allFinite(logits), "logits at \(side)")

            let maps = centreContributions(model: model, input: x, stages: [1, 2, 3, 4])
            for s in 1...4 {
                let m = try XCTUnwrap(maps[s])
                XCTAssertEqual(m.shape, [1, side, side], "ERF map \(s) at \(side)")
                XCTAssertTrue(allFinite(m), "ERF map \(s) at \(side) has NaN or infinity")
                XCTAssertGreaterThan(m.values.reduce(0, +), 0, "ERF map \(s) at \(side) is all zero")
            }
        }
    }

    func testUntrainedTinyForwardAndInputGradient() throws {
        // Layer scale 0.5 rather than the reference's 1e-6, so that every block changes the result.
        let loaded = try ModelLoader.load(model: "unified_dcn_v3_tiny", initLayerScale: 0.5, seed: 3)
        XCTAssertTrue(loaded.untrained)
        let x = syntheticImage(side: 224).requiringGrad()
        let logits = try XCTUnwrap(loaded.model.forward(x).logits)
        XCTAssertEqual(logits.shape, [1, 1000])
        XCTAssertTrue(allFinite(logits), "untrained tiny logits")
        Tape.backward(logits, seed: Tensor(shape: logits.shape, repeating: 1))
        let g = Tape.gradient(of: x)
        XCTAssertEqual(g.shape, [1, 224, 224, 3])
        XCTAssertTrue(allFinite(g), "untrained tiny input gradient")
        XCTAssertGreaterThan(g.values.map { abs($0) }.max() ?? 0, 0, "untrained tiny input gradient is all zero")
    }

    func testKernelGridFollowsTheReferencePointOrder() {
        // The reference stacks meshgrid(l, l) as (row value, column value) and adds that pair to an
        // (x, y) location: point p = i*k + j moves by l[i] in x and by l[j] in y.
        let nine = dcnv3KernelGrid(points: 9)
        let l: [Float] = [-1, 0, 1]
        XCTAssertEqual(nine.count, 9)
        for i in 0..<3 {
            for j in 0..<3 {
                XCTAssertEqual(nine[i * 3 + j].dx, l[i])
                XCTAssertEqual(nine[i * 3 + j].dy, l[j])
            }
        }
        // k = 2: linspace(-2//2 + 1, 2//2, 2) = [0, 1]; k = 5: [-2, -1, 0, 1, 2].
        XCTAssertEqual(dcnv3KernelGrid(points: 4).map(\.dx), [0, 0, 1, 1])
        XCTAssertEqual(dcnv3KernelGrid(points: 4).map(\.dy), [0, 1, 0, 1])
        XCTAssertEqual(dcnv3KernelGrid(points: 25).map(\.dy).prefix(5), [-2, -1, 0, 1, 2])
        XCTAssertEqual(dcnv3KernelGrid(points: 1).map(\.dx), [0])
    }

    func testParameterKeysMatchTheCheckpoint() throws {
        let state = try readCheckpoint(path: referencePath("dcnv3_nano.pth"))
        let model = UnifiedModel(config: try ArchConfig.load(path: referencePath("dcnv3_nano.json")))
        let keys = Set(model.namedParameters().map(\.0))
        let blockKeys = keys.filter { $0.hasPrefix("stages.0.0.") }
        XCTAssertEqual(blockKeys, Set(["gamma1", "gamma2", "norm1.weight", "norm1.bias",
                                       "attn.dw_conv.0.weight", "attn.dw_conv.0.bias",
                                       "attn.dw_conv.1.norm.weight", "attn.dw_conv.1.norm.bias",
                                       "attn.sampling_offsets.weight", "attn.sampling_offsets.bias",
                                       "attn.attention_weights.weight", "attn.attention_weights.bias",
                                       "attn.value_proj.weight", "attn.value_proj.bias",
                                       "attn.output_proj.weight", "attn.output_proj.bias",
                                       "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                                       "mlp.fc2.weight", "mlp.fc2.bias"].map { "stages.0.0." + $0 }))
        XCTAssertEqual(keys, Set(state.keys.filter { !isRecomputedBufferKey($0) }))
    }

    func testArchitectureInferredFromTheNanoCheckpoint() throws {
        let path = referencePath("dcnv3_nano.pth")
        let expected = try ArchConfig.load(path: referencePath("dcnv3_nano.json"))
        let (config, _) = try ArchInference.infer(from: try readCheckpoint(path: path), path: path)
        XCTAssertEqual(config.family, .dcnv3)
        XCTAssertEqual(config.dims, expected.dims)
        XCTAssertEqual(config.depths, expected.depths)
        XCTAssertEqual(config.heads, expected.heads)
        XCTAssertEqual(try config.settings(DCNv3Settings.self).deform_points, try expected.settings(DCNv3Settings.self).deform_points)
        XCTAssertEqual(try config.settings(DCNv3Settings.self).kernel_size, try expected.settings(DCNv3Settings.self).kernel_size)
        XCTAssertEqual(config.extra_transform_ratio, expected.extra_transform_ratio)
        XCTAssertEqual(config.num_classes, expected.num_classes)
    }
}
