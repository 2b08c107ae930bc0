// stm-analyze bench: speed and memory of the core on untrained presets (what `make bench` runs).
// Each preset is measured in a child process of its own, so its peak RSS is its own.

import Analysis
import Checkpoint
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

            With --pytorch PYTHON, each preset is also run by the PyTorch baseline in bench/pytorch (the \
            published architecture, parity-checked against the reference fixtures by check_parity.py), one \
            preset after the other in the same run, and a second table gives the ratios.
            """)

    @Option(name: .long, parsing: .upToNextOption, help: "Presets to time.")
    var presets: [String] = ["unified_convnext_tiny", "unified_swin_tiny", "unified_halo_tiny", "unified_pvt_tiny",
                             "unified_dcn_v3_tiny", "unified_convnext_base", "unified_swin_base"]

    @Option(name: .long, help: "Images per ERF pass, for both tools (4, the default of `erf --batch`; results do not depend on it).")
    var erfBatch = 4

    @Option(name: .long, help: "Batch for forward throughput.")
    var largeBatch = 32

    @Option(name: .long, help: "Timed repeats (median reported).")
    var repeats = 3
    @Option(name: .long, help: ArgumentHelp("Rounds per preset: stm-analyze and PyTorch in turn, A B A B ..., each speed-up taken pair by pair (median and range reported; the row shown is the median pair's).", valueName: "n"))
    var rounds = 1

    @Option(name: .long, help: ArgumentHelp("Write the results as JSON.", valueName: "file.json"))
    var json: String?

    @Option(name: .long, help: ArgumentHelp("A Python that has torch: time the PyTorch baseline too, in the same run, and print the ratios.", valueName: "python"))
    var pytorch: String?

    @Option(name: .long, help: ArgumentHelp("The PyTorch baseline script.", valueName: "file.py"))
    var pytorchScript = "bench/pytorch/bench_torch.py"

    @Option(name: .long, parsing: .upToNextOption, help: "PyTorch modes to time: eager, lossless (oneDNN matmul + torch.compile).")
    var pytorchModes: [String] = ["eager"]

    @Flag(name: .long, help: .hidden)
    var child = false

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if erfBatch < 1 || largeBatch < 1 || repeats < 1 || rounds < 1 {
            throw ValidationError("--erf-batch, --large-batch, --repeats and --rounds must be at least 1")
        }
        if child && rounds != 1 { throw ValidationError("--child (used by bench itself) takes no --rounds") }
        if let json { try checkWritableOutput(json, option: "--json") }
        if child && (json == nil || presets.count != 1) {
            throw ValidationError("--child (used by bench itself) needs --json and exactly one preset")
        }
        for p in presets where Presets.named(p) == nil { throw ValidationError("--presets: \(p) is not a preset") }
        if pytorch != nil {
            guard FileManager.default.isReadableFile(atPath: pytorchScript) else {
                throw ValidationError("--pytorch-script: \(pytorchScript) not found (run from the repository root, or pass its path)")
            }
            for m in pytorchModes where !["eager", "lossless"].contains(m) {
                throw ValidationError("--pytorch-modes: \(m) is not a mode (eager, lossless)")
            }
        }
    }

    func run() throws {
        runtime.apply()
        if child {
            // This process's own view of the machine's rates: on a shared host they change during a run.
            // OpenBLAS's sgemm runs after the ERF, whose peak RSS is read first: its buffers are the
            // yardstick's, not the ERF's.
            let peak = measureFMAPeak()
            let r = try benchmarkPreset(presets[0], erfBatch: erfBatch, largeBatch: largeBatch, repeats: repeats)
            let sgemm = measureSgemmRate()
            let row = BenchRow(r, erfBatch: erfBatch, sgemmGflops: sgemm, fmaPeakGflops: peak)
            try writeAtomically(try encodeBench(row) + Data("\n".utf8), to: json!)
            return
        }
        var peak = measureFMAPeak()  // first: OpenBLAS's threads spin for a while after its sgemm
        let sgemm = measureSgemmRate()
        let blocks = GemmKernel.blockingOverride.map { " with kc \($0.kc), mc \($0.mc) (STM_GEMM_KC/MC)" } ?? ""
        print("threads \(Threads.count), GEMM kernel \(GemmKernel.current)\(blocks) (ours); OpenBLAS \(BLASInfo.coreName) kernels, sgemm "
              + "\(String(format: "%.0f", sgemm)) GFLOP/s (1024^3, OpenBLAS threading); float32 FMA peak \(String(format: "%.0f", peak)) GFLOP/s "
              + "at the kernel's width; best of 9 each, now; each preset's process measures both again (floors use the job's highest peak)")
        print("preset                    ERF s4 ms/img  ERF all ms/img  fwd b1 img/s  fwd b\(largeBatch) img/s  GFLOP/s  sgemm  share  in GEMM  floor  best  tensors MB  RSS MB (ERF)")
        var rows: [BenchRow] = []
        for p in presets {
            // On a shared host the machine's speed drifts over minutes: with --rounds, the two tools run
            // in turn and each speed-up is taken within a pair, as farm-style A/B timing does.
            var pairs: [BenchRow] = []
            for round in 1...rounds {
                var row = try measureInChild(p)
                // The FMA peak is a constant of the machine that a busy moment can only lower: each row's
                // floor uses the highest reading so far, and the summary below the job's highest.
                peak = max(row.fmaPeakGflops, peak)
                row.fmaPeakGflops = peak
                let name = rounds > 1 ? "\(p) #\(round)" : p
                print(String(format: "%-25@ %13.1f  %14.1f  %12.2f  %13.2f  %7.0f  %5.0f  %4.0f%%  %6.0f%%  %4.0f%%  %3.0f%%  %10.0f  %6.0f", name as NSString,
                             row.erfStage4MsPerImage, row.erfAllStagesMsPerImage, row.forwardBatch1ImagesPerS,
                             row.forwardLargeBatchImagesPerS, row.gflops, row.sgemmGflops, 100 * row.gflops / row.sgemmGflops,
                             100 * row.gemmTimeShare, 100 * row.floorShare, 100 * (row.bestFloorShare ?? .nan),
                             row.peakTensorMB, row.peakRSSMB))
                if let pytorch {
                    for mode in pytorchModes { row.pytorch[mode] = try measurePyTorch(p, python: pytorch, mode: mode) }
                }
                pairs.append(row)
            }
            rows.append(BenchRow(pairs: pairs, modes: pytorch == nil ? [] : pytorchModes))
        }
        // On a shared host (seen: a 2-vCPU VM whose two threads ran at one core's rate for minutes) a
        // preset's own reading can be half the machine's.
        for i in rows.indices {
            rows[i].fmaPeakGflops = peak
            rows[i].rounds = rows[i].rounds?.map { var r = $0; r.fmaPeakGflops = peak; return r }
        }
        print("\nfloor at the job's highest float32 FMA peak, \(String(format: "%.0f", peak)) GFLOP/s, the median repeat "
              + "(the fastest repeat's in brackets; the targets read the median): "
              + rows.map { r in
                  "\(r.preset) \(String(format: "%.0f%%", 100 * r.floorShare))"
                      + (r.bestFloorShare.map { String(format: " (%.0f%%)", 100 * $0) } ?? "")
              }.joined(separator: ", "))
        printShapes(rows)
        if pytorch != nil { printComparison(rows) }
        if let json {
            let doc = BenchDocument(threads: Threads.count, gemmKernel: GemmKernel.label, blasKernels: BLASInfo.coreName,
                                    sgemmGflops: sgemm, fmaPeakGflops: peak, presets: rows)
            try writeAtomically(try encodeBench(doc) + Data("\n".utf8), to: json)
            print("wrote \(json)")
        }
    }

    /// Per preset, the ERF pass's longest GEMM shapes, each timed alone: our rate against OpenBLAS's.
    private func printShapes(_ rows: [BenchRow]) {
        print("\nGEMM shapes of one stage-4 ERF pass (longest first), each timed alone in the preset's process: ours against OpenBLAS's sgemm (GFLOP/s)")
        print("preset                    shape                         calls  flops  ours  OpenBLAS  ours/OpenBLAS")
        for row in rows {
            for s in row.gemmShapes {
                let shape = "\(s.shape.transA ? "T" : "N")\(s.shape.transB ? "T" : "N") m=\(s.shape.m) n=\(s.shape.n) k=\(s.shape.k)"
                print(String(format: "%-25@ %-29@ %5d  %4.0f%%  %4.0f  %8.0f  %12.2fx", row.preset as NSString, shape as NSString,
                             s.calls, 100 * s.flopShare, s.oursGflops, s.openblasGflops, s.oursGflops / s.openblasGflops))
            }
        }
    }

    /// Runs the PyTorch baseline script for one preset and mode and reads its JSON object.
    private func measurePyTorch(_ preset: String, python: String, mode: String) throws -> PyTorchTimes {
        FileHandle.standardError.write(Data("bench: PyTorch \(mode), \(preset)\n".utf8))
        return try runWritingJSON("/usr/bin/env", [python, pytorchScript, "--preset", preset, "--threads", "\(Threads.count)",
                                                   "--repeats", "\(repeats)", "--large-batch", "\(largeBatch)",
                                                   "--erf-batch", "\(erfBatch)", "--mode", mode],
                                  tag: "torch-\(preset)-\(mode)") { status in
            "bench: the PyTorch baseline failed for \(preset) (\(mode), exit status \(status)); "
                + "its message is above (hint: --pytorch takes a Python that can import torch)"
        }
    }

    /// The second table: stm-analyze against each PyTorch mode, as ratios taken in this run
    /// (speed-up = PyTorch's time / ours; RSS ratio = ours / PyTorch's). The last columns bound what any
    /// float32 implementation could reach here: the ERF's matrix-product flops alone, at this run's
    /// sgemm rate and at the FMA peak, both measured by the preset's own process, as a speed-up over
    /// PyTorch; then the same bound at the peak for the forward at the large batch.
    private func printComparison(_ rows: [BenchRow]) {
        if rounds > 1 {
            print("\nspeed-ups pair by pair over \(rounds) rounds (PyTorch time / stm-analyze time in the same round): median (min-max); the tables below show each preset's median pair")
            print("preset                    mode      ERF s4                 ERF all                fwd b1                 fwd b\(largeBatch)")
            for row in rows {
                for mode in pytorchModes {
                    guard let r = row.ratios[mode] else { continue }
                    let cells = [r.erfStage4, r.erfAllStages, r.forwardBatch1, r.forwardLarge].map { s in
                        String(format: "%5.2fx (%4.2f-%4.2f)", s.median, s.min, s.max)
                    }
                    print(String(format: "%-25@ %-9@ ", row.preset as NSString, mode as NSString) + cells.joined(separator: "  "))
                }
            }
        }
        for mode in pytorchModes {
            print("\nagainst PyTorch \(mode), same run, \(Threads.count) threads (speed-up = PyTorch time / stm-analyze time)")
            print("preset                    ERF s4 ms: torch   ours  speed-up  ERF all  fwd b1  fwd b\(largeBatch): torch img/s  speed-up  ERF RSS MB: torch  ours  ours/torch  bound at sgemm  at peak  fwd bound at peak")
            for row in rows {
                guard let t = row.pytorch[mode] else { continue }
                let x = SpeedUps(row, t), gflop = row.erfGflopPerImage
                let peak = max(row.fmaPeakGflops, row.sgemmGflops)
                print(String(format: "%-25@ %16.1f %6.1f  %7.2fx %7.2fx %6.2fx %19.2f  %8.2fx %17.0f %5.0f  %10.2f  %13.2fx %7.2fx %17.2fx",
                             row.preset as NSString, t.erfStage4Ms, row.erfStage4MsPerImage, x.erfStage4, x.erfAllStages,
                             x.forwardBatch1, t.forwardLargeIps, x.forwardLarge,
                             t.erfPeakRSSBytes / 1e6, row.peakRSSMB, x.rss,
                             t.erfStage4Ms / (1000 * gflop / row.sgemmGflops), t.erfStage4Ms / (1000 * gflop / peak),
                             peak / (row.forwardGflopPerImage * t.forwardLargeIps)))
            }
        }
    }

    /// Runs this program's `bench --child` for one preset and reads its JSON row.
    private func measureInChild(_ preset: String) throws -> BenchRow {
        try runWritingJSON("/proc/self/exe", ["bench", "--child", "--presets", preset, "--erf-batch", "\(erfBatch)",
                                              "--large-batch", "\(largeBatch)", "--repeats", "\(repeats)",
                                              "--threads", "\(Threads.count)"], tag: preset) { status in
            "bench: measuring \(preset) failed (exit status \(status))"
        }
    }

    /// Runs `executable arguments --json TMP`, waits, and returns the JSON object it wrote to TMP;
    /// throws `failure(exit status)` when it fails or writes no object.
    private func runWritingJSON<T: Decodable>(_ executable: String, _ arguments: [String], tag: String,
                                              failure: (Int32) -> String) throws -> T {
        let tmp = NSTemporaryDirectory() + "stm-bench-\(getpid())-\(tag).json"
        defer { unlink(tmp) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments + ["--json", tmp]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let data = FileManager.default.contents(atPath: tmp),
              let row = try? JSONDecoder().decode(T.self, from: data) else {
            throw CLIError(failure(process.terminationStatus))
        }
        return row
    }
}

/// The whole `bench --json` document.
struct BenchDocument: Codable {
    var threads: Int
    var gemmKernel: String
    var blasKernels: String
    var sgemmGflops: Double
    var fmaPeakGflops: Double
    var presets: [BenchRow]

    enum CodingKeys: String, CodingKey {
        case threads, gemmKernel = "gemm_kernel", blasKernels = "blas_kernels", sgemmGflops = "sgemm_gflops"
        case fmaPeakGflops = "fma_peak_gflops", presets
    }
}

/// Sorted-key, pretty JSON of a bench value.
func encodeBench<T: Encodable>(_ value: T) throws -> Data {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try e.encode(value)
}
