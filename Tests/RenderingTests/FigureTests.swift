// RenderingTests: whole figures, decoded back from the PNG files they write. A ramp heat map must show the
// colour map's top colour at the map's maximum and its bottom colour at the minimum, at the stated size; a
// row of maps must share one scale; the overlay must blend 0.8 map / 0.2 photo; line plots must be
// non-blank with each series' colour present; titles must put dark pixels in the title band; rendering
// twice must give identical bytes. Left out: pixel-exact comparisons with matplotlib (fonts and
// rasterisers differ).
// Layout key: maps are H x W Float row-major; images are H x W x 3 bytes.

import Foundation
import Imaging
import Rendering
import XCTest

final class FigureTests: XCTestCase {
    /// An H x W ramp: 0 at the top-left, 1 at the bottom-right, increasing along rows.
    private func ramp(height: Int, width: Int) throws -> ScalarMap {
        let n = height * width
        return try ScalarMap(height: height, width: width, values: (0..<n).map { Float($0) / Float(n - 1) })
    }

    private func colour(_ map: Colormap, _ t: Float) -> [UInt8] {
        let (r, g, b) = map.map(t)
        return [r, g, b]
    }

    /// The output pixel at the centre of map cell (row, column) of panel `p`.
    private func cellCentre(_ layout: HeatmapLayout, panel p: Int = 0, row: Int, column: Int) -> (Int, Int) {
        let s = layout.scales[p]
        return (Int(layout.mapRects[p].x) + column * s + s / 2, Int(layout.mapRects[p].y) + row * s + s / 2)
    }

    func testRampHeatmapHasTheColourMapEndsAtItsExtremes() throws {
        let dir = try TestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (h, w) = (12, 20)
        var figure = HeatmapFigure(map: try ramp(height: h, width: w), title: "unified_swin_base (untrained) - stage 4")
        figure.colorbarLabel = "gradient"
        let layout = try figure.layout()
        let path = dir.appendingPathComponent("ramp.png").path
        try figure.write(to: path)
        let image = try PNGCodec.read(path: path)
        XCTAssertEqual(image.width, layout.width)
        XCTAssertEqual(image.height, layout.height)
        XCTAssertGreaterThanOrEqual(image.width, 800, "print-friendly size")
        XCTAssertEqual(layout.scales[0], 32, "20 columns enlarged to at least 640 pixels")
        XCTAssertEqual(layout.mapRects[0].width, Double(w * 32))
        XCTAssertEqual(layout.mapRects[0].height, Double(h * 32))
        XCTAssertLessThanOrEqual(layout.mapRects[0].maxX, layout.colorbarRect.x)

        let (maxX, maxY) = cellCentre(layout, row: h - 1, column: w - 1)
        let (minX, minY) = cellCentre(layout, row: 0, column: 0)
        XCTAssertEqual(TestSupport.rgb(image, maxX, maxY), colour(.viridis, 1))
        XCTAssertEqual(TestSupport.rgb(image, minX, minY), colour(.viridis, 0))
        // Nearest-neighbour blocks: every pixel of the maximum's block has the same colour.
        let s = layout.scales[0]
        XCTAssertEqual(TestSupport.rgb(image, maxX - s / 2, maxY - s / 2), colour(.viridis, 1))
        XCTAssertEqual(TestSupport.rgb(image, maxX + s / 2 - 1, maxY + s / 2 - 1), colour(.viridis, 1))
        // The colour bar runs from the top colour (top) to the bottom colour (bottom).
        let bar = layout.colorbarRect
        let top = TestSupport.rgb(image, Int(bar.midX), Int(bar.y))
        let bottom = TestSupport.rgb(image, Int(bar.midX), Int(bar.maxY) - 1)
        XCTAssertEqual(top.map(Int.init), colour(.viridis, 1).map(Int.init), accuracy: 2)
        XCTAssertEqual(bottom.map(Int.init), colour(.viridis, 0).map(Int.init), accuracy: 2)
        // The title band above the map holds dark text pixels.
        var dark = 0
        for y in 0..<Int(layout.mapRects[0].y) - 4 {
            for x in 0..<image.width where TestSupport.rgb(image, x, y).allSatisfy({ $0 < 80 }) { dark += 1 }
        }
        XCTAssertGreaterThan(dark, 200)
    }

    func testFixedValueRangeClampsAndOtherColourMapsApply() throws {
        let rdylgn = try Colormap.named("RdYlGn")
        let map = try ScalarMap(height: 2, width: 2, values: [-5, 0.5, 0.5, 9])
        let figure = HeatmapFigure(map: map, title: nil, colormap: rdylgn, valueRange: 0...1)
        let layout = try figure.layout()
        let image = try figure.render()
        let (x0, y0) = cellCentre(layout, row: 0, column: 0)
        let (x3, y3) = cellCentre(layout, row: 1, column: 1)
        let (x1, y1) = cellCentre(layout, row: 0, column: 1)
        XCTAssertEqual(TestSupport.rgb(image, x0, y0), colour(rdylgn, 0))
        XCTAssertEqual(TestSupport.rgb(image, x3, y3), colour(rdylgn, 1))
        XCTAssertEqual(TestSupport.rgb(image, x1, y1), colour(rdylgn, 0.5))
        XCTAssertThrowsError(try HeatmapFigure(map: map, valueRange: 1...1).render())
        XCTAssertThrowsError(try ScalarMap(height: 2, width: 2, values: [0, 1, .nan, 2]))
        XCTAssertThrowsError(try ScalarMap(height: 2, width: 3, values: [0, 1]))
    }

    func testStageRowSharesOneColourScale() throws {
        let low = try ScalarMap(height: 8, width: 8, values: (0..<64).map { Float($0) / 63 * 0.5 })
        let high = try ScalarMap(height: 8, width: 8, values: (0..<64).map { 0.5 + Float($0) / 63 * 0.5 })
        let row = StageRowFigure(panels: [(low, "stage 1"), (high, "stage 2")],
                                 title: "unified_halonet_base (trained)")
        let layout = try row.layout()
        let image = try row.render()
        XCTAssertEqual([image.width, image.height], [layout.width, layout.height])
        XCTAssertEqual(layout.mapRects.count, 2)
        XCTAssertLessThan(layout.mapRects[0].maxX, layout.mapRects[1].x)
        XCTAssertEqual(layout.lower, 0)
        XCTAssertEqual(layout.upper, 1)
        let (ax, ay) = cellCentre(layout, panel: 0, row: 7, column: 7)
        let (bx, by) = cellCentre(layout, panel: 1, row: 7, column: 7)
        let (cx, cy) = cellCentre(layout, panel: 1, row: 0, column: 0)
        XCTAssertEqual(TestSupport.rgb(image, ax, ay), colour(.viridis, 0.5), "panel 1's maximum is mid-scale")
        XCTAssertEqual(TestSupport.rgb(image, bx, by), colour(.viridis, 1))
        XCTAssertEqual(TestSupport.rgb(image, cx, cy), colour(.viridis, 0.5))
        XCTAssertThrowsError(try StageRowFigure(panels: []).render())
    }

    func testOverlayBlendsEightyPercentMapWithTwentyPercentImage() throws {
        let photo = Image8(width: 30, height: 20, channels: 3, fill: 100)
        let ones = try ScalarMap(height: 4, width: 6, values: [Float](repeating: 1, count: 24))
        let overlay = try OverlayFigure(map: ones, image: photo, valueRange: 0...1).render()
        XCTAssertEqual([overlay.width, overlay.height, overlay.channels], [30, 20, 3])
        // jet(1) = (0.5, 0, 0) -> (128, 0, 0); 0.8 * 128 + 0.2 * 100 = 122.4; 0.2 * 100 = 20.
        XCTAssertEqual(TestSupport.rgb(overlay, 15, 10), [122, 20, 20])
        let zeros = try ScalarMap(height: 4, width: 6, values: [Float](repeating: 0, count: 24))
        // jet(0) = (0, 0, 0.5): blue 0.8 * 128 + 20 = 122.4.
        XCTAssertEqual(TestSupport.rgb(try OverlayFigure(map: zeros, image: photo, valueRange: 0...1).render(), 0, 0),
                       [20, 20, 122])
        // A photo the overlay lets through: a map of 0.5 on a black-and-white split keeps the split visible.
        var split = Image8(width: 8, height: 1, channels: 3, fill: 0)
        for i in 12..<24 { split.pixels[i] = 255 }
        let halves = try ScalarMap(height: 1, width: 1, values: [0.5])
        let blended = try OverlayFigure(map: halves, image: split, valueRange: 0...1).render()
        XCTAssertEqual(Int(blended.pixels[3 * 7]) - Int(blended.pixels[0]), 51, "0.2 * 255 of the photo shows")
    }

    func testLinePlotIsNotBlankAndShowsEachSeriesColour() throws {
        let levels: [Double] = [0, 1, 2, 3, 4]
        let a = Series(label: "unified_convnext_base", x: levels, y: [100, 96, 90, 81, 70])
        let b = Series(label: "unified_swin_base", x: levels, y: [100, 93, 84, 70, 55])
        var consistency = PlotPanel(title: "consistency", xLabel: "level", yLabel: "consistency (%)", series: [a, b],
                                    yRange: 0...100)
        consistency.xTicks = levels
        let accuracy = PlotPanel(title: "accuracy", xLabel: "level", yLabel: "accuracy (%)",
                                 series: [Series(label: "unified_convnext_base", x: levels, y: [82, 80, 77, 70, 61]),
                                          Series(label: "unified_swin_base", x: levels, y: [83, 79, 74, 66, 52])])
        let figure = LinePlotFigure(title: "Translation invariance", panels: [consistency, accuracy])
        let dir = try TestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("lines.png").path
        try figure.write(to: path)
        let image = try PNGCodec.read(path: path)
        XCTAssertEqual([image.width, image.height], [1600, 900])

        func key(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt32 { UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b) }
        var counts: [UInt32: Int] = [:]
        for p in stride(from: 0, to: image.pixels.count, by: 3) {
            counts[key(image.pixels[p], image.pixels[p + 1], image.pixels[p + 2]), default: 0] += 1
        }
        XCTAssertGreaterThan(counts.count, 200, "anti-aliased lines, markers and text give many colours")
        func present(_ c: Color) -> Int {
            let b = [c.red, c.green, c.blue].map { UInt8(($0 * 255).rounded()) }
            return counts[key(b[0], b[1], b[2])] ?? 0
        }
        XCTAssertGreaterThan(present(Palette.color(0)), 500, "first series colour")
        XCTAssertGreaterThan(present(Palette.color(1)), 500, "second series colour")
        XCTAssertEqual(present(Palette.color(2)), 0, "no third series")
        // Top band: the figure title is dark text.
        var dark = 0
        for y in 0..<60 {
            for x in 0..<1600 where TestSupport.rgb(image, x, y).allSatisfy({ $0 < 80 }) { dark += 1 }
        }
        XCTAssertGreaterThan(dark, 300)

        let single = try LinePlotFigure(panels: [PlotPanel(series: [a])]).render()
        var oneCounts = Set<UInt32>()
        for p in stride(from: 0, to: single.pixels.count, by: 3) {
            oneCounts.insert(key(single.pixels[p], single.pixels[p + 1], single.pixels[p + 2]))
        }
        XCTAssertTrue(oneCounts.contains(key(0x1f, 0x77, 0xb4)), "one series: its colour")
        XCTAssertFalse(oneCounts.contains(key(0xff, 0x7f, 0x0e)), "one series: no second colour")
    }

    func testFiguresAreDeterministic() throws {
        let map = try ramp(height: 9, width: 7)
        let a = try PNGCodec.encode(HeatmapFigure(map: map, title: "same").render(), dpi: 200)
        let b = try PNGCodec.encode(HeatmapFigure(map: map, title: "same").render(), dpi: 200)
        XCTAssertEqual(a, b)
        let panel = PlotPanel(series: [Series(label: "x", x: [0, 1, 2], y: [3, 1, 2])])
        XCTAssertEqual(try LinePlotFigure(panels: [panel]).render(), try LinePlotFigure(panels: [panel]).render())
    }

    func testExtremeAndMissingValuesDrawWithoutTrapping() throws {
        let wild = Series(label: "wild", x: [0, 1, 2, 3, 4], y: [1, 1e300, .nan, -.infinity, 2])
        var panel = PlotPanel(title: "fixed range", series: [wild, Series(label: "huge x", x: [1e300, -1e300], y: [0, 1])],
                              yRange: 0...100)
        panel.xRange = 0...4
        let image = try LinePlotFigure(title: String(repeating: "a very long overall title ", count: 12),
                                       panels: [panel, PlotPanel(series: [wild])]).render()
        XCTAssertEqual([image.width, image.height], [1600, 900])
        XCTAssertTrue(image.pixels.contains { $0 < 80 })
    }

    func testBadPlotInputsThrowOneLineErrors() {
        let bad = PlotPanel(series: [Series(label: "short", x: [0, 1, 2], y: [1, 2])])
        XCTAssertThrowsError(try LinePlotFigure(panels: [bad]).render()) { error in
            XCTAssertTrue("\(error)".contains("short"))
            XCTAssertFalse("\(error)".contains("\n"))
        }
        XCTAssertThrowsError(try LinePlotFigure(panels: []).render())
        var style = FigureStyle()
        style.fontPath = "/nonexistent/DejaVuSans.ttf"
        var figure = LinePlotFigure(panels: [PlotPanel(series: [])])
        figure.style = style
        XCTAssertThrowsError(try figure.render()) { error in
            XCTAssertTrue("\(error)".contains("fonts-dejavu-core"))
        }
    }
}

/// Element-wise closeness of two integer arrays.
private func XCTAssertEqual(_ a: [Int], _ b: [Int], accuracy: Int, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) {
        XCTAssertLessThanOrEqual(abs(x - y), accuracy, "\(a) vs \(b)", file: file, line: line)
    }
}
