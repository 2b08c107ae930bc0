// Analysis: the partial result of one shard of a sharded ERF run (`erf --shard i/n`), and merging
// partials into the accumulation of the whole run. A partial holds sums and counts, never averages:
// the exact per-pixel sums of each stage's maps (ExactSum.swift) and the images that entered them by
// their index in the whole list, so `merge` gives the bits one run over all images gives.
//
// File layout (`erf.partial`): the 8 bytes "STMERFP1", the header's length as a little-endian UInt64,
// the header (JSON, `ERFPartialHeader`), then for each stage in `stages` order H*W*5 little-endian
// UInt64 limbs (ExactFloatSums.words).

import Checkpoint
import Diagnostics
import Foundation

/// The JSON header of an ERF partial result.
public struct ERFPartialHeader: Codable, Equatable, Sendable {
    /// An image that entered the sums, or was skipped.
    public struct Image: Codable, Equatable, Sendable {
        public var index: Int
        public var path: String
        public var reason: String?

        /// An image at `index` of the whole list; `reason` says why it was skipped.
        public init(index: Int, path: String, reason: String?) {
            self.index = index
            self.path = path
            self.reason = reason
        }
    }

    /// Shard number (0-based) and shard count.
    public var shard: Int
    public var shards: Int
    /// The model as erf.json names it, and the figures' title.
    public var model: String
    public var arch: String
    public var family: String
    public var untrained: Bool
    public var title: String
    /// The run's settings (as erf.json writes them), thresholds and stages, and the colour map of the figures.
    public var size: Int
    public var resize: String
    public var grad: String
    public var scaling: String
    public var stm_legacy_scaling: Bool
    public var stages: [Int]
    public var thresholds: [Double]
    public var num_images: Int
    public var colormap: String
    public var images: [Image]
    public var skipped: [Image]
    /// The provenance of the whole run (its `shard` says which part this is).
    public var provenance: Provenance

    /// A header with every field.
    public init(shard: Int, shards: Int, model: String, arch: String, family: String, untrained: Bool, title: String, size: Int, resize: String, grad: String, scaling: String, stm_legacy_scaling: Bool, stages: [Int], thresholds: [Double], num_images: Int, colormap: String, images: [Image], skipped: [Image], provenance: Provenance) {
        self.shard = shard
        self.shards = shards
        self.model = model
        self.arch = arch
        self.family = family
        self.untrained = untrained
        self.title = title
        self.size = size
        self.resize = resize
        self.grad = grad
        self.scaling = scaling
        self.stm_legacy_scaling = stm_legacy_scaling
        self.stages = stages
        self.thresholds = thresholds
        self.num_images = num_images
        self.colormap = colormap
        self.images = images
        self.skipped = skipped
        self.provenance = provenance
    }

    /// The settings these fields describe.
    public func settings() throws -> ERFSettings {
        var s = ERFSettings()
        s.size = size
        guard let r = ERFResize(rawValue: resize), let g = GradientReduction(rawValue: grad), let sc = ERFScaling(scaling) else {
            throw ERFPartialError("partial result", "its settings (resize \(resize), grad \(grad), scaling \(scaling)) are not ones this tool writes")
        }
        s.resize = r
        s.reduction = g
        s.scaling = sc
        s.legacyScaling = stm_legacy_scaling
        s.stages = stages
        s.thresholds = thresholds
        s.numImages = num_images
        return s
    }
}

/// A partial result that cannot be read or merged: one line naming the file and the problem.
public typealias ERFPartialError = ToolError

/// One shard's partial ERF result.
public struct ERFPartial: Sendable {
    static let magic = Array("STMERFP1".utf8)

    public var header: ERFPartialHeader
    public var accumulation: ERFAccumulation

    /// A partial from a shard's accumulation.
    public init(header: ERFPartialHeader, accumulation: ERFAccumulation) {
        self.header = header
        self.accumulation = accumulation
    }

    /// The file's bytes.
    public func data() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = try encoder.encode(header)
        var out = Data(Self.magic)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for s in header.stages {
            accumulation.sums[s]!.words.withUnsafeBufferPointer { w in
                for v in w { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
            }
        }
        return out
    }

    /// Writes the partial atomically.
    public func write(to path: String) throws { try writeAtomically(try data(), to: path) }

    /// Reads a partial written by `write`.
    public static func read(path: String) throws -> ERFPartial {
        guard let data = FileManager.default.contents(atPath: path) else { throw ERFPartialError(path, "cannot read the file") }
        let bytes = [UInt8](data)
        guard bytes.count >= 16, Array(bytes[0..<8]) == magic else {
            throw ERFPartialError(path, "not an ERF partial result (written by erf --shard)")
        }
        var length: UInt64 = 0
        for i in 0..<8 { length |= UInt64(bytes[8 + i]) << (8 * UInt64(i)) }
        guard length <= UInt64(bytes.count - 16) else { throw ERFPartialError(path, "the file is cut short") }
        let headerEnd = 16 + Int(length)
        let header: ERFPartialHeader
        do { header = try JSONDecoder().decode(ERFPartialHeader.self, from: Data(bytes[16..<headerEnd])) } catch {
            throw ERFPartialError(path, "its header is not an ERF partial header (\(error))")
        }
        let cells = header.size * header.size
        let perStage = cells * ExactFloatSums.limbs * 8
        guard bytes.count == headerEnd + perStage * header.stages.count else {
            throw ERFPartialError(path, "holds \(bytes.count - headerEnd) bytes of sums where \(header.stages.count) stages at \(header.size) px need \(perStage * header.stages.count)")
        }
        var acc = ERFAccumulation(settings: try header.settings())
        for (k, s) in header.stages.enumerated() {
            var words = [UInt64](repeating: 0, count: cells * ExactFloatSums.limbs)
            bytes.withUnsafeBytes { raw in
                let base = headerEnd + k * perStage
                for i in words.indices { words[i] = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: base + 8 * i, as: UInt64.self)) }
            }
            acc.sums[s] = ExactFloatSums(words: words)!
        }
        acc.images = header.images.map { ($0.index, $0.path) }
        acc.skipped = header.skipped.map { ($0.index, $0.path, $0.reason ?? "") }
        return ERFPartial(header: header, accumulation: acc)
    }

    /// Merges the partials of every shard of one run: they must share the model, images and
    /// settings, and hold each shard 0..<n exactly once.
    public static func merge(_ parts: [(path: String, partial: ERFPartial)]) throws -> (header: ERFPartialHeader, accumulation: ERFAccumulation) {
        guard let first = parts.first else { throw ERFPartialError("merge", "no partial results to merge") }
        let h0 = first.partial.header
        for (path, p) in parts.dropFirst() {
            var h = p.header, ref = h0
            // Everything but the shard's own part must agree.
            h.shard = 0; ref.shard = 0
            h.images = []; ref.images = []
            h.skipped = []; ref.skipped = []
            h.provenance.shard = nil; ref.provenance.shard = nil
            if h != ref {
                throw ERFPartialError(path, "is not a shard of the same run as \(first.path) (model, images or settings differ)")
            }
        }
        try checkShards(parts.map { ($0.path, $0.partial.header.shard, $0.partial.header.shards) })
        var acc = first.partial.accumulation
        for (_, p) in parts.dropFirst() { acc.add(p.accumulation) }
        return (h0, acc)
    }
}

/// Checks that (path, shard, shards) name every shard 0..<n of one n exactly once.
public func checkShards(_ parts: [(path: String, shard: Int, shards: Int)]) throws {
    guard let n = parts.first?.shards else { throw ERFPartialError("merge", "no partial results to merge") }
    for p in parts where p.shards != n {
        throw ERFPartialError(p.path, "is shard \(p.shard)/\(p.shards) but \(parts[0].path) is of \(n) shards")
    }
    var seen: [Int: String] = [:]
    for p in parts {
        if let other = seen[p.shard] { throw ERFPartialError("merge", "shard \(p.shard)/\(n) is given twice: \(other) and \(p.path)") }
        seen[p.shard] = p.path
    }
    let missing = (0..<n).filter { seen[$0] == nil }
    if !missing.isEmpty {
        throw ERFPartialError("merge", "shard\(missing.count == 1 ? "" : "s") \(missing.map { "\($0)/\(n)" }.joined(separator: ", ")) missing: merge needs all \(n)")
    }
}
