// ImagingTests: the evaluation and invariance transforms against the reference tensors that the
// study's PyTorch code produced (../shared/reference, see its README): every value must lie within one
// 8-bit level of the reference for at least 99.9 % of the values. Layout: references are [1, 3, 224, 224].

import XCTest
import Foundation
import Checkpoint
@testable import Imaging

final class ReferenceTensorTests: XCTestCase {
    private let required = 0.999

    func testEvaluationInputMatchesEveryModelReference() throws {
        let image = try loadImage(path: TestData.path(TestData.evalImage))
        let transformed = evalTransform(image)
        XCTAssertEqual(transformed.width, 224)
        XCTAssertEqual(transformed.height, 224)
        // Fixtures of other input sizes are named `<model>_<size>_expected` (the reference README's
        // "Other input sizes"): their input is the evaluation transform at that size.
        let transformed672 = evalTransform(image, size: 672)
        let dir = try TestData.path("reference")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
            .filter { $0.hasSuffix("_expected.safetensors") && !$0.hasPrefix("transforms") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 5, "expected the five *_expected.safetensors files")
        for name in files {
            let tensors = try SafeTensors.readDictionary(path: dir + "/" + name)
            guard let input = tensors["input"] else {
                XCTFail("\(name) has no `input` tensor")
                continue
            }
            let (share, worst) = shareWithinOneLevel(name.contains("_672_") ? transformed672 : transformed, input)
            print("input of \(name): \(String(format: "%.4f", share * 100)) % within one level, max \(String(format: "%.3f", worst)) levels")
            XCTAssertGreaterThanOrEqual(share, required, name)
        }
    }

    func testInvarianceTransformsMatchReference() throws {
        let image = try loadImage(path: TestData.path(TestData.evalImage))
        let tensors = try SafeTensors.readDictionary(path: TestData.path("reference/transforms_expected.safetensors"))
        let cases: [(String, Image8)] = [
            ("standard", evalTransform(image)),
            ("translate32_mode0", jitterTransform(image, jitter: 32, direction: .down)),
            ("translate32_mode4", jitterTransform(image, jitter: 32, direction: .downRight)),
            ("translate32_mode6", jitterTransform(image, jitter: 32, direction: .upLeft)),
            ("rotate15_post", rotateTransform(image, degrees: 15, preCrop: false)),
            ("rotate45_post", rotateTransform(image, degrees: 45, preCrop: false)),
            ("rotate30_pre", rotateTransform(image, degrees: 30, preCrop: true)),
            ("scale0.5", scaleTransform(image, ratio: 0.5)),
            ("scale1.25", scaleTransform(image, ratio: 1.25)),
        ]
        XCTAssertEqual(Set(cases.map(\.0)), Set(tensors.keys), "the reference file holds other tensors than expected")
        for (name, transformed) in cases {
            guard let reference = tensors[name] else {
                XCTFail("reference tensor \(name) missing")
                continue
            }
            let (share, worst) = shareWithinOneLevel(transformed, reference)
            print("\(name): \(String(format: "%.4f", share * 100)) % within one level, max \(String(format: "%.3f", worst)) levels")
            XCTAssertGreaterThanOrEqual(share, required, name)
        }
    }
}
