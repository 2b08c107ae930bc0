// Rendering: line plots for results such as consistency or accuracy against a perturbation level. A figure
// holds one or more panels side by side under an optional bold title; each panel has several series (a
// coloured line with markers, tab10 colours and cycling marker shapes by default), a legend box placed in
// the corner that hides the fewest points, axis titles, nice ticks with labels, a light dashed grid and a
// panel title. Axis ranges default to the data range plus 5% margins (as matplotlib's autoscaling) and can be
// fixed (e.g. 0-100 %). Left out: logarithmic axes, error bars, shared axes between panels, legends outside
// the axes and multi-line labels.
// Layout key: panel data are parallel x/y arrays of Double; NaN y values break a line.

import Foundation
import Imaging

/// One line of a plot: parallel x and y values, drawn in order, with markers at the points.
public struct Series: Sendable {
    /// Legend text (e.g. the model name); empty leaves the series out of the legend.
    public var label: String
    /// Positions along the x axis.
    public var x: [Double]
    /// Values; NaN leaves a gap.
    public var y: [Double]
    /// Line and marker colour; nil takes the next tab10 colour.
    public var color: Color?
    /// Marker shape; nil cycles circle, square, triangle, diamond by series index.
    public var marker: Marker?
    /// A band around the line (e.g. a bootstrap 95 % interval): lower and upper values at each x, drawn
    /// translucent under every line.
    public var band: (lower: [Double], upper: [Double])?

    /// A series of points (`x[i]`, `y[i]`).
    public init(label: String, x: [Double], y: [Double], color: Color? = nil, marker: Marker? = nil) {
        self.label = label
        self.x = x
        self.y = y
        self.color = color
        self.marker = marker
    }
}

/// One set of axes with its series, titles, ranges and legend.
public struct PlotPanel: Sendable {
    /// Title above the axes.
    public var title: String?
    /// Title under the x axis, with units (e.g. "rotation (degrees)").
    public var xLabel: String?
    /// Title left of the y axis, with units (e.g. "consistency (%)").
    public var yLabel: String?
    /// The lines.
    public var series: [Series]
    /// Fixed x range; nil fits the data with 5% margins.
    public var xRange: ClosedRange<Double>?
    /// Fixed y range (e.g. `0...100`); nil fits the data with 5% margins.
    public var yRange: ClosedRange<Double>?
    /// Tick positions on the x axis (e.g. the levels measured); nil picks nice values.
    public var xTicks: [Double]?
    /// Tick positions on the y axis; nil picks nice values.
    public var yTicks: [Double]?
    /// Whether to draw a legend box.
    public var showLegend: Bool = true
    /// Put the legend right of the axes (it then never hides a curve); otherwise in the corner of the
    /// axes that hides the fewest points.
    public var legendOutside: Bool = false

    /// A panel of `series`; other settings keep their defaults until changed.
    public init(title: String? = nil, xLabel: String? = nil, yLabel: String? = nil, series: [Series],
                xRange: ClosedRange<Double>? = nil, yRange: ClosedRange<Double>? = nil) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.xRange = xRange
        self.yRange = yRange
    }
}

/// A figure of line-plot panels side by side.
public struct LinePlotFigure: Sendable {
    /// Bold title above the panels.
    public var title: String?
    /// The panels, left to right.
    public var panels: [PlotPanel]
    /// Output width in pixels.
    public var width: Int = 1600
    /// Output height in pixels.
    public var height: Int = 900
    /// Fonts, sizes, colours and dpi.
    public var style = FigureStyle()

    /// A figure of `panels` under `title`, 1600 x 900 pixels at 200 dpi unless changed.
    public init(title: String? = nil, panels: [PlotPanel]) {
        self.title = title
        self.panels = panels
    }

    /// Draws the figure as 8-bit RGB.
    public func render() throws -> Image8 {
        var canvas = Canvas(width: width, height: height, background: style.background)
        try draw(on: &canvas)
        return canvas.image()
    }

    /// Draws the figure as SVG (vector shapes and text), laid out as the PNG is.
    public func svg() throws -> Data {
        var surface = SVGSurface(width: width, height: height, background: style.background, dpi: style.dpi)
        try draw(on: &surface)
        return surface.data()
    }

    /// Draws the figure on any surface.
    public func draw(on canvas: inout some Surface) throws {
        let name = "line plot" + (title.map { " '\($0)'" } ?? "")
        try style.validate(name)
        guard !panels.isEmpty else { throw RenderingError(name, "no panels to draw") }
        guard width >= 200, height >= 150, width <= 20000, height <= 20000 else {
            throw RenderingError(name, "size \(width)x\(height) is outside 200x150 ... 20000x20000")
        }
        for (p, panel) in panels.enumerated() {
            for s in panel.series where s.x.count != s.y.count {
                throw RenderingError(name, "panel \(p + 1), series '\(s.label)': \(s.x.count) x values but \(s.y.count) y values")
            }
            for (range, axis) in [(panel.xRange, "x"), (panel.yRange, "y")] {
                if let range, !(range.lowerBound.isFinite && range.upperBound.isFinite && range.upperBound > range.lowerBound) {
                    throw RenderingError(name, "panel \(p + 1): \(axis) range \(range) is empty or not finite")
                }
            }
        }
        let fonts = try FigureFonts(style)
        let px = style.pixels
        let margin = px(style.margin)
        var top = margin
        if let title {
            // A title wider than the figure is set smaller rather than clipped.
            var font = fonts.figureTitle
            let available = Double(width) - 2 * margin
            let natural = font.measure(title).width
            if natural > available {
                font = try Font.load(path: style.boldFontPath, size: max(1, (font.size * available / natural).rounded(.down)))
            }
            canvas.drawText(title, font: font, at: Point(Double(width) / 2, margin + font.capHeight),
                            horizontal: .center, color: style.textColor)
            top += font.lineBox + px(10)
        }
        let gap = px(14)
        let panelWidth = (Double(width) - 2 * margin - gap * Double(panels.count - 1)) / Double(panels.count)
        for (p, panel) in panels.enumerated() {
            let region = Rect(x: margin + Double(p) * (panelWidth + gap), y: top, width: panelWidth,
                              height: Double(height) - margin - top)
            drawPanel(panel, in: region, canvas: &canvas, fonts: fonts)
        }
    }

    /// Renders and writes the figure as PNG (atomically), recording the style's dpi.
    public func write(to path: String) throws {
        try PNGCodec.write(render(), to: path, dpi: style.dpi)
    }

    // MARK: Panels

    private func drawPanel(_ panel: PlotPanel, in region: Rect, canvas: inout some Surface, fonts: FigureFonts) {
        let px = style.pixels
        let axisWidth = max(1, px(style.axisLineWidth).rounded())
        let tickLength = px(style.tickLength)
        let points = panel.series.flatMap { s in zip(s.x, s.y).filter { $0.0.isFinite && $0.1.isFinite } }
        let xLimits = limits(panel.xRange, points.map(\.0) + (panel.xTicks ?? []))
        let yLimits = limits(panel.yRange, points.map(\.1) + (panel.yTicks ?? []))
        let xTicks = (panel.xTicks.map { AxisTicks.at($0) } ?? AxisTicks.nice(lower: xLimits.0, upper: xLimits.1, target: 7))
            .inside(xLimits)
        let yTicks = (panel.yTicks.map { AxisTicks.at($0) } ?? AxisTicks.nice(lower: yLimits.0, upper: yLimits.1, target: 6))
            .inside(yLimits)

        // Margins inside the region for titles and tick labels.
        let yLabelWidth = yTicks.labels.map { fonts.tick.measure($0).width }.max() ?? 0
        var left = region.x + tickLength + px(3.5) + yLabelWidth
        if panel.yLabel != nil { left += px(5) + fonts.label.ascent + fonts.label.descent }
        var top = region.y
        if panel.title != nil { top += fonts.title.lineBox + px(7) }
        // Room for half a tick label past the axes' ends.
        top = max(top, region.y + fonts.tick.capHeight / 2 + 1)
        var bottom = region.maxY - tickLength - px(3.5) - fonts.tick.lineBox
        if panel.xLabel != nil { bottom -= px(5) + fonts.label.lineBox }
        let lastXLabel = xTicks.labels.last.map { fonts.tick.measure($0).width / 2 } ?? 0
        let right = region.maxX - max(px(4), lastXLabel - (xTicks.values.last.map { xLimits.1 - $0 } ?? 0) + px(2))
        let legendWidth = panel.showLegend && panel.legendOutside ? legendBoxWidth(panel, fonts: fonts) + px(8) : 0
        let axes = Rect(x: left.rounded(), y: top.rounded(), width: (right - legendWidth - left).rounded(),
                        height: (bottom - top).rounded())
        guard axes.width > 20, axes.height > 20 else { return }

        func sx(_ x: Double) -> Double { axes.x + (x - xLimits.0) / (xLimits.1 - xLimits.0) * axes.width }
        func sy(_ y: Double) -> Double { axes.maxY - (y - yLimits.0) / (yLimits.1 - yLimits.0) * axes.height }

        // Grid (under the data), dashed and light.
        let grid = px(style.gridLineWidth)
        let dash = [px(2.8), px(1.6)]
        for v in xTicks.values {
            let x = sx(v)
            canvas.strokeLine(from: Point(x, axes.y), to: Point(x, axes.maxY), width: grid, color: style.gridColor,
                              cap: .butt, dash: dash)
        }
        for v in yTicks.values {
            let y = sy(v)
            canvas.strokeLine(from: Point(axes.x, y), to: Point(axes.maxX, y), width: grid, color: style.gridColor,
                              cap: .butt, dash: dash)
        }

        // Series, clipped to the axes plus room for markers on the boundary.
        let markerSize = px(style.markerSize)
        let lineWidth = px(style.lineWidth)
        let pad = markerSize / 2 + 2
        canvas.clip = Rect(x: axes.x - pad, y: axes.y - pad, width: axes.width + 2 * pad, height: axes.height + 2 * pad)
        for (k, s) in panel.series.enumerated() {
            guard let band = s.band else { continue }
            let color = (s.color ?? Palette.color(k)).withAlpha(0.2)
            var upper: [Point] = [], lower: [Point] = []
            for (i, x) in s.x.enumerated() where i < band.lower.count && i < band.upper.count {
                if x.isFinite && band.lower[i].isFinite && band.upper[i].isFinite {
                    upper.append(Point(sx(x), sy(band.upper[i])))
                    lower.append(Point(sx(x), sy(band.lower[i])))
                } else {
                    canvas.fillBand(upper: upper, lower: lower, color: color)
                    upper = []
                    lower = []
                }
            }
            canvas.fillBand(upper: upper, lower: lower, color: color)
        }
        for (k, s) in panel.series.enumerated() {
            let color = s.color ?? Palette.color(k)
            var run: [Point] = []
            for (x, y) in zip(s.x, s.y) {
                if x.isFinite && y.isFinite {
                    run.append(Point(sx(x), sy(y)))
                } else {
                    canvas.strokePolyline(run, width: lineWidth, color: color)
                    run = []
                }
            }
            canvas.strokePolyline(run, width: lineWidth, color: color)
        }
        for (k, s) in panel.series.enumerated() {
            let color = s.color ?? Palette.color(k)
            let marker = s.marker ?? Marker.allCases[k % Marker.allCases.count]
            for (x, y) in zip(s.x, s.y) where x.isFinite && y.isFinite {
                canvas.drawMarker(marker, at: Point(sx(x), sy(y)), size: markerSize, fill: color,
                                  edge: .white, edgeWidth: px(0.6))
            }
        }
        canvas.clip = nil

        // Frame, ticks and tick labels.
        canvas.frame(axes, width: axisWidth, color: style.axisColor)
        for (v, label) in zip(xTicks.values, xTicks.labels) {
            let x = sx(v)
            canvas.fill(Rect(x: x - axisWidth / 2, y: axes.maxY + axisWidth, width: axisWidth, height: tickLength),
                        color: style.axisColor)
            canvas.drawText(label, font: fonts.tick, at: Point(x, axes.maxY + axisWidth + tickLength + px(3.5)),
                            horizontal: .center, vertical: .top, color: style.textColor)
        }
        for (v, label) in zip(yTicks.values, yTicks.labels) {
            let y = sy(v)
            canvas.fill(Rect(x: axes.x - axisWidth - tickLength, y: y - axisWidth / 2, width: tickLength, height: axisWidth),
                        color: style.axisColor)
            canvas.drawText(label, font: fonts.tick, at: Point(axes.x - axisWidth - tickLength - px(3.5), y),
                            horizontal: .right, vertical: .middle, color: style.textColor)
        }

        // Titles.
        if let title = panel.title {
            canvas.drawText(title, font: fonts.title, at: Point(axes.midX, axes.y - axisWidth - px(7)),
                            horizontal: .center, vertical: .baseline, color: style.textColor)
        }
        if let xLabel = panel.xLabel {
            let y = axes.maxY + axisWidth + tickLength + px(3.5) + fonts.tick.lineBox + px(5)
            canvas.drawText(xLabel, font: fonts.label, at: Point(axes.midX, y), horizontal: .center, vertical: .top,
                            color: style.textColor)
        }
        if let yLabel = panel.yLabel {
            let x = axes.x - axisWidth - tickLength - px(3.5) - yLabelWidth - px(5)
            canvas.drawText(yLabel, font: fonts.label, at: Point(x, axes.midY), horizontal: .center, vertical: .bottom,
                            orientation: .upward, color: style.textColor)
        }
        if panel.showLegend {
            drawLegend(panel, axes: axes, screen: { Point(sx($0), sy($1)) }, canvas: &canvas, fonts: fonts)
        }
    }

    /// Axis limits: the fixed range, or the values' range with 5% margins (a unit range around one value).
    private func limits(_ fixed: ClosedRange<Double>?, _ values: [Double]) -> (Double, Double) {
        if let fixed { return (fixed.lowerBound, fixed.upperBound) }
        let finite = values.filter(\.isFinite)
        guard let lo = finite.min(), let hi = finite.max() else { return (0, 1) }
        if hi == lo {
            let pad = max(abs(lo) * 0.05, 0.5)
            return (lo - pad, hi + pad)
        }
        let pad = (hi - lo) * 0.05
        return (lo - pad, hi + pad)
    }

    // MARK: Legend

    /// The legend box's width.
    private func legendBoxWidth(_ panel: PlotPanel, fonts: FigureFonts) -> Double {
        let px = style.pixels
        let textWidth = panel.series.filter { !$0.label.isEmpty }.map { fonts.legend.measure($0.label).width }.max() ?? 0
        return (px(4) * 2 + px(22) + px(6) + textWidth).rounded()
    }

    private func drawLegend(_ panel: PlotPanel, axes: Rect, screen: (Double, Double) -> Point, canvas: inout some Surface,
                            fonts: FigureFonts) {
        let entries = panel.series.enumerated().filter { !$0.element.label.isEmpty }
        guard !entries.isEmpty else { return }
        let px = style.pixels
        let font = fonts.legend
        let padding = px(4), sample = px(22), spacing = px(6), rowHeight = font.size * 1.35
        let textWidth = entries.map { font.measure($0.element.label).width }.max() ?? 0
        let boxWidth = (padding * 2 + sample + spacing + textWidth).rounded()
        let boxHeight = (padding * 2 + rowHeight * Double(entries.count)).rounded()
        let inset = px(5)

        // Candidate corners, best first when tied: upper right, upper left, lower left, lower right.
        let candidates = [
            Rect(x: axes.maxX - inset - boxWidth, y: axes.y + inset, width: boxWidth, height: boxHeight),
            Rect(x: axes.x + inset, y: axes.y + inset, width: boxWidth, height: boxHeight),
            Rect(x: axes.x + inset, y: axes.maxY - inset - boxHeight, width: boxWidth, height: boxHeight),
            Rect(x: axes.maxX - inset - boxWidth, y: axes.maxY - inset - boxHeight, width: boxWidth, height: boxHeight),
        ]
        // Sample every series densely along its segments and count what each box would hide.
        var samples: [Point] = []
        for s in panel.series {
            let pts = zip(s.x, s.y).map { ($0.0.isFinite && $0.1.isFinite) ? screen($0.0, $0.1) : nil }
            for k in 0..<pts.count {
                guard let a = pts[k] else { continue }
                samples.append(a)
                if k + 1 < pts.count, let b = pts[k + 1] {
                    for f in 1..<16 {
                        let t = Double(f) / 16
                        samples.append(Point(a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t))
                    }
                }
            }
        }
        let margin = px(style.markerSize) / 2
        func hidden(_ r: Rect) -> Int {
            samples.reduce(0) { count, p in
                count + ((p.x >= r.x - margin && p.x <= r.maxX + margin && p.y >= r.y - margin && p.y <= r.maxY + margin) ? 1 : 0)
            }
        }
        var box = candidates[0]
        var best = hidden(box)
        if panel.legendOutside {
            box = Rect(x: axes.maxX + px(8), y: axes.y, width: boxWidth, height: boxHeight)
            best = 0
        }
        for candidate in candidates.dropFirst() where !panel.legendOutside {
            let h = hidden(candidate)
            if h < best {
                best = h
                box = candidate
            }
        }
        let box0 = Rect(x: box.x.rounded(), y: box.y.rounded(), width: box.width, height: box.height)
        canvas.fill(box0, color: Color.white.withAlpha(0.88))
        canvas.frame(Rect(x: box0.x + 1, y: box0.y + 1, width: box0.width - 2, height: box0.height - 2), width: 1,
                     color: Color(hex: 0xcccccc))
        let markerSize = px(style.markerSize)
        for (row, (k, s)) in entries.enumerated() {
            let color = s.color ?? Palette.color(k)
            let marker = s.marker ?? Marker.allCases[k % Marker.allCases.count]
            let y = box0.y + padding + rowHeight * (Double(row) + 0.5)
            let x0 = box0.x + padding
            canvas.strokeLine(from: Point(x0, y), to: Point(x0 + sample, y), width: px(style.lineWidth), color: color,
                              cap: .butt)
            canvas.drawMarker(marker, at: Point(x0 + sample / 2, y), size: markerSize, fill: color, edge: .white,
                              edgeWidth: px(0.6))
            canvas.drawText(s.label, font: font, at: Point(x0 + sample + spacing, y), vertical: .middle,
                            color: style.textColor)
        }
    }
}

extension AxisTicks {
    /// The ticks that fall inside `limits` (with a little tolerance for rounding).
    func inside(_ limits: (Double, Double)) -> AxisTicks {
        let tolerance = (limits.1 - limits.0) * 1e-9
        let keep = values.indices.filter { values[$0] >= limits.0 - tolerance && values[$0] <= limits.1 + tolerance }
        return AxisTicks(values: keep.map { values[$0] }, labels: keep.map { labels[$0] })
    }
}
