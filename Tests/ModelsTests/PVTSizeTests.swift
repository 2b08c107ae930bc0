// U-PVT beyond the reference's 224 fixture: the nano checkpoint at other input sizes (position
// embedding resized bilinearly with corners aligned; maps that are not multiples of the reduction
// ratio reduced with floor semantics), the resize itself, an untrained preset's forward and input
// gradient, and architecture inference (PVT heads are not in the shapes: a checkpoint that matches
// no preset must be refused with a hint to pass --arch, one that matches a preset is accepted).
//
// Shape key: N batch, S input side, H/W map height/width, C channels.

import Analysis
import Checkpoint
import Foundation
@testable import Models
import TensorCore
import TestSupport
import XCTest

final class PVTSizeTests: XCTestCase {
    private func allFinite(_ t: Tensor) -> Bool { t.values.allSatisfy { $0.isFinite } }

    private func loadNano() throws -> UnifiedModel {
        try ModelLoader.load(model: referencePath("pvt_nano.pth"), arch: referencePath("pvt_nano.json")).model
    }

    func testNanoRunsAtOtherInputSizes() throws {
        let model = try loadNano()
        let dims = model.config.dims
        // 448 and 320: maps are multiples of every reduction ratio; 240: stage maps 60, 30, 15, 8
        // against ratios 8, 4, 2, 1 leave remainders that the reduction drops.
        for side in [448, 320, 240] {
            let x = syntheticImage(side: side)
            let out = model.forward(x)
            var map = (side + 3) / 4
            for s in 0..<4 {
                XCTAssertEqual(out.stages[s].shape, [1, map, map, dims[s]], "stage \(s + 1) at \(side)")
                XCTAssertTrue(allFinite(out.stages[s]), "stage \(s + 1) at \(side) has NaN or infinity")
                map = (map + 1) / 2
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

    func testPositionTableResizeIsBilinearWithAlignedCorners() {
        let (c, h0, w0) = (2, 4, 5)
        // Channel 0 is linear in the corner-aligned coordinates, so any bilinear resize with aligned
        // corners must reproduce it exactly; channel 1 holds arbitrary values.
        var values = [Float](repeating: 0, count: c * h0 * w0)
        for y in 0..<h0 {
            for x in 0..<w0 {
                values[y * w0 + x] = 3 * Float(y) / Float(h0 - 1) - 2 * Float(x) / Float(w0 - 1) + 1
                values[h0 * w0 + y * w0 + x] = Float((y * 7 + x * 3) % 5)
            }
        }
        // Same size: a transpose to channels-last.
        let same = resizePositionTable(values, channels: c, height: h0, width: w0, toHeight: h0, toWidth: w0)
        XCTAssertEqual(same.shape, [h0, w0, c])
        for y in 0..<h0 {
            for x in 0..<w0 {
                for ch in 0..<c { XCTAssertEqual(same.data[(y * w0 + x) * c + ch], values[(ch * h0 + y) * w0 + x]) }
            }
        }
        // Up and down: the linear channel stays linear; the corners keep their values.
        for (h, w) in [(7, 9), (3, 2), (8, 5)] {
            let t = resizePositionTable(values, channels: c, height: h0, width: w0, toHeight: h, toWidth: w)
            XCTAssertEqual(t.shape, [h, w, c])
            for y in 0..<h {
                for x in 0..<w {
                    let expected = 3 * Float(y) / Float(h - 1) - 2 * Float(x) / Float(w - 1) + 1
                    XCTAssertEqual(t.data[(y * w + x) * c], expected, accuracy: 1e-5, "(\(y), \(x)) of \(h)x\(w)")
                }
            }
            for (y, x, sy, sx) in [(0, 0, 0, 0), (0, w - 1, 0, w0 - 1), (h - 1, 0, h0 - 1, 0), (h - 1, w - 1, h0 - 1, w0 - 1)] {
                XCTAssertEqual(t.data[(y * w + x) * c + 1], values[h0 * w0 + sy * w0 + sx], "corner (\(y), \(x)) of \(h)x\(w)")
            }
        }
        // A map of one row samples the first source row (PyTorch's scale 0 for an output of size 1).
        let row = resizePositionTable(values, channels: c, height: h0, width: w0, toHeight: 1, toWidth: w0)
        for x in 0..<w0 { XCTAssertEqual(row.data[x * c + 1], values[h0 * w0 + x]) }
    }

    /// Stage 2 of the nano model reduces by 4. On a 10x10 map the keys and values come from the
    /// top-left 8x8 only, so changing an input token in row 9 changes no other token's output, while
    /// changing a token inside the 8x8 area changes them all.
    func testSpatialReductionDropsTrailingRowsLikePyTorch() throws {
        let model = try loadNano()
        let block = try XCTUnwrap(model.stages[1][1] as? PvtBlock)
        XCTAssertNil(block.pos_embed)
        XCTAssertEqual(block.attn.ratio, 4)
        let c = model.config.dims[1], side = 10
        var rng = SplitMix(seed: 7)
        let base = (0..<(side * side * c)).map { _ in rng.uniform() }
        func run(_ values: [Float]) -> [Float] { block(Tensor(shape: [1, side, side, c], values: values)).values }
        let reference = run(base)
        func changedTokens(perturbing token: Int) -> Set<Int> {
            var v = base
            // Not a constant shift: LayerNorm would remove that.
            for ch in 0..<c { v[token * c + ch] += ch % 2 == 0 ? 1 : -1 }
            let out = run(v)
            return Set((0..<(side * side)).filter { t in (0..<c).contains { out[t * c + $0] != reference[t * c + $0] } })
        }
        let dropped = 9 * side + 4
        XCTAssertEqual(changedTokens(perturbing: dropped), [dropped])
        let spread = changedTokens(perturbing: 3 * side + 5)
        XCTAssertEqual(Set(0..<(side * side)).subtracting(spread), [], "unchanged tokens")
    }

    func testUntrainedTinyForwardAndInputGradient() throws {
        let loaded = try ModelLoader.load(model: "unified_pvt_tiny", initLayerScale: 0.5)
        XCTAssertTrue(loaded.untrained)
        let x = syntheticImage(side: 224).requiringGrad()
        let out = loaded.model.forward(x)
        let logits = try XCTUnwrap(out.logits)
        XCTAssertTrue(allFinite(logits))
        XCTAssertEqual(out.stages.map(\.shape), [[1, 56, 56, 64], [1, 28, 28, 128], [1, 14, 14, 320], [1, 7, 7, 512]])
        Tape.backward(logits, seed: Tensor(shape: [1, 1000], repeating: 1e-3))
        let g = Tape.gradient(of: x)
        XCTAssertEqual(g.shape, [1, 224, 224, 3])
        XCTAssertTrue(allFinite(g))
        XCTAssertGreaterThan(g.values.map { abs($0) }.max() ?? 0, 0)
    }

    func testInferenceRefusesNanoCheckpointWithHintToPassArch() throws {
        let path = referencePath("pvt_nano.pth")
        let state = try readCheckpoint(path: path)
        XCTAssertEqual(try ArchInference.family(of: state), .pvt)
        XCTAssertThrowsError(try ArchInference.infer(from: state, path: path)) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.hasPrefix(path), text)
            XCTAssertTrue(text.contains("heads") && text.contains("--arch"), text)
            XCTAssertTrue(text.contains("[16, 32, 64, 128]"), text)
            XCTAssertFalse(text.contains("\n"), "one line expected: \(text)")
        }
        XCTAssertThrowsError(try ModelLoader.load(model: path)) { error in
            XCTAssertTrue(String(describing: error).contains("--arch"), String(describing: error))
        }
    }

    func testInferenceAcceptsPresetShapedCheckpoint() throws {
        for name in ["unified_pvt_micro", "unified_pvt_tiny"] {
            let preset = try XCTUnwrap(Presets.named(name))
            let built = UnifiedModel(config: preset)
            let state = StateDict(entries: built.namedParameters().map { ($0.0, TensorRecord(shape: $0.1.shape, values: $0.1.values)) })
            let (config, assumptions) = try ArchInference.infer(from: state, path: "\(name).pth")
            XCTAssertEqual(config.name, name)
            XCTAssertEqual(config.family, .pvt)
            XCTAssertEqual(config.dims, preset.dims)
            XCTAssertEqual(config.depths, preset.depths)
            XCTAssertEqual(config.img_size, 224)
            XCTAssertEqual(config.heads, preset.heads)
            XCTAssertEqual(try config.settings(PVTSettings.self).mlp_ratios, try preset.settings(PVTSettings.self).mlp_ratios)
            XCTAssertEqual(try config.settings(PVTSettings.self).sr_ratios, try preset.settings(PVTSettings.self).sr_ratios)
            XCTAssertEqual(try config.settings(PVTSettings.self).qkv_bias, true)
            XCTAssertTrue(assumptions.contains { $0.contains("heads") && $0.contains(name) }, "\(assumptions)")
            XCTAssertTrue(assumptions.contains { $0.contains("img_size 224 from") }, "\(assumptions)")
            XCTAssertTrue(UnifiedModel(config: config).load(state).fits)
        }
    }
}

/// SplitMix64 for test inputs: uniform values in [-1, 1).
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func uniform() -> Float {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(z >> 40) / Float(1 << 23) - 1
    }
}
