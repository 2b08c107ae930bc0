// Analysis: comparing two result files of the tool (erf.json, <kind>.json of invariance, coco-eval's and
// boxes' JSON: any JSON document), for `stm-analyze compare`. Both documents are flattened into named
// numbers ("models[swin].levels[30].consistency"; objects in arrays are named by their "label" or
// "model" key, so reordering models changes nothing), the provenance block and the protocol settings
// are skipped, and every number that moved is reported with a verdict: percentages (consistency,
// accuracies) compare in absolute points, every other number relatively (in percent of the baseline);
// a metric that is better higher (consistency, accuracy, AP/AR) or lower (ce, kl, loss) regresses when
// it moves the wrong way by more than the tolerance; one without a better side (ERF sides and ratios)
// regresses when it moves either way by more than the tolerance; a metric missing from the current
// file regresses too.

import Foundation

/// A JSON value, decoded strictly (a number is never a Bool).
public indirect enum JSONValue: Decodable, Equatable, Sendable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let d = try? c.decode(Double.self) { self = .number(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        self = .object(try c.decode([String: JSONValue].self))
    }
}

/// Which way a metric is better.
public enum MetricDirection: String, Sendable {
    case higher, lower, neither
}

/// One number of a comparison.
public struct MetricChange: Equatable, Sendable {
    /// The flattened name, e.g. "stages.4.0.5.side_ratio".
    public var name: String
    public var baseline: Double?
    public var current: Double?
    /// True for percentages (compared in absolute points).
    public var percent: Bool
    public var direction: MetricDirection
    /// The move in points (percentages) or in percent of the baseline (other numbers); nil when one side is missing.
    public var change: Double?
    /// True when the metric got worse by more than the tolerance (or is missing from the current file).
    public var regressed: Bool

    /// "worse", "better", "moved" or "missing".
    public var verdict: String {
        if current == nil { return "missing" }
        if baseline == nil { return "new" }
        if regressed { return "worse" }
        switch direction {
        case .higher: return (current! > baseline!) ? "better" : "moved"
        case .lower: return (current! < baseline!) ? "better" : "moved"
        case .neither: return "moved"
        }
    }
}

/// The comparison of two result documents.
public struct ResultComparison: Sendable {
    /// Every number that moved, appeared or disappeared, in name order.
    public var changes: [MetricChange]
    /// How many numbers were compared.
    public var compared: Int
    /// The tolerance used.
    public var tolerance: Double

    /// The changes that regressed.
    public var regressions: [MetricChange] { changes.filter(\.regressed) }

    /// Compares `current` against `baseline`. `metrics`, when not empty, keeps only numbers one of whose
    /// name parts is in it (e.g. "mean_consistency", "side_ratio").
    public init(baseline: JSONValue, current: JSONValue, tolerance: Double, metrics: [String] = []) {
        let b = Self.flatten(baseline), c = Self.flatten(current)
        func wanted(_ name: String) -> Bool {
            metrics.isEmpty || Self.parts(of: name).contains { metrics.contains($0) }
        }
        var changes: [MetricChange] = []
        var compared = 0
        for name in Set(b.keys).union(c.keys).sorted() where wanted(name) {
            // The metric's name: the last part that is not an index or a level ("stats[3]" is a stat).
            let leaf = Self.parts(of: name).last(where: { Double($0) == nil }) ?? name
            let percent = Self.isPercent(leaf), direction = Self.direction(of: leaf)
            let bv = b[name], cv = c[name]
            compared += 1
            guard let bv, let cv else {
                changes.append(MetricChange(name: name, baseline: bv, current: cv, percent: percent, direction: direction,
                                            change: nil, regressed: cv == nil))
                continue
            }
            if bv == cv || (bv.isNaN && cv.isNaN) { continue }
            let change = percent ? cv - bv : (bv == 0 ? (cv > 0 ? Double.infinity : -Double.infinity) : 100 * (cv - bv) / abs(bv))
            let regressed: Bool
            switch direction {
            case .higher: regressed = change < -tolerance
            case .lower: regressed = change > tolerance
            case .neither: regressed = abs(change) > tolerance
            }
            changes.append(MetricChange(name: name, baseline: bv, current: cv, percent: percent, direction: direction,
                                        change: change, regressed: regressed || cv.isNaN))
        }
        self.changes = changes
        self.compared = compared
        self.tolerance = tolerance
    }

    /// Named numbers of a document; the provenance block and protocol settings are left out.
    public static func flatten(_ value: JSONValue) -> [String: Double] {
        var out: [String: Double] = [:]
        func walk(_ v: JSONValue, _ name: String) {
            switch v {
            case .number(let d): out[name] = d
            case .object(let o):
                for (k, child) in o where !skipped.contains(k) { walk(child, name.isEmpty ? k : "\(name).\(k)") }
            case .array(let a):
                for (i, child) in a.enumerated() {
                    var key = "\(i)"
                    if case .object(let o) = child {
                        if case .string(let s)? = o["label"] { key = s } else if case .string(let s)? = o["model"] { key = s }
                    }
                    walk(child, "\(name)[\(key)]")
                }
            default: break
            }
        }
        walk(value, "")
        return out
    }

    /// Keys that are not results: where they came from, how they were made, a level's own value.
    static let skipped: Set<String> = [provenanceKey, "protocol", "value", "size", "level_order"]

    /// The parts of a flattened name, brackets opened ("models[a].levels.30.ce" -> models, a, levels, 30, ce).
    static func parts(of name: String) -> [String] {
        name.split(whereSeparator: { $0 == "." || $0 == "[" || $0 == "]" }).map(String.init)
    }

    /// Percentages: consistency and accuracies.
    static func isPercent(_ leaf: String) -> Bool {
        leaf.contains("consistency") || leaf.hasPrefix("acc")
    }

    /// Which way a metric is better, from its name.
    static func direction(of leaf: String) -> MetricDirection {
        let l = leaf.lowercased()
        if l.contains("consistency") || l.hasPrefix("acc") || l.hasPrefix("ap") || l.hasPrefix("ar") || l == "stats" { return .higher }
        if ["ce", "kl", "loss"].contains(l) { return .lower }
        return .neither
    }

    /// The table: text (aligned columns) or markdown.
    public func table(markdown: Bool) -> String {
        let header = ["metric", "baseline", "current", "change", "verdict"]
        func fmt(_ v: Double?) -> String { v.map { String(format: "%.6g", $0) } ?? "-" }
        let rows = changes.map { c -> [String] in
            let change = c.change.map { c.percent ? String(format: "%+.3f pt", $0) : String(format: "%+.3f %%", $0) } ?? "-"
            return [c.name, fmt(c.baseline), fmt(c.current), change, c.verdict]
        }
        if markdown {
            var lines = ["| " + header.joined(separator: " | ") + " |", "|" + header.map { _ in " --- |" }.joined()]
            for r in rows { lines.append("| " + r.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |") }
            return lines.joined(separator: "\n") + "\n"
        }
        let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max()! }
        func line(_ r: [String]) -> String {
            r.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
    }
}
