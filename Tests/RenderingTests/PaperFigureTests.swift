// RenderingTests: the figures for papers and the SVG backend. The map grid has the size its layout
// says, shows each map's colours on one scale and outlines the requested square in white; the bar chart
// draws each series' colour with bars whose heights follow the values; a line plot's band is drawn
// (translucent series colour between the curves) and an outside legend leaves every curve point
// uncovered; every figure's SVG is a document with vector elements (text, polylines, polygons, rects)
// and the maps embedded as PNG; rendering twice gives the same bytes.

import Foundation
import Imaging
import Rendering
import XCTest

final class PaperFigureTests: XCTestCase {
    private func constant(_ v: Float, side: Int = 16) throws -> ScalarMap {
        try ScalarMap(height: side, width: side, values: [Float](repeating: v, count: side * side))
    }

    private func rgb(_ image: Image8, _ x: Int, _ y: Int) -> [UInt8] {
        let i = (y * image.width + x) * image.channels
        return Array(image.pixels[i..<(i + 3)])
    }

    private func colour(_ c: Color) -> [UInt8] {
        [UInt8((c.red * 255).rounded()), UInt8((c.green * 255).rounded()), UInt8((c.blue * 255).rounded())]
    }

    private func count(_ image: Image8, where f: ([UInt8]) -> Bool) -> Int {
        var n = 0
        for y in 0..<image.height { for x in 0..<image.width where f(rgb(image, x, y)) { n += 1 } }
        return n
    }

    func testMapGridSharesOneScaleAndOutlinesTheSquare() throws {
        var fig = MapGridFigure(cells: [[try constant(0), try constant(1)], [try constant(0.5), nil]],
                                rowLabels: ["model A", "model B"], columnLabels: ["stage 3", "stage 4"])
        fig.cellSize = 120
        fig.valueRange = 0...1
        fig.squares = [[Rect(x: 4, y: 4, width: 8, height: 8), nil], [nil, nil]]
        fig.captions = [["a", "b"], ["c", ""]]
        fig.title = "grid"
        let image = try fig.render()
        let size = try fig.size()
        XCTAssertEqual(image.width, size.width)
        XCTAssertEqual(image.height, size.height)
        // Each cell's colour is the colour map's at its value, on the one 0-1 scale.
        let cmap = Colormap.viridis
        for (v, n) in [(Float(0), "0"), (1, "1"), (0.5, "0.5")] {
            let (r, g, b) = cmap.map(v)
            XCTAssertGreaterThan(count(image) { $0 == [r, g, b] }, 100 * 100 / 2, "cells of value \(n)")
        }
        // The square's outline: white pixels inside the first cell.
        XCTAssertGreaterThan(count(image) { $0 == [255, 255, 255] }, 0)
        let plain = MapGridFigure(cells: fig.cells, rowLabels: fig.rowLabels, columnLabels: fig.columnLabels)
        XCTAssertNotEqual(try plain.render().pixels, image.pixels)
        XCTAssertEqual(try fig.render().pixels, image.pixels)

        let svg = String(decoding: try fig.svg(), as: UTF8.self)
        XCTAssertTrue(svg.hasPrefix("<?xml"), svg)
        XCTAssertTrue(svg.contains("viewBox=\"0 0 \(size.width) \(size.height)\""))
        XCTAssertEqual(svg.components(separatedBy: "data:image/png;base64,").count - 1, 3 + 1, "three maps and the colour bar")
        XCTAssertTrue(svg.contains(">model A</text>") && svg.contains(">stage 4</text>"))
        XCTAssertTrue(svg.contains("stroke=\"#ffffff\""), "the square")
        XCTAssertThrowsError(try MapGridFigure(cells: [[nil]], rowLabels: ["x"], columnLabels: ["y"]).render())
        XCTAssertThrowsError(try MapGridFigure(cells: [[try constant(1)]], rowLabels: [], columnLabels: ["y"]).render())
    }

    func testBarChartBarsFollowTheValues() throws {
        var fig = BarChartFigure(groups: ["stage 1", "stage 2"], series: [("a", [0.2, 0.8]), ("b", [0.4, .nan])])
        fig.yRange = 0...1
        fig.width = 800
        fig.height = 500
        let image = try fig.render()
        XCTAssertEqual(image.width, 800)
        let blue = colour(Palette.color(0)), orange = colour(Palette.color(1))
        let a = count(image) { $0 == blue }, b = count(image) { $0 == orange }
        // Series a's bars (0.2 + 0.8) cover about 1.0 / 0.4 times series b's one bar (plus the legend swatches).
        XCTAssertGreaterThan(a, b * 2)
        XCTAssertGreaterThan(b, 0)
        let svg = String(decoding: try fig.svg(), as: UTF8.self)
        XCTAssertEqual(svg.components(separatedBy: "fill=\"#\(String(format: "%02x%02x%02x", blue[0], blue[1], blue[2]))\"").count - 1, 3, "two bars and a swatch")
        XCTAssertThrowsError(try BarChartFigure(groups: ["x"], series: [("a", [1, 2])]).render())
    }

    func testBandsAreDrawnAndAnOutsideLegendHidesNoCurve() throws {
        let x = [0.0, 1, 2, 3]
        var s = Series(label: "model with a long legend name", x: x, y: [90, 80, 70, 60])
        s.band = ([80, 70, 60, 50], [100, 90, 80, 70])
        var panel = PlotPanel(series: [s, Series(label: "other", x: x, y: [95, 94, 93, 92])], yRange: 0...100)
        panel.legendOutside = true
        var fig = LinePlotFigure(title: "bands", panels: [panel])
        fig.width = 900
        fig.height = 500
        let image = try fig.render()
        // The band: pixels of the series colour at 20 % over white.
        let c = Palette.color(0)
        let tint = [c.red, c.green, c.blue].map { UInt8(((0.2 * $0 + 0.8) * 255).rounded()) }
        XCTAssertGreaterThan(count(image) { zip($0, tint).allSatisfy { abs(Int($0) - Int($1)) <= 2 } }, 2000)
        var noBand = fig
        noBand.panels[0].series[0].band = nil
        XCTAssertLessThan(count(try noBand.render()) { zip($0, tint).allSatisfy { abs(Int($0) - Int($1)) <= 2 } }, 200, "only line edges")
        // The outside legend sits right of every curve: the legend's text starts right of every point of
        // the curves' polylines (drawn inside the axes' clip).
        let svg = String(decoding: try fig.svg(), as: UTF8.self)
        XCTAssertTrue(svg.contains("fill-opacity=\"0.2\""), "the band is a translucent polygon")
        XCTAssertTrue(svg.contains(">model with a long legend name</text>"))
        let curveXs = svg.components(separatedBy: "\n").filter { $0.hasPrefix("<g clip-path") && $0.contains("<polyline") }
            .flatMap { line -> [Double] in
                let pts = line.components(separatedBy: "points=\"")[1].split(separator: "\"")[0]
                return pts.split(separator: " ").compactMap { Double($0.split(separator: ",")[0]) }
            }
        XCTAssertEqual(curveXs.count, 8, "two curves of four points")
        let legendX = try XCTUnwrap(svg.components(separatedBy: "\n").first { $0.contains(">other</text>") }
            .flatMap { $0.components(separatedBy: "x=\"").dropFirst().first?.split(separator: "\"").first }.flatMap { Double($0) })
        XCTAssertGreaterThan(legendX, curveXs.max()! + 10, "legend text starts right of the curves")
    }

    func testTitledOverlayKeepsTheBlendAndAddsTitleAndColourBar() throws {
        let photo = Image8(width: 20, height: 10, channels: 3, pixels: [UInt8](repeating: 100, count: 600))
        let overlay = try OverlayFigure(map: try constant(1, side: 4), image: photo, valueRange: 0...1)
        let blended = try overlay.render()
        var fig = TitledOverlayFigure(overlay: overlay, title: "model: stage 4", colorbarLabel: "normalised")
        fig.scale = 3
        let l = try fig.layout()
        let image = try fig.render()
        XCTAssertEqual(image.width, l.width)
        XCTAssertEqual(image.height, l.height)
        XCTAssertGreaterThan(l.image.y, 10, "room for the title")
        // The blend, enlarged 3x, at its place.
        XCTAssertEqual(rgb(image, Int(l.image.x) + 4, Int(l.image.y) + 4), rgb(blended, 1, 1))
        // The colour bar right of the image: jet's dark red at the top, dark blue at the bottom.
        let barX = Int((l.image.maxX + FigureStyle().pixels(12)).rounded()) + 3
        let top = rgb(image, barX, Int(l.image.y) + 1), bottom = rgb(image, barX, Int(l.image.maxY) - 2)
        XCTAssertTrue(top[0] > 100 && top[2] < 60, "\(top)")
        XCTAssertTrue(bottom[2] > 100 && bottom[0] < 60, "\(bottom)")
        // Dark title pixels above the image.
        var dark = 0
        for y in 0..<Int(l.image.y) { for x in 0..<image.width where rgb(image, x, y).allSatisfy({ $0 < 80 }) { dark += 1 } }
        XCTAssertGreaterThan(dark, 20)
        let svg = String(decoding: try fig.svg(), as: UTF8.self)
        XCTAssertTrue(svg.contains(">model: stage 4</text>") && svg.contains(">normalised</text>"))
    }
}
