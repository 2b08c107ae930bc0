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

    /// Reads the JSON format of `../shared/reference/*_nano.json`. Checked in this order, each failure
    /// one `ModelError` naming the file: JSON syntax (with the line and column of the error), the
    /// family (an unknown one lists the known ones), then every top-level field's type and range
    /// (`ArchLimits`), then the mixer's `block_kwargs`. Nothing is built before all of it passed.
    /// Unknown top-level keys (the reference files' `shrinks`, `eval_size`) are ignored.
    public static func load(path: String) throws -> ArchConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(path, FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such architecture file",
                             hint: "give a preset name (e.g. unified_swin_tiny) or a JSON file like ../shared/reference/swin_nano.json")
        }
        try checkJSONSyntax(data, path: path)
        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: data) else {
            throw ModelError(path, "architecture JSON must be an object ({\"family\": ..., \"dims\": [...], ...})")
        }
        try checkFields(object, path: path)
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

    /// Throws for JSON that does not parse, naming the line and column (1-based) of the error.
    static func checkJSONSyntax(_ data: Data, path: String) throws {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            let offset = (error as NSError).userInfo["NSJSONSerializationErrorIndex"] as? Int ?? characterOffset(in: text)
                ?? (text.lowercased().contains("end of file") || data.isEmpty ? data.count : nil)
            var reason = text.replacingOccurrences(of: #"\s*around (line \d+, column \d+|character \d+)\.?"#, with: "",
                                                   options: .regularExpression)
            if reason.hasSuffix(".") { reason.removeLast() }
            if reason.isEmpty { reason = "not valid JSON" }
            guard let offset else { throw ModelError(path, "is not valid JSON: \(reason)") }
            let (line, column) = lineAndColumn(of: offset, in: data)
            throw ModelError(path, "is not valid JSON at line \(line), column \(column): \(reason)",
                             hint: "check the brackets, commas and quotes there; the format is that of ../shared/reference/*_nano.json")
        }
    }

    /// The number in "... around character N." (Foundation's message for a JSON syntax error), or nil.
    static func characterOffset(in message: String) -> Int? {
        guard let r = message.range(of: #"character \d+"#, options: .regularExpression) else { return nil }
        return Int(message[r].dropFirst("character ".count))
    }

    /// The 1-based line and column (in characters) of byte `offset` of UTF-8 `data`; an offset past
    /// the end gives the position just after the last character.
    static func lineAndColumn(of offset: Int, in data: Data) -> (line: Int, column: Int) {
        let bytes = [UInt8](data.prefix(max(0, offset)))
        let line = 1 + bytes.lazy.filter { $0 == 0x0A }.count
        let lastBreak = bytes.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
        let column = 1 + String(decoding: bytes[lastBreak...], as: UTF8.self).count
        return (line, column)
    }

    /// Checks the family and every top-level field of a parsed architecture JSON object, in file order
    /// of importance: the family first, then each field's presence, type and `ArchLimits` range.
    static func checkFields(_ o: [String: JSONValue], path: String) throws {
        func fail(_ field: String, _ problem: String) -> ModelError { ModelError(path, "\(field) \(problem)") }
        guard let familyValue = o["family"] else {
            throw ModelError(path, "architecture JSON lacks the key 'family'", hint: "known families: " + knownFamilies)
        }
        guard case .string(let family) = familyValue else { throw fail("family", "must be a string (known: \(knownFamilies))") }
        guard MixerRegistry.mixer(for: Family(family)) != nil else {
            throw ModelError(path, "unknown family '\(family)'", hint: "known: " + knownFamilies)
        }
        func integer(_ value: JSONValue?, _ field: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let value else { throw ModelError(path, "architecture JSON lacks the key '\(field)'") }
            guard case .number(let x) = value, x == x.rounded(), abs(x) < 1e15 else {
                throw fail(field, "must be a whole number between \(range.lowerBound) and \(range.upperBound)")
            }
            guard range.contains(Int(x)) else {
                throw fail(field, "must be between \(range.lowerBound) and \(range.upperBound), got \(Int(x))")
            }
            return Int(x)
        }
        func list(_ field: String, _ range: ClosedRange<Int>) throws -> [Int] {
            guard let value = o[field] else { throw ModelError(path, "architecture JSON lacks the key '\(field)'") }
            guard case .array(let items) = value, items.count == ArchLimits.stages else {
                throw fail(field, "must be a list of \(ArchLimits.stages) whole numbers (one per stage)")
            }
            return try items.enumerated().map { try integer($0.element, "\(field)[\($0.offset)]", range) }
        }
        func real(_ field: String, _ range: ClosedRange<Double>, open lower: Bool, required: Bool = true) throws {
            guard let value = o[field] else {
                if required { throw ModelError(path, "architecture JSON lacks the key '\(field)'") }
                return
            }
            if case .null = value, !required { return }
            func show(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? "\(Int(x))" : "\(x)" }
            let bounds = "\(lower ? "above" : "at least") \(show(range.lowerBound)) and at most \(show(range.upperBound))"
            guard case .number(let x) = value else { throw fail(field, "must be a number \(bounds)") }
            guard x.isFinite, range.contains(x), !(lower && x == range.lowerBound) else { throw fail(field, "must be \(bounds), got \(x)") }
        }
        switch o["name"] {
        case nil, .null?, .string?: break
        default: throw fail("name", "must be a string")
        }
        let imgSize = try integer(o["img_size"], "img_size", ArchLimits.imgSize)
        guard imgSize % 32 == 0 else { throw fail("img_size", "must be a multiple of 32, got \(imgSize)") }
        let dims = try list("dims", ArchLimits.dim)
        if let i = dims.firstIndex(where: { $0 % 2 != 0 }) { throw fail("dims[\(i)]", "must be even, got \(dims[i])") }
        _ = try list("depths", ArchLimits.depth)
        guard let kwargs = o["block_kwargs"] else { throw ModelError(path, "architecture JSON lacks the key 'block_kwargs'") }
        guard case .object = kwargs else { throw fail("block_kwargs", "must be an object of the mixer's settings") }
        try real("extra_transform_ratio", ArchLimits.extraTransformRatio, open: true)
        _ = try integer(o["num_classes"], "num_classes", ArchLimits.numClasses)
        try real("layer_norm_eps", ArchLimits.layerNormEps, open: true)
        try real("layer_scale_init_value", ArchLimits.layerScale, open: false, required: false)
    }

    static var knownFamilies: String { MixerRegistry.mixers.map(\.family.rawValue).joined(separator: ", ") }

    /// Checks that the settings describe a buildable model: the family is known, every field lies in
    /// its `ArchLimits` range, and the mixer accepts its `block_kwargs`.
    public func validate(source: String) throws {
        _ = try MixerRegistry.require(family, source: source)
        guard dims.count == ArchLimits.stages, depths.count == ArchLimits.stages else {
            throw ModelError(source, "needs 4 stages (dims and depths of length 4), got \(dims.count) and \(depths.count)")
        }
        if let i = dims.indices.first(where: { !ArchLimits.dim.contains(dims[$0]) || dims[$0] % 2 != 0 }) {
            throw ModelError(source, "dims[\(i)] must be even and between \(ArchLimits.dim.lowerBound) and \(ArchLimits.dim.upperBound), got \(dims[i])")
        }
        if let i = depths.indices.first(where: { !ArchLimits.depth.contains(depths[$0]) }) {
            throw ModelError(source, "depths[\(i)] must be between \(ArchLimits.depth.lowerBound) and \(ArchLimits.depth.upperBound), got \(depths[i])")
        }
        guard ArchLimits.imgSize.contains(img_size), img_size % 32 == 0 else {
            throw ModelError(source, "img_size must be a multiple of 32 between \(ArchLimits.imgSize.lowerBound) and \(ArchLimits.imgSize.upperBound), got \(img_size)")
        }
        guard ArchLimits.numClasses.contains(num_classes) else {
            throw ModelError(source, "num_classes must be between \(ArchLimits.numClasses.lowerBound) and \(ArchLimits.numClasses.upperBound), got \(num_classes)")
        }
        guard layer_norm_eps.isFinite, layer_norm_eps > 0, layer_norm_eps <= ArchLimits.layerNormEps.upperBound else {
            throw ModelError(source, "layer_norm_eps must be above 0 and at most \(ArchLimits.layerNormEps.upperBound), got \(layer_norm_eps)")
        }
        guard extra_transform_ratio.isFinite, extra_transform_ratio > 0, extra_transform_ratio <= ArchLimits.extraTransformRatio.upperBound else {
            throw ModelError(source, "extra_transform_ratio must be above 0 and at most \(ArchLimits.extraTransformRatio.upperBound), got \(extra_transform_ratio)")
        }
        if let v = layer_scale_init_value, !(v.isFinite && ArchLimits.layerScale.contains(v)) {
            throw ModelError(source, "layer_scale_init_value must be between 0 and \(ArchLimits.layerScale.upperBound), got \(v)")
        }
        try MixerRegistry.require(family, source: source).validate(block_kwargs, dims, source)
    }
}

/// The allowed ranges of an architecture's top-level fields (architecture JSON and `ArchConfig.validate`).
/// Generous: every released model lies well inside them; values outside are typing errors or attacks.
public enum ArchLimits {
    /// Stages of every unified model.
    public static let stages = 4
    /// `img_size` (also a multiple of 32): the input sides the command line accepts.
    public static let imgSize = 32...4096
    /// Each of `dims` (also even). The widest released stage has 1024 channels.
    public static let dim = 2...16_384
    /// Each of `depths`. The deepest released stage has 27 blocks.
    public static let depth = 1...256
    /// `num_classes` (ImageNet-22k has 21,841).
    public static let numClasses = 1...1_000_000
    /// `layer_norm_eps` (above 0).
    public static let layerNormEps = 0.0...1.0
    /// `extra_transform_ratio` (above 0).
    public static let extraTransformRatio = 0.0...64.0
    /// `layer_scale_init_value`.
    public static let layerScale = 0.0...1e6
}

/// Errors of this module: one line naming the subject and the problem (see Diagnostics).
public typealias ModelError = ToolError
