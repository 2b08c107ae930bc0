// Analysis: an invariance run as report documents. The JSON object (for JSONSerialization) whose keys
// are the command's contract: {"kind", "models": [{"model", "levels": {"<level>": {"consistency", "acc1",
// "acc5", "ce", "kl"}}, "mean_consistency", ...}], ...}, percentages 0 to 100, level keys as given; and
// the CSV table with one row per model and level. Timings stay out of both, so that the same inputs give
// the same bytes. Writing files is the CLI's.

import Foundation

/// The JSON document of a run (JSONSerialization-compatible; keys sorted when written).
public func invarianceDocument(_ result: InvarianceResult) -> [String: Any] {
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
    return doc
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
