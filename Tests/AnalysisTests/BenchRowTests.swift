// Tests of the bench's row arithmetic: the floor share of the median and of the fastest repeat, and
// the JSON the bench's child processes hand to the parent (files written before the fastest repeat
// was recorded still read). No timing is asserted: timings belong to `make bench`, not to tests.

import Analysis
import Foundation
import XCTest

final class BenchRowTests: XCTestCase {
    private func row(medianMs: Double, bestMs: Double?) throws -> BenchRow {
        var fields: [String: Any] = [
            "preset": "p", "params": 1, "erf_stage4_ms_per_image": medianMs, "erf_all_stages_ms_per_image": 2 * medianMs,
            "forward_batch1_images_per_s": 1.0, "forward_large_batch_images_per_s": 1.0, "large_batch": 32, "erf_batch": 4,
            "erf_gflop_per_image": 20.0, "erf_gemm_ms_per_image": 50.0, "forward_gflop_per_image": 10.0,
            "peak_tensor_mb": 1.0, "peak_rss_mb": 1.0, "peak_rss_all_mb": 1.0, "sgemm_gflops": 200.0,
            "fma_peak_gflops": 400.0, "gemm_kernel": "avx512", "gemm_shapes": [Any](), "pytorch": [String: Any](),
            "ratios": [String: Any](),
        ]
        if let bestMs { fields["erf_stage4_best_ms_per_image"] = bestMs }
        return try JSONDecoder().decode(BenchRow.self, from: JSONSerialization.data(withJSONObject: fields))
    }

    /// 20 GFLOP at 400 GFLOP/s is 50 ms: a 100 ms median pass is at half its floor, an 80 ms fastest
    /// repeat at 62.5 %; a row without the fastest repeat has no best share.
    func testFloorSharesOfMedianAndFastestRepeat() throws {
        let r = try row(medianMs: 100, bestMs: 80)
        XCTAssertEqual(r.floorShare, 0.5, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(r.bestFloorShare), 0.625, accuracy: 1e-12)
        XCTAssertNil(try row(medianMs: 100, bestMs: nil).bestFloorShare)
    }

    /// The fastest repeat survives the child's JSON and the parent's pairing of rounds.
    func testFastestRepeatRoundTripsAndPairs() throws {
        let r = try row(medianMs: 100, bestMs: 80)
        let back = try JSONDecoder().decode(BenchRow.self, from: JSONEncoder().encode(r))
        XCTAssertEqual(back.erfStage4BestMsPerImage, 80)
        let paired = BenchRow(pairs: [r, try row(medianMs: 90, bestMs: 70), try row(medianMs: 120, bestMs: 95)], modes: [])
        // Without PyTorch the median pair is the one of the median ERF time, with its own fastest repeat.
        XCTAssertEqual(paired.erfStage4MsPerImage, 100)
        XCTAssertEqual(paired.erfStage4BestMsPerImage, 80)
    }

    /// One warm-up run and then the repeats; the fastest is never slower than the median. (No
    /// duration is asserted.)
    func testTimeRepeatsRunsWarmUpAndRepeats() {
        var calls = 0
        let t = timeRepeats(repeats: 5) { calls += 1 }
        XCTAssertEqual(calls, 6)
        XCTAssertLessThanOrEqual(t.best, t.median)
    }
}
