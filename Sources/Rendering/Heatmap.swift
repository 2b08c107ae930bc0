// Rendering: heat-map figures of scalar maps (effective receptive fields and the like).
// `HeatmapFigure` draws one map, enlarged with nearest-neighbour k x k blocks to a print-friendly size, with
// a title, optional axis titles and a vertical colour bar with nice ticks; `StageRowFigure` lays several maps
// side by side on one shared colour scale with one colour bar, a title per panel and an overall title;
// `OverlayFigure` blends a colour-mapped map over a photo. Left out: map axes with pixel ticks, non-linear
// normalisation, interpolated (smooth) enlargement and colour bars with extensions.
// Layout key: a ScalarMap is H x W Float values, row-major (row 0 at the top); images are H x W x C bytes.

import Foundation
import Imaging

/// A 2-D scalar field, H rows of W values, row-major with row 0 at the top.
public struct ScalarMap: Sendable, Equatable {
    /// Rows.
    public let height: Int
    /// Columns.
    public let width: Int
    /// `height * width` finite values.
    public let values: [Float]

    /// Wraps `values` (row-major); throws when the count does not match or a value is not finite.
    public init(height: Int, width: Int, values: [Float]) throws {
        guard height > 0, width > 0 else {
            throw RenderingError("scalar map", "shape \(height)x\(width) is empty")
        }
        guard values.count == height * width else {
            throw RenderingError("scalar map", "\(values.count) values do not fill a \(height)x\(width) map")
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw RenderingError("scalar map", "value at row \(bad / width), column \(bad % width) is \(values[bad])",
                                 hint: "replace NaN/infinite values before plotting")
        }
        self.height = height
        self.width = width
        self.values = values
    }

    /// Smallest and largest value.
    public var extrema: (min: Float, max: Float) {
        var lo = values[0], hi = values[0]
        for v in values {
            lo = min(lo, v)
            hi = max(hi, v)
        }
        return (lo, hi)
    }
}

/// Where a heat-map figure put things, in output pixels.
public struct HeatmapLayout: Sendable, Equatable {
    /// Output width in pixels.
    public var width: Int
    /// Output height in pixels.
    public var height: Int
    /// The enlarged maps (one per panel), left to right; map pixel (row r, column c) of panel p covers
    /// `scales[p]` x `scales[p]` output pixels from (`mapRects[p].x + c * scales[p]`, `mapRects[p].y + r * scales[p]`).
    public var mapRects: [Rect]
    /// Enlargement factor of each map.
    public var scales: [Int]
    /// The colour bar's gradient (value `upper` at the top, `lower` at the bottom).
    public var colorbarRect: Rect
    /// The value given the colour map's bottom colour.
    public var lower: Float
    /// The value given the colour map's top colour.
    public var upper: Float
}

/// One map as a figure: title, enlarged map, colour bar, optional axis titles.
public struct HeatmapFigure: Sendable {
    /// The map to draw.
    public var map: ScalarMap
    /// Title above the map, e.g. "unified_swin_base (untrained) - stage 4".
    public var title: String?
    /// Colour map (default viridis).
    public var colormap: Colormap = .viridis
    /// Values mapped to the colour map's ends; nil uses the map's own minimum and maximum.
    public var valueRange: ClosedRange<Float>?
    /// Title under the map.
    public var xLabel: String?
    /// Title left of the map, reading upwards.
    public var yLabel: String?
    /// Title beside the colour bar, reading upwards.
    public var colorbarLabel: String?
    /// The map's longer side is enlarged by a whole factor to at least this many pixels.
    public var minimumMapSize: Int = 640
    /// Fonts, sizes and colours.
    public var style = FigureStyle()

    /// A figure of `map` with `title`; other settings keep their defaults until changed.
    public init(map: ScalarMap, title: String? = nil, colormap: Colormap = .viridis,
                valueRange: ClosedRange<Float>? = nil) {
        self.map = map
        self.title = title
        self.colormap = colormap
        self.valueRange = valueRange
    }

    /// Where the map and colour bar go.
    public func layout() throws -> HeatmapLayout {
        try plan().layout
    }

    /// Draws the figure as 8-bit RGB.
    public func render() throws -> Image8 {
        try plan().draw()
    }

    /// Draws the figure as SVG (the maps embedded as PNG images, everything else as vectors).
    public func svg() throws -> Data {
        try plan().svg()
    }

    /// Renders and writes the figure as PNG (atomically), recording the style's dpi.
    public func write(to path: String) throws {
        try PNGCodec.write(render(), to: path, dpi: style.dpi)
    }

    private func plan() throws -> MapRowPlan {
        try MapRowPlan(panels: [(map, nil)], title: title, colormap: colormap, valueRange: valueRange,
                       xLabel: xLabel, yLabel: yLabel, colorbarLabel: colorbarLabel,
                       panelSize: minimumMapSize, style: style, name: "heatmap figure")
    }
}

/// Several maps in one row on a shared colour scale: a title per panel, one colour bar, an overall title.
public struct StageRowFigure: Sendable {
    /// The panels, left to right: each map with its title (e.g. "stage 1").
    public var panels: [(map: ScalarMap, title: String)]
    /// Overall title above the row (bold).
    public var title: String?
    /// Colour map (default viridis).
    public var colormap: Colormap = .viridis
    /// Values mapped to the colour map's ends; nil uses the minimum and maximum over all panels.
    public var valueRange: ClosedRange<Float>?
    /// Title beside the colour bar, reading upwards.
    public var colorbarLabel: String?
    /// Each map's longer side is enlarged by a whole factor to at least this many pixels.
    public var panelSize: Int = 360
    /// Fonts, sizes and colours.
    public var style = FigureStyle()

    /// A row of `panels` under `title`; other settings keep their defaults until changed.
    public init(panels: [(map: ScalarMap, title: String)], title: String? = nil, colormap: Colormap = .viridis,
                valueRange: ClosedRange<Float>? = nil) {
        self.panels = panels
        self.title = title
        self.colormap = colormap
        self.valueRange = valueRange
    }

    /// Where the maps and colour bar go.
    public func layout() throws -> HeatmapLayout {
        try plan().layout
    }

    /// Draws the figure as 8-bit RGB.
    public func render() throws -> Image8 {
        try plan().draw()
    }

    /// Draws the figure as SVG (the maps embedded as PNG images, everything else as vectors).
    public func svg() throws -> Data {
        try plan().svg()
    }

    /// Renders and writes the figure as PNG (atomically), recording the style's dpi.
    public func write(to path: String) throws {
        try PNGCodec.write(render(), to: path, dpi: style.dpi)
    }

    private func plan() throws -> MapRowPlan {
        guard !panels.isEmpty else { throw RenderingError("stage row figure", "no panels to draw") }
        return try MapRowPlan(panels: panels.map { ($0.map, $0.title) }, title: title, colormap: colormap,
                              valueRange: valueRange, xLabel: nil, yLabel: nil, colorbarLabel: colorbarLabel,
                              panelSize: panelSize, style: style, name: "stage row figure")
    }
}

/// A map through a colour map blended over a photo: `mapWeight` of the map colour plus the rest of the
/// image, after resizing the map to the image bilinearly (pixel centres aligned, edges clamped). Colours come
/// from a 1024-entry table of the colour map (ends exact).
public struct OverlayFigure: Sendable {
    /// The map; any size, resized to the image.
    public var map: ScalarMap
    /// The photo (1, 3 or 4 channels; alpha ignored).
    public var image: Image8
    /// Colour map (default jet).
    public var colormap: Colormap
    /// Values mapped to the colour map's ends; nil uses the map's own minimum and maximum.
    public var valueRange: ClosedRange<Float>?
    /// Weight of the map colour; the image gets `1 - mapWeight`.
    public var mapWeight: Float = 0.8

    /// An overlay of `map` on `image`; other settings keep their defaults until changed.
    public init(map: ScalarMap, image: Image8, colormap: Colormap? = nil, valueRange: ClosedRange<Float>? = nil,
                mapWeight: Float = 0.8) throws {
        self.map = map
        self.image = image
        self.colormap = try colormap ?? Colormap.named("jet")
        self.valueRange = valueRange
        self.mapWeight = mapWeight
    }

    /// The blended image, RGB at the photo's size.
    public func render() throws -> Image8 {
        guard image.width > 0, image.height > 0, [1, 3, 4].contains(image.channels) else {
            throw RenderingError("overlay figure", "image must be non-empty with 1, 3 or 4 channels")
        }
        guard mapWeight >= 0 && mapWeight <= 1 else {
            throw RenderingError("overlay figure", "mapWeight must be in [0, 1], got \(mapWeight)")
        }
        let (lo, hi) = try resolveRange(valueRange, [map], name: "overlay figure")
        let lut = colormap.lookupTable(levels: 1024)
        let w = image.width, h = image.height, c = image.channels
        // Source coordinates of each output column/row (pixel centres aligned), as index and fraction.
        func taps(_ outSize: Int, _ inSize: Int) -> [(Int, Int, Float)] {
            (0..<outSize).map { i in
                let s = max(0, min(Double(inSize - 1), (Double(i) + 0.5) * Double(inSize) / Double(outSize) - 0.5))
                let k = Int(s)
                return (k, min(k + 1, inSize - 1), Float(s - Double(k)))
            }
        }
        let xs = taps(w, map.width), ys = taps(h, map.height)
        var out = [UInt8](repeating: 0, count: w * h * 3)
        let a = mapWeight, b = 1 - mapWeight, scale = 1 / (hi - lo)
        map.values.withUnsafeBufferPointer { v in
            image.pixels.withUnsafeBufferPointer { src in
                for y in 0..<h {
                    let (y0, y1, fy) = ys[y]
                    for x in 0..<w {
                        let (x0, x1, fx) = xs[x]
                        let top = v[y0 * map.width + x0] * (1 - fx) + v[y0 * map.width + x1] * fx
                        let bottom = v[y1 * map.width + x0] * (1 - fx) + v[y1 * map.width + x1] * fx
                        let t = min(max((top * (1 - fy) + bottom * fy - lo) * scale, 0), 1)
                        let entry = Int(t * 1023 + 0.5) * 3
                        let s = (y * w + x) * c
                        let o = (y * w + x) * 3
                        for k in 0..<3 {
                            let photo = Float(src[s + (c >= 3 ? k : 0)])
                            out[o + k] = UInt8(min(255, a * Float(lut[entry + k]) + b * photo + 0.5))
                        }
                    }
                }
            }
        }
        return Image8(width: w, height: h, channels: 3, pixels: out)
    }

    /// Renders and writes the overlay as PNG (atomically).
    public func write(to path: String, dpi: Int? = nil) throws {
        try PNGCodec.write(render(), to: path, dpi: dpi)
    }
}

/// The colour range for `maps`: the given range, or their extrema (widened when flat).
func resolveRange(_ given: ClosedRange<Float>?, _ maps: [ScalarMap], name: String) throws -> (Float, Float) {
    if let given {
        guard given.lowerBound.isFinite, given.upperBound.isFinite, given.upperBound > given.lowerBound else {
            throw RenderingError(name, "value range \(given) is empty or not finite",
                                 hint: "give vmin < vmax, or nil to use the data's range")
        }
        return (given.lowerBound, given.upperBound)
    }
    var lo = Float.infinity, hi = -Float.infinity
    for m in maps {
        let e = m.extrema
        lo = min(lo, e.min)
        hi = max(hi, e.max)
    }
    if hi > lo { return (lo, hi) }
    let pad = max(abs(lo) * 0.05, 0.5)
    return (lo - pad, hi + pad)
}

/// Layout and drawing shared by the single map and the row of maps.
private struct MapRowPlan {
    let panels: [(map: ScalarMap, title: String?)]
    let title: String?
    let colormap: Colormap
    let xLabel: String?
    let yLabel: String?
    let colorbarLabel: String?
    let style: FigureStyle
    let fonts: FigureFonts
    let ticks: AxisTicks
    let layout: HeatmapLayout
    /// Baseline positions of the texts.
    let titleAnchor: Point?
    let panelTitleY: Double

    init(panels: [(ScalarMap, String?)], title: String?, colormap: Colormap, valueRange: ClosedRange<Float>?,
         xLabel: String?, yLabel: String?, colorbarLabel: String?, panelSize: Int, style: FigureStyle,
         name: String) throws {
        try style.validate(name)
        guard panelSize >= 1 && panelSize <= 20000 else {
            throw RenderingError(name, "map size must be between 1 and 20000 pixels, got \(panelSize)")
        }
        self.panels = panels.map { (map: $0.0, title: $0.1) }
        self.title = title
        self.colormap = colormap
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.colorbarLabel = colorbarLabel
        self.style = style
        let fonts = try FigureFonts(style)
        self.fonts = fonts
        let (lo, hi) = try resolveRange(valueRange, panels.map(\.0), name: name)
        let ticks = AxisTicks.nice(lower: Double(lo), upper: Double(hi), target: 6)
        self.ticks = ticks

        let px = style.pixels
        let margin = px(style.margin).rounded()
        let frame = max(1, px(style.axisLineWidth).rounded())
        // Vertical stack: figure title, panel titles, maps, x label.
        var y = margin
        if title != nil { y += fonts.figureTitle.lineBox + px(8) }
        let hasPanelTitles = panels.contains { $0.1 != nil }
        let panelTitleBaseline = y + fonts.title.capHeight
        if hasPanelTitles { y += fonts.title.lineBox + px(5) }
        let mapTop = (y + frame).rounded()

        // Horizontal run: y label, maps with gaps wide enough for their titles, colour bar, tick labels.
        var x = margin
        if yLabel != nil { x += fonts.label.ascent + fonts.label.descent + px(4) }
        x = (x + frame).rounded()
        let scales = panels.map { max(1, (Double(panelSize) / Double(max($0.0.width, $0.0.height))).rounded(.up)) }
        let sizes = zip(panels, scales).map { (Double($0.0.width) * $1, Double($0.0.height) * $1) }
        let rowHeight = sizes.map(\.1).max() ?? 0
        let titleWidths = panels.map { $0.1.map { fonts.title.measure($0).width } ?? 0 }
        var rects: [Rect] = []
        for k in 0..<panels.count {
            if k > 0 {
                let needed = (titleWidths[k - 1] + titleWidths[k]) / 2 + px(8) - (sizes[k - 1].0 + sizes[k].0) / 2
                x += max(px(10), needed).rounded()
            }
            let top = mapTop + ((rowHeight - sizes[k].1) / 2).rounded()
            rects.append(Rect(x: x, y: top, width: sizes[k].0, height: sizes[k].1))
            x += sizes[k].0
        }
        let barLeft = (x + frame + px(10)).rounded()
        let barWidth = px(11).rounded()
        let bar = Rect(x: barLeft, y: mapTop, width: barWidth, height: rowHeight)
        let labelWidth = ticks.labels.map { fonts.tick.measure($0).width }.max() ?? 0
        var right = barLeft + barWidth + frame + px(style.tickLength) + px(3) + labelWidth
        if colorbarLabel != nil { right += px(6) + fonts.label.ascent + fonts.label.descent }
        right += margin
        var bottom = mapTop + rowHeight + frame
        if xLabel != nil { bottom += px(5) + fonts.label.lineBox }
        // Half the top and bottom tick labels stick out past the bar's ends.
        bottom = max(bottom, mapTop + rowHeight + fonts.tick.capHeight / 2 + 1) + margin

        // Widen the figure (centring the content) when the figure title is wider than the content.
        var width = right.rounded(.up)
        var shift = 0.0
        if let title {
            let needed = (fonts.figureTitle.measure(title).width + 2 * margin).rounded(.up)
            if needed > width {
                shift = ((needed - width) / 2).rounded()
                width = needed
            }
        }
        layout = HeatmapLayout(
            width: Int(width), height: Int(bottom.rounded(.up)),
            mapRects: rects.map { Rect(x: $0.x + shift, y: $0.y, width: $0.width, height: $0.height) },
            scales: scales.map { Int($0) },
            colorbarRect: Rect(x: bar.x + shift, y: bar.y, width: bar.width, height: bar.height),
            lower: lo, upper: hi)
        // A single panel centres the title over its map; a row centres it over the maps.
        if title != nil {
            let first = layout.mapRects[0], last = layout.mapRects[layout.mapRects.count - 1]
            var centre = (first.x + last.maxX) / 2
            let half = fonts.figureTitle.measure(title ?? "").width / 2
            centre = min(max(centre, margin + half), Double(layout.width) - margin - half)
            titleAnchor = Point(centre, margin + fonts.figureTitle.capHeight)
        } else {
            titleAnchor = nil
        }
        panelTitleY = panelTitleBaseline
    }

    func draw() -> Image8 {
        var canvas = Canvas(width: layout.width, height: layout.height, background: style.background)
        draw(on: &canvas)
        return canvas.image()
    }

    /// The figure as SVG.
    func svg() -> Data {
        var surface = SVGSurface(width: layout.width, height: layout.height, background: style.background, dpi: style.dpi)
        draw(on: &surface)
        return surface.data()
    }

    func draw(on canvas: inout some Surface) {
        let px = style.pixels
        let frame = max(1, px(style.axisLineWidth).rounded())
        let (lo, hi) = (layout.lower, layout.upper)
        let lut = colormap.lookupTable(levels: 4096)
        if let title, let titleAnchor {
            canvas.drawText(title, font: fonts.figureTitle, at: titleAnchor, horizontal: .center,
                            color: style.textColor)
        }
        for (k, panel) in panels.enumerated() {
            let rect = layout.mapRects[k]
            canvas.drawImage(colourise(panel.map, lower: lo, upper: hi), x: Int(rect.x), y: Int(rect.y),
                             scale: layout.scales[k])
            canvas.frame(rect, width: frame, color: style.axisColor)
            if let text = panel.title {
                canvas.drawText(text, font: fonts.title, at: Point(rect.midX, panelTitleY), horizontal: .center,
                                color: style.textColor)
            }
        }
        let maps = layout.mapRects
        let left = maps[0].x, right = maps[maps.count - 1].maxX
        let top = maps.map(\.y).min() ?? 0, bottom = maps.map(\.maxY).max() ?? 0
        if let xLabel {
            canvas.drawText(xLabel, font: fonts.label, at: Point((left + right) / 2, bottom + frame + px(5)),
                            horizontal: .center, vertical: .top, color: style.textColor)
        }
        if let yLabel {
            canvas.drawText(yLabel, font: fonts.label, at: Point(left - frame - px(4), (top + bottom) / 2),
                            horizontal: .center, vertical: .bottom, orientation: .upward, color: style.textColor)
        }
        drawColorbar(&canvas, lut: lut, frame: frame)
    }

    /// The map as an H x W RGB image, each value through the colour map.
    private func colourise(_ map: ScalarMap, lower: Float, upper: Float) -> Image8 {
        var out = [UInt8](repeating: 0, count: map.width * map.height * 3)
        let scale = 1 / (upper - lower)
        for (i, v) in map.values.enumerated() {
            (out[3 * i], out[3 * i + 1], out[3 * i + 2]) = colormap.map((v - lower) * scale)
        }
        return Image8(width: map.width, height: map.height, channels: 3, pixels: out)
    }

    private func drawColorbar(_ canvas: inout some Surface, lut: [UInt8], frame: Double) {
        let bar = layout.colorbarRect
        let rows = Int(bar.height), levels = lut.count / 3
        var strip = [UInt8](repeating: 0, count: rows * 3)
        for r in 0..<rows {
            let t = 1 - (Double(r) + 0.5) / Double(rows)
            let e = Int((t * Double(levels - 1)).rounded()) * 3
            strip[3 * r] = lut[e]
            strip[3 * r + 1] = lut[e + 1]
            strip[3 * r + 2] = lut[e + 2]
        }
        let column = Image8(width: 1, height: rows, channels: 3, pixels: strip)
        for x in 0..<Int(bar.width) {
            canvas.drawImage(column, x: Int(bar.x) + x, y: Int(bar.y))
        }
        canvas.frame(bar, width: frame, color: style.axisColor)
        let px = style.pixels
        let tickX = bar.maxX + frame
        let tickLength = px(style.tickLength)
        let span = Double(layout.upper - layout.lower)
        for (value, label) in zip(ticks.values, ticks.labels) {
            let y = bar.maxY - (value - Double(layout.lower)) / span * bar.height
            canvas.fill(Rect(x: tickX, y: y - frame / 2, width: tickLength, height: frame), color: style.axisColor)
            canvas.drawText(label, font: fonts.tick, at: Point(tickX + tickLength + px(3), y), vertical: .middle,
                            color: style.textColor)
        }
        if let colorbarLabel {
            let widest = ticks.labels.map { fonts.tick.measure($0).width }.max() ?? 0
            let x = tickX + tickLength + px(3) + widest + px(6)
            canvas.drawText(colorbarLabel, font: fonts.label, at: Point(x, bar.midY), horizontal: .center,
                            vertical: .top, orientation: .upward, color: style.textColor)
        }
    }
}
