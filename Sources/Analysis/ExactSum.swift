// Analysis: exact, order-independent sums of float32 values, so that an ERF map summed over images in
// one run, or in shards summed separately and then added, has the same bits. Each value is added as
// an integer multiple of 2^-149 (the smallest float32 step) into five 64-bit limbs in two's complement
// (320 bits: float32's 277-bit range, a sign, and room for 2^42 values of the largest float), so
// additions are exact and their order cannot matter; the Double read back is a fixed function of the
// exact sum. NaN and infinity are the caller's to exclude (ERF maps holding one are skipped).

/// Exact sums of float32 values in `count` cells.
public struct ExactFloatSums: Equatable, Sendable {
    /// Limbs per cell (least significant first).
    public static let limbs = 5
    /// Number of cells.
    public let count: Int
    /// `count * limbs` limbs, cell after cell, least significant limb first.
    public private(set) var words: [UInt64]

    /// `count` cells holding zero.
    public init(count: Int) {
        self.count = count
        words = [UInt64](repeating: 0, count: count * Self.limbs)
    }

    /// Cells from stored limbs (`words.count` must be a multiple of `limbs`).
    public init?(words: [UInt64]) {
        guard words.count % Self.limbs == 0 else { return nil }
        count = words.count / Self.limbs
        self.words = words
    }

    /// Adds `values[i]` to cell i for every i (values must be finite).
    public mutating func add(_ values: UnsafePointer<Float>) {
        let n = count
        words.withUnsafeMutableBufferPointer { w in
            for i in 0..<n {
                let v = values[i]
                if v == 0 { continue }
                Self.addFloat(v, into: w.baseAddress! + i * Self.limbs)
            }
        }
    }

    /// Adds another set of sums cell by cell (exact).
    public mutating func add(_ other: ExactFloatSums) {
        precondition(other.count == count, "ExactFloatSums: \(other.count) cells added to \(count)")
        words.withUnsafeMutableBufferPointer { w in
            other.words.withUnsafeBufferPointer { o in
                for c in 0..<count {
                    var carry: UInt64 = 0
                    for l in 0..<Self.limbs {
                        let (s1, o1) = w[c * Self.limbs + l].addingReportingOverflow(o[c * Self.limbs + l])
                        let (s2, o2) = s1.addingReportingOverflow(carry)
                        w[c * Self.limbs + l] = s2
                        carry = (o1 ? 1 : 0) + (o2 ? 1 : 0)
                    }
                }
            }
        }
    }

    /// Cell `i` as a Double: a fixed function of the exact sum (limbs combined from the most significant).
    public func value(at i: Int) -> Double {
        var limb = Array(words[(i * Self.limbs)..<((i + 1) * Self.limbs)])
        let negative = limb[Self.limbs - 1] >> 63 == 1
        if negative {
            // Two's complement negation.
            var carry: UInt64 = 1
            for l in 0..<Self.limbs {
                let (s, o) = (~limb[l]).addingReportingOverflow(carry)
                limb[l] = s
                carry = o ? 1 : 0
            }
        }
        var v = 0.0
        for l in stride(from: Self.limbs - 1, through: 0, by: -1) {
            v = v * 18446744073709551616.0 + Double(limb[l])
        }
        // Units of 2^-149: scale in two steps (2^-149 alone is a float32 subnormal, fine for Double).
        v = v * 0x1p-100 * 0x1p-49
        return negative ? -v : v
    }

    /// Every cell as a Double.
    public func values() -> [Double] { (0..<count).map(value(at:)) }

    /// Adds the float `v` (finite, non-zero) to the five limbs at `cell`.
    @inline(__always)
    static func addFloat(_ v: Float, into cell: UnsafeMutablePointer<UInt64>) {
        let bits = v.bitPattern
        let exponent = Int((bits >> 23) & 0xFF)
        var mantissa = UInt64(bits & 0x7F_FFFF)
        var shift = 0
        if exponent > 0 { mantissa |= 1 << 23; shift = exponent - 1 }
        let limb = shift >> 6, offset = UInt64(shift & 63)
        let low = mantissa << offset
        let high = offset == 0 ? 0 : mantissa >> (64 - offset)
        if bits >> 31 == 0 {
            let carryIn = add(low, to: cell, at: limb)
            var l = limb + 1
            let (s, o) = cell[l].addingReportingOverflow(high)
            let (s1, o1) = s.addingReportingOverflow(carryIn)
            cell[l] = s1
            var carry: UInt64 = (o || o1) ? 1 : 0
            l += 1
            while carry != 0 && l < limbs {
                let (s2, o2) = cell[l].addingReportingOverflow(1)
                cell[l] = s2
                carry = o2 ? 1 : 0
                l += 1
            }
        } else {
            let borrowIn = subtract(low, from: cell, at: limb)
            var l = limb + 1
            let (s, o) = cell[l].subtractingReportingOverflow(high)
            let (s2, o2) = s.subtractingReportingOverflow(borrowIn)
            cell[l] = s2
            var borrow: UInt64 = (o || o2) ? 1 : 0
            l += 1
            while borrow != 0 && l < limbs {
                let (s3, o3) = cell[l].subtractingReportingOverflow(1)
                cell[l] = s3
                borrow = o3 ? 1 : 0
                l += 1
            }
        }
    }

    /// Adds `x` to limb `l`; returns the carry out of it.
    @inline(__always)
    private static func add(_ x: UInt64, to cell: UnsafeMutablePointer<UInt64>, at l: Int) -> UInt64 {
        let (s, o) = cell[l].addingReportingOverflow(x)
        cell[l] = s
        return o ? 1 : 0
    }

    /// Subtracts `x` from limb `l`; returns the borrow out of it.
    @inline(__always)
    private static func subtract(_ x: UInt64, from cell: UnsafeMutablePointer<UInt64>, at l: Int) -> UInt64 {
        let (s, o) = cell[l].subtractingReportingOverflow(x)
        cell[l] = s
        return o ? 1 : 0
    }
}
