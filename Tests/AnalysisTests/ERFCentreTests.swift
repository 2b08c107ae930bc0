// ERF: the centre-only pass (the highest stage's last block runs its channel MLP on the centre token
// alone, `Backbone.forwardToCentre`) gives the bits of the whole-map definition, for every family,
// for one stage and for several from one forward, at the reference models' size and at sizes whose
// maps have odd and even sides; and the centre stage output equals the whole output's centre token.

import Analysis
import Foundation
import Models
import TensorCore
import TestSupport
import XCTest

final class ERFCentreTests: XCTestCase {
    private func input(_ n: Int, _ side: Int, seed: UInt64) -> Tensor {
        var rng = SeededNormal(seed: seed)
        return Tensor(shape: [n, side, side, 3], values: (0..<(n * side * side * 3)).map { _ in Float(rng.normal()) })
    }

    private func bitsOf(_ t: Tensor) -> [UInt32] { t.values.map(\.bitPattern) }

    func testCentreOnlyPassGivesTheBitsOfTheWholeMapForEveryFamily() throws {
        for family in ["convnext", "swin", "halo", "pvt", "dcnv3"] {
            let model = try ModelLoader.load(model: referencePath("\(family)_nano.pth"), arch: referencePath("\(family)_nano.json")).model
            for (side, stages) in [(64, [4]), (96, [1, 2, 3, 4]), (80, [2]), (64, [1, 3])] {
                let x = input(2, side, seed: UInt64(side))
                let fast = centreContributions(model: model, input: x, stages: stages)
                let slow = centreContributions(model: model, input: x, stages: stages, centreOnly: false)
                for s in stages {
                    let f = try XCTUnwrap(fast[s]), w = try XCTUnwrap(slow[s])
                    XCTAssertEqual(f.shape, w.shape)
                    XCTAssertEqual(bitsOf(f), bitsOf(w), "\(family) at \(side): stage \(s) of \(stages)")
                    XCTAssertGreaterThan(f.values.reduce(0, +), 0, "\(family) at \(side): stage \(s) map is all zero")
                }
            }
            let x = input(2, 64, seed: 3)
            let whole = model.forward(x, through: 3, logits: false).stages
            let centre = model.forwardToCentre(x, through: 3)
            XCTAssertEqual(centre.count, 3)
            XCTAssertEqual(centre[2].shape, [2, 1, 1, whole[2].shape[3]])
            XCTAssertEqual(bitsOf(centre[2]), bitsOf(centreToken(whole[2])), "\(family): stage 3 centre")
            XCTAssertEqual(bitsOf(centre[1]), bitsOf(whole[1]), "\(family): stage 2 whole")
        }
    }
}
