// Models: what a spatial token mixer is, and the registry of mixers. A mixer is one file
// (Sources/Models/Mixers/*.swift): its settings type, decoded and validated from the `block_kwargs` of
// an architecture; its presets; its block; how its checkpoint keys are recognised; how its settings
// are read from a checkpoint. The registry is one list of those types. A program that uses the
// library may add its own mixer with `MixerRegistry.register` before it builds a model; nothing else
// changes the registry (registration is locked).

import Checkpoint
import Foundation
import TensorCore

/// A mixer family's name, as `family` in architecture JSON ("swin"). Open: mixers outside this
/// module add their own (`extension Family { static let toy = Family("toy") }`).
public struct Family: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }

    public init(from decoder: Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    public var description: String { rawValue }

    /// The registered mixers' families, in registry order.
    public static var allCases: [Family] { MixerRegistry.mixers.map { $0.family } }

    /// The name used in preset names (`unified_<name>_<scale>`).
    public var presetName: String { MixerRegistry.mixer(for: self)?.presetName ?? rawValue }
    /// The reference block class.
    public var blockClass: String { MixerRegistry.mixer(for: self)?.blockClass ?? "?" }
    /// The study's name for the mixer.
    public var mixerName: String { MixerRegistry.mixer(for: self)?.mixerName ?? rawValue }
}

/// A mixer's block settings: the `block_kwargs` of its architectures, decoded (snake_case keys, as
/// in the reference's JSON) and validated.
public protocol MixerSettings: Codable, Sendable {
    /// Throws a `ModelError` naming the field (`block_kwargs.window_size`) for an impossible value.
    func validate(dims: [Int], source: String) throws
}

/// One spatial token mixer: everything the toolkit knows about it.
public protocol Mixer {
    associatedtype Settings: MixerSettings
    /// `family` in architecture JSON.
    static var family: Family { get }
    /// The family part of preset names (`unified_<presetName>_<scale>`).
    static var presetName: String { get }
    /// Other spellings of `presetName` in released file names (`halonet` for `halo`).
    static var presetAliases: [String] { get }
    /// The reference's block class, for reports.
    static var blockClass: String { get }
    /// The study's name for the mixer.
    static var mixerName: String { get }
    /// The architecture of the preset of this scale (micro, tiny, small, base), or nil.
    static func preset(scale: String) -> ArchConfig?
    /// Builds block `ctx.depth` of stage `ctx.stage`.
    static func makeBlock(_ ctx: BlockContext, settings: Settings) -> Block
    /// True when the checkpoint's keys are this mixer's (a key only its block has).
    static func recognises(_ keys: [String]) -> Bool
    /// The settings read from a checkpoint's shapes, what had to be assumed, and the img_size the
    /// checkpoint stores when its tensors say it (nil: the study's 224).
    static func inferSettings(from state: StateDict, dims: [Int], depths: [Int], path: String) throws
        -> (settings: Settings, assumptions: [String], imgSize: Int?)
}

extension Mixer {
    public static var presetAliases: [String] { [] }
}

/// A registered mixer, type-erased.
public struct MixerEntry: Sendable {
    public let family: Family
    public let presetName: String
    public let presetAliases: [String]
    public let blockClass: String
    public let mixerName: String
    let preset: @Sendable (String) -> ArchConfig?
    let recognises: @Sendable ([String]) -> Bool
    let validate: @Sendable (BlockKwargs, [Int], String) throws -> Void
    let factory: @Sendable (BlockKwargs) throws -> (BlockContext) -> Block
    let infer: @Sendable (StateDict, [Int], [Int], String) throws -> (BlockKwargs, [String], Int?)

    init<M: Mixer>(_ m: M.Type) {
        family = M.family
        presetName = M.presetName
        presetAliases = M.presetAliases
        blockClass = M.blockClass
        mixerName = M.mixerName
        preset = { M.preset(scale: $0) }
        recognises = { M.recognises($0) }
        validate = { kwargs, dims, source in try kwargs.decode(M.Settings.self, source: source).validate(dims: dims, source: source) }
        factory = { kwargs in
            let settings = try kwargs.decode(M.Settings.self, source: "block_kwargs")
            return { M.makeBlock($0, settings: settings) }
        }
        infer = { state, dims, depths, path in
            let r = try M.inferSettings(from: state, dims: dims, depths: depths, path: path)
            return (try BlockKwargs(r.settings), r.assumptions, r.imgSize)
        }
    }
}

/// The mixers the toolkit knows. The built-in five, then any a program registers.
public enum MixerRegistry {
    /// The built-in mixers, one line each.
    static let builtIn: [MixerEntry] = [
        MixerEntry(ConvNeXtMixer.self),
        MixerEntry(SwinMixer.self),
        MixerEntry(HaloMixer.self),
        MixerEntry(PVTMixer.self),
        MixerEntry(DCNv3Mixer.self),
    ]

    private static let lock = NSLock()
    nonisolated(unsafe) private static var added: [MixerEntry] = []

    /// Every registered mixer, built-in first.
    public static var mixers: [MixerEntry] {
        lock.lock()
        defer { lock.unlock() }
        return builtIn + added
    }

    /// Adds a mixer (call before building models of it). Replaces an earlier one of the same family.
    public static func register<M: Mixer>(_ mixer: M.Type) {
        lock.lock()
        defer { lock.unlock() }
        precondition(!builtIn.contains { $0.family == M.family }, "\(M.family) is a built-in mixer")
        added.removeAll { $0.family == M.family }
        added.append(MixerEntry(mixer))
    }

    /// The mixer of `family`, or nil.
    public static func mixer(for family: Family) -> MixerEntry? { mixers.first { $0.family == family } }

    /// The mixer of `family`, or an error naming the known ones.
    static func require(_ family: Family, source: String) throws -> MixerEntry {
        guard let m = mixer(for: family) else {
            throw ModelError(source, "unknown family '\(family)'",
                             hint: "known: " + mixers.map(\.family.rawValue).joined(separator: ", "))
        }
        return m
    }
}

/// Block settings as they appear in architecture JSON: a JSON object, kept as written, decoded into
/// a mixer's `Settings` on demand.
public struct BlockKwargs: Codable, Equatable, Sendable {
    /// The JSON object.
    public var values: [String: JSONValue]

    public init(_ values: [String: JSONValue] = [:]) { self.values = values }

    /// The kwargs of typed settings.
    public init<S: Encodable>(_ settings: S) throws {
        let data = try JSONEncoder().encode(settings)
        values = try JSONDecoder().decode([String: JSONValue].self, from: data)
    }

    public init(from decoder: Decoder) throws { values = try decoder.singleValueContainer().decode([String: JSONValue].self) }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(values)
    }

    /// The value of `key`.
    public subscript(key: String) -> JSONValue? {
        get { values[key] }
        set { values[key] = newValue }
    }

    /// Decodes the mixer's settings; a missing, mistyped or null field is one error naming it.
    public func decode<S: Decodable>(_ type: S.Type, source: String) throws -> S {
        let data = try JSONEncoder().encode(values)
        func path(_ ctx: DecodingError.Context, _ key: CodingKey? = nil) -> String {
            (["block_kwargs"] + ctx.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue } + (key.map { [$0.stringValue] } ?? []))
                .joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        do {
            return try JSONDecoder().decode(S.self, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw ModelError(source, "\(path(ctx, key)) is missing")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw ModelError(source, "\(path(ctx)) has the wrong type")
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw ModelError(source, "\(path(ctx)) is null")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw ModelError(source, "\(path(ctx)): \(ctx.debugDescription)")
        }
    }
}

/// A JSON value.
public enum JSONValue: Codable, Equatable, Sendable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n):
            if n == n.rounded(), abs(n) < 1e15 { try c.encode(Int(n)) } else { try c.encode(n) }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

/// Checks for settings: a positive value, or an error naming the field.
public func requirePositive(_ value: Int?, _ field: String, source: String) throws {
    if let value, value <= 0 { throw ModelError(source, "block_kwargs.\(field) must be positive, got \(value)") }
}

/// Checks per-stage lists: one entry per stage, each positive.
public func requirePerStage<T: Comparable & Numeric>(_ values: [T]?, _ field: String, stages: Int, source: String) throws {
    guard let values else { return }
    guard values.count == stages else {
        throw ModelError(source, "block_kwargs.\(field) needs \(stages) entries (one per stage), got \(values.count)")
    }
    if let i = values.firstIndex(where: { $0 <= 0 }) {
        throw ModelError(source, "block_kwargs.\(field)[\(i)] must be positive, got \(values[i])")
    }
}

/// Checks heads: one per stage, each positive and dividing the stage's width.
public func requireHeads(_ heads: [Int], dims: [Int], source: String) throws {
    try requirePerStage(heads, "num_heads", stages: dims.count, source: source)
    if let i = dims.indices.first(where: { dims[$0] % heads[$0] != 0 }) {
        throw ModelError(source, "block_kwargs.num_heads[\(i)] = \(heads[i]) does not divide dims[\(i)] = \(dims[i])")
    }
}

/// Where a block sits and what it is built from.
public struct BlockContext {
    public var config: ArchConfig
    /// Stage index, 0-based.
    public var stage: Int
    /// Index of the block within its stage.
    public var depth: Int
    /// Channels of the stage.
    public var dim: Int
    /// The stage's map side at `config.img_size` (img_size / 4 / 2^stage): what the checkpoint
    /// stores (PVT's position grid). Geometry (windows, shifts, padding) follows the running map instead.
    public var resolution: Int
    /// True for the detection backbone's form of the block (see the detection reference README).
    public var detection: Bool = false

    /// The model's LayerNorm eps.
    public var eps: Float { Float(config.layer_norm_eps) }
    /// Heads of this block's stage (`block_kwargs.num_heads`), 1 when the mixer has none.
    public var heads: Int { config.heads.indices.contains(stage) ? config.heads[stage] : 1 }
}

/// A mixer block: x [N,H,W,C] -> [N,H,W,C].
public protocol Block: Module {
    func callAsFunction(_ x: Tensor) -> Tensor
    /// The block's output at the centre token (H/2, W/2) only, with the bits `self(x)` has there:
    /// x [N,H,W,C] -> [N,1,1,C]. What the ERF of a stage needs of its last block. A block computes
    /// less where it can (its token-wise channel MLP on the centre alone); the default crops `self(x)`.
    func centre(_ x: Tensor) -> Tensor
}

extension Block {
    public func centre(_ x: Tensor) -> Tensor { centreToken(self(x)) }
}

/// A block of the two residual steps every unified block takes: token mixing, x + gamma_1 * mixer(x),
/// then the channel MLP, y + gamma_2 * mlp(norm(y)), which is token-wise. A conforming block gets
/// `callAsFunction` and a `centre` that runs the channel MLP on the centre token alone.
public protocol TwoStepBlock: Block {
    /// The token-mixing step with its residual: x [N,H,W,C] -> [N,H,W,C].
    func tokenMixing(_ x: Tensor) -> Tensor
    /// The channel-MLP step with its residual, token by token: y [N,H,W,C] -> [N,H,W,C].
    func channelMixing(_ y: Tensor) -> Tensor
}

extension TwoStepBlock {
    /// x [N,H,W,C] -> [N,H,W,C]
    public func callAsFunction(_ x: Tensor) -> Tensor { channelMixing(tokenMixing(x)) }
    /// The token mixing on the whole map, the channel MLP on the centre token: x [N,H,W,C] -> [N,1,1,C].
    public func centre(_ x: Tensor) -> Tensor { channelMixing(centreToken(tokenMixing(x))) }
}

/// The shape of `key` in a checkpoint, or an error saying inference needs it.
public func requireShape(_ state: StateDict, _ key: String, path: String) throws -> [Int] {
    guard let r = state[key] else { throw ModelError(path, "lacks \(key), needed to infer the architecture", hint: "pass --arch") }
    return r.shape
}

/// How many input sizes a block keeps its geometry (windows, masks, padding plans, resized position
/// tables) for. A run at one size uses one entry; a sweep over sizes (`boxes`' scales) recomputes
/// instead of keeping every size's masks, which at 4000 x 2400 inputs are over 100 MB per block.
let maxCachedGeometries = 4
