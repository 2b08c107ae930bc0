// stm-analyze figure: the ERF grid, the ERF@t bars and consistency curves with bootstrap bands, made
// from finished runs of two models, each as a PNG (decoded back: size, not blank) and an SVG (vector
// elements); --dpi scales the text; bad input is one error line. Also the bootstrap itself: seeded (the
// same bands twice), the interval holds the mean, and it narrows as images are added.

import Analysis
import Foundation
import Imaging
import TestSupport
import XCTest

final class FigureCommandTests: XCTestCase {
    func testFiguresFromFinishedRuns() throws {
        let dir = temporaryDirectory("figures")
        let photos = ["assets/photos"]
        for m in ["swin", "halo"] {
            let run = try runTool(["erf", "--model", "unified_\(m)_micro", "--init-layer-scale", "1", "--images"] + photos
                                  + ["--num-images", "2", "--size", "64", "--out", "\(dir)/erf_\(m)"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let inv = try runTool(["invariance", "rotate", "--model", "unified_\(m)_micro", "--init-layer-scale", "1", "--images"] + photos
                                  + ["--levels", "0,20,40", "--size", "64", "--out", "\(dir)/rot_\(m)"])
            XCTAssertEqual(inv.status, 0, inv.stderr)
        }
        let cases: [[String]] = [
            ["erf-grid", "\(dir)/erf_swin", "\(dir)/erf_halo", "--stages", "3,4", "--square", "0.5", "--zoom", "2"],
            ["erf-bars", "\(dir)/erf_swin", "\(dir)/erf_halo", "--threshold", "0.5", "--labels", "U-Swin,U-HaloNet"],
            ["curves", "\(dir)/rot_swin", "\(dir)/rot_halo/rotate.json", "--resamples", "200", "--title", "Figure 7"],
        ]
        for args in cases {
            let out = "\(dir)/\(args[0])"
            let run = try runTool(["figure"] + args + ["--out", out])
            XCTAssertEqual(run.status, 0, run.stderr)
            let png = try PNGCodec.read(path: out + ".png")
            XCTAssertGreaterThan(png.width, 300)
            XCTAssertGreaterThan(Set(stride(from: 0, to: png.pixels.count, by: 97).map { png.pixels[$0] }).count, 10, "\(args[0]) is not blank")
            let svg = try String(contentsOfFile: out + ".svg", encoding: .utf8)
            XCTAssertTrue(svg.contains("<svg") && svg.contains("<text") && svg.hasSuffix("</svg>\n"), args[0])
            XCTAssertTrue(svg.contains("viewBox=\"0 0 \(png.width) \(png.height)\""), args[0])
        }
        let grid = try String(contentsOfFile: "\(dir)/erf-grid.svg", encoding: .utf8)
        XCTAssertTrue(grid.contains(">stage 3</text>") && grid.contains("ERF@0.5 = "), grid.prefix(400).description)
        let bars = try String(contentsOfFile: "\(dir)/erf-bars.svg", encoding: .utf8)
        XCTAssertTrue(bars.contains(">U-HaloNet</text>"))
        let curves = try String(contentsOfFile: "\(dir)/curves.svg", encoding: .utf8)
        XCTAssertTrue(curves.contains(">Figure 7</text>") && curves.contains("fill-opacity=\"0.2\""), "titled, with bands")

        // --dpi lays text out larger.
        let big = try runTool(["figure", "erf-bars", "\(dir)/erf_swin", "--dpi", "400", "--out", "\(dir)/bars400"])
        XCTAssertEqual(big.status, 0, big.stderr)
        func fontSize(_ svg: String) -> Double? {
            svg.components(separatedBy: "font-size=\"").dropFirst().first?.split(separator: "\"").first.flatMap { Double($0) }
        }
        let size200 = try XCTUnwrap(fontSize(bars)), size400 = try XCTUnwrap(fontSize(try String(contentsOfFile: "\(dir)/bars400.svg", encoding: .utf8)))
        XCTAssertEqual(size400, 2 * size200, accuracy: 0.01)

        // Bad input: one error line each.
        for args in [["erf-grid", dir, "--out", "\(dir)/x"], ["curves", "\(dir)/erf_swin", "--out", "\(dir)/x"],
                     ["erf-grid", "\(dir)/erf_swin", "--square", "0.42", "--out", "\(dir)/x"],
                     ["erf-bars", "\(dir)/erf_swin", "--value-range", "1,0", "--out", "\(dir)/x"]] {
            let run = try runTool(["figure"] + args)
            XCTAssertEqual(run.status, 1, "\(args): \(run.stderr)")
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
        }
    }

    func testErfOverlaysAreTitledWithAColourBar() throws {
        let out = temporaryDirectory("overlay")
        let run = try runTool(["erf", "--model", "unified_swin_micro", "--init-layer-scale", "1", "--images", "assets/photos/rocket.jpg",
                               "--overlay", "--stages", "4", "--size", "64", "--out", out])
        XCTAssertEqual(run.status, 0, run.stderr)
        let png = try PNGCodec.read(path: out + "/erf_stage4_overlay.png")
        XCTAssertGreaterThan(png.width, 2 * 64, "the image, enlarged, and a colour bar")
        let svg = try String(contentsOfFile: out + "/erf_stage4_overlay.svg", encoding: .utf8)
        XCTAssertTrue(svg.contains("unified_swin_micro (untrained): stage 4") && svg.contains("normalised</text>"), svg.prefix(300).description)
    }

    func testBootstrapBandsAreSeededHoldTheMeanAndNarrowWithMoreImages() {
        let small = [[1.0, 0, 1, 1, 0, 1, 1, 0]]
        let a = bootstrapBands(small, resamples: 500), b = bootstrapBands(small, resamples: 500)
        XCTAssertEqual(a.lower, b.lower)
        XCTAssertEqual(a.upper, b.upper)
        let mean = small[0].reduce(0, +) / 8
        XCTAssertLessThan(a.lower[0], mean)
        XCTAssertGreaterThan(a.upper[0], mean)
        let large = [Array(repeating: small[0], count: 50).flatMap { $0 }]
        let c = bootstrapBands(large, resamples: 500)
        XCTAssertLessThan(c.upper[0] - c.lower[0], (a.upper[0] - a.lower[0]) / 3)
        // A constant column has no spread.
        let flat = bootstrapBands([[0.5, 0.5, 0.5]], resamples: 100)
        XCTAssertEqual(flat.lower, [0.5])
        XCTAssertEqual(flat.upper, [0.5])
    }
}
