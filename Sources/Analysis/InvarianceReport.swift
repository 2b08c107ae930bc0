// Analysis: an invariance run as report documents. The JSON object (for JSONSerialization) whose keys
// are the command's contract: {"kind", "models": [{"model", "levels": {"<level>": {"consistency", "acc1",
// "acc5", "ce", "kl"}}, "mean_consistency", ...}], ...}, percentages 0 to 100, level keys as given; and
// the CSV table with one row per model and level; the per-image rows; and a shard's partial result.
// Timings stay out of all of them, so that the same inputs give the same bytes. Writing files is the CLI's.

import Foundation

/// The JSON document of a run (JSONSerialization-compatible; keys sorted when written), with the
/// provenance block when given.
public func invarianceDocument(_ result: InvarianceResult, provenance: Provenance? = nil) -> [String: Any] {
    let s = result.settings
    var protocolInfo: [String: Any] = ["size": s.size, "crop_pct": s.cropPct, "seed": Int(s.seed)]
    switch s.kind {
    case .translate:
        protocolInfo["directions"] = s.studyDirections ? 7 : 8
        if s.pairs { protocolInfo["pair_rounds"] = s.pairRounds }
    case .rotate:
        protocolInfo["rotation"] = s.preCrop ? "before the centre crop" : "after the centre crop"
    case .scale:
        break
    }
    let models = result.models.map { m -> [String: Any] in
        var levels: [String: Any] = [:]
        for l in m.levels {
            var entry: [String: Any] = ["consistency": l.consistency, "ce": l.ce, "kl": l.kl, "value": l.level.value]
            if let a = l.acc1 { entry["acc1"] = a }
            if let a = l.acc5 { entry["acc5"] = a }
            levels[l.level.key] = entry
        }
        var doc: [String: Any] = [
            "model": m.source, "label": m.label, "arch": m.arch, "family": m.family, "untrained": m.untrained,
            "levels": levels, "mean_consistency": m.meanConsistency,
        ]
        if let a1 = m.standardAcc1, let a5 = m.standardAcc5 { doc["standard"] = ["acc1": a1, "acc5": a5] }
        if let c = m.shiftConsistency { doc["shift_consistency"] = c }
        return doc
    }
    var doc: [String: Any] = [
        "kind": s.kind.rawValue, "level_unit": s.kind.levelUnit, "level_order": s.levels.map(\.key),
        "protocol": protocolInfo, "images": result.images, "labelled": result.labelled, "models": models,
    ]
    if let source = result.labelSource { doc["labels"] = source }
    if let provenance { doc[provenanceKey] = provenance.jsonObject() }
    return doc
}

/// The per-image rows of a run (`<kind>_images.csv`): `model,label,image,path,level,prediction,standard,agreement,loss,kl`
/// (and `top1,top5` with labels), one row per model, image and level, images in index order. `agreement`
/// is 1 when the level's top-1 equals the standard image's, `loss` the soft-target cross-entropy against
/// the standard prediction; these rows are what bootstrap bands are drawn from.
public func invarianceImagesCSV(_ result: InvarianceResult) -> String {
    var header = ["model", "label", "image", "path", "level", "prediction", "standard", "agreement", "loss", "kl"]
    if result.labelled { header += ["top1", "top5"] }
    var lines = [header.joined(separator: ",")]
    for (m, model) in result.models.enumerated() where m < result.records.count {
        for r in result.records[m] {
            for (l, level) in result.settings.levels.enumerated() {
                var row = [csvField(model.source), csvField(model.label), "\(r.image)", csvField(result.images[r.image]), csvField(level.key),
                           "\(r.predictions[l])", "\(r.standard)", r.agrees(l) ? "1" : "0", "\(r.ce[l])", "\(r.kl[l])"]
                if result.labelled { row += [r.top1?[l] == true ? "1" : "0", r.top5?[l] == true ? "1" : "0"] }
                lines.append(row.joined(separator: ","))
            }
        }
    }
    return lines.joined(separator: "\n") + "\n"
}

/// The partial result of one shard of a sharded invariance run (`<kind>.partial.json`): the run's
/// settings, models and whole image list, and the per-image records of this shard's images (counts
/// and per-image losses, never averages), so `merge` rebuilds exactly the single run's numbers.
public struct InvariancePartial: Codable, Equatable, Sendable {
    /// One level as written.
    public struct Level: Codable, Equatable, Sendable {
        public var key: String
        public var value: Double
    }

    public var shard: Int
    public var shards: Int
    public var kind: String
    public var levels: [Level]
    public var size: Int
    public var crop_pct: Double
    public var seed: UInt32
    public var pre_crop: Bool
    public var study_directions: Bool
    public var pairs: Bool
    public var pair_rounds: Int
    /// The whole image list of the run, in order.
    public var images: [String]
    public var label_source: String?
    public var models: [InvarianceModelInfo]
    /// Per model, this shard's records in index order.
    public var records: [[InvarianceImageRecord]]
    /// The provenance of the whole run (its `shard` says which part this is).
    public var provenance: Provenance

    /// The partial of a shard's result.
    public init(_ result: InvarianceResult, shard: Int, shards: Int, provenance: Provenance) {
        let s = result.settings
        self.shard = shard
        self.shards = shards
        kind = s.kind.rawValue
        levels = s.levels.map { Level(key: $0.key, value: $0.value) }
        size = s.size
        crop_pct = s.cropPct
        seed = s.seed
        pre_crop = s.preCrop
        study_directions = s.studyDirections
        pairs = s.pairs
        pair_rounds = s.pairRounds
        images = result.images
        label_source = result.labelSource
        models = result.models.map {
            InvarianceModelInfo(label: $0.label, source: $0.source, arch: $0.arch, family: $0.family, untrained: $0.untrained)
        }
        records = result.records
        self.provenance = provenance
    }

    /// The run's settings.
    public func settings() throws -> InvarianceSettings {
        guard let k = InvarianceKind(rawValue: kind) else { throw InvarianceError("partial result", "unknown kind '\(kind)'") }
        var s = InvarianceSettings(kind: k)
        s.levels = levels.map { InvarianceLevel(key: $0.key, value: $0.value) }
        s.size = size
        s.cropPct = crop_pct
        s.seed = seed
        s.preCrop = pre_crop
        s.studyDirections = study_directions
        s.pairs = pairs
        s.pairRounds = pair_rounds
        return s
    }

    /// The file's bytes (JSON, keys sorted; doubles in their shortest exact form).
    public func data() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }

    /// Merges the partials of every shard of one run into the run's result: they must share settings,
    /// models and images, and hold each shard 0..<n once; records are put back in index order.
    public static func merge(_ parts: [(path: String, partial: InvariancePartial)]) throws -> (InvarianceResult, InvariancePartial) {
        guard let first = parts.first else { throw InvarianceError("merge", "no partial results to merge") }
        func common(_ p: InvariancePartial) -> InvariancePartial {
            var c = p
            c.shard = 0
            c.records = []
            c.provenance.shard = nil
            return c
        }
        let reference = common(first.partial)
        for (path, p) in parts.dropFirst() where common(p) != reference {
            throw InvarianceError(path, "is not a shard of the same run as \(first.path) (kind, models, images or settings differ)")
        }
        try checkShards(parts.map { ($0.path, $0.partial.shard, $0.partial.shards) })
        let p0 = first.partial
        var records: [[InvarianceImageRecord]] = p0.models.map { _ in [] }
        for (_, p) in parts {
            for m in records.indices { records[m] += p.records[m] }
        }
        for m in records.indices {
            records[m].sort { $0.image < $1.image }
            guard records[m].map(\.image) == Array(p0.images.indices) else {
                throw InvarianceError("merge", "the shards' records do not cover the \(p0.images.count) images exactly once")
            }
        }
        let result = summariseInvariance(settings: try p0.settings(), images: p0.images, labelSource: p0.label_source,
                                         models: p0.models, records: records)
        return (result, p0)
    }
}

/// The CSV table of a run: `model,label,level,consistency[,acc1,acc5],ce,kl`, one row per model and
/// level in run order; numbers in their shortest exact decimal form; fields quoted where needed (RFC 4180).
public func invarianceCSV(_ result: InvarianceResult) -> String {
    let labelled = result.labelled
    var header = ["model", "label", "level", "consistency"]
    if labelled { header += ["acc1", "acc5"] }
    header += ["ce", "kl"]
    var lines = [header.joined(separator: ",")]
    for m in result.models {
        for l in m.levels {
            var row = [csvField(m.source), csvField(m.label), csvField(l.level.key), "\(l.consistency)"]
            if labelled { row += ["\(l.acc1 ?? .nan)", "\(l.acc5 ?? .nan)"] }
            row += ["\(l.ce)", "\(l.kl)"]
            lines.append(row.joined(separator: ","))
        }
    }
    return lines.joined(separator: "\n") + "\n"
}

/// A CSV field, quoted (with doubled quotes) when it holds a comma, quote or line break.
func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}
