// TensorCoreTests: the fused channel-MLP products (`linearGELU`, `linearResidual`) give the bits of
// the ops they fuse (gelu after linear; addScaled of linear's output), forward and backward, with
// and without a gradient, frozen (packed) and plain weights, on every kernel path and several
// thread counts; so does the whole MLP as one node (`mlpResidual`), at many rows and few; and
// their gradients meet finite differences.
// Shapes: x [M, K], weight [O, K], bias and gamma [O], base [M, O].

import XCTest
@testable import TensorCore

final class FusedLinearTests: XCTestCase {
    private var rng = TestRNG(20261202)

    override func tearDown() {
        GemmKernel.use(GemmKernel.best)
        super.tearDown()
    }

    /// Forward output and the input gradients of `f` over (x, base), seeded with `seed`.
    private func run(_ x: Tensor, _ base: Tensor, _ seed: Tensor, grad: Bool,
                     _ f: (Tensor, Tensor) -> Tensor) -> [[UInt32]] {
        guard grad else { return [bits(f(x, base))] }
        let lx = x.detached().requiringGrad(), lb = base.detached().requiringGrad()
        let y = f(lx, lb)
        Tape.backward(y, seed: seed)
        return [bits(y), bits(Tape.gradient(of: lx)), bits(Tape.gradient(of: lb))]
    }

    func testFusedProductsGiveTheBitsOfTheUnfusedOpsOnEveryPath() {
        let before = Threads.count
        defer { Threads.set(before) }
        // Edge tiles (M, O not multiples of any tile), several k-blocks (K > every KC), and a product
        // large enough to be split over threads and column blocks.
        for (m, k, o) in [(37, 451, 75), (300, 200, 520), (1, 8, 3)] {
            let x = rng.tensor([m, k]), base = rng.tensor([m, o]), bias = rng.tensor([o])
            let gamma = rng.tensor([o], scale: 0.5)
            let seed = rng.tensor([m, o])
            let plainW = rng.tensor([o, k])
            let frozenW = Tensor(shape: plainW.shape, values: plainW.values).frozen()
            for kernel in GemmKernel.runnable {
                XCTAssertTrue(GemmKernel.use(kernel))
                for threads in [1, 3] {
                    Threads.set(threads)
                    for w in [plainW, frozenW] {
                        for grad in [false, true] {
                            let where_ = "\(kernel) threads \(threads) m \(m) k \(k) o \(o) grad \(grad) frozen \(w.storage.isFrozen)"
                            let fusedGELU = run(x, base, seed, grad: grad) { x, _ in linearGELU(x, weight: w, bias: bias) }
                            let plainGELU = run(x, base, seed, grad: grad) { x, _ in gelu(linear(x, weight: w, bias: bias)) }
                            XCTAssertEqual(fusedGELU[0], plainGELU[0], "linearGELU forward, \(where_)")
                            if grad { XCTAssertEqual(fusedGELU[1], plainGELU[1], "linearGELU dx, \(where_)") }
                            let fusedRes = run(x, base, seed, grad: grad) { x, b in
                                linearResidual(x, weight: w, bias: bias, onto: b, scale: gamma)
                            }
                            let plainRes = run(x, base, seed, grad: grad) { x, b in
                                addScaled(b, linear(x, weight: w, bias: bias), scale: gamma)
                            }
                            XCTAssertEqual(fusedRes, plainRes, "linearResidual, \(where_)")
                        }
                    }
                }
            }
        }
    }

    func testFusedProductsWithoutBiasAndWithAConstantBase() {
        let (m, k, o) = (9, 40, 33)
        let x = rng.tensor([2, m, k]), base = rng.tensor([2, m, o]), w = rng.tensor([o, k]).frozen()
        let gamma = rng.tensor([o])
        XCTAssertEqual(bits(linearGELU(x, weight: w)), bits(gelu(linear(x, weight: w))))
        XCTAssertEqual(linearGELU(x, weight: w).shape, [2, m, o])
        // Only x needs a gradient: the base's slot is skipped, x's gradient is addScaled's then linear's.
        let lx = x.detached().requiringGrad()
        let seed = rng.tensor([2, m, o])
        Tape.backward(linearResidual(lx, weight: w, onto: base, scale: gamma), seed: seed)
        let fused = bits(Tape.gradient(of: lx))
        let lx2 = x.detached().requiringGrad()
        Tape.backward(addScaled(base, linear(lx2, weight: w), scale: gamma), seed: seed)
        XCTAssertEqual(fused, bits(Tape.gradient(of: lx2)))
    }

    func testMLPNodeGivesTheBitsOfTheFusedProducts() {
        let before = Threads.count
        defer { Threads.set(before) }
        // (1201, 40, 2048, 40): products split into row and column blocks over 1 and 3 threads;
        // (37, 45, 70, 33): one row block.
        for (m, c, h, o) in [(1201, 40, 2048, 40), (37, 45, 70, 33)] {
            let x = rng.tensor([m, c]), base = rng.tensor([m, o]), seed = rng.tensor([m, o])
            let b1 = rng.tensor([h]), b2 = rng.tensor([o]), gamma = rng.tensor([o], scale: 0.5)
            let plain1 = rng.tensor([h, c], scale: 0.2), plain2 = rng.tensor([o, h], scale: 0.05)
            let frozen1 = Tensor(shape: plain1.shape, values: plain1.values).frozen()
            let frozen2 = Tensor(shape: plain2.shape, values: plain2.values).frozen()
            for kernel in GemmKernel.runnable {
                XCTAssertTrue(GemmKernel.use(kernel))
                for threads in [1, 3] {
                    Threads.set(threads)
                    for (w1, w2) in [(plain1, plain2), (frozen1, frozen2)] {
                        for grad in [false, true] {
                            let where_ = "\(kernel) threads \(threads) m \(m) h \(h) grad \(grad) frozen \(w1.storage.isFrozen)"
                            let node = run(x, base, seed, grad: grad) { x, b in
                                mlpResidual(x, fc1: w1, bias1: b1, fc2: w2, bias2: b2, onto: b, scale: gamma)
                            }
                            let ops = run(x, base, seed, grad: grad) { x, b in
                                linearResidual(linearGELU(x, weight: w1, bias: b1), weight: w2, bias: b2, onto: b, scale: gamma)
                            }
                            XCTAssertEqual(node, ops, "mlpResidual, \(where_)")
                        }
                    }
                }
            }
        }
        // Only the base needs a gradient: x's slot is skipped and the base's is the seed.
        let x = rng.tensor([3, 4]), w1 = rng.tensor([8, 4]), w2 = rng.tensor([4, 8]), gamma = rng.tensor([4])
        let lb = rng.tensor([3, 4]).requiringGrad(), seed = rng.tensor([3, 4])
        Tape.backward(mlpResidual(x, fc1: w1, bias1: nil, fc2: w2, bias2: nil, onto: lb, scale: gamma), seed: seed)
        XCTAssertEqual(bits(Tape.gradient(of: lb)), bits(seed))
    }

    func testFusedProductsMeetFiniteDifferences() {
        let w = rng.tensor([6, 5]), b = rng.tensor([6]), gamma = rng.tensor([6]), base = rng.tensor([2, 3, 6])
        checkGradient("linearGELU", rng.tensor([2, 3, 5])) { linearGELU($0, weight: w, bias: b) }
        checkGradient("linearResidual x", rng.tensor([2, 3, 5])) {
            linearResidual($0, weight: w, bias: b, onto: base, scale: gamma)
        }
        let w2 = rng.tensor([6, 7]), b2 = rng.tensor([6]), w1 = rng.tensor([7, 6]), b1 = rng.tensor([7])
        checkGradient("mlpResidual x", rng.tensor([2, 3, 6])) {
            mlpResidual($0, fc1: w1, bias1: b1, fc2: w2, bias2: b2, onto: base, scale: gamma)
        }
        let x = rng.tensor([2, 3, 5])
        checkGradient("linearResidual base", rng.tensor([2, 3, 6])) {
            linearResidual(x, weight: w, bias: b, onto: $0, scale: gamma)
        }
    }
}
