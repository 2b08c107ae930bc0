// RenderingTests: colour maps and tick placement. Expected colours are matplotlib's published table
// entries (lib/matplotlib/_cm_listed.py, _cm.py) times 255, rounded; expected ticks follow from the
// 1/2/5 x 10^k rule. Left out: every interior table entry (spot checks only).

import Rendering
import XCTest

final class ColormapTests: XCTestCase {
    private func bytes(_ r: Double, _ g: Double, _ b: Double) -> [UInt8] {
        [r, g, b].map { UInt8(($0 * 255).rounded()) }
    }

    private func mapped(_ map: Colormap, _ t: Float) -> [UInt8] {
        let (r, g, b) = map.map(t)
        return [r, g, b]
    }

    func testViridisEndsAreMatplotlibsFirstAndLastEntries() throws {
        let viridis = try Colormap.named("viridis")
        XCTAssertEqual(mapped(viridis, 0), bytes(0.267004, 0.004874, 0.329415))
        XCTAssertEqual(mapped(viridis, 1), bytes(0.993248, 0.906157, 0.143936))
        // Entry 1 of 256 sits at 1/255.
        XCTAssertEqual(mapped(viridis, 1 / 255), bytes(0.268510, 0.009605, 0.335427))
        // Out-of-range values clamp to the ends.
        XCTAssertEqual(mapped(viridis, -3), mapped(viridis, 0))
        XCTAssertEqual(mapped(viridis, 7), mapped(viridis, 1))
        XCTAssertEqual(mapped(Colormap.viridis, 1), mapped(viridis, 1))
    }

    func testOtherListedMapsEnds() throws {
        XCTAssertEqual(mapped(try Colormap.named("magma"), 0), bytes(0.001462, 0.000466, 0.013866))
        XCTAssertEqual(mapped(try Colormap.named("magma"), 1), bytes(0.987053, 0.991438, 0.749504))
        XCTAssertEqual(mapped(try Colormap.named("inferno"), 1), bytes(0.988362, 0.998364, 0.644924))
        XCTAssertEqual(mapped(try Colormap.named("plasma"), 0), bytes(0.050383, 0.029803, 0.527975))
        XCTAssertEqual(mapped(try Colormap.named("cividis"), 0), bytes(0.000000, 0.135112, 0.304751))
        XCTAssertEqual(mapped(try Colormap.named("turbo"), 0), bytes(0.18995, 0.07176, 0.23217))
        XCTAssertEqual(mapped(try Colormap.named("turbo"), 1), bytes(0.47960, 0.01583, 0.01055))
    }

    func testDivergingBrewerMapsEndsAndMiddle() throws {
        let rdylgn = try Colormap.named("RdYlGn")
        XCTAssertEqual(mapped(rdylgn, 0), [0xa5, 0x00, 0x26])
        XCTAssertEqual(mapped(rdylgn, 1), [0x00, 0x68, 0x37])
        XCTAssertEqual(mapped(rdylgn, 0.5), [0xff, 0xff, 0xbf])
        let rdbu = try Colormap.named("RdBu")
        XCTAssertEqual(mapped(rdbu, 0), [0x67, 0x00, 0x1f])
        XCTAssertEqual(mapped(rdbu, 1), [0x05, 0x30, 0x61])
    }

    func testSegmentedMaps() throws {
        let jet = try Colormap.named("jet")
        XCTAssertEqual(mapped(jet, 0), bytes(0, 0, 0.5))
        XCTAssertEqual(mapped(jet, 1), bytes(0.5, 0, 0))
        // Between red breakpoints 0.35 (0) and 0.66 (1), green plateau 0.375-0.64, blue 0.34 (1)-0.65 (0).
        let mid = jet.color(at: 0.5)
        XCTAssertEqual(mid.red, 0.15 / 0.31, accuracy: 1e-5)
        XCTAssertEqual(mid.green, 1, accuracy: 1e-6)
        XCTAssertEqual(mid.blue, 0.15 / 0.31, accuracy: 1e-5)
        let gray = try Colormap.named("gray")
        XCTAssertEqual(mapped(gray, 0), [0, 0, 0])
        XCTAssertEqual(mapped(gray, 1), [255, 255, 255])
        XCTAssertEqual(gray.color(at: 0.25).green, 0.25, accuracy: 1e-6)
    }

    func testLookupIsCaseInsensitiveAndReversible() throws {
        let upper = try Colormap.named("RDYLGN")
        XCTAssertEqual(upper.name, "RdYlGn")
        let reversed = try Colormap.named("rdylgn_R")
        XCTAssertEqual(reversed.name, "RdYlGn_r")
        for t: Float in [0, 0.1, 0.37, 0.5, 0.9, 1] {
            XCTAssertEqual(mapped(reversed, t), mapped(upper, 1 - t))
        }
        let jetR = try Colormap.named("jet_r")
        XCTAssertEqual(mapped(jetR, 0.2), mapped(try Colormap.named("jet"), 0.8))
        XCTAssertEqual(jetR.reversed().name, "jet")
        XCTAssertEqual(mapped(try Colormap.named("grey"), 1), [255, 255, 255])
    }

    func testUnknownNameListsTheKnownOnes() {
        XCTAssertThrowsError(try Colormap.named("rainbowish")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("rainbowish"))
            XCTAssertTrue(text.contains("viridis") && text.contains("RdYlGn") && text.contains("turbo"))
            XCTAssertFalse(text.contains("\n"))
        }
        for name in Colormap.names {
            XCTAssertNoThrow(try Colormap.named(name))
            XCTAssertNoThrow(try Colormap.named(name + "_r"))
        }
    }

    func testTab10Palette() {
        XCTAssertEqual(Palette.color(0), Color(hex: 0x1f77b4))
        XCTAssertEqual(Palette.color(3), Color(hex: 0xd62728))
        XCTAssertEqual(Palette.color(10), Palette.color(0))
    }

    func testNiceTicks() {
        let percent = AxisTicks.nice(lower: 0, upper: 100, target: 6)
        XCTAssertEqual(percent.values, [0, 20, 40, 60, 80, 100])
        XCTAssertEqual(percent.labels, ["0", "20", "40", "60", "80", "100"])
        let unit = AxisTicks.nice(lower: 0, upper: 1, target: 6)
        XCTAssertEqual(unit.labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        let levels = AxisTicks.nice(lower: -0.25, upper: 5.25, target: 7)
        XCTAssertEqual(levels.values, [0, 1, 2, 3, 4, 5])
        let signed = AxisTicks.nice(lower: -0.013, upper: 0.021, target: 6)
        XCTAssertEqual(signed.labels.first, "\u{2212}0.01")
        XCTAssertTrue(signed.labels.contains("0.00"))
        XCTAssertLessThanOrEqual(signed.values.count, 6)
        XCTAssertEqual(AxisTicks.at([2, 0.5, 1]).labels, ["0.5", "1.0", "2.0"])
    }
}
