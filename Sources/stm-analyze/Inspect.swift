// stm-analyze inspect: what a checkpoint holds and whether it fits an architecture.

import ArgumentParser
import Checkpoint
import Foundation
import Models

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a checkpoint's family, architecture, parameter count and every key problem.")

    @OptionGroup var modelOptions: ModelOptions

    @Flag(name: [.customLong("all")], help: "List every key problem, not the first 24.")
    var verbose = false

    func run() throws {
        let m = modelOptions
        if !FileManager.default.fileExists(atPath: m.model), let preset = Presets.named(m.model) {
            let model = UnifiedModel(config: preset)
            print("preset       \(m.model) (no checkpoint: an untrained model)")
            describe(preset, params: model.parameterCount)
            return
        }
        let state = try readCheckpoint(path: m.model)
        print("checkpoint   \(m.model)")
        print("format       \(state.format.rawValue), state dict at \(state.location), \(state.entries.count) tensors")
        for (key, description) in state.otherObjects { print("other        \(key): \(description)") }
        for n in state.notes { print("note         \(n)") }
        let nonFinite = state.nonFiniteTensors
        if !nonFinite.isEmpty {
            warn("\(m.model): \(nonFinite.count) tensor\(nonFinite.count == 1 ? " holds" : "s hold") NaN or infinite values")
            for bad in nonFinite { print("nonfinite    \(bad.name): \(bad.count) of \(state[bad.name]?.count ?? 0) values are NaN or infinite") }
        }
        let config: ArchConfig
        var notes: [String] = []
        if let arch = m.arch {
            config = try ModelLoader.resolveArch(arch).0
            print("architecture \(config.displayName) (from --arch)")
        } else {
            let inferred = try ArchInference.infer(from: state, path: m.model)
            config = inferred.config
            notes = inferred.assumptions
            print("architecture inferred from keys" + (config.name.map { ": matches preset \($0)" } ?? ": no preset matches"))
        }
        if let guess = try? ArchInference.family(of: state), guess != config.family {
            print("note         the keys look like a \(guess.rawValue) model, not \(config.family.rawValue)")
        }
        guard BlockRegistry.supports(config.family) else {
            describe(config, params: nil)
            throw ModelError(m.model, "the \(config.family.rawValue) mixer is not implemented yet, so keys cannot be checked")
        }
        let model = UnifiedModel(config: config)
        describe(config, params: model.parameterCount)
        for n in notes { print("assumed      \(n)") }
        let report = model.load(state)
        print("keys         \(report.fits ? "all \(report.loaded) model keys loaded" : report.summary)")
        if !report.recomputed.isEmpty {
            print("recomputed   \(report.recomputed.count) buffer\(report.recomputed.count == 1 ? "" : "s") (relative_position_index, attn_mask, num_batches_tracked) rebuilt, not read")
        }
        let lines = report.problemLines
        for line in lines.prefix(verbose ? lines.count : 24) { print("  \(line)") }
        if !verbose && lines.count > 24 { print("  ... and \(lines.count - 24) more (--all lists every one)") }
        if !report.fits {
            throw ModelError(m.model, "does not fit \(config.displayName): \(report.summary)", hint: "pass a matching --arch")
        }
    }

    private func describe(_ c: ArchConfig, params: Int?) {
        print("family       \(c.family.rawValue) (\(c.family.mixerName), \(c.family.blockClass))")
        print("dims         \(c.dims)   depths \(c.depths)" + (c.heads.isEmpty ? "" : "   heads \(c.heads)"))
        if let params { print("parameters   \(params.formatted())") }
    }
}
