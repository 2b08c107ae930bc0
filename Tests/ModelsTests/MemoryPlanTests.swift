// Memory planned before it is allocated: the estimate of a run's parameter and activation bytes must
// lie above what the run really holds (MemoryStats.peakBytes) and not absurdly far above it (at most 3
// times), for a forward and backward pass (the ERF) and a forward pass alone, on every micro preset.

import Analysis
import Foundation
import Models
import TensorCore
import TestSupport
import XCTest

final class MemoryPlanTests: XCTestCase {
    func testEstimateBoundsTheMeasuredPeakOnMicroPresets() throws {
        let (size, batch) = (128, 2)
        for family in ["convnext", "swin", "halo", "pvt", "dcn_v3"] {
            let name = "unified_\(family)_micro"
            let config = try XCTUnwrap(Presets.named(name))
            let backward = MemoryPlan.estimate(config, size: size, batch: batch, backward: true)
            let forward = MemoryPlan.estimate(config, size: size, batch: batch, backward: false)

            BufferPool.drain()
            MemoryStats.resetPeak()
            let before = MemoryStats.liveBytes
            let loaded = try ModelLoader.load(model: name, initLayerScale: 1)
            let parameters = MemoryStats.liveBytes - before
            XCTAssertGreaterThanOrEqual(parameters, loaded.model.parameterCount * 4, name)  // and buffers
            let x = syntheticImage(side: size)
            let input = Tensor(shape: [batch, size, size, 3], values: Array(repeating: x.values, count: batch).flatMap { $0 })

            MemoryStats.resetPeak()
            var base = MemoryStats.liveBytes
            _ = centreContributions(model: loaded.model, input: input, stages: [1, 2, 3, 4])
            let erfPeak = MemoryStats.peakBytes - base
            MemoryStats.resetPeak()
            base = MemoryStats.liveBytes
            _ = loaded.model.logits(input)
            let forwardPeak = MemoryStats.peakBytes - base

            let ratios = [("parameters", Double(backward.parameterBytes) / Double(parameters)),
                          ("forward+backward activations", Double(backward.activationBytes) / Double(erfPeak)),
                          ("forward activations", Double(forward.activationBytes) / Double(forwardPeak))]
            print(name, ratios.map { "\($0.0) \(String(format: "%.2f", $0.1))" }.joined(separator: ", "))
            for (what, r) in ratios {
                XCTAssertGreaterThanOrEqual(r, 1, "\(name): \(what) estimate below the measured peak")
                XCTAssertLessThanOrEqual(r, 3, "\(name): \(what) estimate more than 3 times the measured peak")
            }
        }
    }

    func testEstimateGrowsWithBatchAndSizeAndSaturates() throws {
        let config = try XCTUnwrap(Presets.named("unified_swin_tiny"))
        let one = MemoryPlan.estimate(config, size: 224, batch: 1, backward: true)
        let eight = MemoryPlan.estimate(config, size: 224, batch: 8, backward: true)
        XCTAssertEqual(Double(eight.activationBytes) / Double(one.activationBytes), 8, accuracy: 0.01)
        XCTAssertEqual(one.parameterBytes, eight.parameterBytes)
        XCTAssertGreaterThan(MemoryPlan.estimate(config, size: 1024, batch: 1, backward: true).activationBytes, 15 * one.activationBytes)
        // Absurd architectures give a huge (clamped) number, never an overflow trap.
        var wide = config
        wide.dims = [16_384, 16_384, 16_384, 16_384]
        wide.depths = [256, 256, 256, 256]
        XCTAssertGreaterThan(MemoryPlan.estimate(wide, size: 4096, batch: 1 << 40, backward: true).totalBytes, 1 << 50)
    }

    func testByteSizesParse() {
        XCTAssertEqual(MemoryPlan.parseBytes("3G"), 3 << 30)
        XCTAssertEqual(MemoryPlan.parseBytes("512M"), 512 << 20)
        XCTAssertEqual(MemoryPlan.parseBytes("1.5GiB"), 3 << 29)
        XCTAssertEqual(MemoryPlan.parseBytes("64k"), 64 << 10)
        XCTAssertEqual(MemoryPlan.parseBytes("1000000"), 1_000_000)
        for bad in ["", "G", "-3G", "0", "3X", "1e30", "nan"] { XCTAssertNil(MemoryPlan.parseBytes(bad), bad) }
        XCTAssertGreaterThan(MemoryPlan.defaultBudget, 1 << 28)
        XCTAssertEqual(MemoryPlan.format(3 << 30), "3.0 GiB")
    }

    func testOverBudgetIsOneErrorWithHints() throws {
        let config = try XCTUnwrap(Presets.named("unified_convnext_tiny"))
        let plan = MemoryPlan.estimate(config, size: 1024, batch: 8, backward: true)
        XCTAssertNoThrow(try plan.check(budget: plan.totalBytes, subject: "m", batch: 8, size: 1024))
        XCTAssertThrowsError(try plan.check(budget: 1 << 30, subject: "m", batch: 8, size: 1024)) { error in
            let text = "\(error)"
            for w in ["m: the run would need about", "--batch 1", "a smaller --size", "over the 1.0 GiB allowed by --max-memory"] {
                XCTAssertTrue(text.contains(w), "'\(w)' not in \(text)")
            }
        }
    }
}
