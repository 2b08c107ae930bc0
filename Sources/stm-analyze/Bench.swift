// stm-analyze bench: speed and memory of the core on untrained presets (what `make bench` runs).
// Each preset is measured in a child process of its own, so its peak RSS is its own.

import Analysis
import Models
import ArgumentParser
import Foundation
import TensorCore

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time ERF passes and forward throughput on untrained presets; print a table and write JSON.",
        discussion: """
            Per preset: milliseconds per image for the ERF of stage 4 (forward to stage 4, one input-gradient \
            backward) and of all four stages from one forward; forward images/s at batch 1 and at --large-batch; \
            the GEMM rate reached during the stage-4 ERF and its share of this machine's sgemm rate measured in \
            the same run; peak tensor memory and peak RSS of the process that ran it.
            """)

    @Option(name: .long, parsing: .upToNextOption, help: "Presets to time.")
    var presets: [String] = ["unified_convnext_tiny", "unified_swin_tiny", "unified_halo_tiny", "unified_pvt_tiny",
                             "unified_dcn_v3_tiny", "unified_convnext_base", "unified_swin_base"]

    @Option(name: .long, help: "Images per ERF pass (1, as a per-image ERF job runs; larger batches are no faster per image here).")
    var erfBatch = 1

    @Option(name: .long, help: "Batch for forward throughput.")
    var largeBatch = 32

    @Option(name: .long, help: "Timed repeats (median reported).")
    var repeats = 3

    @Option(name: .long, help: ArgumentHelp("Write the results as JSON.", valueName: "file.json"))
    var json: String?

    @Flag(name: .long, help: .hidden)
    var child = false

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if erfBatch < 1 || largeBatch < 1 || repeats < 1 { throw ValidationError("--erf-batch, --large-batch and --repeats must be at least 1") }
        if let json { try checkWritableOutput(json, option: "--json") }
        for p in presets where Presets.named(p) == nil { throw ValidationError("--presets: \(p) is not a preset") }
    }

    func run() throws {
        runtime.apply()
        if child {
            let r = try benchmarkPreset(presets[0], erfBatch: erfBatch, largeBatch: largeBatch, repeats: repeats)
            let row: [String: Any] = [
                "preset": r.preset, "params": r.params, "erf_stage4_ms_per_image": 1000 * r.erfStage4,
                "erf_all_stages_ms_per_image": 1000 * r.erfAllStages, "forward_batch1_images_per_s": r.forwardBatch1,
                "forward_large_batch_images_per_s": r.forwardBatchLarge, "large_batch": largeBatch, "erf_batch": erfBatch,
                "erf_gflop_per_image": r.erfFlops / 1e9, "peak_tensor_mb": Double(r.peakTensorBytes) / 1e6,
                "peak_rss_mb": Double(r.erfPeakRSSBytes) / 1e6, "peak_rss_all_mb": Double(peakRSSBytes()) / 1e6,
            ]
            try writeJSON(row, to: json!)
            return
        }
        let sgemm = measureSgemmRate()
        print("threads \(Threads.count), OpenBLAS \(BLASInfo.coreName) kernels, sgemm \(String(format: "%.0f", sgemm)) GFLOP/s (1024^3, OpenBLAS threading, this run)")
        print("preset                    ERF s4 ms/img  ERF all ms/img  fwd b1 img/s  fwd b\(largeBatch) img/s  GFLOP/s  share  tensors MB  RSS MB (ERF)")
        var rows: [[String: Any]] = []
        for p in presets {
            var row = try measureInChild(p)
            let ms = row["erf_stage4_ms_per_image"] as! Double
            let rate = (row["erf_gflop_per_image"] as! Double) / (ms / 1000)
            row["gflops"] = rate
            row["sgemm_share"] = rate / sgemm
            print(String(format: "%-25@ %13.1f  %14.1f  %12.2f  %13.2f  %7.0f  %4.0f%%  %10.0f  %6.0f", p as NSString, ms,
                         row["erf_all_stages_ms_per_image"] as! Double, row["forward_batch1_images_per_s"] as! Double,
                         row["forward_large_batch_images_per_s"] as! Double, rate, 100 * rate / sgemm,
                         row["peak_tensor_mb"] as! Double, row["peak_rss_mb"] as! Double))
            rows.append(row)
        }
        if let json {
            try writeJSON(["threads": Threads.count, "blas_kernels": BLASInfo.coreName, "sgemm_gflops": sgemm, "presets": rows], to: json)
            print("wrote \(json)")
        }
    }

    /// Runs this program's `bench --child` for one preset and reads its JSON row.
    private func measureInChild(_ preset: String) throws -> [String: Any] {
        let tmp = NSTemporaryDirectory() + "stm-bench-\(getpid())-\(preset).json"
        defer { unlink(tmp) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        process.arguments = ["bench", "--child", "--presets", preset, "--erf-batch", "\(erfBatch)", "--large-batch", "\(largeBatch)",
                             "--repeats", "\(repeats)", "--threads", "\(Threads.count)", "--json", tmp]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let data = FileManager.default.contents(atPath: tmp),
              let row = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CLIError("bench: measuring \(preset) failed (exit status \(process.terminationStatus))")
        }
        return row
    }
}
