// Models: checkpoints as users have them. Training wrappers put the model's keys under a prefix:
// `module.` (DataParallel), `model.` (Lightning, whose state dict sits under `state_dict`),
// `backbone.` (mmdetection; the detector's neck and heads sit beside it), `_orig_mod.`
// (`torch.compile`), `encoder.`; `--key-prefix` names another. Prefixes are stripped, nested ones
// too, while the model's own keys (`stages.`, `downsample_layers.`) are not yet at the top; keys
// outside the chosen prefix are set aside and counted. The form of the model (classifier,
// backbone-only, detection backbone) is read from the keys that are left.

import Checkpoint

/// What was done to a checkpoint's keys before loading.
public struct KeyPrefixReport: Sendable, Equatable {
    /// The prefixes removed, outermost first (e.g. ["model.", "backbone."]).
    public var stripped: [String] = []
    /// Keys outside the removed prefixes (a detector's neck and heads, say), not loaded.
    public var setAside = 0

    /// Nothing stripped.
    public init() {}

    /// One line for `inspect` and `--verbose`.
    public var summary: String {
        guard !stripped.isEmpty else { return "none" }
        return stripped.map { "'\($0)'" }.joined(separator: " then ") + " stripped"
            + (setAside > 0 ? " (\(setAside) keys outside it set aside)" : "")
    }
}

/// Key prefixes of wrapped checkpoints.
public enum CheckpointKeys {
    /// The prefixes recognised without being named.
    public static let knownPrefixes = ["module.", "model.", "backbone.", "_orig_mod.", "encoder."]

    /// True when `key` is one of the unified model's own top-level keys.
    static func isModelKey(_ key: String) -> Bool {
        key.hasPrefix("stages.") || key.hasPrefix("downsample_layers.") || key.hasPrefix("_blocks.") || key.hasPrefix("_conv_stem.")
    }

    /// True when `rest` is a model key, possibly under further known prefixes.
    static func leadsToModel(_ rest: Substring) -> Bool {
        isModelKey(String(rest)) || knownPrefixes.contains { rest.hasPrefix($0) && leadsToModel(rest.dropFirst($0.count)) }
    }

    /// Strips `extra` (when given, it must apply) and the known prefixes while the model's keys sit under them.
    /// - Throws: `ModelError` when `extra` prefixes no model key.
    public static func strip(_ state: StateDict, extra: String? = nil, source: String) throws -> (StateDict, KeyPrefixReport) {
        var entries = state.entries
        var report = KeyPrefixReport()
        if let p = state.removedPrefix { report.stripped.append(p) }  // the reader's DataParallel step
        func apply(_ prefix: String) -> Bool {
            let under = entries.filter { $0.0.hasPrefix(prefix) }
            guard under.contains(where: { leadsToModel($0.0.dropFirst(prefix.count)) }) else { return false }
            report.setAside += entries.count - under.count
            entries = under.map { (String($0.0.dropFirst(prefix.count)), $0.1) }
            report.stripped.append(prefix)
            return true
        }
        if let extra, !extra.isEmpty {
            guard apply(extra) else {
                throw ModelError(source, "no model key starts with the --key-prefix '\(extra)'",
                                 hint: "run 'stm-analyze inspect --model \(source)' to see its keys")
            }
        }
        while !entries.contains(where: { isModelKey($0.0) }), let p = knownPrefixes.first(where: apply) {
            _ = p
        }
        if !entries.contains(where: { isModelKey($0.0) }),
           let nested = entries.first(where: { $0.0.contains(".stages.") })?.0,
           let range = nested.range(of: ".stages.") {
            let prefix = String(nested[..<range.lowerBound]) + "."
            throw ModelError(source, "its model keys sit under '\(prefix)', which is not a known prefix",
                             hint: "pass --key-prefix \(prefix)")
        }
        var out = state
        out.entries = entries
        return (out, report)
    }

    /// The model form the keys describe: detection backbone (`out_norm_i`), backbone-only (no head), or classifier.
    public static func form(of state: StateDict) -> ModelForm {
        if state["out_norm_0.weight"] != nil { return .detection }
        if state["head.weight"] == nil && state["conv_head.0.weight"] == nil { return .headless }
        return .classifier
    }
}
