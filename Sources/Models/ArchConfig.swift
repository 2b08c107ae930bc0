// Models: architectures as data. An `ArchConfig` is what the reference's `*_nano.json` files hold
// (family, dims, depths, block settings, head ratio, norm eps); presets are such configs under the
// released names; `ArchConfig.load(path:)` reads the JSON format. What a family's `block_kwargs`
// mean, and which block it builds, is its mixer's business (Mixer.swift, Mixers/*.swift).

@_exported import Diagnostics
import Foundation

/// One unified architecture: the `MetaArch` arguments that vary between the study's models.
public struct ArchConfig: Codable, Equatable, Sendable {
    public var family: Family
    /// Preset or file name, for reports and titles.
    public var name: String?
    /// The resolution the model is built for (relative tables, masks, position embeddings).
    public var img_size: Int
    public var dims: [Int]
    public var depths: [Int]
    /// The mixer's settings as JSON (decode them with `settings(_:)`).
    public var block_kwargs: BlockKwargs
    public var extra_transform_ratio: Double
    public var num_classes: Int
    public var layer_norm_eps: Double
    /// Layer-scale initial value for untrained models (the reference's `layer_scale_init_value`).
    public var layer_scale_init_value: Double?

    public init(family: Family, name: String? = nil, img_size: Int = 224, dims: [Int], depths: [Int],
                block_kwargs: BlockKwargs, extra_transform_ratio: Double = 1.5, num_classes: Int = 1000,
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

    /// Heads per stage, when the family has them (`block_kwargs.num_heads`).
    public var heads: [Int] {
        guard case .array(let list)? = block_kwargs["num_heads"] else { return [] }
        return list.compactMap { if case .number(let n) = $0 { return Int(n) } else { return nil } }
    }

    /// The mixer settings decoded from `block_kwargs`.
    /// - Throws: `ModelError` naming a missing or mistyped field.
    public func settings<S: MixerSettings>(_ type: S.Type) throws -> S {
        try block_kwargs.decode(S.self, source: displayName)
    }

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
        } catch let e as ModelError {
            throw e
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
        guard layer_norm_eps > 0, layer_norm_eps.isFinite else { throw ModelError(source, "layer_norm_eps must be positive") }
        guard extra_transform_ratio > 0, extra_transform_ratio.isFinite else { throw ModelError(source, "extra_transform_ratio must be positive") }
        try MixerRegistry.require(family, source: source).validate(block_kwargs, dims, source)
    }
}

/// Errors of this module: one line naming the subject and the problem (see Diagnostics).
public typealias ModelError = ToolError
