// Models: reading an architecture from a checkpoint's key names and shapes, for `--model` without
// `--arch`. Family from keys only its block has; dims, depths, head ratio and classes from shapes;
// heads where shapes reveal them (Swin's bias table, HaloNet's q width, DCNv3's offset rows).
// What shapes cannot tell (PVT's heads, HaloNet's block/halo split, norm eps) is taken from the
// matching preset or from the study's defaults, and said in `assumptions`.

import Checkpoint
import Foundation

/// Architecture inference from state-dict keys.
public enum ArchInference {
    /// The family whose distinctive keys the checkpoint holds.
    public static func family(of state: StateDict) throws -> Family {
        let keys = state.keys
        func has(_ s: String) -> Bool { keys.contains { $0.contains(s) } }
        if has(".dw_input_proj.") { return .convnext }
        if has(".attn.relative_position_bias_table") { return .swin }
        if has(".attn.pos_embed.height_rel") { return .halo }
        if has(".attn.sampling_offsets.") { return .dcnv3 }
        if has(".attn.kv.weight") && has(".attn.q.weight") { return .pvt }
        throw ModelError("checkpoint", "no unified-model block keys found (looked for dw_input_proj, relative_position_bias_table, pos_embed.height_rel, sampling_offsets, attn.kv)",
                         hint: "is this an STM-Evaluation checkpoint? pass --arch to say what it is")
    }

    /// The inferred config and what had to be assumed.
    public static func infer(from state: StateDict, path: String) throws -> (config: ArchConfig, assumptions: [String]) {
        let family: Family
        do { family = try self.family(of: state) } catch let e as ModelError {
            throw ModelError(path, e.problem, hint: e.hint)
        }
        func shape(_ key: String) throws -> [Int] {
            guard let r = state[key] else { throw ModelError(path, "lacks \(key), needed to infer the architecture", hint: "pass --arch") }
            return r.shape
        }
        var dims: [Int] = [], depths: [Int] = []
        for s in 0..<4 {
            dims.append(try shape("stage_norms.\(s).weight")[0])
            let prefix = "stages.\(s)."
            let blocks = Set(state.keys.compactMap { k -> Int? in
                guard k.hasPrefix(prefix) else { return nil }
                return Int(k.dropFirst(prefix.count).prefix { $0 != "." })
            })
            guard let mx = blocks.max() else { throw ModelError(path, "stage \(s + 1) has no blocks", hint: "pass --arch") }
            depths.append(mx + 1)
        }
        let headShape = try shape("head.weight")
        let convHead = try shape("conv_head.0.weight")
        var assumptions = ["img_size 224 and LayerNorm eps 1e-6 (the study's values)"]
        var settings = BlockSettings()
        var imgSize = 224
        switch family {
        case .convnext:
            break
        case .swin:
            settings.num_heads = try (0..<4).map { try shape("stages.\($0).0.attn.relative_position_bias_table")[1] }
            let rows = try shape("stages.0.0.attn.relative_position_bias_table")[0]
            settings.window_size = (Int(Double(rows).squareRoot().rounded()) + 1) / 2
        case .halo:
            settings.num_heads = try (0..<4).map { s in
                try shape("stages.\(s).0.attn.q.weight")[0] / shape("stages.\(s).0.attn.pos_embed.height_rel")[1]
            }
            let span = try shape("stages.0.0.attn.pos_embed.height_rel")[0]  // 2 * (block + 2 * halo) - 1
            settings.block_size = 7
            settings.halo_size = ((span + 1) / 2 - 7) / 2
            settings.pos_embed_type = "query_related"
            assumptions.append("block size 7 (halo \(settings.halo_size!) follows from the relative tables)")
        case .pvt:
            settings.qkv_bias = state["stages.0.0.attn.q.bias"] != nil
            settings.mlp_ratios = try (0..<4).map { s in
                let key = "stages.\(s).0.mlp.fc1.weight"
                guard let rows = try shape(key).first else { throw ModelError(path, "\(key) has no dimensions", hint: "pass --arch") }
                return Double(rows) / Double(dims[s])
            }
            settings.sr_ratios = try (0..<4).map { s in
                let key = "stages.\(s).0.attn.sr.weight"
                guard let sr = state[key] else { return 1 }
                guard sr.shape.count == 4 else { throw ModelError(path, "\(key) has shape \(sr.shape), expected [C, C, r, r]", hint: "pass --arch") }
                return sr.shape[2]
            }
            if let pos = state["stages.0.0.pos_embed"]?.shape, pos.count == 4 {
                imgSize = pos[2] * 4
                assumptions[0] = "LayerNorm eps 1e-6 (the study's value); img_size \(imgSize) from the stage-1 position embedding"
            }
        case .dcnv3:
            settings.deform_points = 9
            settings.kernel_size = 3
            settings.deform_padding = true
            settings.num_heads = try (0..<4).map { try shape("stages.\($0).0.attn.sampling_offsets.weight")[0] / 18 }
            assumptions.append("9 sampling points, kernel 3, padding 1")
        }
        var config = ArchConfig(family: family, img_size: imgSize, dims: dims, depths: depths, block_kwargs: settings,
                                extra_transform_ratio: Double(convHead[0]) / Double(dims[3]), num_classes: headShape[0])
        // Name it after the preset it matches (and take PVT's heads from it).
        let match = Presets.names.compactMap(Presets.named).first { p in
            p.family == family && p.dims == dims && p.depths == depths
                && (family == .pvt || p.block_kwargs.num_heads == settings.num_heads)
        }
        if family == .pvt {
            guard let match else {
                throw ModelError(path, "PVT heads cannot be read from tensor shapes and dims \(dims) / depths \(depths) match no preset",
                                 hint: "pass --arch with a preset name or an architecture JSON file")
            }
            config.block_kwargs.num_heads = match.block_kwargs.num_heads
            assumptions.append("heads \(match.block_kwargs.num_heads!) from preset \(match.name!) (PVT heads are not in the shapes)")
        }
        config.name = match?.name
        try config.validate(source: path)
        return (config, assumptions)
    }
}
