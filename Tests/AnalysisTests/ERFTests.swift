// ERF: the mean maps and ERF@t ratios of ../shared/reference/summary.json for every family with a
// block (the four images, evaluation-transform crop at 224), the legacy scaling of the study's script,
// and the threshold search on small hand-made maps, including thresholds never reached.

import Analysis
import Checkpoint
import Foundation
import Models
import TestSupport
import XCTest

final class ERFTests: XCTestCase {
    func referenceERF(_ family: String) throws {
        let summaryData = try XCTUnwrap(FileManager.default.contents(atPath: referencePath("summary.json")))
        let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: summaryData) as? [String: Any])
        let entry = try XCTUnwrap(summary[family] as? [String: Any])
        let names = try XCTUnwrap(entry["images"] as? [String])
        let ratios = try XCTUnwrap(entry["erf_ratios"] as? [String: [String: [Double]]])
        let paths = names.map { sharedDirectory() + "/images/imagenet-val/" + $0 }

        let loaded = try ModelLoader.load(model: referencePath("\(family)_nano.pth"), arch: referencePath("\(family)_nano.json"))
        var settings = ERFSettings()
        settings.resize = .crop
        settings.batch = 2
        let result = try computeERF(model: loaded.model, paths: paths, settings: settings)
        XCTAssertEqual(result.images.count, 4)
        XCTAssertTrue(result.skipped.isEmpty)
        let expected = try SafeTensors.readDictionary(path: referencePath("\(family)_nano_expected.safetensors"))
        for stage in result.stages {
            let ref = try XCTUnwrap(expected["erf_mean4_stage\(stage.stage)"])
            let err = relativeL2(stage.mean, ref.values)
            XCTAssertLessThanOrEqual(err, 1e-3, "\(family) erf_mean4_stage\(stage.stage)")
            let refRatios = try XCTUnwrap(ratios["stage\(stage.stage)"])
            for r in stage.ratios {
                let key = r.threshold == 0.2 ? "0.2" : r.threshold == 0.3 ? "0.3" : r.threshold == 0.5 ? "0.5" : "0.99"
                let refSide = try XCTUnwrap(refRatios[key]).first!
                XCTAssertLessThanOrEqual(abs(Double(r.side) - refSide), 2, "\(family) stage \(stage.stage) ERF@\(key): \(r.side) vs \(refSide)")
                XCTAssertTrue(r.reached)
            }
            print("\(family) stage \(stage.stage): relative L2 \(String(format: "%.2e", err)); sides \(stage.ratios.map(\.side)) vs reference \(["0.2", "0.3", "0.5", "0.99"].map { Int(refRatios[$0]![0]) })")
        }
    }

    func testConvNeXtReferenceERF() throws { try referenceERF("convnext") }
    func testSwinReferenceERF() throws { try referenceERF("swin") }
    func testHaloReferenceERF() throws { try referenceERF("halo") }
    func testPVTReferenceERF() throws { try referenceERF("pvt") }
    func testDCNv3ReferenceERF() throws { try referenceERF("dcnv3") }

    func testThresholdSearchOnHandMadeMaps() {
        // A single bright centre pixel: the smallest square (side 3) already holds everything.
        var delta = [Float](repeating: 0, count: 9 * 9)
        delta[4 * 9 + 4] = 1
        for r in erfRatios(normalised: delta, height: 9, width: 9, thresholds: [0.2, 0.5, 0.99]) {
            XCTAssertEqual(r.side, 3)
            XCTAssertTrue(r.reached)
            XCTAssertEqual(r.areaRatio, 9.0 / 81.0, accuracy: 1e-12)
        }
        // A uniform 11x11 map: a square of side s holds s^2/121. 0.2 -> 5 (25/121), 0.5 -> 9 (81/121);
        // 0.99 would need side 11, but the search stops below H/2 (as the tool's range does): not reached.
        let uniform = [Float](repeating: 1, count: 121)
        let r = erfRatios(normalised: uniform, height: 11, width: 11, thresholds: [0.2, 0.5, 0.99])
        XCTAssertEqual(r.map(\.side), [5, 9, 11])
        XCTAssertEqual(r.map(\.reached), [true, true, false])
        XCTAssertEqual(r[2].sideRatio, 1)
        XCTAssertEqual(r[1].sideRatio, 9.0 / 11.0, accuracy: 1e-12)
        // All zeros: nothing is ever reached, and nothing crashes.
        XCTAssertEqual(erfRatios(normalised: [Float](repeating: 0, count: 25), height: 5, width: 5, thresholds: [0.5]).map(\.reached), [false])
    }

    func testLogScalingIsNotScaleFree() {
        // log10(x + 1) compresses large values more than small ones: dividing the map by 4 (the study's
        // legacy counter) moves it towards the linear range, the peak dominates more after
        // normalisation, and the ratios shrink or stay.
        var map = [Float](repeating: 0, count: 31 * 31)
        for y in 0..<31 { for x in 0..<31 {
            let r2 = Double((y - 15) * (y - 15) + (x - 15) * (x - 15))
            map[y * 31 + x] = Float(50 * exp(-r2 / 18))
        } }
        let plain = erfRatios(normalised: normalisedMap(map), height: 31, width: 31, thresholds: [0.2, 0.5])
        let legacy = erfRatios(normalised: normalisedMap(map.map { $0 / 4 }), height: 31, width: 31, thresholds: [0.2, 0.5])
        XCTAssertTrue(zip(plain, legacy).allSatisfy { $0.side >= $1.side })
        XCTAssertTrue(zip(plain, legacy).contains { $0.side > $1.side }, "legacy scaling should change some ratio: \(plain.map(\.side)) vs \(legacy.map(\.side))")
        // Power scaling is scale-free: dividing by 4 changes nothing.
        let p1 = erfRatios(normalised: normalisedMap(map, scaling: .power(0.25)), height: 31, width: 31, thresholds: [0.2, 0.5])
        let p4 = erfRatios(normalised: normalisedMap(map.map { $0 / 4 }, scaling: .power(0.25)), height: 31, width: 31, thresholds: [0.2, 0.5])
        XCTAssertEqual(p1.map(\.side), p4.map(\.side))
    }

    func testLegacyScalingDividesByFourTimesTheImageCount() throws {
        let loaded = try ModelLoader.load(model: referencePath("convnext_nano.pth"), arch: referencePath("convnext_nano.json"))
        let paths = ["ILSVRC2012_val_00000004.JPEG", "ILSVRC2012_val_00000019.JPEG"].map { sharedDirectory() + "/images/imagenet-val/" + $0 }
        var settings = ERFSettings()
        settings.stages = [2]
        settings.size = 64
        let plain = try computeERF(model: loaded.model, paths: paths, settings: settings)
        settings.legacyScaling = true
        let legacy = try computeERF(model: loaded.model, paths: paths, settings: settings)
        for (a, b) in zip(plain.stages[0].mean, legacy.stages[0].mean) { XCTAssertEqual(b, a / 4, accuracy: 1e-6 * max(1, abs(a))) }
        XCTAssertEqual(legacy.stages[0].ratios, erfRatios(normalised: normalisedMap(legacy.stages[0].mean), height: 64, width: 64, thresholds: settings.thresholds))
    }
}

final class ImageNetClassesTests: XCTestCase {
    func testNamesAreInImageNetIndexOrder() {
        XCTAssertEqual(ImageNetClasses.names.count, 1000)
        XCTAssertEqual(ImageNetClasses.name(0), "tench")
        XCTAssertEqual(ImageNetClasses.name(207), "golden retriever")
        XCTAssertEqual(ImageNetClasses.name(281), "tabby")
        XCTAssertEqual(ImageNetClasses.name(817), "sports car")
        XCTAssertEqual(ImageNetClasses.name(999), "toilet tissue")
        XCTAssertNil(ImageNetClasses.name(1000))
        XCTAssertNil(ImageNetClasses.name(3, classes: 10), "no ImageNet names for a 10-class head")
    }
}
