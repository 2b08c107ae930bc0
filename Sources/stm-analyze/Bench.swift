// stm-analyze bench: speed and memory of the core on untrained presets (what `make bench` runs).

import Analysis
import ArgumentParser
import Foundation
import TensorCore

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time ERF passes and forward throughput on untrained presets; print a table and write JSON.")

    @Option(name: .long, parsing: .upToNextOption, help: "Presets to time.")
    var presets: [String] = ["unified_convnext_tiny", "unified_swin_tiny", "unified_halo_tiny", "unified_pvt_tiny",
                             "unified_dcn_v3_tiny", "unified_convnext_base", "unified_swin_base"]

    @Option(name: .long, help: "Images per ERF pass.")
    var erfBatch = 4

    @Option(name: .long, help: "Batch for forward throughput.")
    var largeBatch = 32

    @Option(name: .long, help: "Timed repeats (median reported).")
    var repeats = 3

    @Option(name: .long, help: ArgumentHelp("Write the results as JSON.", valueName: "file.json"))
    var json: String?

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if erfBatch < 1 || largeBatch < 1 || repeats < 1 { throw ValidationError("--erf-batch, --large-batch and --repeats must be at least 1") }
        if let json { try checkWritableOutput(json, option: "--json") }
    }

    func run() throws {
        runtime.apply()
        let sgemm = measureSgemm()
        print("threads \(Threads.count), OpenBLAS \(BLASInfo.coreName) kernels, sgemm \(String(format: "%.0f", sgemm)) GFLOP/s")
        print("preset                   ERF s4 ms/img  ERF all ms/img  fwd b1 img/s  fwd b\(largeBatch) img/s  GFLOP/s  share  peak MB")
        var rows: [[String: Any]] = []
        for p in presets {
            let r = try benchmarkPreset(p, erfBatch: erfBatch, largeBatch: largeBatch, repeats: repeats)
            let rate = r.erfFlops / r.erfStage4 / 1e9
            print(String(format: "%-24@ %13.1f  %14.1f  %12.2f  %13.2f  %7.0f  %4.0f%%  %7.0f", p as NSString, 1000 * r.erfStage4, 1000 * r.erfAllStages,
                         r.forwardBatch1, r.forwardBatchLarge, rate, 100 * rate / sgemm, Double(r.peakTensorBytes) / 1e6))
            rows.append(["preset": p, "params": r.params, "erf_stage4_ms_per_image": 1000 * r.erfStage4,
                         "erf_all_stages_ms_per_image": 1000 * r.erfAllStages, "forward_batch1_images_per_s": r.forwardBatch1,
                         "forward_batch\(largeBatch)_images_per_s": r.forwardBatchLarge, "gflops": rate, "sgemm_share": rate / sgemm,
                         "peak_tensor_mb": Double(r.peakTensorBytes) / 1e6])
        }
        if let json {
            try writeJSON(["threads": Threads.count, "blas_kernels": BLASInfo.coreName, "sgemm_gflops": sgemm, "presets": rows], to: json)
        }
    }
}
