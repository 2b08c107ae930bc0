// ResultComparison on hand-made documents: the provenance block is skipped, models are matched by label
// whatever their order, numbers in arrays take their direction from the array's name (COCO stats are
// better higher), losses are better lower, and a number without a better side regresses either way.

import Analysis
import Foundation
import XCTest

final class ResultComparisonTests: XCTestCase {
    private func doc(_ text: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    func testDirectionsAndMatching() throws {
        let base = try doc(#"{"provenance": {"tool": "a", "n": 1}, "stats": [0.5, 0.25], "models": [{"label": "x", "ce": 1.0}, {"label": "y", "ce": 2.0}], "side_ratio": 0.4}"#)
        // Same numbers, other provenance, models swapped: nothing moved.
        let same = try doc(#"{"provenance": {"tool": "b", "n": 2}, "stats": [0.5, 0.25], "models": [{"label": "y", "ce": 2.0}, {"label": "x", "ce": 1.0}], "side_ratio": 0.4}"#)
        let c0 = ResultComparison(baseline: base, current: same, tolerance: 0.5)
        XCTAssertEqual(c0.changes, [])
        XCTAssertEqual(c0.compared, 5)

        // AP down 2 %: worse; ce of y down: better; side ratio up 1 %: worse (no better side).
        let moved = try doc(#"{"stats": [0.49, 0.25], "models": [{"label": "x", "ce": 1.0}, {"label": "y", "ce": 1.5}], "side_ratio": 0.404}"#)
        let c1 = ResultComparison(baseline: base, current: moved, tolerance: 0.5)
        let verdicts = Dictionary(uniqueKeysWithValues: c1.changes.map { ($0.name, $0.verdict) })
        XCTAssertEqual(verdicts, ["stats[0]": "worse", "models[y].ce": "better", "side_ratio": "worse"])
        XCTAssertEqual(c1.regressions.count, 2)
        // Within a 3 % tolerance only nothing regresses.
        XCTAssertEqual(ResultComparison(baseline: base, current: moved, tolerance: 3).regressions.count, 0)
        // --metric keeps only the named numbers.
        XCTAssertEqual(ResultComparison(baseline: base, current: moved, tolerance: 0.5, metrics: ["ce"]).changes.map(\.name), ["models[y].ce"])
    }
}
