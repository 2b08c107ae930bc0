// TensorCoreTests: a frozen weight's packed copy as the only copy. Once a product packs a large
// frozen weight, the pages of its unpacked values are handed back; the backward's product repacks
// from the forward's packing (a transposed view); reading the values brings them back exactly. All
// of it must give the bits of a plain (never packed) weight, on every kernel path and thread count.
// Shapes: x [M, K], weight [O, K]; conv: x [N, H, W, C], weight [O, 3*3*C].

import XCTest
@testable import TensorCore

final class PackedWeightTests: XCTestCase {
    private var rng = TestRNG(20261203)

    override func tearDown() {
        GemmKernel.use(GemmKernel.best)
        super.tearDown()
    }

    /// Output and input gradient of `f(x)` seeded with `seed`.
    private func forwardBackward(_ x: Tensor, _ seed: Tensor, _ f: (Tensor) -> Tensor) -> [[UInt32]] {
        let lx = x.detached().requiringGrad()
        let y = f(lx)
        Tape.backward(y, seed: seed)
        return [bits(y), bits(Tape.gradient(of: lx))]
    }

    func testLinearWithOnlyThePackedCopyGivesThePlainBits() {
        let before = Threads.count
        defer { Threads.set(before) }
        // O and K not multiples of any NR; O x K x 4 bytes over 1 MiB, so the pages are released.
        // Up to 256 rows the backward's blocks repack their own slivers of the transposed view; more
        // rows repack it whole first: 1 and 37 rows take the first path, 300 the second.
        let (k, o) = (515, 601)
        let plainW = rng.tensor([o, k]), bias = rng.tensor([o])
        let original = bits(plainW)
        for m in [1, 37, 300] {
        let frozenW = Tensor(shape: plainW.shape, values: plainW.values).frozen()
        XCTAssertFalse(frozenW.storage.isUnpackedReleased)
        let x = rng.tensor([m, k]), seed = rng.tensor([m, o])
        for kernel in GemmKernel.runnable {
            XCTAssertTrue(GemmKernel.use(kernel))
            for threads in [1, 2] {
                Threads.set(threads)
                let plain = forwardBackward(x, seed) { linear($0, weight: plainW, bias: bias) }
                let packed = forwardBackward(x, seed) { linear($0, weight: frozenW, bias: bias) }
                XCTAssertTrue(frozenW.storage.isUnpackedReleased, "\(kernel): the unpacked pages are released after a product")
                XCTAssertEqual(packed[0], plain[0], "forward, \(kernel), \(threads) threads, m=\(m)")
                XCTAssertEqual(packed[1], plain[1], "input gradient from the transposed view, \(kernel), \(threads) threads, m=\(m)")
                // The fused products read the same packing.
                let gelu1 = forwardBackward(x, seed) { linearGELU($0, weight: frozenW, bias: bias) }
                let gelu0 = forwardBackward(x, seed) { gelu(linear($0, weight: plainW, bias: bias)) }
                XCTAssertEqual(gelu1, gelu0, "linearGELU, \(kernel)")
                XCTAssertTrue(frozenW.storage.isUnpackedReleased)
            }
            // Reading the values writes them back from the packing, bit for bit.
            XCTAssertEqual(bits(frozenW), original, "values restored from the \(kernel) packing")
            XCTAssertFalse(frozenW.storage.isUnpackedReleased)
        }
        }
    }

    func testConvolutionWithOnlyThePackedCopyGivesThePlainBits() {
        let (n, h, w, c, o) = (2, 9, 7, 130, 300)  // weight 300 x 1170 floats, over 1 MiB
        let x = rng.tensor([n, h, w, c]), seed = rng.tensor([n, 5, 4, o])
        let plainW = rng.tensor([o, 9 * c])
        let frozenW = Tensor(shape: plainW.shape, values: plainW.values).frozen()
        for kernel in GemmKernel.runnable {
            XCTAssertTrue(GemmKernel.use(kernel))
            let plain = forwardBackward(x, seed) { conv2d($0, weight: plainW, kernel: (3, 3), stride: 2, pad: 1) }
            let packed = forwardBackward(x, seed) { conv2d($0, weight: frozenW, kernel: (3, 3), stride: 2, pad: 1) }
            XCTAssertTrue(frozenW.storage.isUnpackedReleased)
            XCTAssertEqual(packed, plain, "conv2d forward and input gradient, \(kernel)")
        }
        XCTAssertEqual(bits(frozenW), bits(plainW))
    }

    func testSmallWeightsKeepTheirValuesAndViewsHoldNone() {
        // Under 1 MiB: heap memory, not a mapping of its own, so nothing is released.
        let small = rng.tensor([40, 33]).frozen()
        _ = linear(rng.tensor([5, 33]), weight: small)
        XCTAssertFalse(small.storage.isUnpackedReleased)
        // The transpose of a packing is a view of it: no values of its own.
        let forward = small.packedForGemm(transposed: true)!
        let view = small.packedForGemm(transposed: false)!
        XCTAssertTrue(view.transposeOf === forward)
        XCTAssertEqual(view.bytes, 0)
        XCTAssertGreaterThan(forward.bytes, 0)
        // A tensor that is not frozen is never packed.
        XCTAssertNil(rng.tensor([40, 33]).packedForGemm(transposed: true))
    }
}
