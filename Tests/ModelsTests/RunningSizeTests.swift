// Geometry follows the running map size, not the config's img_size: the Swin nano checkpoint (built
// at 224) evaluated at 672 must match the reference model built at 672 (the shared
// `swin_nano_672_expected` fixture: logits and stage outputs within the README tolerances), and for
// every family whose checkpoint does not store a size-dependent tensor, the same checkpoint loaded
// into models configured for different img_size values gives identical outputs at a third size.
// A map smaller than the Swin window (classification form) runs as one window of the map's side.

import Checkpoint
import Foundation
@testable import Models
import TensorCore
import TestSupport
import XCTest

final class RunningSizeTests: XCTestCase {
    func testSwinNanoAt672MatchesTheReferenceBuiltAt672() throws {
        let loaded = try ModelLoader.load(model: referencePath("swin_nano.pth"), arch: referencePath("swin_nano.json"))
        XCTAssertEqual(loaded.config.img_size, 224, "the JSON says what the checkpoint was built at")
        let expected = try SafeTensors.readDictionary(path: referencePath("swin_nano_672_expected.safetensors"))
        let input = try XCTUnwrap(expected["input"])
        XCTAssertEqual(input.shape, [1, 3, 672, 672])
        let out = loaded.model.forward(fromNCHW(input.values, n: 1, c: 3, h: 672, w: 672))
        let logits = maxAbsCheck(try XCTUnwrap(out.logits).values, try XCTUnwrap(expected["logits"]).values)
        XCTAssertLessThanOrEqual(logits.diff, logits.limit, "logits at 672")
        for s in 1...4 {
            let ref = try XCTUnwrap(expected["stage\(s)"])
            let got = out.stages[s - 1]
            XCTAssertEqual([1, got.shape[3], got.shape[1], got.shape[2]], ref.shape, "stage \(s) shape")
            let c = maxAbsCheck(toNCHW(got), ref.values)
            XCTAssertLessThanOrEqual(c.diff, c.limit, "stage \(s) at 672 (map \(got.shape[1]))")
        }
    }

    /// The nano checkpoint of `family` loaded into models whose configs say img_size 224 and 448,
    /// run at `side`: the outputs must be identical (geometry comes from the map, not the config).
    private func checkImgSizeIndependence(_ family: String, side: Int) throws {
        let state = try readCheckpoint(path: referencePath("\(family)_nano.pth"))
        var outputs: [[Float]] = []
        for imgSize in [224, 448] {
            var config = try ArchConfig.load(path: referencePath("\(family)_nano.json"))
            config.img_size = imgSize
            let model = UnifiedModel(config: config)
            XCTAssertTrue(model.load(state).fits, "\(family) at img_size \(imgSize)")
            let out = model.forward(syntheticImage(side: side))
            XCTAssertEqual(out.stages.last?.shape[1], (side / 4) >> 3)
            outputs.append(out.stages.flatMap(\.values) + (out.logits?.values ?? []))
        }
        XCTAssertFalse(outputs[0].contains { !$0.isFinite }, "\(family) at \(side)")
        XCTAssertEqual(outputs[0], outputs[1], "\(family) at \(side): img_size changed the result")
    }

    func testConvNeXtIgnoresImgSize() throws { try checkImgSizeIndependence("convnext", side: 288) }
    // 288: stage maps 72, 36, 18, 9 (not multiples of 7: padded windows, and shifted stage 4).
    func testSwinIgnoresImgSize() throws { try checkImgSizeIndependence("swin", side: 288) }
    func testHaloIgnoresImgSize() throws { try checkImgSizeIndependence("halo", side: 288) }
    func testDCNv3IgnoresImgSize() throws { try checkImgSizeIndependence("dcnv3", side: 288) }

    /// At 192 the Swin stage-4 map is 6x6, smaller than the window: it must be one unshifted 6x6
    /// window, i.e. stage 4 must not change when the map is embedded in nothing else (finite, and
    /// the same as a 6x6 window computed by a model whose window setting is 6 with a table cut
    /// from the centre of the stored one).
    func testSwinMapSmallerThanWindowUsesTheTableCentre() throws {
        let loaded = try ModelLoader.load(model: referencePath("swin_nano.pth"), arch: referencePath("swin_nano.json"))
        let x = syntheticImage(side: 192)
        let out = loaded.model.forward(x)
        XCTAssertEqual(out.stages[3].shape, [1, 6, 6, 128])
        XCTAssertFalse(out.stages[3].values.contains { !$0.isFinite })

        // The same network with window_size 6 and the centre 11x11 of every 13x13 table.
        var config = loaded.config
        config.block_kwargs["window_size"] = .number(6)
        let small = UnifiedModel(config: config)
        var entries: [(String, TensorRecord)] = []
        for (key, record) in try readCheckpoint(path: referencePath("swin_nano.pth")).entries {
            guard key.hasSuffix("relative_position_bias_table") else { entries.append((key, record)); continue }
            let heads = record.shape[1]
            var values: [Float] = []
            for dy in 0..<11 { for dx in 0..<11 { for h in 0..<heads { values.append(record.values[((dy + 1) * 13 + dx + 1) * heads + h]) } } }
            entries.append((key, TensorRecord(shape: [121, heads], values: values)))
        }
        XCTAssertTrue(small.load(StateDict(entries: entries)).fits)
        // Stages 1-3 differ (window 6 there), so compare stage 4 run on stage 3 of the first model.
        let h3 = out.stages[2]
        let viaSmall = small.runStage(3, on: loaded.model.runTransition(3, on: h3))
        let viaLoaded = loaded.model.runStage(3, on: loaded.model.runTransition(3, on: h3))
        XCTAssertEqual(viaSmall.values, viaLoaded.values)
    }
}
