// The twenty released presets: parameter counts equal to the published models', and a forward and
// input-gradient pass at 224 without NaNs on an untrained instance.

import Analysis
import Models
import TestSupport
import TensorCore
import XCTest

final class PresetTests: XCTestCase {
    /// `sum(p.numel() for p in model.parameters())` of the published factories.
    static let publishedCounts: [String: Int] = [
        "unified_convnext_micro": 4_439_624, "unified_convnext_tiny": 31_912_360,
        "unified_convnext_small": 54_393_640, "unified_convnext_base": 95_865_576,
        "unified_swin_micro": 4_381_042, "unified_swin_tiny": 31_540_546,
        "unified_swin_small": 52_867_666, "unified_swin_base": 93_388_576,
        "unified_halo_micro": 4_389_672, "unified_halo_tiny": 31_523_176,
        "unified_halo_small": 52_831_336, "unified_halo_base": 93_327_336,
        "unified_pvt_micro": 4_454_056, "unified_pvt_tiny": 31_157_736,
        "unified_pvt_small": 50_887_656, "unified_pvt_base": 91_566_312,
        "unified_dcn_v3_micro": 4_302_692, "unified_dcn_v3_tiny": 29_933_272,
        "unified_dcn_v3_small": 50_082_280, "unified_dcn_v3_base": 97_465_192,
    ]

    func testParameterCountsMatchPublishedModels() throws {
        XCTAssertEqual(Presets.names.count, 20)
        for name in Presets.names {
            let config = try XCTUnwrap(Presets.named(name))
            let model = UnifiedModel(config: config)
            XCTAssertEqual(model.parameterCount, Self.publishedCounts[name], name)
        }
    }
}

/// `logits` runs batches larger than `inferenceMicroBatch` in passes; every image must get what a
/// pass of the whole batch gives it.
final class MicroBatchTests: XCTestCase {
    func testLogitsInPassesEqualOneWholeBatch() throws {
        let model = UnifiedModel(config: try XCTUnwrap(Presets.named("unified_swin_micro")))
        model.initialize(seed: 3, layerScale: 1)
        let n = UnifiedModel.inferenceMicroBatch + 3, side = 64
        let one = syntheticImage(side: side)
        var values: [Float] = []
        for i in 0..<n { values += one.values.map { $0 * (1 + 0.1 * Float(i)) } }  // distinct images
        let x = Tensor(shape: [n, side, side, 3], values: values)
        let whole = model.forward(x).logits!.values
        let passes = model.logits(x)
        XCTAssertEqual(passes.shape, [n, 1000])
        let worst = zip(whole, passes.values).map { abs($0 - $1) }.max()!
        let scale = whole.map(abs).max()!
        XCTAssertLessThanOrEqual(worst, 1e-5 * max(scale, 1), "largest difference \(worst)")
        // The last pass (3 images) must not repeat the first rows.
        XCTAssertNotEqual(Array(passes.values[0..<1000]), Array(passes.values[(n - 1) * 1000..<n * 1000]))
    }
}
