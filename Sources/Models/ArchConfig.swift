// Models: architectures as data. An `ArchConfig` is what the reference's `*_nano.json` files hold
// (family, dims, depths, block settings, head ratio, norm eps); presets are such configs under the
// released names; `ArchConfig.load(path:)` reads the JSON format. Which block a family uses is
// decided by the registry (`Registry.swift`), not here.

@_exported import Diagnostics
import Foundation

/// The five spatial token mixers of the study.
public enum Family: String, Codable, CaseIterable, Sendable {
    case convnext, swin, halo, pvt, dcnv3

    /// The name used in the released preset names (`unified_<name>_<scale>`).
    public var presetName: String { self == .dcnv3 ? "dcn_v3" : rawValue }

    /// The reference block class.
    public var blockClass: String {
        switch self {
        case .convnext: return "UnifiedConvNeXtBlock"
        case .swin: return "SwinBlock"
        case .halo: return "UnifiedHaloBlock"
        case .pvt: return "PvtBlock"
        case .dcnv3: return "DCNv3Block"
        }
    }

    /// The study's name for the mixer.
    public var mixerName: String {
        switch self {
        case .convnext: return "U-DWConv"
        case .swin: return "U-Swin"
        case .halo: return "U-HaloNet"
        case .pvt: return "U-PVT"
        case .dcnv3: return "U-InternImage (DCNv3)"
        }
    }
}

/// Settings passed to every block of a family (the reference factories' `block_kwargs`).
public struct BlockSettings: Codable, Equatable, Sendable {
    public var num_heads: [Int]?
    public var window_size: Int?
    public var block_size: Int?
    public var halo_size: Int?
    public var pos_embed_type: String?
    public var mlp_ratios: [Double]?
    public var qkv_bias: Bool?
    public var sr_ratios: [Int]?
    public var deform_points: Int?
    public var kernel_size: Int?
    public var deform_padding: Bool?

    public init(num_heads: [Int]? = nil, window_size: Int? = nil, block_size: Int? = nil, halo_size: Int? = nil,
                pos_embed_type: String? = nil, mlp_ratios: [Double]? = nil, qkv_bias: Bool? = nil,
                sr_ratios: [Int]? = nil, deform_points: Int? = nil, kernel_size: Int? = nil, deform_padding: Bool? = nil) {
        self.num_heads = num_heads
        self.window_size = window_size
        self.block_size = block_size
        self.halo_size = halo_size
        self.pos_embed_type = pos_embed_type
        self.mlp_ratios = mlp_ratios
        self.qkv_bias = qkv_bias
        self.sr_ratios = sr_ratios
        self.deform_points = deform_points
        self.kernel_size = kernel_size
        self.deform_padding = deform_padding
    }
}

/// One unified architecture: the `MetaArch` arguments that vary between the study's models.
public struct ArchConfig: Codable, Equatable, Sendable {
    public var family: Family
    /// Preset or file name, for reports and titles.
    public var name: String?
    /// The resolution the model is built for (relative tables, masks, position embeddings).
    public var img_size: Int
    public var dims: [Int]
    public var depths: [Int]
    public var block_kwargs: BlockSettings
    public var extra_transform_ratio: Double
    public var num_classes: Int
    public var layer_norm_eps: Double
    /// Layer-scale initial value for untrained models (the reference's `layer_scale_init_value`).
    public var layer_scale_init_value: Double?

    public init(family: Family, name: String? = nil, img_size: Int = 224, dims: [Int], depths: [Int],
                block_kwargs: BlockSettings, extra_transform_ratio: Double = 1.5, num_classes: Int = 1000,
                layer_norm_eps: Double = 1e-6, layer_scale_init_value: Double? = nil) {
        self.family = family
        self.name = name
        self.img_size = img_size
        self.dims = dims
        self.depths = depths
        self.block_kwargs = block_kwargs
        self.extra_transform_ratio = extra_transform_ratio
        self.num_classes = num_classes
        self.layer_norm_eps = layer_norm_eps
        self.layer_scale_init_value = layer_scale_init_value
    }

    /// Display name: the preset or file name, else the family.
    public var displayName: String { name ?? "unified_\(family.presetName)" }

    /// Heads per stage, when the family has them.
    public var heads: [Int] { block_kwargs.num_heads ?? [] }

    /// Reads the JSON format of `../shared/reference/*_nano.json`.
    public static func load(path: String) throws -> ArchConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(path, FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such architecture file",
                             hint: "give a preset name (e.g. unified_swin_tiny) or a JSON file like ../shared/reference/swin_nano.json")
        }
        let config: ArchConfig
        do {
            config = try JSONDecoder().decode(ArchConfig.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw ModelError(path, "architecture JSON lacks the key '\(key.stringValue)'")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw ModelError(path, "is not valid architecture JSON: \(ctx.debugDescription)")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw ModelError(path, "architecture JSON has a wrong type at '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))'")
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw ModelError(path, "architecture JSON has a null at '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))'")
        } catch {
            throw ModelError(path, "is not valid architecture JSON (\(error))")
        }
        var c = config
        if c.name == nil { c.name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent }
        try c.validate(source: path)
        return c
    }

    /// Checks that the settings describe a buildable model.
    public func validate(source: String) throws {
        guard dims.count == 4, depths.count == 4 else {
            throw ModelError(source, "needs 4 stages (dims and depths of length 4), got \(dims.count) and \(depths.count)")
        }
        guard dims.allSatisfy({ $0 > 0 && $0 % 2 == 0 }), depths.allSatisfy({ $0 > 0 }) else {
            throw ModelError(source, "dims must be positive and even, depths positive")
        }
        guard img_size >= 32, img_size % 32 == 0 else { throw ModelError(source, "img_size must be a positive multiple of 32") }
        guard num_classes > 0 else { throw ModelError(source, "num_classes must be positive") }
        switch family {
        case .swin, .halo, .pvt, .dcnv3:
            guard let h = block_kwargs.num_heads, h.count == 4, zip(dims, h).allSatisfy({ $1 > 0 && $0 % $1 == 0 }) else {
                throw ModelError(source, "\(family.rawValue) needs block_kwargs.num_heads with 4 entries dividing dims")
            }
        case .convnext: break
        }
    }
}

/// Errors of this module: one line naming the subject and the problem (see Diagnostics).
public typealias ModelError = ToolError
