// Analysis: the invariance plot. Consistency against the level, one coloured line with markers per
// model, and, when the run had labels, top-1 accuracy in a second panel; percentage axes end just above
// 100 and start just below the ten under the lowest value, ticks sit on the measured levels (every k-th one when
// there are many). Drawing itself is Rendering's; writing the PNG is the CLI's.

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
                            yLabel: "consistency (%)", series: consistency, yRange: percentRange(consistency))]
    if result.labelled {
        let accuracy = result.models.map { m in Series(label: m.label, x: x, y: m.levels.map { $0.acc1 ?? .nan }) }
        panels.append(PlotPanel(title: "Top-1 accuracy", xLabel: s.kind.levelTitle, yLabel: "top-1 accuracy (%)",
                                series: accuracy, yRange: percentRange(accuracy)))
    }
    let ticks = levelTicks(s)
    for i in panels.indices {
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
    case .rotate: title = "Rotation invariance (\(s.preCrop ? "rotated before" : "rotated after") the centre crop)"
    case .scale: title = "Scale invariance"
    }
    title += ", \(n) image\(n == 1 ? "" : "s"), \(s.size) px"
    var figure = LinePlotFigure(title: title, panels: panels)
    let size = invarianceFigureSize(panels: panels.count)
    figure.width = size.width
    figure.height = size.height
    return figure
}

/// A percentage axis: from just below the multiple of ten under the lowest value (at least ten below
/// 100) to just above 100, so that markers on either end stay whole.
func percentRange(_ series: [Series]) -> ClosedRange<Double> {
    let values = series.flatMap(\.y).filter(\.isFinite)
    let low = max(0, min(values.min() ?? 0, 90))
    return (low / 10).rounded(.down) * 10 - 1...101
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
