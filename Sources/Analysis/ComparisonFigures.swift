// Analysis: the figures that set several runs side by side, for papers. Result folders are read back
// (erf.json and erf_stageS.safetensors; invariance's <kind>.json and <kind>_images.csv), so figures
// are made from finished, possibly merged, runs:
//   - the ERF grid: rows models, columns stages, every map normalised as erf's own figures are (one
//     0-1 colour scale), the ERF@t square outlined (optional), `zoom` cropping small early-stage maps
//     around the centre;
//   - the ERF@t bar chart per model and stage;
//   - consistency curves of several models with a fixed y-range per metric, the legend right of the
//     axes, and bootstrap 95 % bands from the per-image rows (resampling images with replacement from a
//     seeded MT19937, the same draws for every level and model, percentiles 2.5 and 97.5).

import Checkpoint
import Foundation
import Rendering

/// A finished ERF run read back from its folder.
public struct ERFRun: Sendable {
    /// The name in figures (the stage maps' recorded model title).
    public var title: String
    public var report: ERFReport
    /// Stage -> mean map [size * size].
    public var maps: [Int: [Float]]

    /// Reads erf.json and the stage maps of `folder`.
    public static func load(folder: String) throws -> ERFRun {
        let json = folder + "/erf.json"
        guard let data = FileManager.default.contents(atPath: json) else {
            throw InvarianceError(folder, "holds no erf.json (give folders written by stm-analyze erf or merge)")
        }
        let report: ERFReport
        do { report = try JSONDecoder().decode(ERFReport.self, from: data) } catch {
            throw InvarianceError(json, "is not an erf.json of this tool (\(error))")
        }
        var maps: [Int: [Float]] = [:]
        var title = report.arch
        for stage in report.stages.keys.compactMap(Int.init).sorted() {
            let path = "\(folder)/erf_stage\(stage).safetensors"
            let (tensors, metadata) = try SafeTensors.read(path: path)
            guard let mean = tensors.first(where: { $0.0 == "mean" })?.1, mean.count == report.size * report.size else {
                throw InvarianceError(path, "holds no \(report.size)x\(report.size) 'mean' map")
            }
            maps[stage] = mean.values
            if let t = metadata["model"] { title = t }
        }
        return ERFRun(title: title, report: report, maps: maps)
    }

    /// The map of `stage` scaled and normalised as the run's own figures are.
    public func normalised(stage: Int) -> [Float]? {
        maps[stage].map { normalisedMap($0, scaling: ERFScaling(report.scaling) ?? .log) }
    }
}

/// The grid of ERF maps: one row per run, one column per stage in `stages`.
/// - Parameters:
///   - square: outline the centred ERF@square square (a threshold the runs measured), or nil.
///   - zoom: show the centred 1/zoom of each map (1 shows all of it).
public func erfGridFigure(_ runs: [ERFRun], stages: [Int], square: Double?, zoom: Double, colormap: Colormap,
                          valueRange: ClosedRange<Float>?, labels: [String]? = nil) throws -> MapGridFigure {
    guard zoom >= 1, zoom.isFinite else { throw InvarianceError("--zoom", "must be at least 1 (got \(zoom))") }
    var cells: [[ScalarMap?]] = [], squares: [[Rect?]] = [], captions: [[String]] = []
    for run in runs {
        let side = run.report.size
        let shown = max(3, min(side, Int((Double(side) / zoom).rounded())))
        let offset = (side - shown) / 2
        var row: [ScalarMap?] = [], rowSquares: [Rect?] = [], rowCaptions: [String] = []
        for stage in stages {
            guard let full = run.normalised(stage: stage) else {
                row.append(nil); rowSquares.append(nil); rowCaptions.append("stage \(stage) not measured")
                continue
            }
            var crop = [Float](repeating: 0, count: shown * shown)
            for y in 0..<shown { for x in 0..<shown { crop[y * shown + x] = full[(y + offset) * side + x + offset] } }
            row.append(try ScalarMap(height: shown, width: shown, values: crop))
            if let square {
                guard let r = run.report.stages["\(stage)"]?[ERFReport.shareKey(square)] else {
                    throw InvarianceError("--square \(square)", "\(run.title) has no ERF@\(square) (its thresholds: \(run.report.stages["\(stage)"]?.keys.sorted().joined(separator: ", ") ?? "none"))")
                }
                let start = Double(side / 2 - (r.side - 1) / 2 - offset)
                rowSquares.append(Rect(x: start, y: start, width: Double(r.side), height: Double(r.side)))
                rowCaptions.append("ERF@\(ERFReport.shareKey(square)) = \(r.reached ? "" : ">")\(String(format: "%.3f", r.side_ratio))")
            } else {
                rowSquares.append(nil)
                rowCaptions.append("")
            }
        }
        cells.append(row)
        squares.append(rowSquares)
        captions.append(rowCaptions)
    }
    var figure = MapGridFigure(cells: cells, rowLabels: labels ?? runs.map(\.title), columnLabels: stages.map { "stage \($0)" })
    figure.squares = squares
    figure.captions = square == nil ? [] : captions
    figure.colormap = colormap
    figure.valueRange = valueRange ?? 0...1
    figure.colorbarLabel = erfScalingLabel(runs.first.flatMap { ERFScaling($0.report.scaling) } ?? .log)
    let n = Set(runs.map(\.report.images.count))
    figure.title = "Effective receptive fields" + (n.count == 1 ? " (\(n.first!) images each)" : "") + (zoom > 1 ? String(format: ", centre %.3g%%", 100 / zoom) : "")
    return figure
}

/// ERF@t side ratios per stage (groups) and run (bars).
public func erfBarFigure(_ runs: [ERFRun], threshold: Double, stages: [Int]? = nil, labels: [String]? = nil) throws -> BarChartFigure {
    let all = stages ?? Array(Set(runs.flatMap { $0.maps.keys })).sorted()
    let key = ERFReport.shareKey(threshold)
    var series: [(label: String, values: [Double])] = []
    for (i, run) in runs.enumerated() {
        let values = all.map { run.report.stages["\($0)"]?[key]?.side_ratio ?? .nan }
        if values.allSatisfy({ $0.isNaN }) {
            throw InvarianceError("--threshold \(threshold)", "\(run.title) has no ERF@\(key) (erf --thresholds sets which are measured)")
        }
        series.append((labels?[i] ?? run.title, values))
    }
    var figure = BarChartFigure(groups: all.map { "stage \($0)" }, series: series)
    figure.yLabel = "ERF@\(key) (side / input side)"
    figure.yRange = 0...1
    figure.title = "ERF@\(key) per stage"
    return figure
}

/// A finished invariance run read back: its JSON document and per-image rows.
public struct InvarianceRun: Sendable {
    public var kind: InvarianceKind
    /// Level keys in order and their values.
    public var levels: [InvarianceLevel]
    /// Per model: label, the per-level value of each metric as written.
    public var models: [(label: String, metrics: [String: [Double]])]
    /// Per model label, per level key: the per-image (agreement, loss, kl, top1) rows in image order.
    public var rows: [String: [String: [(agreement: Double, loss: Double, kl: Double, top1: Double?)]]]
    public var imageCount: Int

    /// Reads `<kind>.json` (a file, or the only result JSON of a folder) and `<kind>_images.csv` beside it.
    public static func load(_ path: String) throws -> InvarianceRun {
        var json = path
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            let found = (try? FileManager.default.contentsOfDirectory(atPath: path))?.filter {
                InvarianceKind.allCases.map { "\($0.rawValue).json" }.contains($0)
            } ?? []
            guard found.count == 1 else { throw InvarianceError(path, "holds \(found.count) invariance results (translate.json, rotate.json, scale.json); name the file") }
            json = path + "/" + found[0]
        }
        guard let data = FileManager.default.contents(atPath: json),
              let doc = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let kindName = doc["kind"] as? String, let kind = InvarianceKind(rawValue: kindName),
              let order = doc["level_order"] as? [String], let models = doc["models"] as? [[String: Any]] else {
            throw InvarianceError(json, "is not an invariance result of this tool")
        }
        var levels: [InvarianceLevel] = []
        var out: [(String, [String: [Double]])] = []
        for m in models {
            let label = m["label"] as? String ?? "?"
            let byLevel = m["levels"] as? [String: [String: Any]] ?? [:]
            var metrics: [String: [Double]] = [:]
            for name in ["consistency", "acc1", "acc5", "ce", "kl"] {
                metrics[name] = order.map { (byLevel[$0]?[name] as? Double) ?? .nan }
            }
            out.append((label, metrics))
            if levels.isEmpty { levels = order.map { InvarianceLevel(key: $0, value: (byLevel[$0]?["value"] as? Double) ?? .nan) } }
        }
        var rows: [String: [String: [(Double, Double, Double, Double?)]]] = [:]
        let csvPath = json.replacingOccurrences(of: ".json", with: "_images.csv")
        if let text = try? String(contentsOfFile: csvPath, encoding: .utf8) {
            let table = parseCSV(text)
            if let header = table.first {
                let col = Dictionary(header.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
                if let l = col["label"], let lv = col["level"], let a = col["agreement"], let loss = col["loss"], let kl = col["kl"] {
                    for r in table.dropFirst() where r.count == header.count {
                        let top1 = col["top1"].flatMap { Double(r[$0]) }
                        rows[r[l], default: [:]][r[lv], default: []].append((Double(r[a]) ?? .nan, Double(r[loss]) ?? .nan, Double(r[kl]) ?? .nan, top1))
                    }
                }
            }
        }
        return InvarianceRun(kind: kind, levels: levels, models: out, rows: rows, imageCount: (doc["images"] as? [Any])?.count ?? 0)
    }
}

/// Percentile bootstrap 95 % interval of the mean of each column of `columns` (levels), resampling rows
/// (images) with replacement `resamples` times from MT19937 seeded with `seed`; the same draws for every
/// column. Returns (lower, upper) per column.
public func bootstrapBands(_ columns: [[Double]], resamples: Int, seed: UInt32 = 0) -> (lower: [Double], upper: [Double]) {
    guard let n = columns.first?.count, n > 0, resamples > 0 else {
        return (columns.map { _ in .nan }, columns.map { _ in .nan })
    }
    var rng = MersenneTwister(seed: seed)
    var means = columns.map { _ in [Double](repeating: 0, count: resamples) }
    var pick = [Int](repeating: 0, count: n)
    for b in 0..<resamples {
        for i in 0..<n { pick[i] = Int(rng.randint(UInt32(n))) }
        for (c, column) in columns.enumerated() {
            var sum = 0.0
            for i in pick { sum += column[i] }
            means[c][b] = sum / Double(n)
        }
    }
    var lower: [Double] = [], upper: [Double] = []
    for var m in means {
        m.sort()
        lower.append(m[Int((0.025 * Double(resamples - 1)).rounded(.down))])
        upper.append(m[Int((0.975 * Double(resamples - 1)).rounded(.up))])
    }
    return (lower, upper)
}

/// Curves of `metric` (consistency, acc1, ce or kl) against the level for every model of `runs` (all of
/// one kind), with bootstrap 95 % bands when `resamples` > 0 and per-image rows exist. The y-range is
/// fixed per metric (0-100 for percentages) unless `valueRange` is given.
public func consistencyCurvesFigure(_ runs: [InvarianceRun], metric: String, resamples: Int,
                                    valueRange: ClosedRange<Double>?) throws -> LinePlotFigure {
    guard let kind = runs.first?.kind else { throw InvarianceError("figure curves", "no results given") }
    for r in runs where r.kind != kind {
        throw InvarianceError("figure curves", "mixes \(kind.rawValue) and \(r.kind.rawValue) results; one kind per figure")
    }
    let percent = ["consistency", "acc1", "acc5"].contains(metric)
    guard percent || metric == "ce" || metric == "kl" else {
        throw InvarianceError("--metric", "must be consistency, acc1, acc5, ce or kl (got \(metric))")
    }
    var series: [Series] = []
    for run in runs {
        let x = run.levels.map(\.value)
        for m in run.models {
            var s = Series(label: m.label, x: x, y: m.metrics[metric] ?? [])
            if resamples > 0, let rows = run.rows[m.label], metric != "acc5" {
                let columns = run.levels.map { level -> [Double] in
                    (rows[level.key] ?? []).map { r in
                        switch metric {
                        case "consistency": return 100 * r.agreement
                        case "acc1": return 100 * (r.top1 ?? .nan)
                        case "ce": return r.loss
                        default: return r.kl
                        }
                    }
                }
                if Set(columns.map(\.count)).count == 1, columns.first?.isEmpty == false, columns.allSatisfy({ $0.allSatisfy(\.isFinite) }) {
                    let band = bootstrapBands(columns, resamples: resamples)
                    s.band = (band.lower, band.upper)
                }
            }
            series.append(s)
        }
    }
    let names = ["consistency": "consistency (%)", "acc1": "top-1 accuracy (%)", "acc5": "top-5 accuracy (%)",
                 "ce": "cross-entropy to the standard prediction (nats)", "kl": "KL to the standard prediction (nats)"]
    var panel = PlotPanel(xLabel: kind.levelTitle, yLabel: names[metric], series: series)
    if let valueRange {
        panel.yRange = valueRange
    } else if percent {
        panel.yRange = 0...100
        panel.yTicks = [0, 20, 40, 60, 80, 100]
    } else {
        let top = series.flatMap { $0.y + ($0.band?.upper ?? []) }.filter(\.isFinite).max() ?? 1
        panel.yRange = 0...max(top * 1.05, 1e-6)
    }
    let x = runs[0].levels.map(\.value)
    if let lo = x.min(), let hi = x.max(), hi > lo {
        panel.xRange = (lo - (hi - lo) * 0.03)...(hi + (hi - lo) * 0.03)
    }
    panel.legendOutside = true
    var figure = LinePlotFigure(title: nil, panels: [panel])
    figure.width = 1800
    figure.height = 1000
    let n = Set(runs.map(\.imageCount))
    let what: String
    switch kind {
    case .translate: what = "Translation"
    case .rotate: what = "Rotation"
    case .scale: what = "Scale"
    }
    figure.title = "\(what) \(metric == "consistency" ? "consistency" : metric)" + (n.count == 1 ? ", \(n.first!) images" : "")
        + (resamples > 0 ? ", bootstrap 95 % bands" : "")
    return figure
}

/// Rows of an RFC 4180 CSV text (quoted fields with doubled quotes).
public func parseCSV(_ text: String) -> [[String]] {
    var rows: [[String]] = [], row: [String] = [], field = ""
    var quoted = false, i = text.startIndex
    while i < text.endIndex {
        let c = text[i]
        if quoted {
            if c == "\"" {
                let next = text.index(after: i)
                if next < text.endIndex && text[next] == "\"" { field.append("\""); i = next } else { quoted = false }
            } else { field.append(c) }
        } else if c == "\"" {
            quoted = true
        } else if c == "," {
            row.append(field); field = ""
        } else if c == "\n" || c == "\r\n" {
            row.append(field); rows.append(row); row = []; field = ""
        } else if c != "\r" {
            field.append(c)
        }
        i = text.index(after: i)
    }
    if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
    return rows
}
