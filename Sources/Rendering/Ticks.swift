// Rendering: axis ticks. Tick spacing uses "nice numbers" (after Heckbert): a step of 1, 2 or 5 times a
// power of ten, the densest such step that puts at most the requested number of ticks in the range, as
// matplotlib's MaxNLocator does with steps 1, 2, 5 and 10; labels print every tick
// with the same number of decimals, enough to tell neighbours apart, with a true minus sign as matplotlib
// does. Left out: logarithmic, date and scientific-notation axes (very large or tiny values print in full).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Tick positions with their labels.
public struct AxisTicks: Sendable, Equatable {
    /// Tick values, ascending.
    public var values: [Double]
    /// One label per value.
    public var labels: [String]

    /// Nice ticks inside [`lower`, `upper`]: the densest 1/2/5 x 10^k step that gives at most `target`.
    public static func nice(lower: Double, upper: Double, target: Int = 6) -> AxisTicks {
        guard lower.isFinite, upper.isFinite, upper > lower else {
            let v = lower.isFinite ? lower : 0
            return AxisTicks(values: [v], labels: [format(v, decimals: decimalsFor(step: max(abs(v), 1)))])
        }
        let step = niceStep(lower: lower, upper: upper, target: max(2, target))
        let first = (lower / step - 1e-9).rounded(.up)
        let last = (upper / step + 1e-9).rounded(.down)
        var values: [Double] = []
        var k = first
        while k <= last {
            values.append(k * step)
            k += 1
        }
        let decimals = decimalsFor(step: step)
        return AxisTicks(values: values, labels: values.map { format($0, decimals: decimals) })
    }

    /// Ticks at the given values, labelled with a common number of decimals.
    public static func at(_ values: [Double]) -> AxisTicks {
        let sorted = values.filter(\.isFinite).sorted()
        var decimals = 0
        while decimals < 6 && !sorted.allSatisfy({ isRound($0, decimals: decimals) }) { decimals += 1 }
        return AxisTicks(values: sorted, labels: sorted.map { format($0, decimals: decimals) })
    }

    /// The smallest step of 1, 2 or 5 times a power of ten with at most `target` multiples in the range.
    /// Starting a decade below the rough step (range / (target - 1)) and never passing a decade above it
    /// keeps the search short; a step of ten times the rough step always qualifies.
    static func niceStep(lower: Double, upper: Double, target: Int) -> Double {
        let rough = (upper - lower) / Double(target - 1)
        let decade = pow(10, log10(rough).rounded(.down) - 1)
        for power in 0..<3 {
            for multiple in [1.0, 2, 5] {
                let step = multiple * decade * pow(10, Double(power))
                let count = (upper / step + 1e-9).rounded(.down) - (lower / step - 1e-9).rounded(.up) + 1
                if count <= Double(target) { return step }
            }
        }
        return decade * 1000
    }

    private static func decimalsFor(step: Double) -> Int {
        max(0, min(9, -Int((log10(step) + 1e-9).rounded(.down))))
    }

    private static func isRound(_ v: Double, decimals: Int) -> Bool {
        let scaled = v * pow(10, Double(decimals))
        return abs(scaled - scaled.rounded()) < 1e-6 * max(1, abs(scaled))
    }

    /// `v` with exactly `decimals` digits after the point and a U+2212 minus sign.
    static func format(_ v: Double, decimals: Int) -> String {
        let scale = pow(10, Double(decimals))
        let scaled = (abs(v) * scale).rounded()
        guard scaled < 9e15 else { return v < 0 ? "\u{2212}\(-v)" : "\(v)" }
        let n = UInt64(scaled)
        var digits = String(n)
        if decimals > 0 {
            if digits.count <= decimals {
                digits = String(repeating: "0", count: decimals - digits.count + 1) + digits
            }
            digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -decimals))
        }
        return (v < 0 && n != 0) ? "\u{2212}" + digits : digits
    }
}
