// Tape.backwardEach: several outputs' backward passes from one forward. Each gradient must be the
// bits of that output's pass alone on a fresh graph, whether the outputs form a chain (run part by
// part; the outputs themselves or side branches of the cuts given) or not (run over a retained
// graph), and a chain's passes must hold less memory at their peak than passes over the retained
// graph.

import XCTest
@testable import TensorCore

final class TapeBackwardEachTests: XCTestCase {
    var rng = TestRNG(11)

    /// A "stage": a product up to a hidden width, a node with three consumers there (so that the
    /// order in which its gradient is accumulated shows in the bits), joined again, and a product
    /// back down. x [M, K], w.up [H, K], w.down [O, H] -> [M, O].
    func stage(_ x: Tensor, _ w: (up: Tensor, down: Tensor)) -> Tensor {
        let a = linear(x, weight: w.up)
        return linear(add(add(gelu(a), scale(a, 0.37)), relu(a)), weight: w.down)
    }

    /// The leaf's gradient from `output`'s pass alone, seeded with ones, on a fresh graph.
    func alone(_ x: Tensor, _ build: (Tensor) -> Tensor) -> [Float] {
        let leaf = x.detached().requiringGrad()
        let y = build(leaf)
        Tape.backward(y, seed: Tensor(shape: y.shape, repeating: 1))
        return Tape.gradient(of: leaf).values
    }

    func testChainGivesEachPassesBitsAndLessMemory() {
        // Stage 1's hidden width is the largest, so its pass holds the most gradients at once: over a
        // retained graph the first pass adds them to every stage's activations; a chain's passes reach
        // stage 1 after the others' activations were released.
        let x = rng.tensor([64, 48])
        let w1 = (up: rng.tensor([1024, 48]), down: rng.tensor([32, 1024]))
        let w2 = (up: rng.tensor([512, 32]), down: rng.tensor([32, 512]))
        let w3 = (up: rng.tensor([512, 32]), down: rng.tensor([16, 512]))
        let wx = rng.tensor([16, 48])
        let builds: [(Tensor) -> Tensor] = [
            { self.stage($0, w1) },
            { self.stage(self.stage($0, w1), w2) },
            { self.stage(self.stage(self.stage($0, w1), w2), w3) },
        ]
        let expected = builds.map { alone(x, $0) }

        func run(chain: Bool) -> (grads: [Int: [Float]], peak: Int) {
            let leaf = x.detached().requiringGrad()
            let h1 = stage(leaf, w1), h2 = stage(h1, w2), h3 = stage(h2, w3)
            // Not a chain: the last output also reads the leaf directly, past h2 and h1.
            let outputs = chain ? [h1, h2, h3] : [h1, h2, add(h3, linear(leaf, weight: wx))]
            var grads: [Int: [Float]] = [:]
            MemoryStats.resetPeak()
            let before = MemoryStats.liveBytes
            Tape.backwardEach(outputs, seed: { Tensor(shape: outputs[$0].shape, repeating: 1) }, leaf: leaf) { i, g in
                XCTAssertNil(grads[i], "output \(i) reported twice")
                grads[i] = g.values
            }
            return (grads, MemoryStats.peakBytes - before)
        }
        let chained = run(chain: true)
        XCTAssertEqual(chained.grads.count, 3)
        for i in 0..<3 { XCTAssertEqual(chained.grads[i], expected[i], "output \(i), chain") }

        // The same outputs over a retained graph (what the chain replaces): the same bits, more memory.
        let leaf = x.detached().requiringGrad()
        let h1 = stage(leaf, w1), h2 = stage(h1, w2), h3 = stage(h2, w3)
        MemoryStats.resetPeak()
        let before = MemoryStats.liveBytes
        for (i, y) in [h1, h2, h3].enumerated() {
            Tape.backward(y, seed: Tensor(shape: y.shape, repeating: 1), retainGraph: i < 2)
            XCTAssertEqual(Tape.gradient(of: leaf).values, expected[i], "output \(i), retained graph")
        }
        let retainedPeak = MemoryStats.peakBytes - before
        XCTAssertLessThan(chained.peak, retainedPeak, "a chain's passes should free each part after its last pass")

        // Not a chain (the last output also reads the leaf past the others): the passes run over the
        // retained graph, each with its bits alone.
        let notChain = run(chain: false)
        XCTAssertEqual(notChain.grads.count, 3)
        for i in 0..<2 { XCTAssertEqual(notChain.grads[i], expected[i], "output \(i), not a chain") }
        let last = alone(x) { l in add(self.stage(self.stage(self.stage(l, w1), w2), w3), linear(l, weight: wx)) }
        XCTAssertEqual(notChain.grads[2], last, "output 2, not a chain")
        XCTAssertNotEqual(last, expected[2])
    }

    func testSideBranchOutputsCutAtTheirStagesGiveEachPassesBitsAndLessMemory() {
        // Each output is a side branch of its stage (a product and GELU, as an output norm would be);
        // the next stage reads the stage's own output, the cut.
        let x = rng.tensor([64, 48])
        let w1 = (up: rng.tensor([1024, 48]), down: rng.tensor([32, 1024]))
        let w2 = (up: rng.tensor([512, 32]), down: rng.tensor([32, 512]))
        let w3 = (up: rng.tensor([512, 32]), down: rng.tensor([16, 512]))
        let b1 = rng.tensor([24, 32]), b2 = rng.tensor([24, 32]), b3 = rng.tensor([24, 16])
        let branch = [b1, b2, b3]
        func trunk(_ l: Tensor) -> [Tensor] {
            let h1 = stage(l, w1), h2 = stage(h1, w2)
            return [h1, h2, stage(h2, w3)]
        }
        let expected = (0..<3).map { i in alone(x) { gelu(linear(trunk($0)[i], weight: branch[i])) } }

        func run(cut: Bool) -> (grads: [Int: [Float]], peak: Int) {
            let leaf = x.detached().requiringGrad()
            MemoryStats.resetPeak()
            let before = MemoryStats.liveBytes
            let h = trunk(leaf)
            let outputs = (0..<3).map { gelu(linear(h[$0], weight: branch[$0])) }
            var grads: [Int: [Float]] = [:]
            Tape.backwardEach(outputs, cuts: cut ? h : nil, seed: { Tensor(shape: outputs[$0].shape, repeating: 1) }, leaf: leaf) { i, g in
                XCTAssertNil(grads[i], "output \(i) reported twice")
                grads[i] = g.values
            }
            return (grads, MemoryStats.peakBytes - before)
        }
        let withCuts = run(cut: true), without = run(cut: false)  // without: not a chain, the retained graph
        for i in 0..<3 {
            XCTAssertEqual(withCuts.grads[i], expected[i], "output \(i), cut at the stages")
            XCTAssertEqual(without.grads[i], expected[i], "output \(i), retained graph")
        }
        XCTAssertLessThan(withCuts.peak, without.peak, "cut at the stages, the passes should free each part after its last pass")
    }

    func testSingleOutputIsThePlainPass() {
        let x = rng.tensor([5, 6]), w = (up: rng.tensor([7, 6]), down: rng.tensor([3, 7]))
        let leaf = x.detached().requiringGrad()
        let y = stage(leaf, w)
        var got: [Float] = []
        Tape.backwardEach([y], seed: { _ in Tensor(shape: y.shape, repeating: 1) }, leaf: leaf) { _, g in got = g.values }
        XCTAssertEqual(got, alone(x) { self.stage($0, w) })
    }
}
