// Rendering: figures that set models side by side for papers: a grid of maps (rows models, columns
// stages) on one colour scale with row and column labels, an optional square outlined on each map and
// one colour bar; and a grouped bar chart (groups such as stages, one bar per model in each). Both draw
// on any Surface, so each is a PNG (`render`) and an SVG (`svg`) of the same layout.

import Foundation
import Imaging

/// Maps in a grid: one row per model, one column per stage, all on one colour scale.
public struct MapGridFigure: Sendable {
    /// Rows of maps (`nil` leaves a cell empty); every row has `columnLabels.count` cells.
    public var cells: [[ScalarMap?]]
    /// Label left of each row (e.g. the model).
    public var rowLabels: [String]
    /// Label above each column (e.g. "stage 3").
    public var columnLabels: [String]
    /// A square to outline on each cell, in the cell map's pixels (e.g. the ERF@0.5 square); nil for none.
    public var squares: [[Rect?]] = []
    /// Caption under each cell (e.g. "ERF@0.5 = 0.36"); empty for none.
    public var captions: [[String]] = []
    /// Overall title (bold).
    public var title: String?
    public var colormap: Colormap = .viridis
    /// Values mapped to the colour map's ends; nil uses the extrema over all cells.
    public var valueRange: ClosedRange<Float>?
    /// Title beside the colour bar.
    public var colorbarLabel: String?
    /// Side of each cell in pixels.
    public var cellSize: Int = 300
    /// Fonts, sizes and colours (dpi scales text and lines).
    public var style = FigureStyle()

    /// A grid of `cells` with its labels.
    public init(cells: [[ScalarMap?]], rowLabels: [String], columnLabels: [String]) {
        self.cells = cells
        self.rowLabels = rowLabels
        self.columnLabels = columnLabels
    }

    /// Width and height in pixels.
    public func size() throws -> (width: Int, height: Int) {
        let l = try plan()
        return (l.width, l.height)
    }

    /// The figure as 8-bit RGB.
    public func render() throws -> Image8 {
        let l = try plan()
        var canvas = Canvas(width: l.width, height: l.height, background: style.background)
        try draw(on: &canvas, l)
        return canvas.image()
    }

    /// The figure as SVG (the maps embedded as PNG images, labels, squares and colour bar as vectors).
    public func svg() throws -> Data {
        let l = try plan()
        var surface = SVGSurface(width: l.width, height: l.height, background: style.background, dpi: style.dpi)
        try draw(on: &surface, l)
        return surface.data()
    }

    private struct Plan {
        var width: Int, height: Int
        var left: Double, top: Double, gap: Double, captionHeight: Double
        var bar: Rect
        var lower: Float, upper: Float
        var fonts: FigureFonts
    }

    private func plan() throws -> Plan {
        let name = "map grid" + (title.map { " '\($0)'" } ?? "")
        try style.validate(name)
        guard !cells.isEmpty, !columnLabels.isEmpty else { throw RenderingError(name, "no maps to draw") }
        guard cells.count == rowLabels.count, cells.allSatisfy({ $0.count == columnLabels.count }) else {
            throw RenderingError(name, "\(cells.count) rows of \(cells.map(\.count)) cells for \(rowLabels.count) row and \(columnLabels.count) column labels")
        }
        guard (16...4000).contains(cellSize) else { throw RenderingError(name, "cell size must be 16 to 4000 pixels, got \(cellSize)") }
        let maps = cells.flatMap { $0.compactMap { $0 } }
        guard !maps.isEmpty else { throw RenderingError(name, "every cell is empty") }
        let (lo, hi) = try resolveRange(valueRange, maps, name: name)
        let fonts = try FigureFonts(style)
        let px = style.pixels
        let margin = px(style.margin), gap = px(6)
        let left = margin + (rowLabels.map { fonts.label.measure($0).width }.max() ?? 0) + px(8)
        var top = margin + fonts.title.lineBox + px(6)
        if title != nil { top += fonts.figureTitle.lineBox + px(10) }
        let captionHeight = captions.isEmpty ? 0 : fonts.tick.lineBox + px(4)
        let rows = Double(cells.count), cols = Double(columnLabels.count), cell = Double(cellSize)
        let gridWidth = cols * cell + (cols - 1) * gap
        let gridHeight = rows * (cell + captionHeight) + (rows - 1) * gap
        let bar = Rect(x: (left + gridWidth + px(12)).rounded(), y: top.rounded(), width: px(10).rounded(), height: min(gridHeight, max(cell, gridHeight * 0.8)).rounded())
        let tickWidth = AxisTicks.nice(lower: Double(lo), upper: Double(hi), target: 5).labels.map { fonts.tick.measure($0).width }.max() ?? 0
        var width = bar.maxX + px(style.tickLength) + px(3) + tickWidth + margin
        if colorbarLabel != nil { width += px(6) + fonts.label.lineBox }
        let titleWidth = title.map { fonts.figureTitle.measure($0).width + 2 * margin } ?? 0
        return Plan(width: Int(max(width, titleWidth).rounded(.up)), height: Int((top + gridHeight + margin).rounded(.up)),
                    left: left, top: top, gap: gap, captionHeight: captionHeight, bar: bar, lower: lo, upper: hi, fonts: fonts)
    }

    private func draw(on canvas: inout some Surface, _ l: Plan) throws {
        let px = style.pixels, fonts = l.fonts
        let frame = max(1, px(style.axisLineWidth).rounded())
        let cell = Double(cellSize)
        if let title {
            canvas.drawText(title, font: fonts.figureTitle, at: Point(Double(l.width) / 2, px(style.margin) + fonts.figureTitle.capHeight),
                            horizontal: .center, color: style.textColor)
        }
        for (c, label) in columnLabels.enumerated() {
            let x = l.left + Double(c) * (cell + l.gap) + cell / 2
            canvas.drawText(label, font: fonts.title, at: Point(x, l.top - px(6)), horizontal: .center, vertical: .bottom, color: style.textColor)
        }
        for (r, row) in cells.enumerated() {
            let y = l.top + Double(r) * (cell + l.captionHeight + l.gap)
            canvas.drawText(rowLabels[r], font: fonts.label, at: Point(l.left - px(6), y + cell / 2), horizontal: .right,
                            vertical: .middle, color: style.textColor)
            for (c, map) in row.enumerated() {
                let rect = Rect(x: (l.left + Double(c) * (cell + l.gap)).rounded(), y: y.rounded(), width: cell, height: cell)
                guard let map else { continue }
                canvas.drawImage(colourise(map, lower: l.lower, upper: l.upper, side: cellSize), x: Int(rect.x), y: Int(rect.y), scale: 1)
                if r < squares.count, c < squares[r].count, let sq = squares[r][c] {
                    let sx = cell / Double(map.width), sy = cell / Double(map.height)
                    let box = Rect(x: rect.x + sq.x * sx, y: rect.y + sq.y * sy, width: sq.width * sx, height: sq.height * sy)
                    canvas.frame(box, width: max(1, px(1)), color: Color.white)
                }
                canvas.frame(rect, width: frame, color: style.axisColor)
                if r < captions.count, c < captions[r].count, !captions[r][c].isEmpty {
                    canvas.drawText(captions[r][c], font: fonts.tick, at: Point(rect.midX, rect.maxY + frame + px(3)),
                                    horizontal: .center, vertical: .top, color: style.textColor)
                }
            }
        }
        // The colour bar.
        let lut = colormap.lookupTable(levels: 1024)
        let rows = Int(l.bar.height)
        var strip = [UInt8](repeating: 0, count: rows * Int(l.bar.width) * 3)
        for y in 0..<rows {
            let t = 1 - (Double(y) + 0.5) / Double(rows)
            let e = Int((t * 1023).rounded()) * 3
            for x in 0..<Int(l.bar.width) { for k in 0..<3 { strip[(y * Int(l.bar.width) + x) * 3 + k] = lut[e + k] } }
        }
        canvas.drawImage(Image8(width: Int(l.bar.width), height: rows, channels: 3, pixels: strip), x: Int(l.bar.x), y: Int(l.bar.y), scale: 1)
        canvas.frame(l.bar, width: frame, color: style.axisColor)
        let ticks = AxisTicks.nice(lower: Double(l.lower), upper: Double(l.upper), target: 5)
        let tickLength = px(style.tickLength)
        var widest = 0.0
        for (v, label) in zip(ticks.values, ticks.labels) where v >= Double(l.lower) - 1e-9 && v <= Double(l.upper) + 1e-9 {
            let y = l.bar.maxY - (v - Double(l.lower)) / Double(l.upper - l.lower) * l.bar.height
            canvas.fill(Rect(x: l.bar.maxX + frame, y: y - frame / 2, width: tickLength, height: frame), color: style.axisColor)
            canvas.drawText(label, font: fonts.tick, at: Point(l.bar.maxX + frame + tickLength + px(3), y), vertical: .middle, color: style.textColor)
            widest = max(widest, fonts.tick.measure(label).width)
        }
        if let colorbarLabel {
            canvas.drawText(colorbarLabel, font: fonts.label, at: Point(l.bar.maxX + frame + tickLength + px(3) + widest + px(6), l.bar.midY),
                            horizontal: .center, vertical: .top, orientation: .upward, color: style.textColor)
        }
    }

    /// The map resampled (nearest) to `side` x `side` through the colour map.
    private func colourise(_ map: ScalarMap, lower: Float, upper: Float, side: Int) -> Image8 {
        var out = [UInt8](repeating: 0, count: side * side * 3)
        let scale = 1 / (upper - lower)
        for y in 0..<side {
            let my = min(map.height - 1, y * map.height / side)
            for x in 0..<side {
                let mx = min(map.width - 1, x * map.width / side)
                let v = map.values[my * map.width + mx]
                (out[(y * side + x) * 3], out[(y * side + x) * 3 + 1], out[(y * side + x) * 3 + 2]) = colormap.map(min(max((v - lower) * scale, 0), 1))
            }
        }
        return Image8(width: side, height: side, channels: 3, pixels: out)
    }
}

/// Grouped bars: one group per category (e.g. stage), one bar per series (e.g. model) in each, a legend
/// right of the axes (never over a bar).
public struct BarChartFigure: Sendable {
    /// Category names along the x axis.
    public var groups: [String]
    /// One series per model: its label and a value per group (NaN leaves the bar out).
    public var series: [(label: String, values: [Double])]
    public var title: String?
    public var yLabel: String?
    /// Fixed y range; nil is 0 to the largest value plus 10 %.
    public var yRange: ClosedRange<Double>?
    /// Write each bar's value above it.
    public var valueLabels = true
    public var width = 1600
    public var height = 900
    public var style = FigureStyle()

    /// A chart of `series` over `groups`.
    public init(groups: [String], series: [(label: String, values: [Double])]) {
        self.groups = groups
        self.series = series
    }

    /// The figure as 8-bit RGB.
    public func render() throws -> Image8 {
        var canvas = Canvas(width: width, height: height, background: style.background)
        try draw(on: &canvas)
        return canvas.image()
    }

    /// The figure as SVG.
    public func svg() throws -> Data {
        var surface = SVGSurface(width: width, height: height, background: style.background, dpi: style.dpi)
        try draw(on: &surface)
        return surface.data()
    }

    /// Draws the chart on any surface.
    public func draw(on canvas: inout some Surface) throws {
        let name = "bar chart" + (title.map { " '\($0)'" } ?? "")
        try style.validate(name)
        guard !groups.isEmpty, !series.isEmpty else { throw RenderingError(name, "no bars to draw") }
        guard series.allSatisfy({ $0.values.count == groups.count }) else {
            throw RenderingError(name, "every series needs one value per group (\(groups.count))")
        }
        guard width >= 200, height >= 150, width <= 20000, height <= 20000 else {
            throw RenderingError(name, "size \(width)x\(height) is outside 200x150 ... 20000x20000")
        }
        let fonts = try FigureFonts(style)
        let px = style.pixels
        let margin = px(style.margin)
        let values = series.flatMap(\.values).filter(\.isFinite)
        let range = yRange ?? 0...max((values.max() ?? 1) * 1.1, 1e-9)
        guard range.upperBound > range.lowerBound, range.lowerBound.isFinite, range.upperBound.isFinite else {
            throw RenderingError(name, "y range \(range) is empty or not finite")
        }
        let ticks = AxisTicks.nice(lower: range.lowerBound, upper: range.upperBound, target: 6)
        var top = margin
        if let title {
            canvas.drawText(title, font: fonts.figureTitle, at: Point(Double(width) / 2, margin + fonts.figureTitle.capHeight),
                            horizontal: .center, color: style.textColor)
            top += fonts.figureTitle.lineBox + px(10)
        }
        top += fonts.tick.lineBox
        let legendText = series.map { fonts.legend.measure($0.label).width }.max() ?? 0
        let legendWidth = px(4) * 2 + px(12) + px(6) + legendText
        let tickWidth = ticks.labels.map { fonts.tick.measure($0).width }.max() ?? 0
        var left = margin + tickWidth + px(style.tickLength) + px(4)
        if yLabel != nil { left += fonts.label.lineBox + px(5) }
        let axes = Rect(x: left.rounded(), y: top.rounded(), width: (Double(width) - margin - legendWidth - px(10) - left).rounded(),
                        height: (Double(height) - margin - fonts.label.lineBox - px(8) - top).rounded())
        guard axes.width > 20, axes.height > 20 else { throw RenderingError(name, "\(width)x\(height) leaves no room for the bars") }
        func sy(_ v: Double) -> Double { axes.maxY - (min(max(v, range.lowerBound), range.upperBound) - range.lowerBound) / (range.upperBound - range.lowerBound) * axes.height }
        let axisWidth = max(1, px(style.axisLineWidth).rounded())
        for (v, label) in zip(ticks.values, ticks.labels) where v >= range.lowerBound && v <= range.upperBound {
            canvas.strokeLine(from: Point(axes.x, sy(v)), to: Point(axes.maxX, sy(v)), width: px(style.gridLineWidth), color: style.gridColor,
                              dash: [px(2.5), px(2.5)])
            canvas.fill(Rect(x: axes.x - axisWidth - px(style.tickLength), y: sy(v) - axisWidth / 2, width: px(style.tickLength), height: axisWidth),
                        color: style.axisColor)
            canvas.drawText(label, font: fonts.tick, at: Point(axes.x - axisWidth - px(style.tickLength) - px(3), sy(v)), horizontal: .right,
                            vertical: .middle, color: style.textColor)
        }
        let groupWidth = axes.width / Double(groups.count)
        let barWidth = groupWidth * 0.8 / Double(series.count)
        for (g, group) in groups.enumerated() {
            let x0 = axes.x + Double(g) * groupWidth + groupWidth * 0.1
            for (k, s) in series.enumerated() where s.values[g].isFinite {
                let v = s.values[g]
                let bar = Rect(x: x0 + Double(k) * barWidth, y: sy(v), width: barWidth * 0.92, height: sy(range.lowerBound) - sy(v))
                canvas.fill(bar, color: Palette.color(k))
                if valueLabels {
                    canvas.drawText(String(format: "%.2f", v), font: fonts.legend, at: Point(bar.midX, bar.y - px(2)), horizontal: .center,
                                    vertical: .bottom, color: style.textColor)
                }
            }
            canvas.drawText(group, font: fonts.label, at: Point(x0 + groupWidth * 0.4, axes.maxY + axisWidth + px(5)), horizontal: .center,
                            vertical: .top, color: style.textColor)
        }
        canvas.frame(axes, width: axisWidth, color: style.axisColor)
        if let yLabel {
            canvas.drawText(yLabel, font: fonts.label, at: Point(axes.x - axisWidth - px(style.tickLength) - px(4) - tickWidth - px(5), axes.midY),
                            horizontal: .center, vertical: .bottom, orientation: .upward, color: style.textColor)
        }
        // Legend right of the axes.
        let row = fonts.legend.size * 1.35
        for (k, s) in series.enumerated() {
            let y = axes.y + px(4) + row * (Double(k) + 0.5)
            canvas.fill(Rect(x: axes.maxX + px(10) + px(4), y: y - px(5), width: px(12), height: px(10)), color: Palette.color(k))
            canvas.drawText(s.label, font: fonts.legend, at: Point(axes.maxX + px(10) + px(4) + px(12) + px(6), y), vertical: .middle,
                            color: style.textColor)
        }
    }
}

/// An overlay (a map blended over its photo) as a figure: a title above it and a colour bar of the map's
/// colour map and range beside it.
public struct TitledOverlayFigure: Sendable {
    public var overlay: OverlayFigure
    public var title: String?
    /// Title beside the colour bar.
    public var colorbarLabel: String?
    /// Each photo pixel becomes scale x scale figure pixels.
    public var scale = 2
    public var style = FigureStyle()

    /// A titled overlay.
    public init(overlay: OverlayFigure, title: String?, colorbarLabel: String? = nil) {
        self.overlay = overlay
        self.title = title
        self.colorbarLabel = colorbarLabel
    }

    /// Where the blended image sits in the figure, and the figure's size.
    public func layout() throws -> (width: Int, height: Int, image: Rect) {
        let fonts = try FigureFonts(style)
        let px = style.pixels
        let margin = px(style.margin)
        let top = margin + (title == nil ? 0 : fonts.figureTitle.lineBox + px(10))
        let w = Double(overlay.image.width * scale), h = Double(overlay.image.height * scale)
        var content = w + px(12) + px(10) + px(style.tickLength) + px(3) + fonts.tick.measure("0.00").width
        if colorbarLabel != nil { content += px(6) + fonts.label.lineBox }
        let titleWidth = title.map { fonts.figureTitle.measure($0).width } ?? 0
        // A title wider than the image and its colour bar centres them under it.
        let left = margin + max(0, (titleWidth - content) / 2)
        let image = Rect(x: left.rounded(), y: top.rounded(), width: w, height: h)
        return (Int((max(content, titleWidth) + 2 * margin).rounded(.up)), Int((image.maxY + margin).rounded(.up)), image)
    }

    /// The figure as 8-bit RGB.
    public func render() throws -> Image8 {
        let l = try layout()
        var canvas = Canvas(width: l.width, height: l.height, background: style.background)
        try draw(on: &canvas)
        return canvas.image()
    }

    /// The figure as SVG (the blended image embedded as PNG).
    public func svg() throws -> Data {
        let l = try layout()
        var surface = SVGSurface(width: l.width, height: l.height, background: style.background, dpi: style.dpi)
        try draw(on: &surface)
        return surface.data()
    }

    private func draw(on canvas: inout some Surface) throws {
        guard (1...16).contains(scale) else { throw RenderingError("overlay figure", "scale must be 1 to 16, got \(scale)") }
        try style.validate("overlay figure")
        let l = try layout()
        let fonts = try FigureFonts(style)
        let px = style.pixels
        if let title {
            canvas.drawText(title, font: fonts.figureTitle, at: Point(Double(l.width) / 2, px(style.margin) + fonts.figureTitle.capHeight),
                            horizontal: .center, color: style.textColor)
        }
        canvas.drawImage(try overlay.render(), x: Int(l.image.x), y: Int(l.image.y), scale: scale)
        let frame = max(1, px(style.axisLineWidth).rounded())
        canvas.frame(l.image, width: frame, color: style.axisColor)
        // The colour bar: the overlay's colours at full weight, over its value range.
        let (lo, hi) = try resolveRange(overlay.valueRange, [overlay.map], name: "overlay figure")
        let bar = Rect(x: (l.image.maxX + px(12)).rounded(), y: l.image.y, width: px(10).rounded(), height: l.image.height)
        let rows = Int(bar.height), cols = Int(bar.width)
        let lut = overlay.colormap.lookupTable(levels: 1024)
        var strip = [UInt8](repeating: 0, count: rows * cols * 3)
        for y in 0..<rows {
            let e = Int(((1 - (Double(y) + 0.5) / Double(rows)) * 1023).rounded()) * 3
            for x in 0..<cols { for k in 0..<3 { strip[(y * cols + x) * 3 + k] = lut[e + k] } }
        }
        canvas.drawImage(Image8(width: cols, height: rows, channels: 3, pixels: strip), x: Int(bar.x), y: Int(bar.y), scale: 1)
        canvas.frame(bar, width: frame, color: style.axisColor)
        let ticks = AxisTicks.nice(lower: Double(lo), upper: Double(hi), target: 5)
        var widest = 0.0
        for (v, label) in zip(ticks.values, ticks.labels) where v >= Double(lo) - 1e-9 && v <= Double(hi) + 1e-9 {
            let y = bar.maxY - (v - Double(lo)) / Double(hi - lo) * bar.height
            canvas.fill(Rect(x: bar.maxX + frame, y: y - frame / 2, width: px(style.tickLength), height: frame), color: style.axisColor)
            canvas.drawText(label, font: fonts.tick, at: Point(bar.maxX + frame + px(style.tickLength) + px(3), y), vertical: .middle,
                            color: style.textColor)
            widest = max(widest, fonts.tick.measure(label).width)
        }
        if let colorbarLabel {
            canvas.drawText(colorbarLabel, font: fonts.label, at: Point(bar.maxX + frame + px(style.tickLength) + px(3) + widest + px(6), bar.midY),
                            horizontal: .center, vertical: .top, orientation: .upward, color: style.textColor)
        }
    }
}
