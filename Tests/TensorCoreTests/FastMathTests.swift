// The vectorised exp and erf against the C library over their working ranges.

import Foundation
import TensorCore
import XCTest

final class FastMathTests: XCTestCase {
    func testExpMatchesLibm() {
        var worst = 0.0
        var x: Float = -87
        while x < 88 {
            var v = Float16x(repeating: 0)
            for j in 0..<16 { v[j] = x + Float(j) * 0.0137 }
            let r = fastExp(v)
            for j in 0..<16 {
                let e = Foundation.exp(Double(v[j]))
                worst = max(worst, abs(Double(r[j]) - e) / e)
            }
            x += 0.219
        }
        XCTAssertLessThan(worst, 3e-7, "relative error of fastExp")
        XCTAssertEqual(fastExp(Float16x(repeating: 0))[0], 1)
        XCTAssertEqual(fastExp(Float16x(repeating: -200))[3], 0, accuracy: 1e-37)
    }

    func testErfMatchesLibm() {
        var worst = 0.0
        var x: Float = -6
        while x < 6 {
            var v = Float16x(repeating: 0)
            for j in 0..<16 { v[j] = x + Float(j) * 0.00071 }
            let r = fastErf(v)
            for j in 0..<16 { worst = max(worst, abs(Double(r[j]) - Foundation.erf(Double(v[j])))) }
            x += 0.0113
        }
        XCTAssertLessThan(worst, 5e-7, "absolute error of fastErf (a few float32 ulps)")
    }
}

/// The bits of the project's exp and erf are part of the determinism guarantee: a build for AVX2
/// (`-target-cpu haswell`) and one for AVX-512 must give the same bits. This pins them with a
/// digest over a dense grid (FNV-1a over the bit patterns), the same on every build and host.
final class FastMathBitsTests: XCTestCase {
    static let goldenExp: UInt64 = 9_501_332_311_311_181_528
    static let goldenErf: UInt64 = 9_881_069_656_843_885_645

    private func digest(_ f: (Float16x) -> Float16x, from lo: Float, to hi: Float) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        let steps = 1 << 16
        for i in 0..<steps {
            var v = Float16x(repeating: 0)
            for j in 0..<16 { v[j] = lo + (hi - lo) * Float(i * 16 + j) / Float(steps * 16) }
            let r = f(v)
            for j in 0..<16 {
                h ^= UInt64(r[j].bitPattern)
                h = h &* 0x0000_0100_0000_01b3
            }
        }
        return h
    }

    func testExpAndErfBitsAreTheGoldenOnes() {
        let e = digest(fastExp, from: -90, to: 90), r = digest(fastErf, from: -7, to: 7)
        XCTAssertEqual(e, Self.goldenExp, "fastExp digest \(e)")
        XCTAssertEqual(r, Self.goldenErf, "fastErf digest \(r)")
    }
}
