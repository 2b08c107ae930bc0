// COCOEval against ../shared/reference/detection/boxmap_expected.json: every case's 12 stats, as
// pycocotools 2.0.11 computed them, within 1e-12 (and -1 exactly). The cases are read here with their
// own decoder, independent of COCOFiles, so a loader bug and an evaluator bug cannot hide each other.
// The file loaders are exercised by the CLI tests.

import COCOEval
import Foundation
import TestSupport
import XCTest

/// One case of boxmap_expected.json.
struct BoxMapCase: Decodable {
    struct Params: Decodable {
        var useCats: Int?
        var maxDets: [Int]?
    }
    struct Entry: Decodable { var id: Int }
    struct Annotation: Decodable {
        var id: Int
        var image_id: Int
        var category_id: Int
        var bbox: [Double]
        var area: Double
        var iscrowd: Int
    }
    struct Detection: Decodable {
        var image_id: Int
        var category_id: Int
        var bbox: [Double]
        var score: Double
    }
    var name: String
    var params: Params
    var images: [Entry]
    var categories: [Entry]
    var annotations: [Annotation]
    var detections: [Detection]
    var stats: [Double]

    var groundTruth: COCOGroundTruth {
        COCOGroundTruth(imageIds: images.map(\.id), categoryIds: categories.map(\.id), annotations: annotations.map {
            COCOAnnotation(id: $0.id, imageId: $0.image_id, categoryId: $0.category_id,
                           bbox: COCOBox(x: $0.bbox[0], y: $0.bbox[1], width: $0.bbox[2], height: $0.bbox[3]),
                           area: $0.area, isCrowd: $0.iscrowd != 0)
        })
    }

    var cocoDetections: [COCODetection] {
        detections.map {
            COCODetection(imageId: $0.image_id, categoryId: $0.category_id,
                          bbox: COCOBox(x: $0.bbox[0], y: $0.bbox[1], width: $0.bbox[2], height: $0.bbox[3]), score: $0.score)
        }
    }

    var parameters: COCOParameters {
        COCOParameters(useCategories: (params.useCats ?? 1) != 0, maxDetections: params.maxDets ?? [1, 10, 100])
    }

    static func load() throws -> [BoxMapCase] {
        let path = referencePath("detection/boxmap_expected.json")
        return try JSONDecoder().decode([BoxMapCase].self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

final class BoxMapReferenceTests: XCTestCase {
    func testEveryCaseMatchesPycocotools() throws {
        let cases = try BoxMapCase.load()
        XCTAssertEqual(cases.count, 35, "BOXMAP.md describes 35 cases")
        var bitExact = 0, passed = 0
        for c in cases {
            let result = try COCOEvaluator.evaluate(groundTruth: c.groundTruth, detections: c.cocoDetections, parameters: c.parameters)
            XCTAssertEqual(result.stats.count, 12, c.name)
            var ok = true
            for (i, (got, want)) in zip(result.stats, c.stats).enumerated() {
                if want == -1 {
                    if got != -1 { ok = false; XCTFail("\(c.name): stats[\(i)] = \(got), expected exactly -1") }
                } else if !(abs(got - want) <= 1e-12) {
                    ok = false
                    XCTFail("\(c.name): stats[\(i)] = \(got), expected \(want)")
                }
            }
            if ok { passed += 1 }
            if result.stats == c.stats { bitExact += 1 }
        }
        print("boxmap_expected.json: \(passed)/\(cases.count) cases within 1e-12, \(bitExact) bit for bit")
        XCTAssertEqual(passed, cases.count)
    }

    /// The class-agnostic cases differ from their class-aware evaluation (so useCats really changes the path).
    func testClassAgnosticCasesDependOnUseCats() throws {
        let agnostic = try BoxMapCase.load().filter { $0.params.useCats == 0 }
        XCTAssertEqual(agnostic.count, 4)
        for c in agnostic {
            let aware = try COCOEvaluator.evaluate(groundTruth: c.groundTruth, detections: c.cocoDetections)
            XCTAssertNotEqual(aware.stats, c.stats, "\(c.name): class-aware stats equal the class-agnostic reference")
        }
    }
}
