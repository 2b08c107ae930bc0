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

    /// Both reductions against their definitions on the input gradient, taken here through the tape:
    /// relu sums max(g, 0) over the three channels in order, abs sums |g|.
    func testReductionsAreTheirDefinitionsOnTheInputGradient() throws {
        let model = try ModelLoader.load(model: referencePath("convnext_nano.pth"), arch: referencePath("convnext_nano.json")).model
        let x = input(2, 64, seed: 11)
        let relu = try XCTUnwrap(centreContributions(model: model, input: x, stages: [4], reduction: .relu)[4])
        let abs = try XCTUnwrap(centreContributions(model: model, input: x, stages: [4], reduction: .abs)[4])
        let xg = x.detached().requiringGrad()
        let y = model.forwardToCentre(xg, through: 4)[3]  // [2,1,1,C]
        let seed = Tensor.zeros(y.shape)
        for i in 0..<y.shape.reduce(1, *) where y.data[i] > 0 { seed.data[i] = 1 }
        Tape.backward(y, seed: seed, retainGraph: false)
        let g = Tape.gradient(of: xg).values  // [2,64,64,3]
        var wantRelu = [Float](repeating: 0, count: 2 * 64 * 64), wantAbs = wantRelu
        for p in 0..<wantRelu.count {
            var r: Float = 0, a: Float = 0
            for ch in 0..<3 { r += max(g[p * 3 + ch], 0); a += Swift.abs(g[p * 3 + ch]) }
            wantRelu[p] = r
            wantAbs[p] = a
        }
        XCTAssertEqual(bitsOf(relu), wantRelu.map(\.bitPattern))
        XCTAssertEqual(bitsOf(abs), wantAbs.map(\.bitPattern))
        XCTAssertNotEqual(bitsOf(relu), bitsOf(abs), "the gradient has negative values, so the reductions differ")
    }

    /// The four stages' passes of one forward run part by part from stage 4 down (Tape.backwardEach):
    /// the maps have the bits of passes over the retained graph, one stage after another (the way
    /// they were taken before), and the peak tensor memory is lower, for every family, in the
    /// classifier form and in the detection form (whose stage outputs are side branches).
    func testStagesPassesFromTheTopGiveTheRetainedGraphsBitsWithLessMemory() throws {
        for family in ["convnext", "swin", "halo", "pvt", "dcnv3"] {
            for checkpoint in ["\(family)_nano.pth", "detection/\(family)_det_nano.pth"] {
                let model = try ModelLoader.load(model: referencePath(checkpoint), arch: referencePath("\(family)_nano.json")).model
                let x = input(2, 96, seed: 5)
                MemoryStats.resetPeak()
                var base = MemoryStats.liveBytes
                let maps = centreContributions(model: model, input: x, stages: [1, 2, 3, 4])
                let chainPeak = MemoryStats.peakBytes - base

                // The same passes over the retained graph, stage 1 first.
                MemoryStats.resetPeak()
                base = MemoryStats.liveBytes
                let xg = x.detached().requiringGrad()
                let outputs = model.forwardToCentre(xg, through: 4)
                var retained: [Int: [Float]] = [:]
                for s in 1...4 {
                    let y = outputs[s - 1]
                    let (h, w, c) = (y.shape[1], y.shape[2], y.shape[3])
                    let seed = Tensor.zeros(y.shape)
                    for b in 0..<2 {
                        let at = ((b * h + h / 2) * w + w / 2) * c
                        for ch in 0..<c where y.data[at + ch] > 0 { seed.data[at + ch] = 1 }
                    }
                    Tape.backward(y, seed: seed, retainGraph: s < 4)
                    let g = Tape.gradient(of: xg).values  // [2,96,96,3]
                    retained[s] = (0..<(2 * 96 * 96)).map { p in
                        var r: Float = 0
                        for ch in 0..<3 { r += max(g[p * 3 + ch], 0) }
                        return r
                    }
                }
                let retainedPeak = MemoryStats.peakBytes - base
                for s in 1...4 {
                    XCTAssertEqual(bitsOf(try XCTUnwrap(maps[s])), try XCTUnwrap(retained[s]).map(\.bitPattern), "\(checkpoint): stage \(s)")
                }
                XCTAssertLessThan(chainPeak, retainedPeak, "\(checkpoint): the stages' passes should release each stage's part after its last pass")
            }
        }
    }
}
