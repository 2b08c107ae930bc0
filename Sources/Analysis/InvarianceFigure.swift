// Analysis: the invariance plot. Consistency against the level, one coloured line with markers per
// model, and, when the run had labels, top-1 accuracy in a second panel (which then holds the one
// legend). Percentage axes end just above 100 and start just below a round value under the lowest
// point, lowered where possible so that a band under the curves is free for the legend; ticks sit on
// the measured levels (every k-th one when there are many). Drawing itself is Rendering's; writing the
// PNG is the CLI's.

import Rendering

/// Pixel size of the invariance figure: one panel, or two side by side when the run had labels.
public func invarianceFigureSize(panels: Int) -> (width: Int, height: Int) {
    panels > 1 ? (2400, 1000) : (1400, 1000)
}

/// The line plot of `result`.
public func invarianceFigure(_ result: InvarianceResult) -> LinePlotFigure {
    let s = result.settings
    let x = s.levels.map(\.value)
    let consistency = result.models.map { m in Series(label: m.label, x: x, y: m.levels.map(\.consistency)) }
    var what: String
    switch s.kind {
    case .translate: what = "untranslated"
    case .rotate: what = "unrotated"
    case .scale: what = "standard-crop"
    }
    var panels = [PlotPanel(title: "Consistency with the \(what) prediction", xLabel: s.kind.levelTitle,
                            yLabel: "consistency (%)", series: consistency)]
    if result.labelled {
        let accuracy = result.models.map { m in Series(label: m.label, x: x, y: m.levels.map { $0.acc1 ?? .nan }) }
        panels.append(PlotPanel(title: "Top-1 accuracy", xLabel: s.kind.levelTitle, yLabel: "top-1 accuracy (%)",
                                series: accuracy))
    }
    var figure = LinePlotFigure(title: "", panels: [])
    let size = invarianceFigureSize(panels: panels.count)
    figure.width = size.width
    figure.height = size.height
    let ticks = levelTicks(s)
    for i in panels.indices {
        let legend = i == panels.count - 1
        panels[i].showLegend = legend
        let band = legend ? legendShare(entries: result.models.count, style: figure.style, height: figure.height) : 0
        (panels[i].yRange, panels[i].yTicks) = percentAxis(panels[i].series, freeBelow: band)
        panels[i].xTicks = ticks
        if let lo = x.min(), let hi = x.max(), hi > lo {
            let pad = (hi - lo) * 0.04
            panels[i].xRange = (lo - pad)...(hi + pad)
        }
    }
    let n = result.images.count
    var title: String
    switch s.kind {
    case .translate: title = "Translation invariance"
    case .rotate: title = "Rotation invariance (\(s.preCrop ? "before" : "after") the centre crop)"
    case .scale: title = "Scale invariance"
    }
    title += ", \(n) image\(n == 1 ? "" : "s"), \(s.size) px"
    figure.title = title
    figure.panels = panels
    return figure
}

/// The share of a panel's axes height that a legend of `entries` rows takes, from the style's legend
/// font and the figure height (the axes take roughly 72 % of it), with a little room to spare.
func legendShare(entries: Int, style: FigureStyle, height: Int) -> Double {
    let points = Double(entries) * 1.35 * style.legendFontSize + 2 * 4 + 5 + style.markerSize
    let axesPoints = 0.72 * Double(height) * 72 / Double(max(style.dpi, 1))
    return min(0.6, 1.1 * points / axesPoints)
}

/// A percentage axis ending just above 100 (markers at 100 % stay whole). It starts just below a round
/// value (a multiple of ten, or of twenty when the axis spans more than fifty points; at least ten
/// below 100) that leaves the share `freeBelow` of the axis free under the lowest point where that
/// is possible without going under 0. Ticks every ten or twenty points up to 100.
func percentAxis(_ series: [Series], freeBelow: Double = 0) -> (range: ClosedRange<Double>, ticks: [Double]) {
    let values = series.flatMap(\.y).filter(\.isFinite)
    let low = max(0, min(values.min() ?? 0, 90))
    // (low - b) / (101 - b) >= freeBelow  <=>  b <= (low - 101 f) / (1 - f).
    let f = min(max(freeBelow, 0), 0.9)
    let target = max(0, (low - 101 * f) / (1 - f))
    var step = 10.0
    var bottom = (target / step).rounded(.down) * step
    if 100 - bottom > 50 {
        step = 20
        bottom = (target / step).rounded(.down) * step
    }
    return (bottom - 1...101, Array(stride(from: bottom, through: 100, by: step)))
}

/// Tick positions on the measured levels: all of them when there are at most ten, else every k-th
/// one; nil (nice ticks) for crop ratios, whose levels print as long decimals.
func levelTicks(_ s: InvarianceSettings) -> [Double]? {
    let values = s.levels.map(\.value).sorted()
    if values.count <= 10 { return values }
    if s.kind == .scale { return nil }
    let k = (values.count + 9) / 10
    return values.enumerated().filter { $0.offset % k == 0 }.map(\.element)
}
