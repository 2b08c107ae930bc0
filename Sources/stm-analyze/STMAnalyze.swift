// stm-analyze: the root command and the option groups its subcommands share.

import ArgumentParser
import Checkpoint
import Foundation
import Models
import TensorCore

struct STMAnalyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stm-analyze",
        abstract: "Effective receptive fields and invariance of spatial token mixers (STM-Evaluation models), on the CPU.",
        discussion: """
            Models are the study's unified architectures: U-DWConv (convnext), U-Swin (swin), U-HaloNet (halo), \
            U-PVT (pvt) and U-InternImage (dcn_v3). --model takes a checkpoint (.pth .pt .ckpt .bin .safetensors) \
            or a preset name such as unified_swin_tiny for an untrained model.
            """,
        version: "0.1.0",
        subcommands: [Inspect.self, Classify.self, Erf.self, Invariance.self, Bench.self, CocoEval.self])
}

/// --model / --arch and the untrained-model settings.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Checkpoint file, or a preset name for an untrained model.", valueName: "ckpt|preset"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("Architecture: preset name or JSON file (inferred from the checkpoint's keys when omitted).", valueName: "preset|file"))
    var arch: String?

    @Option(name: .long, help: "Layer-scale value for untrained presets (the reference initialises it to 1e-6, which makes every block nearly an identity).")
    var initLayerScale: Double?

    @Option(name: .long, help: "Seed of the untrained initialisation.")
    var seed: UInt64 = 0

    @Flag(name: .long, help: "Run even when the checkpoint's weights hold NaN or infinite values (refused by default).")
    var allowNonfinite = false

    func validate() throws {
        if let s = initLayerScale, !(s.isFinite && s >= 0) { throw ValidationError("--init-layer-scale must be a finite number >= 0") }
    }

    /// Loads the model, printing a loud notice for untrained presets; weights that are not all finite
    /// are named in a warning and refused unless --allow-nonfinite.
    func load() throws -> LoadedModel {
        let loaded = try ModelLoader.load(model: model, arch: arch, initLayerScale: initLayerScale, seed: seed)
        warnIfUntrained(loaded, seed: seed)
        try checkFiniteWeights(loaded, allow: allowNonfinite, analysis: "its analysis")
        return loaded
    }
}

/// Threads and verbosity.
struct RuntimeOptions: ParsableArguments {
    @Option(name: .long, help: "Threads for kernels and OpenBLAS (default: STM_THREADS or all cores).")
    var threads: Int?

    @Flag(name: .long, help: "Say more about what is being done (BLAS kernels, timings).")
    var verbose = false

    func validate() throws {
        if let t = threads, t < 1 || t > 1024 { throw ValidationError("--threads must be between 1 and 1024" + (t < 1 ? " (got \(t))" : "")) }
        if threads == nil { _ = try threadsFromEnvironment() }
    }

    func apply() {
        if let n = threads ?? (try? threadsFromEnvironment()) ?? nil { Threads.set(n) } else { Threads.configure() }
        if verbose {
            let env = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { " (OPENBLAS_CORETYPE=\($0))" } ?? ""
            note("threads \(Threads.count); OpenBLAS \(BLASInfo.coreName) kernels\(env)\(BLASInfo.usesAVX512Kernels ? ", AVX-512" : "")")
        }
    }
}

/// Says loudly on stderr that a model has random weights.
func warnIfUntrained(_ loaded: LoadedModel, seed: UInt64) {
    if loaded.untrained {
        warn("\(loaded.config.displayName) is UNTRAINED: random weights (seed \(seed)); its outputs say nothing about the trained model")
    }
}

/// Writes a line to stderr.
func note(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Writes a warning line to stderr.
func warn(_ message: String) {
    note("warning: " + message)
}

/// A check on a run's results that failed (invariance --fail-below): the run itself worked and wrote
/// its outputs. Exit status 2, so that CI can tell a regression from a run that could not be done (1).
struct CheckTripped: Error, CustomStringConvertible {
    static let exitStatus: Int32 = 2
    var description: String
    init(_ description: String) { self.description = description }
}

/// A failure found by the command line itself (an output that cannot be written, nothing to do).
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
