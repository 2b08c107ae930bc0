// stm-analyze compare: a regression check between two result files of the tool (erf, invariance, boxes,
// coco-eval JSON). Prints every number that moved, and exits with status 2 (CheckTripped) when a
// metric got worse by more than the tolerance; 0 when none did; 1 when the files cannot be compared.

import Analysis
import ArgumentParser
import Foundation

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two result files; exit 2 when a metric got worse by more than the tolerance.",
        discussion: """
            Reads any JSON result the tool writes (erf.json, invariance's <kind>.json, coco-eval's and boxes' JSON), \\
            skips the provenance block, and prints every number that moved. Percentages (consistency, \\
            accuracies) compare in absolute points; other numbers relatively, in percent of the baseline. \\
            Consistency, accuracy and AP/AR are better higher, ce/kl/loss lower; a metric without a better side \\
            (ERF sides and ratios) regresses when it moves either way by more than the tolerance. A metric \\
            missing from the current file regresses. Exit status: 0 no regression, 2 a regression (the check \\
            tripped), 1 the files could not be read or compared.
            """)

    @Option(name: .long, help: ArgumentHelp("The reference result file.", valueName: "file"))
    var baseline: String

    @Option(name: .long, help: ArgumentHelp("The result file to check.", valueName: "file"))
    var current: String

    @Option(name: .long, help: "Allowed worsening: points for percentages, percent of the baseline for other numbers.")
    var tolerance = 0.5

    @Option(name: .long, help: ArgumentHelp("Only numbers with this name part (e.g. mean_consistency, side_ratio, ce); repeatable.", valueName: "name"))
    var metric: [String] = []

    @Option(name: .long, help: "text (aligned columns) or markdown (a table a CI job can post).")
    var format = "text"

    func validate() throws {
        if !(tolerance.isFinite && tolerance >= 0) { throw ValidationError("--tolerance must be a number >= 0 (got \(tolerance))") }
        if format != "text" && format != "markdown" { throw ValidationError("--format must be text or markdown (got \(format))") }
    }

    func run() throws {
        let b = try Self.load(baseline, option: "--baseline"), c = try Self.load(current, option: "--current")
        let comparison = ResultComparison(baseline: b, current: c, tolerance: tolerance, metrics: metric)
        if comparison.compared == 0 {
            throw CLIError("compare: \(baseline) and \(current) have no number in common" + (metric.isEmpty ? "" : " named \(metric.joined(separator: ", "))"))
        }
        if comparison.changes.isEmpty {
            print("no change: all \(comparison.compared) numbers are identical")
        } else {
            print(comparison.table(markdown: format == "markdown"), terminator: "")
        }
        let regressions = comparison.regressions
        if !regressions.isEmpty {
            let names = regressions.prefix(3).map(\.name).joined(separator: ", ") + (regressions.count > 3 ? ", ..." : "")
            throw CheckTripped("compare: \(regressions.count) of \(comparison.compared) metrics got worse by more than the tolerance \(tolerance) (\(names))")
        }
        print("check passed: \(comparison.changes.count) of \(comparison.compared) numbers moved, none worse than the tolerance \(tolerance)")
    }

    static func load(_ path: String, option: String) throws -> JSONValue {
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("\(option) \(path): cannot read the file") }
        do { return try JSONDecoder().decode(JSONValue.self, from: data) } catch {
            throw CLIError("\(option) \(path): not a JSON result file")
        }
    }
}
