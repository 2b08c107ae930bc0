// Analysis: the detection pictures. `drawDetections` draws boxes with class names and scores on an
// image (one tab10 colour per class); `boxConsistencyFigure` is the box-consistency plot of
// `stm-analyze boxes` (AP against the scale, one line per model, in the invariance plot's style).
// Both take plain numbers, not the detector's types; running detectors and writing files are left out.

import Imaging
import Rendering

/// One box to draw: corners in the image's pixels, the caption above it and its colour index.
public struct DrawnBox: Sendable {
    public var x1: Double, y1: Double, x2: Double, y2: Double
    /// "person 0.87".
    public var caption: String
    /// Index into the tab10 cycle (the class label).
    public var colorIndex: Int

    /// A box with its caption and colour index.
    public init(x1: Double, y1: Double, x2: Double, y2: Double, caption: String, colorIndex: Int) {
        self.x1 = x1
        self.y1 = y1
        self.x2 = x2
        self.y2 = y2
        self.caption = caption
        self.colorIndex = colorIndex
    }
}

/// `image` with each box framed and its caption on a filled label at its top-left corner (inside
/// the image). Boxes are drawn in the given order, so pass the highest score last to keep it on top.
public func drawDetections(_ image: Image8, boxes: [DrawnBox]) throws -> Image8 {
    var canvas = Canvas(width: image.width, height: image.height)
    canvas.drawImage(image, x: 0, y: 0)
    let side = Double(min(image.width, image.height))
    let font = try Font.load(size: max(9, side / 45))
    let line = max(1.5, side / 300)
    for b in boxes {
        let color = Palette.color(b.colorIndex)
        canvas.frame(Rect(x: b.x1, y: b.y1, width: max(b.x2 - b.x1, 1), height: max(b.y2 - b.y1, 1)), width: line, color: color)
        let extent = font.measure(b.caption)
        let h = font.ascent + font.descent + 2
        let top = max(0, b.y1 - h)
        let left = min(max(0, b.x1), max(0, Double(image.width) - extent.width - 4))
        canvas.fill(Rect(x: left, y: top, width: extent.width + 4, height: h), color: color.withAlpha(0.85))
        canvas.drawText(b.caption, font: font, at: Point(left + 2, top + 1 + font.ascent), color: .white)
    }
    return canvas.image()
}

/// The box-consistency plot: for each model, AP (%) against the scale.
/// - Parameters:
///   - scales: the x values.
///   - series: (model name, AP in 0...1 per scale; -1 where undefined).
///   - title: the figure title.
///   - yLabel: the axis title.
public func boxConsistencyFigure(scales: [Double], series: [(String, [Double])], title: String,
                                 yLabel: String = "box-consistency AP (%)") -> LinePlotFigure {
    let lines = series.map { name, ap in Series(label: name, x: scales, y: ap.map { $0 < 0 ? .nan : 100 * $0 }) }
    var panel = PlotPanel(title: "COCO box AP against the scale-1 detections", xLabel: "scale (times the test scale)",
                          yLabel: yLabel, series: lines)
    var figure = LinePlotFigure(title: title, panels: [])
    let size = invarianceFigureSize(panels: 1)
    figure.width = size.width
    figure.height = size.height
    let band = legendShare(entries: series.count, style: figure.style, height: figure.height)
    (panel.yRange, panel.yTicks) = percentAxis(lines, freeBelow: band)
    let sorted = scales.sorted()
    panel.xTicks = sorted.count <= 12 ? sorted : nil
    if let lo = sorted.first, let hi = sorted.last, hi > lo {
        let pad = (hi - lo) * 0.04
        panel.xRange = (lo - pad)...(hi + pad)
    }
    figure.panels = [panel]
    return figure
}
