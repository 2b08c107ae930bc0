// Rendering: the raster canvas every figure draws on, with anti-aliased primitives: filled rectangles
// (exact area coverage), stroked lines and polylines with width, caps, round joins and dash patterns,
// filled circles, plot markers and convex polygons, all alpha-blended. Coverage is estimated per pixel from
// the distance of the pixel centre to the shape's edge (a one-pixel box filter), which is exact for
// axis-aligned edges and very close elsewhere. Text drawing lives in Font.swift. Left out: general
// (non-convex) polygon filling, curves, clipping paths and gamma-correct blending (like Agg and matplotlib,
// blending happens on the stored sRGB values).
// Layout key: H height, W width; pixels are H x W x 3 Float RGB in [0, 1], row-major; x grows right, y down,
// pixel (i, j) covers [i, i+1) x [j, j+1) so its centre is (i + 0.5, j + 0.5).

import Imaging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An sRGB colour with components in [0, 1] and an opacity (`alpha`, 1 = opaque).
public struct Color: Sendable, Equatable {
    public var red: Float
    public var green: Float
    public var blue: Float
    public var alpha: Float

    /// A colour from components in [0, 1].
    public init(red: Float, green: Float, blue: Float, alpha: Float = 1) {
        self.red = red
        self.green = green
        self.blue = blue
        self.alpha = alpha
    }

    /// A colour from a 24-bit `0xRRGGBB` value.
    public init(hex: UInt32, alpha: Float = 1) {
        self.init(red: Float((hex >> 16) & 0xff) / 255, green: Float((hex >> 8) & 0xff) / 255,
                  blue: Float(hex & 0xff) / 255, alpha: alpha)
    }

    /// The same colour with a different opacity.
    public func withAlpha(_ alpha: Float) -> Color {
        Color(red: red, green: green, blue: blue, alpha: alpha)
    }

    public static let white = Color(red: 1, green: 1, blue: 1)
    public static let black = Color(red: 0, green: 0, blue: 0)
}

/// A position in canvas pixels (x right, y down); fractional values address sub-pixel positions.
public struct Point: Sendable, Equatable {
    public var x: Double
    public var y: Double

    public init(_ x: Double, _ y: Double) {
        self.x = x
        self.y = y
    }
}

/// An axis-aligned rectangle in canvas pixels.
public struct Rect: Sendable, Equatable {
    public var x: Double
    public var y: Double
    public var width: Double
    public var height: Double

    public init(x: Double, y: Double, width: Double, height: Double) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    public var maxX: Double { x + width }
    public var maxY: Double { y + height }
    public var midX: Double { x + width / 2 }
    public var midY: Double { y + height / 2 }
}

/// How an open line ends.
public enum LineCap: Sendable {
    /// Ends exactly at the end point.
    case butt
    /// A half disc around the end point.
    case round
    /// Extends half the line width past the end point.
    case square
}

/// Plot marker shapes, centred on the data point.
public enum Marker: Sendable, CaseIterable {
    case circle
    case square
    case triangle
    case diamond
}

/// A raster canvas with anti-aliased, alpha-blended drawing. Value type: copies are independent.
public struct Canvas {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// H x W x 3 RGB values in [0, 1].
    private(set) var rgb: [Float]
    /// When set, drawing only changes pixels whose centres lie inside this rectangle.
    public var clip: Rect?

    /// A canvas filled with an opaque `background`.
    public init(width: Int, height: Int, background: Color = .white) {
        self.width = max(0, width)
        self.height = max(0, height)
        rgb = [Float](repeating: 0, count: self.width * self.height * 3)
        for i in stride(from: 0, to: rgb.count, by: 3) {
            rgb[i] = background.red
            rgb[i + 1] = background.green
            rgb[i + 2] = background.blue
        }
    }

    /// The canvas as an 8-bit RGB image (values rounded to the nearest level).
    public func image() -> Image8 {
        var bytes = [UInt8](repeating: 0, count: rgb.count)
        rgb.withUnsafeBufferPointer { src in
            bytes.withUnsafeMutableBufferPointer { dst in
                for i in 0..<src.count {
                    dst[i] = UInt8(min(max(src[i], 0), 1) * 255 + 0.5)
                }
            }
        }
        return Image8(width: width, height: height, channels: 3, pixels: bytes)
    }

    // MARK: Filled shapes

    /// Fills `rect` with exact area coverage at its edges.
    public mutating func fill(_ rect: Rect, color: Color) {
        guard rect.width > 0, rect.height > 0, color.alpha > 0 else { return }
        let (cx0, cy0, cx1, cy1) = clipBounds()
        let x0 = max(cx0, pixel(rect.x, .down)), x1 = min(cx1, pixel(rect.maxX, .up))
        let y0 = max(cy0, pixel(rect.y, .down)), y1 = min(cy1, pixel(rect.maxY, .up))
        guard x0 < x1, y0 < y1 else { return }
        var columns = [Float](repeating: 0, count: x1 - x0)
        for i in x0..<x1 {
            columns[i - x0] = Float(min(Double(i + 1), rect.maxX) - max(Double(i), rect.x))
        }
        let w = width
        rgb.withUnsafeMutableBufferPointer { px in
            for j in y0..<y1 {
                let row = Float(min(Double(j + 1), rect.maxY) - max(Double(j), rect.y))
                for i in x0..<x1 {
                    Canvas.blend(px, (j * w + i) * 3, color, row * columns[i - x0])
                }
            }
        }
    }

    /// Fills the disc of `radius` around `center`.
    public mutating func fillCircle(center: Point, radius: Double, color: Color) {
        paint(bounds: (center.x - radius, center.y - radius, center.x + radius, center.y + radius),
              color: color) { x, y in
            let d = ((x - center.x) * (x - center.x) + (y - center.y) * (y - center.y)).squareRoot()
            return radius + 0.5 - d
        }
    }

    /// Fills a convex polygon whose vertices are listed in either winding order.
    public mutating func fillConvexPolygon(_ vertices: [Point], color: Color) {
        guard let edges = Canvas.outwardEdges(vertices) else { return }
        paint(bounds: Canvas.bounds(vertices, pad: 0), color: color) { x, y in
            0.5 - Canvas.signedDistance(x, y, edges)
        }
    }

    /// Draws a plot marker of overall `size` (pixels across) centred on `center`: filled with `fill`, and
    /// outlined with `edge` at `edgeWidth` when `edge` is given.
    public mutating func drawMarker(_ marker: Marker, at center: Point, size: Double, fill: Color,
                                    edge: Color? = nil, edgeWidth: Double = 1) {
        let r = size / 2
        if marker == .circle {
            fillCircle(center: center, radius: r, color: fill)
            if let edge {
                let half = edgeWidth / 2
                paint(bounds: (center.x - r - half, center.y - r - half, center.x + r + half, center.y + r + half),
                      color: edge) { x, y in
                    let d = ((x - center.x) * (x - center.x) + (y - center.y) * (y - center.y)).squareRoot()
                    return half + 0.5 - abs(d - r)
                }
            }
            return
        }
        let shape = Canvas.markerVertices(marker, center: center, radius: r)
        fillConvexPolygon(shape, color: fill)
        if let edge, let edges = Canvas.outwardEdges(shape) {
            let half = edgeWidth / 2
            paint(bounds: Canvas.bounds(shape, pad: half), color: edge) { x, y in
                half + 0.5 - abs(Canvas.signedDistance(x, y, edges))
            }
        }
    }

    /// Draws a frame `width` pixels thick just outside `rect` (axes spines; the inside stays untouched).
    public mutating func frame(_ rect: Rect, width: Double, color: Color) {
        fill(Rect(x: rect.x - width, y: rect.y - width, width: rect.width + 2 * width, height: width), color: color)
        fill(Rect(x: rect.x - width, y: rect.maxY, width: rect.width + 2 * width, height: width), color: color)
        fill(Rect(x: rect.x - width, y: rect.y, width: width, height: rect.height), color: color)
        fill(Rect(x: rect.maxX, y: rect.y, width: width, height: rect.height), color: color)
    }

    // MARK: Strokes

    /// Strokes the straight line from `start` to `end`.
    public mutating func strokeLine(from start: Point, to end: Point, width lineWidth: Double, color: Color,
                                    cap: LineCap = .butt, dash: [Double]? = nil) {
        strokePolyline([start, end], width: lineWidth, color: color, cap: cap, dash: dash)
    }

    /// Strokes a polyline of `width` pixels with round joins and `cap` at its two ends. `dash` alternates
    /// drawn and skipped lengths in pixels (e.g. `[6, 4]`, at least one pixel per cycle); each dash gets
    /// `cap` at both ends. Overlapping parts are covered once, so translucent lines do not darken at joins.
    public mutating func strokePolyline(_ points: [Point], width lineWidth: Double, color: Color,
                                        cap: LineCap = .round, dash: [Double]? = nil) {
        guard points.count >= 2, lineWidth > 0, lineWidth.isFinite, color.alpha > 0,
              points.allSatisfy({ $0.x.isFinite && $0.y.isFinite }) else { return }
        // Widths under a pixel are drawn one pixel wide at proportionally lower opacity.
        let half = max(lineWidth, 1) / 2
        let fade = Float(min(lineWidth, 1))
        // Only the parts within reach of the canvas are drawn; cut ends there stay out of sight.
        let reach = min(half + 4, 1e6)
        let view = (minX: -reach, minY: -reach, maxX: Double(width) + reach, maxY: Double(height) + reach)
        let pieces: [[Point]]
        if let dash, dash.count >= 2, dash.allSatisfy({ $0 >= 0 && $0.isFinite }), dash.reduce(0, +) >= 1 {
            pieces = Canvas.dashed(points, pattern: dash, view: view)
        } else {
            pieces = Canvas.visibleRuns(points, view: view)
        }
        guard !pieces.isEmpty else { return }
        var (minX, minY, maxX, maxY) = Canvas.bounds(pieces.flatMap { $0 }, pad: half + 1)
        minX = max(0, minX.rounded(.down)); minY = max(0, minY.rounded(.down))
        maxX = min(Double(width), maxX.rounded(.up)); maxY = min(Double(height), maxY.rounded(.up))
        guard minX < maxX, minY < maxY else { return }
        let ox = Int(minX), oy = Int(minY), mw = Int(maxX) - ox, mh = Int(maxY) - oy
        var mask = [Float](repeating: 0, count: mw * mh)
        mask.withUnsafeMutableBufferPointer { m in
            for piece in pieces where piece.count >= 2 {
                for s in 0..<(piece.count - 1) {
                    let startCap = s == 0 ? cap : .round
                    let endCap = s == piece.count - 2 ? cap : .round
                    Canvas.accumulateSegment(m, ox: ox, oy: oy, mw: mw, mh: mh, a: piece[s], b: piece[s + 1],
                                             half: half, startCap: startCap, endCap: endCap)
                }
            }
        }
        blendMask(mask, ox: ox, oy: oy, mw: mw, mh: mh, color: color, scale: fade)
    }

    // MARK: Images

    /// Copies `image` (1, 3 or 4 channels; alpha is ignored) with its top-left corner at (`x`, `y`),
    /// each source pixel becoming a `scale` x `scale` block (nearest-neighbour enlargement).
    public mutating func drawImage(_ image: Image8, x: Int, y: Int, scale: Int = 1) {
        guard scale >= 1, image.channels >= 1 else { return }
        let c = image.channels, w = width
        let ox = x, oy = y
        let (cx0, cy0, cx1, cy1) = clipBounds()
        image.pixels.withUnsafeBufferPointer { src in
            rgb.withUnsafeMutableBufferPointer { dst in
                for j in 0..<(image.height * scale) {
                    let cy = oy + j
                    guard cy >= cy0, cy < cy1 else { continue }
                    let sy = j / scale
                    for i in 0..<(image.width * scale) {
                        let cx = ox + i
                        guard cx >= cx0, cx < cx1 else { continue }
                        let s = (sy * image.width + i / scale) * c
                        let d = (cy * w + cx) * 3
                        if c >= 3 {
                            dst[d] = Float(src[s]) / 255
                            dst[d + 1] = Float(src[s + 1]) / 255
                            dst[d + 2] = Float(src[s + 2]) / 255
                        } else {
                            let v = Float(src[s]) / 255
                            dst[d] = v; dst[d + 1] = v; dst[d + 2] = v
                        }
                    }
                }
            }
        }
    }

    // MARK: Internals

    /// The pixel range drawing may change: the canvas, narrowed to `clip` when set (half-open bounds).
    func clipBounds() -> (Int, Int, Int, Int) {
        guard let clip, clip.x.isFinite, clip.y.isFinite, clip.width.isFinite, clip.height.isFinite else {
            return (0, 0, width, height)
        }
        let x0 = max(0, min(width, pixel(clip.x, .toNearestOrAwayFromZero))), x1 = max(x0, min(width, pixel(clip.maxX, .toNearestOrAwayFromZero)))
        let y0 = max(0, min(height, pixel(clip.y, .toNearestOrAwayFromZero))), y1 = max(y0, min(height, pixel(clip.maxY, .toNearestOrAwayFromZero)))
        return (x0, y0, x1, y1)
    }

    /// Blends `color` at `coverage` into the pixel whose red value sits at `index`.
    @inline(__always)
    static func blend(_ px: UnsafeMutableBufferPointer<Float>, _ index: Int, _ color: Color, _ coverage: Float) {
        let a = color.alpha * min(max(coverage, 0), 1)
        guard a > 0 else { return }
        px[index] += (color.red - px[index]) * a
        px[index + 1] += (color.green - px[index + 1]) * a
        px[index + 2] += (color.blue - px[index + 2]) * a
    }

    /// Blends `color` through a coverage mask whose top-left pixel is (`ox`, `oy`).
    mutating func blendMask(_ mask: [Float], ox: Int, oy: Int, mw: Int, mh: Int, color: Color, scale: Float = 1) {
        let w = width
        let (cx0, cy0, cx1, cy1) = clipBounds()
        mask.withUnsafeBufferPointer { m in
            rgb.withUnsafeMutableBufferPointer { px in
                for j in 0..<mh where oy + j >= cy0 && oy + j < cy1 {
                    for i in 0..<mw where ox + i >= cx0 && ox + i < cx1 {
                        let c = m[j * mw + i]
                        if c > 0 { Canvas.blend(px, ((oy + j) * w + ox + i) * 3, color, c * scale) }
                    }
                }
            }
        }
    }

    /// Blends `color` over the pixels of a bounding box, at the coverage `coverage(x, y)` returns for the
    /// pixel centre (values are clamped to [0, 1]).
    mutating func paint(bounds: (Double, Double, Double, Double), color: Color,
                        coverage: (Double, Double) -> Double) {
        guard color.alpha > 0, bounds.0.isFinite, bounds.1.isFinite, bounds.2.isFinite, bounds.3.isFinite
        else { return }
        let (cx0, cy0, cx1, cy1) = clipBounds()
        let x0 = max(cx0, pixel(bounds.0 - 1, .down)), x1 = min(cx1, pixel(bounds.2 + 1, .up))
        let y0 = max(cy0, pixel(bounds.1 - 1, .down)), y1 = min(cy1, pixel(bounds.3 + 1, .up))
        guard x0 < x1, y0 < y1 else { return }
        let w = width
        rgb.withUnsafeMutableBufferPointer { px in
            for j in y0..<y1 {
                for i in x0..<x1 {
                    let c = coverage(Double(i) + 0.5, Double(j) + 0.5)
                    if c > 0 { Canvas.blend(px, (j * w + i) * 3, color, Float(c)) }
                }
            }
        }
    }

    /// Raises the mask to the coverage of one stroked segment (max, so overlaps count once).
    private static func accumulateSegment(_ m: UnsafeMutableBufferPointer<Float>, ox: Int, oy: Int, mw: Int, mh: Int,
                                          a: Point, b: Point, half: Double, startCap: LineCap, endCap: LineCap) {
        let dx = b.x - a.x, dy = b.y - a.y
        let length = hypot(dx, dy)
        let ux = length > 0 ? dx / length : 1, uy = length > 0 ? dy / length : 0
        let reach = half + 1.5
        let i0 = max(ox, pixel(min(a.x, b.x) - reach, .down))
        let i1 = min(ox + mw, pixel(max(a.x, b.x) + reach, .up))
        let j0 = max(oy, pixel(min(a.y, b.y) - reach, .down))
        let j1 = min(oy + mh, pixel(max(a.y, b.y) + reach, .up))
        guard i0 < i1, j0 < j1 else { return }
        let startExtra = startCap == .square ? half : 0
        let endExtra = endCap == .square ? half : 0
        for j in j0..<j1 {
            let py = Double(j) + 0.5 - a.y
            for i in i0..<i1 {
                let px = Double(i) + 0.5 - a.x
                let t = px * ux + py * uy
                let n = abs(px * uy - py * ux)
                var c: Double
                if t < 0 && startCap == .round {
                    c = half + 0.5 - (t * t + n * n).squareRoot()
                } else if t > length && endCap == .round {
                    let te = t - length
                    c = half + 0.5 - (te * te + n * n).squareRoot()
                } else {
                    c = min(max(half + 0.5 - n, 0), 1)
                    if startCap != .round { c *= min(max(t + startExtra + 0.5, 0), 1) }
                    if endCap != .round { c *= min(max(length + endExtra - t + 0.5, 0), 1) }
                }
                if c > 0 {
                    let k = (j - oy) * mw + (i - ox)
                    let v = Float(min(c, 1))
                    if v > m[k] { m[k] = v }
                }
            }
        }
    }

    typealias View = (minX: Double, minY: Double, maxX: Double, maxY: Double)

    /// The part of segment a-b inside `view` as parameters (u0, u1) in [0, 1] (Liang-Barsky); nil if none.
    private static func clipSegment(_ a: Point, _ b: Point, _ view: View) -> (Double, Double)? {
        let dx = b.x - a.x, dy = b.y - a.y
        var u0 = 0.0, u1 = 1.0
        for (p, q) in [(-dx, a.x - view.minX), (dx, view.maxX - a.x), (-dy, a.y - view.minY), (dy, view.maxY - a.y)] {
            if p == 0 {
                if q < 0 { return nil }
            } else {
                let r = q / p
                if p < 0 { u0 = max(u0, r) } else { u1 = min(u1, r) }
            }
        }
        return u0 <= u1 ? (u0, u1) : nil
    }

    private static func along(_ a: Point, _ b: Point, _ u: Double) -> Point {
        Point(a.x + (b.x - a.x) * u, a.y + (b.y - a.y) * u)
    }

    /// The polyline cut to `view`: runs of consecutive visible segment parts.
    private static func visibleRuns(_ points: [Point], view: View) -> [[Point]] {
        var runs: [[Point]] = []
        var current: [Point] = []
        for s in 0..<(points.count - 1) {
            let a = points[s], b = points[s + 1]
            guard let (u0, u1) = clipSegment(a, b, view) else {
                if current.count >= 2 { runs.append(current) }
                current = []
                continue
            }
            if u0 > 0 || current.isEmpty {
                if current.count >= 2 { runs.append(current) }
                current = [along(a, b, u0)]
            }
            current.append(along(a, b, u1))
            if u1 < 1 {
                runs.append(current)
                current = []
            }
        }
        if current.count >= 2 { runs.append(current) }
        return runs
    }

    /// The drawn dashes of a polyline inside `view`. Invisible stretches are skipped arithmetically (whole
    /// pattern cycles at once), so the work is bounded by the visible length, not the polyline's.
    private static func dashed(_ points: [Point], pattern: [Double], view: View) -> [[Point]] {
        var pieces: [[Point]] = []
        var current: [Point] = []
        var index = 0
        var left = pattern[0]
        var on = true
        // A full cycle of entries that also restores the on/off state.
        let cycle = pattern.reduce(0, +) * (pattern.count % 2 == 0 ? 1 : 2)
        func flush() {
            if on && current.count >= 2 { pieces.append(current) }
            current = []
        }
        func next() {
            on.toggle()
            index = (index + 1) % pattern.count
            left = pattern[index]
        }
        func skip(_ distance: Double) {
            var d = distance
            guard d > left else {
                left -= d
                return
            }
            d -= left
            next()
            d = d.truncatingRemainder(dividingBy: cycle)
            while d > left {
                d -= left
                next()
            }
            left -= d
        }
        for s in 0..<(points.count - 1) {
            let a = points[s], b = points[s + 1]
            let length = hypot(b.x - a.x, b.y - a.y)
            guard length > 0, length.isFinite else { continue }
            guard let (u0, u1) = clipSegment(a, b, view) else {
                flush()
                skip(length)
                continue
            }
            var at = u0 * length
            let end = u1 * length
            if at > 0 {
                flush()
                skip(at)
            }
            if on && current.isEmpty { current = [along(a, b, at / length)] }
            while end - at > left {
                at += left
                let p = along(a, b, at / length)
                if on {
                    current.append(p)
                    pieces.append(current)
                    current = []
                } else {
                    current = [p]
                }
                next()
            }
            left -= end - at
            if on { current.append(along(a, b, u1)) }
            if u1 < 1 {
                flush()
                skip(length - end)
            }
        }
        flush()
        return pieces
    }

    /// Edges of a convex polygon as (vertex, outward unit normal); nil when degenerate.
    private static func outwardEdges(_ v: [Point]) -> [(Point, Double, Double)]? {
        guard v.count >= 3 else { return nil }
        var area = 0.0
        for k in 0..<v.count {
            let p = v[k], q = v[(k + 1) % v.count]
            area += p.x * q.y - q.x * p.y
        }
        guard area != 0, area.isFinite else { return nil }
        let sign = area > 0 ? 1.0 : -1.0
        var edges: [(Point, Double, Double)] = []
        for k in 0..<v.count {
            let p = v[k], q = v[(k + 1) % v.count]
            let ex = q.x - p.x, ey = q.y - p.y
            let len = (ex * ex + ey * ey).squareRoot()
            guard len > 0 else { continue }
            // With y down, a positive shoelace area is clockwise on screen; the outward normal is (ey, -ex).
            edges.append((p, sign * ey / len, -sign * ex / len))
        }
        return edges
    }

    /// Signed distance from (x, y) to a convex polygon (negative inside), exact away from corners.
    private static func signedDistance(_ x: Double, _ y: Double, _ edges: [(Point, Double, Double)]) -> Double {
        var d = -Double.infinity
        for (p, nx, ny) in edges {
            d = max(d, (x - p.x) * nx + (y - p.y) * ny)
        }
        return d
    }

    private static func bounds(_ points: [Point], pad: Double) -> (Double, Double, Double, Double) {
        var minX = Double.infinity, minY = Double.infinity, maxX = -Double.infinity, maxY = -Double.infinity
        for p in points {
            minX = min(minX, p.x); maxX = max(maxX, p.x)
            minY = min(minY, p.y); maxY = max(maxY, p.y)
        }
        return (minX - pad, minY - pad, maxX + pad, maxY + pad)
    }

    /// Vertices of the polygonal markers, sized so they look balanced next to a circle of `radius`.
    static func markerVertices(_ marker: Marker, center c: Point, radius r: Double) -> [Point] {
        switch marker {
        case .circle, .square:
            let s = r * 0.88
            return [Point(c.x - s, c.y - s), Point(c.x + s, c.y - s), Point(c.x + s, c.y + s), Point(c.x - s, c.y + s)]
        case .triangle:
            let s = r * 1.15
            return [Point(c.x, c.y - s), Point(c.x + s * 0.866, c.y + s * 0.5), Point(c.x - s * 0.866, c.y + s * 0.5)]
        case .diamond:
            let s = r * 1.15
            return [Point(c.x, c.y - s), Point(c.x + s * 0.8, c.y), Point(c.x, c.y + s), Point(c.x - s * 0.8, c.y)]
        }
    }
}

/// `v` rounded by `rule` to a pixel index, clamped to +-2^30 so absurd coordinates cannot overflow `Int`
/// (NaN gives 0; callers skip non-finite shapes before relying on the value).
func pixel(_ v: Double, _ rule: FloatingPointRoundingRule) -> Int {
    guard !v.isNaN else { return 0 }
    return Int(min(max(v.rounded(rule), -1_073_741_824), 1_073_741_824))
}
