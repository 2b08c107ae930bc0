// Finite-difference checking of gradient rules: compares the tape's gradient of a random linear
// functional of an op's output with central differences, along random directions and single
// coordinates. Float32 ops, so differences use a step of 1e-2 and tolerances of a few 1e-3.

import XCTest
@testable import TensorCore

/// A small deterministic generator (SplitMix64) so failures reproduce.
struct TestRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }
    mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        Tensor(shape: shape, values: (0..<elementCount(shape)).map { _ in scale * uniform() })
    }
}

/// Sum of w * f(x) in Double.
func functional(_ f: (Tensor) -> Tensor, _ x: Tensor, _ w: Tensor) -> Double {
    let y = f(x)
    var s = 0.0
    for i in 0..<y.count { s += Double(y.data[i]) * Double(w.data[i]) }
    return s
}

/// Checks the gradient of `f` at `x` (several inputs are handled by closing over constants).
func checkGradient(_ name: String, _ x: Tensor, eps: Float = 1e-2, tolerance: Double = 5e-3,
                   coordinates: Int = 12, seed: UInt64 = 1, file: StaticString = #filePath, line: UInt = #line,
                   _ f: (Tensor) -> Tensor) {
    var rng = TestRNG(seed)
    let probe = f(x.detached())
    let w = rng.tensor(probe.shape)
    let leaf = x.detached().requiringGrad()
    let y = f(leaf)
    XCTAssertTrue(y.requiresGrad, "\(name): output does not require grad", file: file, line: line)
    Tape.backward(y, seed: w)
    let g = Tape.gradient(of: leaf)
    XCTAssertEqual(g.shape, x.shape, file: file, line: line)

    func perturbed(_ dir: [Float], _ e: Float) -> Tensor {
        Tensor(shape: x.shape, values: (0..<x.count).map { x.data[$0] + e * dir[$0] })
    }
    // Random directions.
    for _ in 0..<3 {
        let u = (0..<x.count).map { _ in rng.uniform() }
        let numeric = (functional(f, perturbed(u, eps), w) - functional(f, perturbed(u, -eps), w)) / (2 * Double(eps))
        var analytic = 0.0
        for i in 0..<x.count { analytic += Double(g.data[i]) * Double(u[i]) }
        let scaleRef = max(abs(numeric), abs(analytic), 1e-2)
        XCTAssertLessThan(abs(numeric - analytic) / scaleRef, tolerance,
                          "\(name): directional derivative \(analytic) vs finite difference \(numeric)", file: file, line: line)
    }
    // Single coordinates.
    var gmax: Float = 1e-3
    for i in 0..<g.count { gmax = max(gmax, abs(g.data[i])) }
    for _ in 0..<coordinates {
        let i = Int(rng.next() % UInt64(x.count))
        var e = [Float](repeating: 0, count: x.count)
        e[i] = 1
        let numeric = (functional(f, perturbed(e, eps), w) - functional(f, perturbed(e, -eps), w)) / (2 * Double(eps))
        XCTAssertLessThan(abs(numeric - Double(g.data[i])), tolerance * 4 * Double(gmax) + 1e-4,
                          "\(name): d/dx[\(i)] analytic \(g.data[i]) vs finite difference \(numeric)", file: file, line: line)
    }
}

/// A tensor's values as bit patterns, for exact (bit-for-bit) comparisons.
func bits(_ t: Tensor) -> [UInt32] { t.values.map(\.bitPattern) }
