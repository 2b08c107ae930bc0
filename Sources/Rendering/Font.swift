// Rendering: text through FreeType. `Font` opens one face at one pixel size and lays out single-line
// strings with the font's advances and kerning (kern table) at quarter-pixel horizontal positions, each
// glyph rasterised with grey-level anti-aliasing and light (vertical-only) hinting. `Canvas.drawText` places
// a string by an anchor point and alignment, horizontally or rotated 90 degrees counter-clockwise (reading
// upwards, for y-axis titles). Left out: line breaking, bidirectional text, OpenType shaping (GPOS
// kerning, ligatures), font fallback for characters the face lacks (they show the face's missing-glyph box)
// and arbitrary rotation angles.
// Layout key: a text mask is H x W coverage bytes (0 = none, 255 = full), row-major, y down.

import CFreeType

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The default regular font (Debian package fonts-dejavu-core).
public let defaultFontPath = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
/// The default bold font (Debian package fonts-dejavu-core).
public let defaultBoldFontPath = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

/// Horizontal extent and font-level vertical metrics of a laid-out string, in pixels.
public struct TextExtent: Sendable, Equatable {
    /// Advance width: from the pen's start to its end, kerning included.
    public var width: Double
    /// Font ascender above the baseline.
    public var ascent: Double
    /// Font descender below the baseline (positive).
    public var descent: Double
}

/// One font face at one pixel size. Not thread-safe: use one `Font` per thread (figures load their own).
public final class Font {
    /// The font file.
    public let path: String
    /// Size in pixels per em.
    public let size: Double
    /// Ascender above the baseline, in pixels.
    public let ascent: Double
    /// Descender below the baseline, in pixels (positive).
    public let descent: Double
    /// Height of a capital letter (the glyph "H") above the baseline, in pixels.
    public let capHeight: Double

    private let library: FT_Library
    private let face: FT_Face
    private let kerning: Bool
    private var glyphs: [UInt64: Glyph] = [:]

    /// Quarter-pixel horizontal positioning.
    private static let phases = 4

    private struct Glyph {
        var left: Int
        var top: Int
        var width: Int
        var rows: Int
        var coverage: [UInt8]
        var advance: Double
    }

    private init(path: String, size: Double, library: FT_Library, face: FT_Face) {
        self.path = path
        self.size = size
        self.library = library
        self.face = face
        kerning = stm_ft_has_kerning(face) != 0
        let metrics = face.pointee.size.pointee.metrics
        ascent = Double(metrics.ascender) / 64
        descent = -Double(metrics.descender) / 64
        if FT_Load_Char(face, 0x48, FT_Int32(FT_LOAD_DEFAULT)) == 0 {
            capHeight = Double(face.pointee.glyph.pointee.metrics.horiBearingY) / 64
        } else {
            capHeight = size * 0.73
        }
    }

    deinit {
        FT_Done_Face(face)
        FT_Done_FreeType(library)
    }

    /// Opens the font file at `path` at `size` pixels per em. A missing file throws an error naming the
    /// path with the hint to install fonts-dejavu-core.
    public static func load(path: String = defaultFontPath, size: Double) throws -> Font {
        guard size.isFinite, size >= 1, size <= 2000 else {
            throw RenderingError(path, "font size must be between 1 and 2000 pixels, got \(size)")
        }
        guard access(path, R_OK) == 0 else {
            throw RenderingError(path, "font file not found or not readable",
                                 hint: "apt-get install fonts-dejavu-core")
        }
        var library: FT_Library?
        guard FT_Init_FreeType(&library) == 0, let library else {
            throw RenderingError(path, "FreeType could not be initialised")
        }
        var face: FT_Face?
        let opened = FT_New_Face(library, path, 0, &face)
        guard opened == 0, let face else {
            FT_Done_FreeType(library)
            throw RenderingError(path, "not a font FreeType can read (FreeType error \(opened))",
                                 hint: "apt-get install --reinstall fonts-dejavu-core")
        }
        guard FT_Set_Char_Size(face, 0, FT_F26Dot6((size * 64).rounded()), 72, 72) == 0 else {
            FT_Done_Face(face)
            FT_Done_FreeType(library)
            throw RenderingError(path, "font cannot be scaled to \(size) pixels")
        }
        return Font(path: path, size: size, library: library, face: face)
    }

    /// The advance width and font metrics of `text` laid out on one line.
    public func measure(_ text: String) -> TextExtent {
        var pen = 0.0
        var previous: FT_UInt = 0
        for scalar in text.unicodeScalars where !Font.isControl(scalar) {
            let index = FT_Get_Char_Index(face, FT_ULong(scalar.value))
            pen += kern(previous, index)
            pen += glyph(index, phase: 0)?.advance ?? 0
            previous = index
        }
        return TextExtent(width: pen, ascent: ascent, descent: descent)
    }

    /// Rasterises `text` with its pen starting `penOffset` pixels (in [0, 1)) right of the mask origin.
    /// Returns the coverage mask and where its top-left pixel sits relative to (pen start, baseline).
    func rasterize(_ text: String, penOffset: Double) -> TextMask {
        var placed: [(x: Int, y: Int, glyph: Glyph)] = []
        var pen = penOffset
        var previous: FT_UInt = 0
        var minX = Int.max, minY = Int.max, maxX = Int.min, maxY = Int.min
        for scalar in text.unicodeScalars where !Font.isControl(scalar) {
            let index = FT_Get_Char_Index(face, FT_ULong(scalar.value))
            pen += kern(previous, index)
            previous = index
            let whole = pen.rounded(.down)
            let phase = min(Font.phases - 1, Int((pen - whole) * Double(Font.phases)))
            guard let g = glyph(index, phase: phase) else { continue }
            if g.width > 0 && g.rows > 0 {
                let x = Int(whole) + g.left, y = -g.top
                placed.append((x, y, g))
                minX = min(minX, x); maxX = max(maxX, x + g.width)
                minY = min(minY, y); maxY = max(maxY, y + g.rows)
            }
            pen += g.advance
        }
        guard !placed.isEmpty else { return TextMask(width: 0, height: 0, left: 0, top: 0, coverage: []) }
        let w = maxX - minX, h = maxY - minY
        var coverage = [UInt8](repeating: 0, count: w * h)
        for (x, y, g) in placed {
            for r in 0..<g.rows {
                let row = (y - minY + r) * w + (x - minX)
                for c in 0..<g.width {
                    let v = g.coverage[r * g.width + c]
                    // Overlapping glyph edges add up, saturating, like Agg's accumulation.
                    coverage[row + c] = UInt8(min(255, Int(coverage[row + c]) + Int(v)))
                }
            }
        }
        return TextMask(width: w, height: h, left: minX, top: minY, coverage: coverage)
    }

    private func kern(_ left: FT_UInt, _ right: FT_UInt) -> Double {
        guard kerning, left != 0, right != 0 else { return 0 }
        var delta = FT_Vector(x: 0, y: 0)
        guard FT_Get_Kerning(face, left, right, FT_UInt(FT_KERNING_UNFITTED.rawValue), &delta) == 0 else { return 0 }
        return Double(delta.x) / 64
    }

    /// The rendered glyph at a quarter-pixel `phase`, cached; nil when FreeType cannot load it.
    private func glyph(_ index: FT_UInt, phase: Int) -> Glyph? {
        let key = UInt64(index) * UInt64(Font.phases) + UInt64(phase)
        if let cached = glyphs[key] { return cached }
        var shift = FT_Vector(x: FT_Pos(phase * 64 / Font.phases), y: 0)
        FT_Set_Transform(face, nil, &shift)
        defer { FT_Set_Transform(face, nil, nil) }
        guard FT_Load_Glyph(face, index, stm_ft_load_flags_light_render()) == 0 else { return nil }
        let slot = face.pointee.glyph.pointee
        let bitmap = slot.bitmap
        let width = Int(bitmap.width), rows = Int(bitmap.rows)
        var coverage = [UInt8](repeating: 0, count: width * rows)
        if let buffer = bitmap.buffer, width > 0, rows > 0,
           bitmap.pixel_mode == UInt8(FT_PIXEL_MODE_GRAY.rawValue) {
            let pitch = Int(bitmap.pitch)
            let levels = max(2, Int(bitmap.num_grays))
            for r in 0..<rows {
                let source = pitch >= 0 ? buffer + r * pitch : buffer + (rows - 1 - r) * (-pitch)
                for c in 0..<width {
                    coverage[r * width + c] = UInt8(Int(source[c]) * 255 / (levels - 1))
                }
            }
        }
        let g = Glyph(left: Int(slot.bitmap_left), top: Int(slot.bitmap_top), width: width, rows: rows,
                      coverage: coverage, advance: Double(slot.linearHoriAdvance) / 65536)
        glyphs[key] = g
        return g
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (scalar.value >= 0x7f && scalar.value < 0xa0)
    }
}

/// A rasterised string: coverage bytes and the offset of its top-left pixel from (pen start, baseline).
struct TextMask {
    var width: Int
    var height: Int
    var left: Int
    var top: Int
    var coverage: [UInt8]
}

/// Where the anchor point sits along the text.
public enum HorizontalAlignment: Sendable {
    case left, center, right
}

/// Where the anchor point sits across the text.
public enum VerticalAlignment: Sendable {
    /// The anchor is at the height of the capital letters' tops.
    case top
    /// The anchor is halfway up the capital letters (centres digits and capitals on it).
    case middle
    /// The anchor is on the baseline.
    case baseline
    /// The anchor is at the font's descender.
    case bottom
}

/// Text direction on the canvas.
public enum TextOrientation: Sendable {
    /// Left to right.
    case horizontal
    /// Rotated 90 degrees counter-clockwise: bottom to top, as on y-axis titles.
    case upward
}

extension Canvas {
    /// Draws a single line of `text` so that the anchor point given by the alignments lands on `anchor`.
    /// For `.upward` text the alignments refer to the text's own frame (`.left` is its start, at the
    /// bottom; `.top` is the side facing left).
    public mutating func drawText(_ text: String, font: Font, at anchor: Point,
                                  horizontal: HorizontalAlignment = .left,
                                  vertical: VerticalAlignment = .baseline,
                                  orientation: TextOrientation = .horizontal, color: Color = .black) {
        // Far off-canvas (or non-finite) anchors draw nothing.
        guard abs(anchor.x) < 1e9, abs(anchor.y) < 1e9 else { return }
        let extent = font.measure(text)
        let along: Double
        switch horizontal {
        case .left: along = 0
        case .center: along = extent.width / 2
        case .right: along = extent.width
        }
        let across: Double
        switch vertical {
        case .top: across = font.capHeight
        case .middle: across = font.capHeight / 2
        case .baseline: across = 0
        case .bottom: across = -font.descent
        }
        switch orientation {
        case .horizontal:
            let penX = anchor.x - along
            let baseline = pixel(anchor.y + across, .toNearestOrAwayFromZero)
            let whole = Double(pixel(penX, .down))
            let mask = font.rasterize(text, penOffset: penX - whole)
            blendText(mask, originX: Int(whole) + mask.left, originY: baseline + mask.top, rotated: false,
                      color: color)
        case .upward:
            // The pen runs up the canvas from (baselineX, penY); the text's "up" points to -x.
            let penY = anchor.y + along
            let baselineX = pixel(anchor.x + across, .toNearestOrAwayFromZero)
            let mask = font.rasterize(text, penOffset: 0)
            let start = pixel(penY, .toNearestOrAwayFromZero)
            blendText(mask, originX: baselineX + mask.top, originY: start - mask.left - mask.width, rotated: true,
                      color: color)
        }
    }

    /// Blends a text mask with its top-left at (`originX`, `originY`); a rotated mask is turned 90 degrees
    /// counter-clockwise first (mask column c becomes canvas row height-1-c).
    private mutating func blendText(_ mask: TextMask, originX: Int, originY: Int, rotated: Bool, color: Color) {
        guard mask.width > 0, mask.height > 0 else { return }
        let outW = rotated ? mask.height : mask.width
        let outH = rotated ? mask.width : mask.height
        var coverage = [Float](repeating: 0, count: outW * outH)
        for r in 0..<mask.height {
            for c in 0..<mask.width {
                let v = Float(mask.coverage[r * mask.width + c]) / 255
                if rotated {
                    coverage[(mask.width - 1 - c) * outW + r] = v
                } else {
                    coverage[r * outW + c] = v
                }
            }
        }
        blendMask(coverage, ox: originX, oy: originY, mw: outW, mh: outH, color: color)
    }
}
