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
