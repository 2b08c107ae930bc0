// RenderingTests: canvas primitives (exact rectangle coverage, line width, alpha blending without double
// coverage at joins, dashes, circles, markers, clipping) and FreeType text (drawing, measuring, kerning,
// rotation, missing-font errors). Expected values follow from the geometry (a pixel half covered by black
// on white is 255 / 2 rounded). Left out: exact glyph shapes, which depend on the FreeType version.
// Layout key: images are H x W x 3 bytes, row-major.

import Imaging
import Rendering
import XCTest

final class CanvasTextTests: XCTestCase {
    private func grey(_ image: Image8, _ x: Int, _ y: Int) -> Int {
        Int(image.pixels[(y * image.width + x) * 3])
    }

    func testRectangleCoverageIsExact() {
        var canvas = Canvas(width: 40, height: 30)
        canvas.fill(Rect(x: 10, y: 5, width: 10.5, height: 10), color: .black)
        let image = canvas.image()
        XCTAssertEqual(grey(image, 15, 10), 0)
        XCTAssertEqual(grey(image, 9, 10), 255)
        XCTAssertEqual(grey(image, 20, 10), 128, "half-covered column")
        XCTAssertEqual(grey(image, 21, 10), 255)
        XCTAssertEqual(grey(image, 15, 4), 255)
        XCTAssertEqual(grey(image, 15, 15), 255)
        var translucent = Canvas(width: 4, height: 4)
        translucent.fill(Rect(x: 0, y: 0, width: 4, height: 4), color: Color.black.withAlpha(0.5))
        XCTAssertEqual(grey(translucent.image(), 2, 2), 128)
    }

    func testLineWidthAndCaps() {
        var canvas = Canvas(width: 60, height: 40)
        canvas.strokeLine(from: Point(10, 20), to: Point(50, 20), width: 2, color: .black, cap: .butt)
        let image = canvas.image()
        XCTAssertEqual(grey(image, 30, 19), 0)
        XCTAssertEqual(grey(image, 30, 20), 0)
        XCTAssertEqual(grey(image, 30, 18), 255)
        XCTAssertEqual(grey(image, 30, 21), 255)
        XCTAssertEqual(grey(image, 8, 20), 255, "butt cap stops at the end point")
        var round = Canvas(width: 60, height: 40)
        round.strokeLine(from: Point(10, 20), to: Point(50, 20), width: 6, color: .black, cap: .round)
        XCTAssertLessThan(grey(round.image(), 8, 20), 60, "round cap extends past the end point")
    }

    func testTranslucentPolylineIsNotDoubledAtJoins() {
        var canvas = Canvas(width: 60, height: 60)
        let points = [Point(10, 50), Point(30, 10), Point(50, 50)]
        canvas.strokePolyline(points, width: 8, color: Color.black.withAlpha(0.5))
        let image = canvas.image()
        var darkest = 255
        for v in stride(from: 0, to: image.pixels.count, by: 3) { darkest = min(darkest, Int(image.pixels[v])) }
        XCTAssertEqual(darkest, 128, "overlapping segments are covered once")
        XCTAssertEqual(grey(image, 30, 12), 128)
    }

    func testDashedLineHasGapsAndCircleAndMarkersFill() {
        var canvas = Canvas(width: 100, height: 40)
        canvas.strokeLine(from: Point(0, 10), to: Point(100, 10), width: 2, color: .black, cap: .butt, dash: [6, 4])
        let image = canvas.image()
        let row = (0..<100).map { grey(image, $0, 9) }
        XCTAssertEqual(row[0..<6].max(), 0, "first dash drawn")
        XCTAssertEqual(row[6..<10].min(), 255, "first gap empty")
        XCTAssertEqual(row[10..<16].max(), 0, "second dash drawn")
        canvas.fillCircle(center: Point(30, 30), radius: 5, color: .black)
        for (k, marker) in Marker.allCases.enumerated() {
            canvas.drawMarker(marker, at: Point(50.5 + 13 * Double(k), 30.5), size: 10, fill: .black)
        }
        let after = canvas.image()
        XCTAssertEqual(grey(after, 30, 30), 0)
        XCTAssertEqual(grey(after, 30, 37), 255)
        for k in 0..<Marker.allCases.count {
            XCTAssertEqual(grey(after, 50 + 13 * k, 30), 0, "marker \(k) filled at its centre")
            XCTAssertEqual(grey(after, 50 + 13 * k, 38), 255, "marker \(k) stays within its size")
        }
    }

    func testFarOffCanvasGeometryIsCutNotWalked() throws {
        var canvas = Canvas(width: 100, height: 20)
        // A dashed line a trillion pixels long: only the visible stretch is dashed, and the phase carries over.
        canvas.strokeLine(from: Point(-1e12, 10), to: Point(1e12, 10), width: 2, color: .black, cap: .butt,
                          dash: [5, 5])
        canvas.strokePolyline([Point(50, 5), Point(1e300, 5)], width: 2, color: .black)
        canvas.drawText("off", font: try Font.load(size: 12), at: Point(1e200, .nan))
        let image = canvas.image()
        let row = (0..<100).map { grey(image, $0, 9) }
        XCTAssertTrue(row.contains(0) && row.contains(255), "dashes and gaps both visible")
        XCTAssertEqual(row.filter { $0 == 0 }.count, 50, "half of a 5-on/5-off pattern, dashes cut on whole pixels")
        XCTAssertEqual(grey(image, 80, 4), 0, "ray towards a huge x drawn across the canvas")
        XCTAssertEqual(grey(image, 20, 4), 255)
    }

    func testClipLimitsDrawing() {
        var canvas = Canvas(width: 20, height: 20)
        canvas.clip = Rect(x: 5, y: 5, width: 10, height: 10)
        canvas.fill(Rect(x: 0, y: 0, width: 20, height: 20), color: .black)
        let image = canvas.image()
        XCTAssertEqual(grey(image, 10, 10), 0)
        XCTAssertEqual(grey(image, 2, 10), 255)
        XCTAssertEqual(grey(image, 10, 17), 255)
    }

    func testTextDrawsDarkPixelsWhereExpected() throws {
        let font = try Font.load(size: 28)
        var canvas = Canvas(width: 300, height: 80)
        canvas.drawText("Receptive field", font: font, at: Point(10, 50), color: .black)
        let image = canvas.image()
        var dark = 0, stray = 0
        for y in 0..<80 {
            for x in 0..<300 where grey(image, x, y) < 100 {
                if y >= 20 && y <= 60 && x >= 8 && x <= 10 + Int(font.measure("Receptive field").width) + 2 {
                    dark += 1
                } else {
                    stray += 1
                }
            }
        }
        XCTAssertGreaterThan(dark, 300)
        XCTAssertEqual(stray, 0)
        let greyLevels = Set(image.pixels)
        XCTAssertGreaterThan(greyLevels.count, 20, "anti-aliased edges")
    }

    func testMeasuringKerningAndMetrics() throws {
        let font = try Font.load(size: 28)
        let short = font.measure("stage 1").width
        let long = font.measure("stage 1 of the unified model").width
        XCTAssertGreaterThan(short, 20)
        XCTAssertGreaterThan(long, short + 100)
        XCTAssertEqual(font.measure("").width, 0)
        // DejaVu Sans kerns "AV" tighter than the two letters apart.
        XCTAssertLessThan(font.measure("AV").width, font.measure("A").width + font.measure("V").width - 0.5)
        XCTAssertGreaterThan(font.capHeight, 14)
        XCTAssertLessThan(font.capHeight, font.ascent)
        let bigger = try Font.load(size: 56)
        XCTAssertEqual(bigger.measure("stage 1").width, 2 * short, accuracy: 2)
    }

    func testUpwardTextIsTallerThanWide() throws {
        let font = try Font.load(path: defaultBoldFontPath, size: 24)
        var canvas = Canvas(width: 80, height: 300)
        canvas.drawText("accuracy (%)", font: font, at: Point(40, 150), horizontal: .center, vertical: .middle,
                        orientation: .upward, color: .black)
        let image = canvas.image()
        var minX = Int.max, maxX = Int.min, minY = Int.max, maxY = Int.min
        for y in 0..<300 {
            for x in 0..<80 where grey(image, x, y) < 128 {
                minX = min(minX, x); maxX = max(maxX, x); minY = min(minY, y); maxY = max(maxY, y)
            }
        }
        XCTAssertGreaterThan(maxY - minY, 3 * (maxX - minX))
        XCTAssertEqual(Double(minY + maxY) / 2, 150, accuracy: 8, "centred along the text")
        XCTAssertEqual(Double(minX + maxX) / 2, 40, accuracy: 8, "centred across the text")
    }

    func testMissingFontNamesThePathAndThePackage() {
        XCTAssertThrowsError(try Font.load(path: "/nonexistent/fonts/Missing.ttf", size: 12)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("/nonexistent/fonts/Missing.ttf"))
            XCTAssertTrue(text.contains("apt-get install fonts-dejavu-core"))
            XCTAssertFalse(text.contains("\n"))
        }
        XCTAssertThrowsError(try Font.load(path: "/etc/hostname", size: 12))
        XCTAssertThrowsError(try Font.load(size: 0))
    }
}
