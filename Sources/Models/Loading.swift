// Models: putting values into a model. Strict loading of a state dict (missing, unused and
// mis-shaped keys reported by path; recomputed buffers set aside), seeded initialisation of untrained
// models following the reference's `_init_weights` rules, and `ModelLoader`, which turns the CLI's
// `--model` / `--arch` into a ready model. Inferring an architecture from keys is in `Inference.swift`.

import Checkpoint
import Foundation
import TensorCore

/// What strict loading found.
public struct LoadReport: Sendable {
    /// Model keys the checkpoint lacks.
    public var missing: [String] = []
    /// Checkpoint keys the model does not have (recomputed buffers excluded).
    public var unused: [String] = []
    /// Keys whose shapes differ: (key, model shape, checkpoint shape).
    public var misShaped: [(String, [Int], [Int])] = []
    /// Buffers in the checkpoint that are recomputed, not loaded (`relative_position_index`, `attn_mask`, ...).
    public var recomputed: [String] = []
    /// Number of tensors loaded.
    public var loaded = 0

    /// An empty report (nothing loaded, no problem).
    public init() {}

    /// True when every model key was loaded and nothing was left over.
    public var fits: Bool { missing.isEmpty && unused.isEmpty && misShaped.isEmpty }

    /// One line per problem, key paths included.
    public var problemLines: [String] {
        missing.map { "missing: \($0)" } + unused.map { "unused: \($0)" }
            + misShaped.map { "mis-shaped: \($0.0) (model \($0.1), checkpoint \($0.2))" }
    }

    /// A short summary such as "3 missing (a, b, c), 1 mis-shaped (d: model [4] vs checkpoint [5])".
    public var summary: String {
        func list(_ keys: [String]) -> String {
            keys.prefix(3).joined(separator: ", ") + (keys.count > 3 ? ", ..." : "")
        }
        var parts: [String] = []
        if !missing.isEmpty { parts.append("\(missing.count) missing (\(list(missing)))") }
        if !unused.isEmpty { parts.append("\(unused.count) unused (\(list(unused)))") }
        if !misShaped.isEmpty {
            parts.append("\(misShaped.count) mis-shaped (" + misShaped.prefix(2).map { "\($0.0): model \($0.1) vs checkpoint \($0.2)" }.joined(separator: "; ") + (misShaped.count > 2 ? "; ..." : "") + ")")
        }
        return parts.isEmpty ? "all \(loaded) keys fit" : parts.joined(separator: ", ")
    }
}

extension UnifiedModel {
    /// Loads `state` strictly: every model key must be present with its shape, every checkpoint
    /// key must be used (recomputed buffers aside). Values are assigned only when everything fits.
    @discardableResult
    public func load(_ state: StateDict) -> LoadReport {
        var report = LoadReport()
        let params = namedParameters()
        var known = Set<String>()
        var assignments: [(Parameter, TensorRecord)] = []
        for (key, p) in params {
            known.insert(key)
            guard let record = state[key] else { report.missing.append(key); continue }
            if record.shape != p.shape && !(record.count == p.count && squeezed(record.shape) == squeezed(p.shape)) {
                report.misShaped.append((key, p.shape, record.shape))
                continue
            }
            assignments.append((p, record))
        }
        for key in state.keys where !known.contains(key) {
            if isRecomputedBufferKey(key) { report.recomputed.append(key) } else { report.unused.append(key) }
        }
        guard report.fits else { return report }
        for (p, record) in assignments { p.assign(record.values) }
        report.loaded = assignments.count
        prepareAfterAssigning()
        return report
    }

    /// Initialises every parameter as the reference's untrained model would be (same rules, our own
    /// seeded generator): conv/linear weights and tables truncated-normal with std 0.02, biases 0,
    /// norms 1/0, BatchNorm statistics 0/1, layer scales `layerScale`.
    public func initialize(seed: UInt64 = 0, layerScale: Float) {
        for (index, (_, p)) in namedParameters().enumerated() {
            switch p.initializer {
            case .zeros: p.assign([Float](repeating: 0, count: p.count))
            case .ones: p.assign([Float](repeating: 1, count: p.count))
            case .constant(let v): p.assign([Float](repeating: v, count: p.count))
            case .layerScale: p.assign([Float](repeating: layerScale, count: p.count))
            case .normal(let std):
                p.assign(seededValues(p.count, seed: seed, stream: index) { Float($0.normal() * Double(std)) })
            case .truncatedNormal(let std):
                p.assign(seededValues(p.count, seed: seed, stream: index) { $0.truncatedNormal(std: std, bound: 2) })
            }
        }
        prepareAfterAssigning()
    }

    /// Converts the new values to the kernels' layouts, then returns the placeholders they replaced
    /// to the system (their sizes are not activations', so the pool would only hold them).
    private func prepareAfterAssigning() {
        prepareAll()
        BufferPool.drain()
    }
}

/// `count` values drawn by `draw`, in chunks of 16384 with a generator of their own, seeded from
/// (seed, parameter index, chunk index): the same values for any thread count, drawn in parallel.
private func seededValues(_ count: Int, seed: UInt64, stream: Int, _ draw: (inout SeededNormal) -> Float) -> [Float] {
    let chunk = 16_384
    var out = [Float](repeating: 0, count: count)
    out.withUnsafeMutableBufferPointer { buffer in
        let base = buffer.baseAddress!
        let chunks = (count + chunk - 1) / chunk
        parallelFor(chunks, grain: 1) { r in
            for c in r {
                var rng = SeededNormal(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(stream) &* 0x1_0000_0001 &+ UInt64(c))
                for i in (c * chunk)..<min(count, (c + 1) * chunk) { base[i] = draw(&rng) }
            }
        }
    }
    return out
}

private func squeezed(_ shape: [Int]) -> [Int] { shape.filter { $0 != 1 } }

/// A seeded normal generator (SplitMix64 + Marsaglia's polar method), the same sequence on every platform.
public struct SeededNormal {
    var state: UInt64
    var spare: Double?

    public init(seed: UInt64) { state = seed &+ 0x5EED }

    mutating func nextUniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return (Double(z >> 11) + 0.5) / Double(1 << 53)
    }

    /// A standard normal value (Marsaglia's polar method: one logarithm per pair, no trigonometry).
    public mutating func normal() -> Double {
        if let s = spare { spare = nil; return s }
        while true {
            let u = 2 * nextUniform() - 1, v = 2 * nextUniform() - 1
            let s = u * u + v * v
            guard s < 1 && s > 0 else { continue }
            let f = (-2 * Foundation.log(s) / s).squareRoot()
            spare = v * f
            return u * f
        }
    }

    /// Normal(0, std) redrawn until it lies in [-bound, bound] (absolute bounds, as timm's trunc_normal_).
    mutating func truncatedNormal(std: Float, bound: Double) -> Float {
        while true {
            let v = normal() * Double(std)
            if abs(v) <= bound { return Float(v) }
        }
    }
}

/// A model ready to run, with where it came from.
public struct LoadedModel {
    /// The network: a unified model or another architecture (EfficientNet-Lite).
    public var backbone: any Backbone
    /// The unified model, nil for other architectures.
    public var unified: UnifiedModel? { backbone as? UnifiedModel }
    /// The unified model, for callers that loaded one of the study's checkpoints or presets (a
    /// programming error for other architectures: use `backbone` or `unified`).
    public var model: UnifiedModel {
        guard let m = unified else { preconditionFailure("LoadedModel.model: \(config.displayName) is not a unified model") }
        return m
    }
    public var config: ArchConfig { backbone.config }
    /// The checkpoint path, or nil for an untrained preset.
    public var checkpoint: String?
    /// The checkpoint's state dict (location, format, other objects); nil when untrained.
    public var state: StateDict?
    public var report: LoadReport?
    /// How the architecture was chosen ("preset unified_swin_tiny", "file swin_nano.json", "inferred from keys").
    public var archSource: String
    /// What inference could not read from the checkpoint and assumed instead.
    public var notes: [String]
    /// Key prefixes stripped from the checkpoint (`module.`, `backbone.`, ...).
    public var prefixes = KeyPrefixReport()
    /// The model's form: classifier, backbone-only, or detection backbone.
    public var form: ModelForm { unified?.form ?? .classifier }
    /// True for a preset with initialised (random) weights.
    public var untrained: Bool { checkpoint == nil }
    /// Name for titles and reports: preset/file name plus "(untrained)" when it has no checkpoint.
    public var displayName: String {
        untrained ? "\(config.displayName) (untrained)"
            : URL(fileURLWithPath: state?.member ?? checkpoint!).deletingPathExtension().lastPathComponent
    }

    public init(model: any Backbone, checkpoint: String?, state: StateDict?, report: LoadReport?, archSource: String,
                notes: [String], prefixes: KeyPrefixReport = KeyPrefixReport()) {
        backbone = model
        self.checkpoint = checkpoint
        self.state = state
        self.report = report
        self.archSource = archSource
        self.notes = notes
        self.prefixes = prefixes
    }
}

/// Turns `--model` (checkpoint path or preset name) and `--arch` (preset name or JSON file) into a model.
public enum ModelLoader {
    /// Resolves an architecture argument: a preset name or a JSON file.
    public static func resolveArch(_ arch: String) throws -> (ArchConfig, String) {
        if let p = Presets.named(arch) { return (p, "preset \(arch)") }
        if FileManager.default.fileExists(atPath: arch) || arch.hasSuffix(".json") {
            return (try ArchConfig.load(path: arch), "file \(URL(fileURLWithPath: arch).lastPathComponent)")
        }
        throw ModelError(arch, "no such file or preset", hint: Presets.suggestion(for: arch))
    }

    /// Loads `model` (a checkpoint file, or a preset name for an untrained model).
    /// - Parameters:
    ///   - arch: preset name or JSON file; inferred from the checkpoint's keys when nil.
    ///   - initLayerScale: layer-scale value for untrained models (the reference default is 1e-6).
    ///   - seed: initialisation seed for untrained models.
    ///   - keyPrefix: a key prefix to strip besides the known ones (`CheckpointKeys.knownPrefixes`).
    ///   - plan: called with the architecture once it is known and validated, before the model is
    ///     built (its parameters allocated): the place to refuse a run too large for memory (`MemoryPlan`).
    public static func load(model: String, arch: String? = nil, initLayerScale: Double? = nil, seed: UInt64 = 0,
                            keyPrefix: String? = nil, plan: ((ArchConfig) throws -> Void)? = nil) throws -> LoadedModel {
        if !FileManager.default.fileExists(atPath: model), let spec = LiteSpec.named(model) {
            if let arch, LiteSpec.named(arch)?.name != spec.name {
                throw ModelError(arch, "does not describe \(spec.name), which --model names")
            }
            let m = EfficientNetLite(spec: spec)
            m.initialize(seed: seed)
            return LoadedModel(model: m, checkpoint: nil, state: nil, report: nil, archSource: "preset \(spec.name)",
                               notes: ["untrained: weights are a seeded random initialisation (seed \(seed))"])
        }
        if !FileManager.default.fileExists(atPath: model), let preset = Presets.named(model) {
            var config = preset
            if let arch {
                let (a, _) = try resolveArch(arch)
                guard a.family == preset.family else {
                    throw ModelError(arch, "describes a \(a.family.rawValue) model but --model names \(model)")
                }
                config = a
            }
            try ensureSupported(config, source: model)
            try plan?(config)
            let m = UnifiedModel(config: config)
            let ls = initLayerScale ?? config.layer_scale_init_value ?? 1e-6
            m.initialize(seed: seed, layerScale: Float(ls))
            return LoadedModel(model: m, checkpoint: nil, state: nil, report: nil, archSource: "preset \(model)",
                               notes: ["untrained: weights are a seeded random initialisation (seed \(seed), layer scale \(ls))"])
        }
        guard FileManager.default.fileExists(atPath: model) else {
            throw ModelError(model, "no such file or preset", hint: Presets.suggestion(for: model))
        }
        let (state, prefixes) = try CheckpointKeys.strip(try readCheckpoint(path: model), extra: keyPrefix, source: model)
        if LiteInference.recognises(state.keys) || arch.map({ LiteSpec.named($0) != nil }) == true {
            return try loadLite(state, path: model, arch: arch, prefixes: prefixes)
        }
        var notes: [String] = []
        let config: ArchConfig
        let source: String
        if let arch {
            (config, source) = try resolveArch(arch)
        } else {
            let inferred = try ArchInference.infer(from: state, path: model)
            config = inferred.config
            notes = inferred.assumptions
            source = "inferred from keys" + (inferred.config.name.map { " (matches \($0))" } ?? "")
        }
        try ensureSupported(config, source: arch ?? model)
        try plan?(config)
        let m = UnifiedModel(config: config, form: CheckpointKeys.form(of: state))
        let report = m.load(state)
        guard report.fits else {
            var hint = "check --arch, or run 'stm-analyze inspect --model \(model)' for every key problem"
            if let guess = try? ArchInference.family(of: state), guess != config.family {
                hint = "the checkpoint's keys look like a \(guess.rawValue) model, not \(config.family.rawValue); pass a matching --arch"
            }
            throw ModelError(model, "does not fit \(config.displayName) (\(source)): \(report.summary)", hint: hint)
        }
        return LoadedModel(model: m, checkpoint: model, state: state, report: report, archSource: source, notes: notes,
                           prefixes: prefixes)
    }

    /// An EfficientNet-Lite checkpoint: the variant from --arch or from the keys, loaded strictly.
    static func loadLite(_ state: StateDict, path: String, arch: String?, prefixes: KeyPrefixReport) throws -> LoadedModel {
        let spec: LiteSpec
        let source: String
        if let arch {
            guard let named = LiteSpec.named(arch, numClasses: state["_fc.weight"]?.shape.first ?? 1000) else {
                throw ModelError(path, "is an EfficientNet-Lite checkpoint, but --arch \(arch) is not an EfficientNet-Lite variant",
                                 hint: "leave out --arch, or give one of " + LiteSpec.names.joined(separator: ", "))
            }
            (spec, source) = (named, "preset \(named.name)")
        } else {
            spec = try LiteInference.spec(for: state, path: path)
            source = "inferred from keys (matches \(spec.name))"
        }
        let m = EfficientNetLite(spec: spec)
        let report = m.load(state)
        guard report.fits else {
            throw ModelError(path, "does not fit \(spec.name) (\(source)): \(report.summary)",
                             hint: "run 'stm-analyze inspect --model \(path)' for every key problem")
        }
        return LoadedModel(model: m, checkpoint: path, state: state, report: report, archSource: source,
                           notes: ["input normalisation \(m.normalization)"], prefixes: prefixes)
    }

    static func ensureSupported(_ config: ArchConfig, source: String) throws {
        try config.validate(source: source)
    }
}
