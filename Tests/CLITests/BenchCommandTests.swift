// `stm-analyze bench`: bad options give one error line, and the PyTorch comparison reads the
// baseline's JSON and reports the ratios of the same run. The baseline is replaced here by a shell
// script that writes fixed numbers, so the test needs no PyTorch and checks the plumbing exactly.
// Timings themselves are never asserted.

import Foundation
import TestSupport
import XCTest

final class BenchCommandTests: XCTestCase {
    /// A stand-in for bench_torch.py: writes fixed timings to the path after `--json`, or fails. With
    /// `counting`, its ERF time and large-batch throughput grow with each call (1000, 2000, 3000 ms; 1, 2,
    /// 3 img/s), the calls counted in a file `calls` beside it.
    func fakeBaseline(in dir: String, failing: Bool = false, counting: Bool = false) -> String {
        let path = dir + "/fake_torch.sh"
        let count = counting ? "n=$(( $(cat \"\(dir)/calls\" 2>/dev/null || echo 0) + 1 )); echo $n > \"\(dir)/calls\"\n" : ""
        let (erf, large) = counting ? ("${n}000", "$n") : ("1000", "4")
        let body = failing ? "echo 'fake baseline: no torch here' >&2; exit 3\n" : """
            while [ $# -gt 0 ]; do if [ "$1" = --json ]; then out="$2"; fi; shift; done
            \(count)printf '{"erf_stage4_ms": %s, "erf_all_stages_ms": 3000, "forward_b1_ips": 2, "forward_large_ips": %s, "erf_peak_rss_bytes": 2000000000}' "\(erf)" "\(large)" > "$out"

            """
        FileManager.default.createFile(atPath: path, contents: Data(body.utf8))
        return path
    }

    func testComparisonUsesTheBaselinesNumbers() throws {
        let dir = temporaryDirectory()
        let json = dir + "/bench.json"
        let run = try runTool(["bench", "--presets", "unified_convnext_micro", "--repeats", "1", "--large-batch", "2",
                               "--threads", "1", "--pytorch", "/bin/sh", "--pytorch-script", fakeBaseline(in: dir), "--json", json])
        XCTAssertEqual(run.status, 0, run.stderr)
        let data = try XCTUnwrap(FileManager.default.contents(atPath: json))
        let top = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let row = try XCTUnwrap((top["presets"] as? [[String: Any]])?.first)
        let torch = try XCTUnwrap((row["pytorch"] as? [String: Any])?["eager"] as? [String: Any])
        XCTAssertEqual(torch["erf_stage4_ms"] as? Double, 1000)
        let ours = try XCTUnwrap(row["erf_stage4_ms_per_image"] as? Double)
        XCTAssertGreaterThan(ours, 0)
        // The comparison line carries PyTorch's time, ours, and their ratio.
        let line = try XCTUnwrap(run.stdout.split(separator: "\n").last { $0.hasPrefix("unified_convnext_micro") && $0.contains("1000.0") })
        XCTAssertTrue(line.contains(String(format: "%.2fx", 1000 / ours)), "no speed-up \(1000 / ours) in: \(line)")
        XCTAssertTrue(line.contains(String(format: "%.0f", 2000.0)), "no PyTorch RSS in: \(line)")
        for key in ["sgemm_gflops", "fma_peak_gflops", "erf_gflop_per_image", "erf_gemm_ms_per_image", "forward_gflop_per_image"] {
            XCTAssertGreaterThan(row[key] as? Double ?? 0, 0, key)
        }
        // A forward has the products of the ERF's forward half and more (the later stages and the head),
        // but fewer than forward and backward together.
        let forward = try XCTUnwrap(row["forward_gflop_per_image"] as? Double), erf = try XCTUnwrap(row["erf_gflop_per_image"] as? Double)
        XCTAssertLessThan(forward, erf)
        XCTAssertGreaterThan(forward, erf / 4)
        // The last column bounds the forward: PyTorch's large-batch time over the forward's products at the peak.
        let peak = max(try XCTUnwrap(row["fma_peak_gflops"] as? Double), try XCTUnwrap(row["sgemm_gflops"] as? Double))
        let torchLarge = try XCTUnwrap(torch["forward_large_ips"] as? Double)
        XCTAssertTrue(line.hasSuffix(String(format: "%.2fx", peak / (forward * torchLarge))), "no forward bound in: \(line)")
        // Each of the ERF's longest GEMM shapes is timed alone, ours beside OpenBLAS's.
        let shapes = try XCTUnwrap(row["gemm_shapes"] as? [[String: Any]])
        XCTAssertFalse(shapes.isEmpty)
        for s in shapes {
            XCTAssertGreaterThan(s["ours_gflops"] as? Double ?? 0, 0)
            XCTAssertGreaterThan(s["openblas_gflops"] as? Double ?? 0, 0)
        }
        XCTAssertTrue(run.stdout.contains("ours/OpenBLAS"), run.stdout)
        // The FMA peak is measured at the GEMM kernel's vector width (it once read 1 GFLOP/s on AVX2);
        // the portable kernel's (STM_GEMM_KERNEL=portable) is one float.
        let vector = top["gemm_kernel"] as? String != "portable"
        XCTAssertGreaterThan(top["fma_peak_gflops"] as? Double ?? 0, vector ? 4 : 0)
    }

    /// With --rounds, the tools run in turn and each speed-up is taken within its own pair: the JSON
    /// keeps every round, the spread is that of the pairwise ratios, and the row is the median pair's.
    func testRoundsTakeRatiosPairByPair() throws {
        let dir = temporaryDirectory()
        let json = dir + "/bench.json"
        let run = try runTool(["bench", "--presets", "unified_convnext_micro", "--repeats", "1", "--large-batch", "2",
                               "--threads", "1", "--rounds", "3", "--pytorch", "/bin/sh", "--pytorch-script", fakeBaseline(in: dir, counting: true),
                               "--json", json])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try String(contentsOfFile: dir + "/calls", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), "3")
        let data = try XCTUnwrap(FileManager.default.contents(atPath: json))
        let top = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let row = try XCTUnwrap((top["presets"] as? [[String: Any]])?.first)
        let rounds = try XCTUnwrap(row["rounds"] as? [[String: Any]])
        XCTAssertEqual(rounds.count, 3)
        var erfRatios: [Double] = [], fwdRatios: [Double] = []
        for (i, r) in rounds.enumerated() {
            let torch = try XCTUnwrap((r["pytorch"] as? [String: Any])?["eager"] as? [String: Any])
            // Round i was paired with the baseline's call i + 1.
            XCTAssertEqual(torch["erf_stage4_ms"] as? Double, Double(1000 * (i + 1)))
            let ours = try XCTUnwrap(r["erf_stage4_ms_per_image"] as? Double)
            erfRatios.append(Double(1000 * (i + 1)) / ours)
            fwdRatios.append(try XCTUnwrap(r["forward_large_batch_images_per_s"] as? Double) / Double(i + 1))
        }
        // (Compared to 1e-12: JSON's decimal text of a double may come back one ulp off.)
        func same(_ a: Any?, _ b: [Double], _ what: String) {
            let got = (a as? [Double]) ?? (a as? Double).map { [$0] } ?? []
            XCTAssertEqual(got.count, b.count, what)
            for (x, y) in zip(got, b) { XCTAssertEqual(x, y, accuracy: 1e-12 * abs(y), what) }
        }
        let eager = try XCTUnwrap((row["ratios"] as? [String: Any])?["eager"] as? [String: Any])
        let erf = try XCTUnwrap(eager["erf_stage4"] as? [String: Any])
        same(erf["rounds"], erfRatios, "rounds")
        same(erf["median"], [erfRatios.sorted()[1]], "median")
        same(erf["min"], [erfRatios.min()!], "min")
        same(erf["max"], [erfRatios.max()!], "max")
        same((eager["forward_large"] as? [String: Any])?["rounds"], fwdRatios, "forward")
        // The row itself is the median pair: its ERF time and its baseline's are that round's.
        let median = erfRatios.firstIndex(of: erfRatios.sorted()[1])!
        XCTAssertEqual(row["erf_stage4_ms_per_image"] as? Double, rounds[median]["erf_stage4_ms_per_image"] as? Double)
        XCTAssertEqual(((row["pytorch"] as? [String: Any])?["eager"] as? [String: Any])?["erf_stage4_ms"] as? Double,
                       Double(1000 * (median + 1)))
        // The pairwise table prints the median and the range.
        let line = try XCTUnwrap(run.stdout.split(separator: "\n").first { $0.hasPrefix("unified_convnext_micro") && $0.contains("eager") })
        XCTAssertTrue(line.contains(String(format: "%5.2fx (%4.2f-%4.2f)", erfRatios.sorted()[1], erfRatios.min()!, erfRatios.max()!)), String(line))
    }

    func testFailingBaselineIsOneErrorLine() throws {
        let dir = temporaryDirectory()
        let run = try runTool(["bench", "--presets", "unified_convnext_micro", "--repeats", "1", "--large-batch", "1",
                               "--threads", "1", "--pytorch", "/bin/sh", "--pytorch-script", fakeBaseline(in: dir, failing: true),
                               "--json", dir + "/bench.json"])
        XCTAssertEqual(run.status, 1)
        let errors = run.stderr.split(separator: "\n").filter { $0.hasPrefix("stm-analyze: error:") }
        XCTAssertEqual(errors.count, 1, run.stderr)
        XCTAssertTrue(errors.first?.contains("unified_convnext_micro") ?? false, run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/bench.json"))
    }

    func testBadOptions() throws {
        for (args, mention) in [(["--presets", "not_a_preset"], "not_a_preset"),
                                (["--pytorch", "python3", "--pytorch-script", "/nonexistent/bench_torch.py"], "/nonexistent/bench_torch.py"),
                                (["--pytorch", "python3", "--pytorch-modes", "fast"], "fast"),
                                (["--repeats", "0"], "--repeats"),
                                (["--rounds", "0"], "--rounds"),
                                (["--child"], "--child"),  // once a trap (no --json to write to)
                                (["--child", "--json", "/tmp/stm-bench-child.json"], "--child")] {
            let run = try runTool(["bench"] + args)
            XCTAssertEqual(run.status, 1, "\(args): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(mention), "\(args): \(run.stderr)")
            XCTAssertFalse(run.stderr.contains("Fatal error"))
        }
    }
}
