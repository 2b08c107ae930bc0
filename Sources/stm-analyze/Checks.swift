// stm-analyze: checks on the inputs before any analysis runs. Weights that hold NaN or infinite values
// make every number an analysis prints meaningless (a classification of "nan%", ERF maps that are all
// skipped), so they get one warning naming the tensors, and the analyses refuse them unless
// --allow-nonfinite is given. Every image's header is read before the first forward pass, so a bad
// image stops the run in a second (or is skipped with --skip-bad), not after all the compute.

import ArgumentParser
import Checkpoint
import Foundation
import Imaging
import Models

/// The tensors of `loaded`'s checkpoint that hold NaN or infinite values, as "name (k of n)" texts.
func nonFiniteTensorNames(_ loaded: LoadedModel) -> [String] {
    guard let state = loaded.state else { return [] }
    return state.nonFiniteTensors.map { bad in "\(bad.name) (\(bad.count) of \(state[bad.name]?.count ?? 0))" }
}

/// Warns once when the checkpoint's weights are not all finite and, unless `allow`, refuses the model.
/// `analysis` names what would be computed (for the error line).
func checkFiniteWeights(_ loaded: LoadedModel, allow: Bool, analysis: String) throws {
    let bad = nonFiniteTensorNames(loaded)
    guard !bad.isEmpty, let path = loaded.checkpoint else { return }
    let shown = bad.prefix(6).joined(separator: ", ") + (bad.count > 6 ? ", and \(bad.count - 6) more" : "")
    warn("\(path): \(bad.count) tensor\(bad.count == 1 ? " holds" : "s hold") NaN or infinite values: \(shown)")
    if !allow {
        throw CLIError("\(path): the checkpoint's weights are not all finite, so \(analysis) would give NaN (hint: the file is damaged or its training diverged; --allow-nonfinite runs it anyway)")
    }
}

/// A clause blaming the checkpoint when its weights are not all finite ("" when they are).
func nonFiniteWeightsClause(_ loaded: LoadedModel) -> String {
    let bad = nonFiniteTensorNames(loaded)
    guard !bad.isEmpty, let path = loaded.checkpoint else { return "" }
    return "; the cause is the checkpoint \(path), whose weights hold NaN or infinite values (\(bad.prefix(3).joined(separator: ", "))\(bad.count > 3 ? ", ..." : ""))"
}

/// Checks on the input images, run before the first forward pass: every image's header is read (a bad
/// image fails at once, or is skipped with --skip-bad), the pixel limit is applied before decoding,
/// and images smaller than the network input get one warning.
struct ImageCheckOptions: ParsableArguments {
    @Flag(name: .long, help: "Skip images that cannot be read (named on stderr and in the JSON) instead of stopping.")
    var skipBad = false

    @Option(name: .long, help: ArgumentHelp("Refuse images with more pixels than this, before decoding (Pillow's limit by default).", valueName: "n"))
    var maxPixels = ImageLimits.defaultMaxPixels

    func validate() throws {
        if maxPixels < 1 { throw ValidationError("--max-pixels must be at least 1 (got \(maxPixels))") }
    }

    /// Applies the pixel limit and reads every header; returns the usable images and the skipped ones.
    /// - Throws: the first bad image's error, unless --skip-bad; an error when no image is usable.
    func check(_ files: [String], inputSize: Int) throws -> (usable: [String], skipped: [(path: String, reason: String)]) {
        ImageLimits.maxPixels = maxPixels
        var usable: [String] = []
        var skipped: [(path: String, reason: String)] = []
        var small: [String] = []
        for file in files {
            do {
                let header = try readImageHeader(path: file)
                if min(header.width, header.height) < inputSize { small.append("\(file) (\(header.width)x\(header.height))") }
                usable.append(file)
            } catch let error as ToolError {
                guard skipBad else { throw error }
                warn("skipped \(error.description)")
                skipped.append((file, error.problem))
            }
        }
        if !small.isEmpty {
            let shown = small.prefix(4).joined(separator: ", ") + (small.count > 4 ? ", and \(small.count - 4) more" : "")
            warn("\(small.count) image\(small.count == 1 ? " is" : "s are") smaller than the \(inputSize) px input and will be upscaled: \(shown)")
        }
        guard !usable.isEmpty else { throw CLIError("no usable image: all \(files.count) were skipped") }
        return (usable, skipped)
    }
}

// MARK: ranges shared by the subcommands (the same option means the same everywhere)

/// The input side every subcommand accepts.
let inputSizeRange = 32...4096
/// The largest short side a crop fraction may resize an image to (int(size / crop-pct)).
let maxResizedSide = 16_384

/// Checks `--size` against the range every subcommand uses.
func checkInputSize(_ size: Int, option: String = "--size") throws {
    guard inputSizeRange.contains(size) else {
        throw ValidationError("\(option) must be between \(inputSizeRange.lowerBound) and \(inputSizeRange.upperBound)"
                              + (size < 0 ? "; it is negative (\(size))" : " (got \(size))"))
    }
}

/// Checks a crop fraction (`--crop-pct`, a scale level): above 0, at most 4, and resizing the short side
/// of the input to at most `maxResizedSide` pixels.
func checkCropFraction(_ value: Double, size: Int, option: String = "--crop-pct") throws {
    guard value.isFinite, value > 0, value <= 4 else {
        throw ValidationError("\(option) must be in (0, 4]" + (value < 0 ? "; it is negative (\(value))" : " (got \(value))"))
    }
    let side = Double(size) / value
    guard side <= Double(maxResizedSide) else {
        throw ValidationError("\(option) \(value) would resize the short side to \(Int(side)) px for --size \(size) (at most \(maxResizedSide))")
    }
}

/// The thread count from STM_THREADS, validated like --threads (nil when it is not set).
func threadsFromEnvironment() throws -> Int? {
    guard let text = ProcessInfo.processInfo.environment["STM_THREADS"] else { return nil }
    guard let n = Int(text.trimmingCharacters(in: .whitespaces)), (1...1024).contains(n) else {
        throw ValidationError("STM_THREADS must be a whole number between 1 and 1024 (got '\(text)'); unset it for all cores")
    }
    return n
}

/// Command-line arguments with a negative number after an option joined to it (`--size -5` becomes
/// `--size=-5`), so that the option's own check says the value is negative instead of the parser
/// reading `-5` as an unknown flag and reporting a missing value.
func joiningNegativeValues(_ arguments: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < arguments.count {
        let a = arguments[i]
        if a.hasPrefix("--"), a.count > 2, !a.contains("="), i + 1 < arguments.count, isNegativeNumber(arguments[i + 1]) {
            out.append(a + "=" + arguments[i + 1])
            i += 2
        } else {
            out.append(a)
            i += 1
        }
    }
    return out
}

/// True for "-5", "-0.5", "-.5", "-1e-9", "-5,0" (a list starting with a negative number), "-inf".
private func isNegativeNumber(_ s: String) -> Bool {
    guard s.hasPrefix("-"), s.count > 1 else { return false }
    let first = s.split(separator: ",", omittingEmptySubsequences: false).first.map(String.init) ?? s
    return Double(first) != nil
}

// MARK: memory planned before it is allocated

/// `--max-memory`: the most memory a run may plan to use. The model's parameters and the activations
/// of one batch are estimated from the architecture (`MemoryPlan`) before the model is built, so a run
/// that would not fit is one error with a hint, not an out-of-memory trap halfway through.
struct MemoryOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Most memory a run may plan to use, e.g. 3G or 512M (default: 80% of the physical memory).", valueName: "bytes"))
    var maxMemory: String?

    func validate() throws {
        if let m = maxMemory, MemoryPlan.parseBytes(m) == nil {
            throw ValidationError("--max-memory takes a positive size such as 3G, 512M or 1500000000 (got '\(m)')")
        }
    }

    /// The budget in bytes.
    var budget: Int { maxMemory.flatMap { MemoryPlan.parseBytes($0) } ?? MemoryPlan.defaultBudget }

    /// The check `ModelLoader.load` runs before building a model: `batch` inputs of side `size`, with a
    /// backward pass when `backward`; `alreadyUsed` bytes are taken by models loaded before this one.
    func planner(size: Int, batch: Int, backward: Bool, subject: String, alreadyUsed: Int = 0) -> (ArchConfig) throws -> Void {
        let budget = self.budget
        return { config in
            try MemoryPlan.estimate(config, size: size, batch: batch, backward: backward)
                .check(budget: max(0, budget - alreadyUsed), subject: subject, batch: batch, size: size)
        }
    }
}
