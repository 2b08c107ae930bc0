// Models: reading an architecture from a checkpoint's key names and shapes, for `--model` without
// `--arch`. The family is the registered mixer that recognises the keys; dims, depths, head ratio
// and classes come from shapes here; the block settings from the mixer's own `inferSettings`
// (heads where shapes reveal them; what they cannot tell is taken from presets or the study's
// defaults and said in `assumptions`). Backbone-only and detection checkpoints have no head: the
// head's settings are then the study's defaults, and said so.

import Checkpoint
import Foundation

/// Architecture inference from state-dict keys.
public enum ArchInference {
    /// The family whose distinctive keys the checkpoint holds.
    public static func family(of state: StateDict) throws -> Family {
        let keys = state.keys
        if let m = MixerRegistry.mixers.first(where: { $0.recognises(keys) }) { return m.family }
        throw ModelError("checkpoint", "no unified-model block keys of a known mixer ("
                         + MixerRegistry.mixers.map(\.family.rawValue).joined(separator: ", ") + ")",
                         hint: "is this an STM-Evaluation checkpoint? pass --arch to say what it is")
    }

    /// The inferred config and what had to be assumed.
    public static func infer(from state: StateDict, path: String) throws -> (config: ArchConfig, assumptions: [String]) {
        let family: Family
        do { family = try self.family(of: state) } catch let e as ModelError {
            throw ModelError(path, e.problem, hint: e.hint)
        }
        let mixer = try MixerRegistry.require(family, source: path)
        let form = CheckpointKeys.form(of: state)
        var dims: [Int] = [], depths: [Int] = []
        for s in 0..<4 {
            dims.append(try requireShape(state, form == .detection ? "out_norm_\(s).weight" : "stage_norms.\(s).weight", path: path)[0])
            let prefix = "stages.\(s)."
            let blocks = Set(state.keys.compactMap { k -> Int? in
                guard k.hasPrefix(prefix) else { return nil }
                return Int(k.dropFirst(prefix.count).prefix { $0 != "." })
            })
            guard let mx = blocks.max() else { throw ModelError(path, "stage \(s + 1) has no blocks", hint: "pass --arch") }
            depths.append(mx + 1)
        }
        var assumptions = ["img_size 224 and LayerNorm eps 1e-6 (the study's values)"]
        // A backbone-only or detection checkpoint has no head: its size does not matter, say so.
        let headShape = form.hasHead ? try requireShape(state, "head.weight", path: path) : [1000]
        let convHead = form.hasHead ? try requireShape(state, "conv_head.0.weight", path: path) : [dims[3] * 3 / 2]
        if !form.hasHead { assumptions.append("no classification head in the checkpoint (\(form.rawValue) form)") }
        let (kwargs, mixerAssumptions, storedSize) = try mixer.infer(state, dims, depths, path)
        assumptions += mixerAssumptions
        if let storedSize {
            assumptions[0] = "LayerNorm eps 1e-6 (the study's value); img_size \(storedSize) from the checkpoint's tensors"
        }
        var config = ArchConfig(family: family, img_size: storedSize ?? 224, dims: dims, depths: depths, block_kwargs: kwargs,
                                extra_transform_ratio: Double(convHead[0]) / Double(dims[3]), num_classes: headShape[0])
        // Name it after the preset it matches.
        config.name = Presets.names.compactMap(Presets.named).first { p in
            p.family == family && p.dims == dims && p.depths == depths && p.heads == config.heads
        }?.name
        try config.validate(source: path)
        return (config, assumptions)
    }
}
