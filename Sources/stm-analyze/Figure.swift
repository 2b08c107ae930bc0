// stm-analyze figure: figures for papers from finished runs (single or merged), each written as PNG and
// SVG: the ERF grid (rows models, columns stages), the ERF@t bar chart, and consistency curves of
// several models with bootstrap 95 % bands.

import Analysis
import Checkpoint
import ArgumentParser
import Foundation
import Imaging
import Rendering

struct Figure: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Figures that set finished runs side by side, as PNG and SVG.",
        discussion: """
            erf-grid  RESULT_DIR...: rows models, columns stages (--stages), one 0-1 colour scale, the ERF@t square \\
            outlined with --square T, --zoom Z shows the centred 1/Z of each map.
            erf-bars  RESULT_DIR...: ERF@t (--threshold) per stage and model.
            curves    RESULT.json|DIR...: --metric (consistency, acc1, acc5, ce, kl) against the level for every \\
            model, fixed y-range per metric, legend beside the axes, bootstrap 95 % bands from the per-image rows \\
            (--resamples, 0 for none).
            Writes OUT.png and OUT.svg (--out OUT, without extension).
            """)

    enum Kind: String, ExpressibleByArgument, CaseIterable {
        case erfGrid = "erf-grid", erfBars = "erf-bars", curves
    }

    @Argument(help: ArgumentHelp("erf-grid, erf-bars or curves.", valueName: "kind"))
    var kind: Kind

    @Argument(help: ArgumentHelp("Result folders (erf) or invariance result files/folders.", valueName: "result"))
    var results: [String]

    @Option(name: .long, help: ArgumentHelp("Output path without extension; .png and .svg are written.", valueName: "path"))
    var out: String

    @Option(name: .long, help: ArgumentHelp("Row or legend names, comma-separated, one per result (default: the model names).", valueName: "names"))
    var labels: String?

    @Option(name: .long, help: ArgumentHelp("erf-grid, erf-bars: stages, comma-separated (default: all measured).", valueName: "3,4"))
    var stages: String?

    @Option(name: .long, help: ArgumentHelp("erf-grid: outline the centred ERF@T square.", valueName: "T"))
    var square: Double?

    @Option(name: .long, help: "erf-grid: show the centred 1/zoom of each map.")
    var zoom = 1.0

    @Option(name: .long, help: "erf-grid: colour map.")
    var colormap = "viridis"

    @Option(name: .long, help: "erf-bars: the ERF@t threshold.")
    var threshold = 0.5

    @Option(name: .long, help: "curves: consistency, acc1, acc5, ce or kl.")
    var metric = "consistency"

    @Option(name: .long, help: "curves: bootstrap resamples for the 95 % bands (0: no bands).")
    var resamples = 1000

    @Option(name: .long, help: "Resolution the sizes of text and lines are laid out for.")
    var dpi = 200

    @Option(name: .long, help: "Title instead of the default one (an empty string for none).")
    var title: String?

    @Option(name: .long, help: ArgumentHelp("Values at the colour map's ends (erf-grid) or the y-axis range (erf-bars, curves).", valueName: "lo,hi"))
    var valueRange: String?

    var parsedRange: ClosedRange<Double>? {
        guard let valueRange else { return nil }
        let p = valueRange.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        return p.count == 2 && p[0] < p[1] && p.allSatisfy(\.isFinite) ? p[0]...p[1] : nil
    }

    func validate() throws {
        if results.isEmpty { throw ValidationError("figure needs at least one result") }
        if valueRange != nil && parsedRange == nil { throw ValidationError("--value-range takes lo,hi with lo < hi (got \(valueRange!))") }
        if !(10...2400).contains(dpi) { throw ValidationError("--dpi must be between 10 and 2400 (got \(dpi))") }
        if resamples < 0 || resamples > 100_000 { throw ValidationError("--resamples must be between 0 and 100000 (got \(resamples))") }
        if let labels, labels.split(separator: ",", omittingEmptySubsequences: false).count != results.count && kind != .curves {
            throw ValidationError("--labels names \(labels.split(separator: ",").count) results but \(results.count) are given")
        }
        if let stages, stages.split(separator: ",").contains(where: { Int($0) == nil }) {
            throw ValidationError("--stages takes stage numbers, comma-separated (got \(stages))")
        }
        do { _ = try Colormap.named(colormap) } catch { throw ValidationError("--colormap: \(error)") }
    }

    func run() throws {
        var style = FigureStyle()
        style.dpi = dpi
        let names = labels.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let png: Image8, svg: Data
        switch kind {
        case .erfGrid, .erfBars:
            let runs = try results.map { try ERFRun.load(folder: $0) }
            let wanted = stages.map { $0.split(separator: ",").compactMap { Int($0) } }
            if kind == .erfGrid {
                let all = wanted ?? Array(Set(runs.flatMap { $0.maps.keys })).sorted()
                var fig = try erfGridFigure(runs, stages: all, square: square, zoom: zoom, colormap: try Colormap.named(colormap),
                                            valueRange: parsedRange.map { Float($0.lowerBound)...Float($0.upperBound) }, labels: names)
                fig.style = style
                if let title { fig.title = title.isEmpty ? nil : title }
                (png, svg) = (try fig.render(), try fig.svg())
            } else {
                var fig = try erfBarFigure(runs, threshold: threshold, stages: wanted, labels: names)
                fig.style = style
                if let r = parsedRange { fig.yRange = r }
                if let title { fig.title = title.isEmpty ? nil : title }
                (png, svg) = (try fig.render(), try fig.svg())
            }
        case .curves:
            let runs = try results.map { try InvarianceRun.load($0) }
            var fig = try consistencyCurvesFigure(runs, metric: metric, resamples: resamples, valueRange: parsedRange)
            fig.style = style
            if let names {
                var k = 0
                for p in fig.panels.indices { for s in fig.panels[p].series.indices where k < names.count { fig.panels[p].series[s].label = names[k]; k += 1 } }
            }
            if let title { fig.title = title.isEmpty ? nil : title }
            (png, svg) = (try fig.render(), try fig.svg())
        }
        let dir = URL(fileURLWithPath: out).deletingLastPathComponent().path
        try prepareOutputFolder(dir)
        try writeAtomically(Data(try PNGCodec.encode(png, dpi: dpi)), to: out + ".png")
        try writeAtomically(svg, to: out + ".svg")
        print("wrote \(out).png (\(png.width)x\(png.height)) and \(out).svg")
    }
}
