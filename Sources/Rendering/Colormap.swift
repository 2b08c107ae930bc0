// Rendering: colour maps (scalar in [0, 1] -> RGB) looked up by name, with matplotlib's data
// (ColormapData.swift), and the tab10 qualitative palette for plot series. Maps interpolate linearly between
// their table entries or breakpoints; a `_r` suffix reverses a map. Left out: matplotlib's under/over/bad
// colours (values are clamped to [0, 1] and NaN maps like 0), normalisations other than linear, and
// colour maps not listed in `Colormap.names`.
// Layout key: tables are N x 3 (r, g, b) entries evenly spaced on [0, 1].

/// A continuous colour map from [0, 1] to sRGB.
public struct Colormap: Sendable {
    /// The name it was looked up by, in canonical spelling (e.g. `"RdYlGn_r"`).
    public let name: String
    private let storage: Storage

    private enum Storage: Sendable {
        /// N x 3 entries evenly spaced on [0, 1], flattened.
        case table([Float])
        /// Per-channel breakpoints (x ascending from 0 to 1, value).
        case breakpoints([[(x: Float, y: Float)]])
    }

    private init(name: String, storage: Storage) {
        self.name = name
        self.storage = storage
    }

    /// The names `named(_:)` accepts (case-insensitively), each also with a `_r` suffix for the reverse.
    public static let names = ["viridis", "magma", "inferno", "plasma", "cividis", "turbo", "jet", "gray",
                               "RdYlGn", "RdBu"]

    /// matplotlib's default map.
    public static let viridis = Colormap(name: "viridis", storage: .table(ColormapData.viridis))

    /// Looks a map up by case-insensitive name (`"viridis"`, `"rdylgn"`, `"jet_r"`, ...); `"grey"` is
    /// accepted for `"gray"`. Unknown names throw an error listing the known ones.
    public static func named(_ requested: String) throws -> Colormap {
        var key = requested.lowercased()
        var reverse = false
        if key.hasSuffix("_r") {
            reverse = true
            key.removeLast(2)
        }
        if key == "grey" { key = "gray" }
        guard let canonical = names.first(where: { $0.lowercased() == key }) else {
            throw RenderingError("colour map '\(requested)'", "unknown name",
                                 hint: "known maps: \(names.joined(separator: ", ")) (add _r to reverse)")
        }
        let map = Colormap(name: canonical, storage: storage(for: canonical))
        return reverse ? map.reversed() : map
    }

    private static func storage(for canonical: String) -> Storage {
        switch canonical {
        case "magma": return .table(ColormapData.magma)
        case "inferno": return .table(ColormapData.inferno)
        case "plasma": return .table(ColormapData.plasma)
        case "cividis": return .table(ColormapData.cividis)
        case "turbo": return .table(ColormapData.turbo)
        case "jet": return .breakpoints(ColormapData.jet)
        case "gray": return .table([0, 0, 0, 1, 1, 1])
        case "RdYlGn": return .table(ColormapData.RdYlGn)
        case "RdBu": return .table(ColormapData.RdBu)
        default: return .table(ColormapData.viridis)
        }
    }

    /// The same map run from 1 to 0, named with a `_r` suffix (reversing twice restores the original).
    public func reversed() -> Colormap {
        let flipped = name.hasSuffix("_r") ? String(name.dropLast(2)) : name + "_r"
        switch storage {
        case .table(let t):
            let n = t.count / 3
            var r = [Float](repeating: 0, count: t.count)
            for k in 0..<n {
                r[3 * k] = t[3 * (n - 1 - k)]
                r[3 * k + 1] = t[3 * (n - 1 - k) + 1]
                r[3 * k + 2] = t[3 * (n - 1 - k) + 2]
            }
            return Colormap(name: flipped, storage: .table(r))
        case .breakpoints(let channels):
            return Colormap(name: flipped, storage: .breakpoints(channels.map { points in
                points.reversed().map { (x: 1 - $0.x, y: $0.y) }
            }))
        }
    }

    /// The colour at `t` (clamped to [0, 1]; NaN counts as 0), components in [0, 1].
    public func color(at t: Float) -> Color {
        let u = t.isNaN ? 0 : min(max(t, 0), 1)
        switch storage {
        case .table(let table):
            let n = table.count / 3
            let position = u * Float(n - 1)
            let k = min(Int(position), n - 2)
            let f = position - Float(k)
            let a = 3 * k, b = 3 * (k + 1)
            return Color(red: table[a] + (table[b] - table[a]) * f,
                         green: table[a + 1] + (table[b + 1] - table[a + 1]) * f,
                         blue: table[a + 2] + (table[b + 2] - table[a + 2]) * f)
        case .breakpoints(let channels):
            return Color(red: Colormap.evaluate(channels[0], u), green: Colormap.evaluate(channels[1], u),
                         blue: Colormap.evaluate(channels[2], u))
        }
    }

    /// The colour at `t` as 8-bit RGB, each component rounded to the nearest level.
    public func map(_ t: Float) -> (UInt8, UInt8, UInt8) {
        let c = color(at: t)
        return (Colormap.byte(c.red), Colormap.byte(c.green), Colormap.byte(c.blue))
    }

    /// 8-bit RGB colours for `levels` evenly spaced values from 0 to 1 (a lookup table for fast mapping).
    public func lookupTable(levels: Int) -> [UInt8] {
        let n = max(2, levels)
        var out = [UInt8](repeating: 0, count: n * 3)
        for k in 0..<n {
            let (r, g, b) = map(Float(k) / Float(n - 1))
            out[3 * k] = r
            out[3 * k + 1] = g
            out[3 * k + 2] = b
        }
        return out
    }

    static func byte(_ v: Float) -> UInt8 {
        UInt8(min(max(v, 0), 1) * 255 + 0.5)
    }

    private static func evaluate(_ points: [(x: Float, y: Float)], _ u: Float) -> Float {
        var k = 1
        while k < points.count - 1 && points[k].x < u { k += 1 }
        let p = points[k - 1], q = points[k]
        let span = q.x - p.x
        return span > 0 ? p.y + (q.y - p.y) * (u - p.x) / span : q.y
    }
}

/// Qualitative colours for plot series.
public enum Palette {
    /// matplotlib's tab10 cycle, in order.
    public static let tab10: [Color] = (0..<10).map { k in
        Color(red: ColormapData.tab10[3 * k], green: ColormapData.tab10[3 * k + 1], blue: ColormapData.tab10[3 * k + 2])
    }

    /// The `index`-th series colour, cycling through tab10.
    public static func color(_ index: Int) -> Color {
        tab10[((index % tab10.count) + tab10.count) % tab10.count]
    }
}
