// stm-analyze: the root command and the option groups its subcommands share.

import Analysis
import ArgumentParser
import Checkpoint
import Foundation
import Models
import TensorCore

struct STMAnalyze: ParsableCommand {
    // The mixers are listed from the registry, so a registered mixer appears here too.
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "stm-analyze",
            abstract: "Effective receptive fields and invariance of spatial token mixers (STM-Evaluation models), on the CPU.",
            discussion: "Models are the study's unified architectures: "
                + MixerRegistry.mixers.map { "\($0.mixerName) (\($0.presetName))" }.joined(separator: ", ")
                + ". --model takes a checkpoint (.pth .pt .ckpt .bin .safetensors) or a preset name such as unified_swin_tiny for an untrained model.",
            version: toolVersion,
            subcommands: [Inspect.self, Classify.self, Erf.self, Invariance.self, Merge.self, Compare.self, Figure.self, Run.self, Bench.self, CocoEval.self])
    }
}

/// How checkpoints and untrained presets are turned into models; shared by every subcommand that
/// loads models (one meaning per option name: `--seed` is never the initialisation seed).
struct LoadOptions: ParsableArguments {
    @Option(name: .long, help: "Layer-scale value for untrained presets (the reference initialises it to 1e-6, which makes every block nearly an identity).")
    var initLayerScale: Double?

    @Option(name: .long, help: "Seed of the untrained initialisation.")
    var initSeed: UInt64 = 0

    @Option(name: .long, help: ArgumentHelp("A key prefix to strip besides the known ones (module., model., backbone., _orig_mod., encoder.).", valueName: "prefix"))
    var keyPrefix: String?

    func validate() throws {
        if let s = initLayerScale, !(s.isFinite && s >= 0) { throw ValidationError("--init-layer-scale must be a finite number >= 0") }
    }

    /// Loads `model` with `arch`, printing a loud notice for untrained presets.
    func load(model: String, arch: String?) throws -> LoadedModel {
        let loaded = try ModelLoader.load(model: model, arch: arch, initLayerScale: initLayerScale, seed: initSeed, keyPrefix: keyPrefix)
        warnIfUntrained(loaded, seed: initSeed)
        return loaded
    }
}

/// --model / --arch and the loading settings.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Checkpoint file, or a preset name for an untrained model.", valueName: "ckpt|preset"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("Architecture: preset name or JSON file (inferred from the checkpoint's keys when omitted).", valueName: "preset|file"))
    var arch: String?

    @OptionGroup var loading: LoadOptions

    /// Loads the model, printing a loud notice for untrained presets.
    func load() throws -> LoadedModel { try loading.load(model: model, arch: arch) }
}

/// Threads and verbosity.
struct RuntimeOptions: ParsableArguments {
    @Option(name: .long, help: "Threads for the kernels and matrix products (default: STM_THREADS or all cores).")
    var threads: Int?

    @Flag(name: .long, help: "Say more about what is being done (BLAS kernels, timings).")
    var verbose = false

    func validate() throws {
        if let t = threads, t < 1 || t > 1024 { throw ValidationError("--threads must be between 1 and 1024") }
        if let problem = GemmKernel.environmentProblem() { throw ValidationError(problem) }
    }

    func apply() {
        if let threads { Threads.set(threads) } else { Threads.configure() }
        if verbose {
            let forced = ProcessInfo.processInfo.environment["STM_GEMM_KERNEL"] != nil ? " (STM_GEMM_KERNEL)" : ""
            note("threads \(Threads.count); GEMM micro-kernel \(GemmKernel.current)\(forced), best on this CPU \(GemmKernel.best)")
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

/// A failure found by the command line itself (an output that cannot be written, nothing to do).
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Checks that `path`'s folder exists and is writable, so a run fails before its work, not after.
func checkWritableOutput(_ path: String, option: String) throws {
    let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
        throw ValidationError("\(option) \(path): the folder \(dir) does not exist")
    }
    guard FileManager.default.isWritableFile(atPath: dir) else {
        throw ValidationError("\(option) \(path): the folder \(dir) is not writable")
    }
}

/// Encodes a JSON-compatible value with sorted keys and writes it atomically.
func writeJSON(_ value: Any, to path: String) throws {
    let data = try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])
    try writeAtomically(data + Data("\n".utf8), to: path)
}
