// Rendering: the shared look of every figure: output resolution, font files and sizes (in points, turned
// into pixels through the dpi, as matplotlib does), line widths and the colours of text, axes and grid.
// Defaults follow matplotlib's classic paper look (white background, dark axes, light grey grid). Left out:
// per-element overrides beyond these fields and style sheets.

/// Resolution, fonts, sizes and colours shared by the figures. Sizes are in points (1/72 inch).
public struct FigureStyle: Sendable {
    /// Output resolution; also recorded in the PNG's pHYs chunk.
    public var dpi: Int = 200
    /// Regular text font file.
    public var fontPath: String = defaultFontPath
    /// Bold text font file (figure titles).
    public var boldFontPath: String = defaultBoldFontPath
    /// Tick labels.
    public var tickFontSize: Double = 9
    /// Axis titles and colour-bar labels.
    public var labelFontSize: Double = 10
    /// Panel titles.
    public var titleFontSize: Double = 11
    /// Overall figure title (bold).
    public var figureTitleFontSize: Double = 12.5
    /// Legend entries.
    public var legendFontSize: Double = 8.5
    /// Plot lines.
    public var lineWidth: Double = 1.75
    /// Axes frame and ticks.
    public var axisLineWidth: Double = 0.8
    /// Grid lines.
    public var gridLineWidth: Double = 0.6
    /// Marker size (across).
    public var markerSize: Double = 6
    /// Tick length (outwards).
    public var tickLength: Double = 3.5
    /// Space around the figure's content.
    public var margin: Double = 8
    /// Text colour.
    public var textColor = Color(hex: 0x1a1a1a)
    /// Axes frame and tick colour.
    public var axisColor = Color(hex: 0x262626)
    /// Grid colour.
    public var gridColor = Color(hex: 0xb8b8b8)
    /// Figure background.
    public var background = Color.white

    /// The default style.
    public init() {}

    /// `points` converted to pixels at this style's dpi.
    public func pixels(_ points: Double) -> Double {
        points * Double(dpi) / 72
    }

    /// Checks the fields a figure depends on, throwing a one-line error for impossible values.
    func validate(_ figure: String) throws {
        guard dpi >= 10 && dpi <= 2400 else {
            throw RenderingError(figure, "dpi must be between 10 and 2400, got \(dpi)")
        }
        let sizes = [tickFontSize, labelFontSize, titleFontSize, figureTitleFontSize, legendFontSize]
        guard sizes.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw RenderingError(figure, "font sizes must be positive")
        }
    }
}

/// The fonts one figure render needs, loaded at the style's sizes.
struct FigureFonts {
    let tick: Font
    let label: Font
    let title: Font
    let figureTitle: Font
    let legend: Font

    init(_ style: FigureStyle) throws {
        tick = try Font.load(path: style.fontPath, size: style.pixels(style.tickFontSize))
        label = try Font.load(path: style.fontPath, size: style.pixels(style.labelFontSize))
        title = try Font.load(path: style.fontPath, size: style.pixels(style.titleFontSize))
        figureTitle = try Font.load(path: style.boldFontPath, size: style.pixels(style.figureTitleFontSize))
        legend = try Font.load(path: style.fontPath, size: style.pixels(style.legendFontSize))
    }
}

extension Font {
    /// Height of one line of this font from cap top to descender, the box figures reserve for a label.
    var lineBox: Double { capHeight + descent }
}
