// Rendering: what figures draw on. `Surface` is the drawing vocabulary the figures use (filled
// rectangles, discs and convex polygons, bands, markers, strokes, images, text); `Canvas` draws it
// into pixels for PNG, `SVGSurface` writes it as SVG elements for vector output (papers): shapes,
// strokes and text stay vectors (text as <text> in DejaVu Sans, placed with the same FreeType metrics
// as the raster text, so both outputs share one layout), raster content such as a heatmap is embedded
// as a PNG image, as matplotlib does.

import Foundation
import Imaging

/// A drawing target for figures. Coordinates are in pixels of the figure, y down.
public protocol Surface {
    var width: Int { get }
    var height: Int { get }
    /// When set, drawing is limited to this rectangle.
    var clip: Rect? { get set }
    mutating func fill(_ rect: Rect, color: Color)
    mutating func fillCircle(center: Point, radius: Double, color: Color)
    mutating func fillConvexPolygon(_ vertices: [Point], color: Color)
    /// Fills the region between two curves sampled at the same x positions (a confidence band).
    mutating func fillBand(upper: [Point], lower: [Point], color: Color)
    mutating func drawMarker(_ marker: Marker, at center: Point, size: Double, fill: Color, edge: Color?, edgeWidth: Double)
    mutating func frame(_ rect: Rect, width: Double, color: Color)
    mutating func strokeLine(from start: Point, to end: Point, width lineWidth: Double, color: Color, cap: LineCap, dash: [Double]?)
    mutating func strokePolyline(_ points: [Point], width lineWidth: Double, color: Color, cap: LineCap, dash: [Double]?)
    mutating func drawImage(_ image: Image8, x: Int, y: Int, scale: Int)
    mutating func drawText(_ text: String, font: Font, at anchor: Point, horizontal: HorizontalAlignment,
                           vertical: VerticalAlignment, orientation: TextOrientation, color: Color)
}

extension Surface {
    /// Strokes a line with butt caps and no dash.
    public mutating func strokeLine(from start: Point, to end: Point, width lineWidth: Double, color: Color) {
        strokeLine(from: start, to: end, width: lineWidth, color: color, cap: .butt, dash: nil)
    }

    /// Strokes a line with the given cap and no dash.
    public mutating func strokeLine(from start: Point, to end: Point, width lineWidth: Double, color: Color, cap: LineCap) {
        strokeLine(from: start, to: end, width: lineWidth, color: color, cap: cap, dash: nil)
    }

    /// Strokes a line with butt caps and the given dash.
    public mutating func strokeLine(from start: Point, to end: Point, width lineWidth: Double, color: Color, dash: [Double]?) {
        strokeLine(from: start, to: end, width: lineWidth, color: color, cap: .butt, dash: dash)
    }

    /// Strokes a polyline with round caps and no dash.
    public mutating func strokePolyline(_ points: [Point], width lineWidth: Double, color: Color) {
        strokePolyline(points, width: lineWidth, color: color, cap: .round, dash: nil)
    }

    /// Draws a marker without an edge.
    public mutating func drawMarker(_ marker: Marker, at center: Point, size: Double, fill: Color) {
        drawMarker(marker, at: center, size: size, fill: fill, edge: nil, edgeWidth: 1)
    }

    /// Draws an image at its own scale.
    public mutating func drawImage(_ image: Image8, x: Int, y: Int) { drawImage(image, x: x, y: y, scale: 1) }

    /// Draws horizontal text, anchored as given.
    public mutating func drawText(_ text: String, font: Font, at anchor: Point, horizontal: HorizontalAlignment = .left,
                                  vertical: VerticalAlignment = .baseline, color: Color = .black) {
        drawText(text, font: font, at: anchor, horizontal: horizontal, vertical: vertical, orientation: .horizontal, color: color)
    }
}

extension Canvas: Surface {
    /// The band as one convex quadrilateral per step (coverage is exact at the shared edges, so a
    /// translucent band shows no seams worth seeing).
    public mutating func fillBand(upper: [Point], lower: [Point], color: Color) {
        let n = min(upper.count, lower.count)
        guard n >= 2 else { return }
        for i in 0..<(n - 1) {
            fillConvexPolygon([upper[i], upper[i + 1], lower[i + 1], lower[i]], color: color)
        }
    }
}

/// A figure drawn as SVG: the same calls as a Canvas, written as vector elements.
public struct SVGSurface: Surface {
    public let width: Int
    public let height: Int
    public var clip: Rect? {
        didSet { clipID = nil }
    }
    /// The dpi the pixel sizes were laid out for; the SVG's physical size is width / dpi inches.
    public var dpi: Int
    private var body: [String] = []
    private var defs: [String] = []
    private var clipID: String?

    /// An empty SVG of `width` x `height` pixels filled with `background`.
    public init(width: Int, height: Int, background: Color = .white, dpi: Int = 200) {
        self.width = width
        self.height = height
        self.dpi = dpi
        body.append("<rect x=\"0\" y=\"0\" width=\"\(width)\" height=\"\(height)\" \(Self.paint("fill", background))/>")
    }

    /// The SVG document.
    public func document() -> String {
        let inches = { (px: Int) in Self.num(Double(px) / Double(max(dpi, 1))) }
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" version=\"1.1\" "
        out += "width=\"\(inches(width))in\" height=\"\(inches(height))in\" viewBox=\"0 0 \(width) \(height)\">\n"
        if !defs.isEmpty { out += "<defs>\n" + defs.joined(separator: "\n") + "\n</defs>\n" }
        out += body.joined(separator: "\n") + "\n</svg>\n"
        return out
    }

    /// The SVG's bytes.
    public func data() -> Data { Data(document().utf8) }

    public mutating func fill(_ rect: Rect, color: Color) {
        guard rect.width > 0, rect.height > 0, color.alpha > 0 else { return }
        add("<rect x=\"\(Self.num(rect.x))\" y=\"\(Self.num(rect.y))\" width=\"\(Self.num(rect.width))\" height=\"\(Self.num(rect.height))\" \(Self.paint("fill", color))/>")
    }

    public mutating func fillCircle(center: Point, radius: Double, color: Color) {
        add("<circle cx=\"\(Self.num(center.x))\" cy=\"\(Self.num(center.y))\" r=\"\(Self.num(radius))\" \(Self.paint("fill", color))/>")
    }

    public mutating func fillConvexPolygon(_ vertices: [Point], color: Color) {
        guard vertices.count >= 3 else { return }
        add("<polygon points=\"\(Self.points(vertices))\" \(Self.paint("fill", color))/>")
    }

    public mutating func fillBand(upper: [Point], lower: [Point], color: Color) {
        guard upper.count >= 2, lower.count >= 2 else { return }
        add("<polygon points=\"\(Self.points(upper + lower.reversed()))\" \(Self.paint("fill", color))/>")
    }

    public mutating func drawMarker(_ marker: Marker, at center: Point, size: Double, fill: Color, edge: Color?, edgeWidth: Double) {
        let stroke = edge.map { " " + Self.paint("stroke", $0) + " stroke-width=\"\(Self.num(edgeWidth))\"" } ?? ""
        if marker == .circle {
            add("<circle cx=\"\(Self.num(center.x))\" cy=\"\(Self.num(center.y))\" r=\"\(Self.num(size / 2))\" \(Self.paint("fill", fill))\(stroke)/>")
        } else {
            add("<polygon points=\"\(Self.points(Canvas.markerVertices(marker, center: center, radius: size / 2)))\" \(Self.paint("fill", fill))\(stroke)/>")
        }
    }

    public mutating func frame(_ rect: Rect, width: Double, color: Color) {
        // The raster frame is drawn outside the rectangle; the stroke is centred on a rectangle grown by half its width.
        let h = width / 2
        add("<rect x=\"\(Self.num(rect.x - h))\" y=\"\(Self.num(rect.y - h))\" width=\"\(Self.num(rect.width + width))\" height=\"\(Self.num(rect.height + width))\" fill=\"none\" \(Self.paint("stroke", color)) stroke-width=\"\(Self.num(width))\"/>")
    }

    public mutating func strokeLine(from start: Point, to end: Point, width lineWidth: Double, color: Color, cap: LineCap, dash: [Double]?) {
        strokePolyline([start, end], width: lineWidth, color: color, cap: cap, dash: dash)
    }

    public mutating func strokePolyline(_ points: [Point], width lineWidth: Double, color: Color, cap: LineCap, dash: [Double]?) {
        guard points.count >= 2, lineWidth > 0 else { return }
        let capName: String
        switch cap {
        case .butt: capName = "butt"
        case .round: capName = "round"
        case .square: capName = "square"
        }
        let dashText = dash.map { " stroke-dasharray=\"\($0.map(Self.num).joined(separator: " "))\"" } ?? ""
        add("<polyline points=\"\(Self.points(points))\" fill=\"none\" \(Self.paint("stroke", color)) stroke-width=\"\(Self.num(lineWidth))\" stroke-linecap=\"\(capName)\" stroke-linejoin=\"round\"\(dashText)/>")
    }

    public mutating func drawImage(_ image: Image8, x: Int, y: Int, scale: Int) {
        guard let png = try? PNGCodec.encode(image) else { return }
        add("<image x=\"\(x)\" y=\"\(y)\" width=\"\(image.width * scale)\" height=\"\(image.height * scale)\" preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\" xlink:href=\"data:image/png;base64,\(Data(png).base64EncodedString())\"/>")
    }

    public mutating func drawText(_ text: String, font: Font, at anchor: Point, horizontal: HorizontalAlignment,
                                  vertical: VerticalAlignment, orientation: TextOrientation, color: Color) {
        guard abs(anchor.x) < 1e9, abs(anchor.y) < 1e9, !text.isEmpty else { return }
        let anchorName: String
        switch horizontal {
        case .left: anchorName = "start"
        case .center: anchorName = "middle"
        case .right: anchorName = "end"
        }
        let across: Double
        switch vertical {
        case .top: across = font.capHeight
        case .middle: across = font.capHeight / 2
        case .baseline: across = 0
        case .bottom: across = -font.descent
        }
        let weight = font.path.lowercased().contains("bold") ? " font-weight=\"bold\"" : ""
        let common = "font-family=\"DejaVu Sans, Verdana, sans-serif\" font-size=\"\(Self.num(font.size))\"\(weight) text-anchor=\"\(anchorName)\" \(Self.paint("fill", color))"
        switch orientation {
        case .horizontal:
            add("<text x=\"\(Self.num(anchor.x))\" y=\"\(Self.num(anchor.y + across))\" \(common)>\(Self.escape(text))</text>")
        case .upward:
            // Rotated about the anchor; the baseline sits `across` to the right of it (the text's "down").
            let x = anchor.x + across, y = anchor.y
            add("<text x=\"\(Self.num(x))\" y=\"\(Self.num(y))\" transform=\"rotate(-90 \(Self.num(x)) \(Self.num(y)))\" \(common)>\(Self.escape(text))</text>")
        }
    }

    private mutating func add(_ element: String) {
        guard let clip else { body.append(element); return }
        if clipID == nil {
            let id = "clip\(defs.count)"
            defs.append("<clipPath id=\"\(id)\"><rect x=\"\(Self.num(clip.x))\" y=\"\(Self.num(clip.y))\" width=\"\(Self.num(clip.width))\" height=\"\(Self.num(clip.height))\"/></clipPath>")
            clipID = id
        }
        body.append("<g clip-path=\"url(#\(clipID!))\">\(element)</g>")
    }

    /// A number with at most 3 decimals, no trailing zeros.
    static func num(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        var s = String(format: "%.3f", v)
        while s.contains(".") && (s.hasSuffix("0") || s.hasSuffix(".")) { s.removeLast() }
        return s == "-0" ? "0" : s
    }

    static func points(_ p: [Point]) -> String { p.map { "\(num($0.x)),\(num($0.y))" }.joined(separator: " ") }

    static func paint(_ attribute: String, _ c: Color) -> String {
        let r = Int((min(max(c.red, 0), 1) * 255).rounded()), g = Int((min(max(c.green, 0), 1) * 255).rounded()),
            b = Int((min(max(c.blue, 0), 1) * 255).rounded())
        let base = "\(attribute)=\"#\(String(format: "%02x%02x%02x", r, g, b))\""
        return c.alpha < 1 ? base + " \(attribute)-opacity=\"\(num(Double(c.alpha)))\"" : base
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
