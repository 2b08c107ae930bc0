// Analysis: an ERF run as files. `ERFReport` is erf.json, a Codable document whose keys are the
// command's contract ({"model", "arch", "family", "untrained", "size", "resize", "grad", "scaling",
// "stm_legacy_scaling", "images", "skipped": [{"path", "reason"}], "stages": {"<S>": {"<t>": {"side",
// "side_ratio", "area_ratio", "reached"}}}}). It holds no timing, so the same inputs give the same
// bytes (timings go to stderr), and a "provenance" block (Provenance.swift). `ERFReport.write` writes
// erf.json, erf.csv and each stage's mean map as erf_stageS.safetensors, atomically, into a folder;
// figures are rendered by ERFFigures.swift.

import Checkpoint
import Foundation

/// erf.json.
public struct ERFReport: Codable, Equatable, Sendable {
    /// One ERF@t measurement as written.
    public struct Ratio: Codable, Equatable, Sendable {
        public var side: Int
        public var side_ratio: Double
        public var area_ratio: Double
        public var reached: Bool
    }

    /// An image left out of the mean.
    public struct Skipped: Codable, Equatable, Sendable {
        public var path: String
        public var reason: String
    }

    /// The --model argument.
    public var model: String
    /// The architecture's display name.
    public var arch: String
    public var family: String
    public var untrained: Bool
    public var size: Int
    public var resize: String
    public var grad: String
    public var scaling: String
    public var stm_legacy_scaling: Bool
    /// Images that entered the mean, in order.
    public var images: [String]
    public var skipped: [Skipped]
    /// Stage number -> threshold ("0.2") -> ratio.
    public var stages: [String: [String: Ratio]]
    /// Where the numbers came from (skipped by `compare` and `merge`).
    public var provenance: Provenance?

    /// The report of `result` for the model given as `model` (its architecture `arch`, `family`).
    public init(_ result: ERFResult, model: String, arch: String, family: String, untrained: Bool, provenance: Provenance? = nil) {
        let s = result.settings
        self.provenance = provenance
        self.model = model
        self.arch = arch
        self.family = family
        self.untrained = untrained
        size = s.size
        resize = s.resize.rawValue
        grad = s.reduction.rawValue
        scaling = s.scaling.description
        stm_legacy_scaling = s.legacyScaling
        images = result.images
        skipped = result.skipped.map { Skipped(path: $0.path, reason: $0.reason) }
        var stages: [String: [String: Ratio]] = [:]
        for stage in result.stages {
            var t: [String: Ratio] = [:]
            for r in stage.ratios {
                t[Self.shareKey(r.threshold)] = Ratio(side: r.side, side_ratio: r.sideRatio, area_ratio: r.areaRatio, reached: r.reached)
            }
            stages["\(stage.stage)"] = t
        }
        self.stages = stages
    }

    /// "0.2" for 0.2, "0.99" for 0.99: the shortest decimal that reads back as the same Double.
    public static func shareKey(_ t: Double) -> String { "\(t)" }

    /// The JSON bytes: pretty-printed, keys sorted, a final newline.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }

    /// erf.csv: one row per stage and threshold, `model,arch,stage,threshold,side,side_ratio,area_ratio,reached`,
    /// numbers in their shortest exact decimal form.
    public func csv() -> String {
        var lines = ["model,arch,stage,threshold,side,side_ratio,area_ratio,reached"]
        for stage in stages.keys.sorted(by: { Int($0) ?? 0 < Int($1) ?? 0 }) {
            for t in stages[stage]!.keys.sorted(by: { Double($0) ?? 0 < Double($1) ?? 0 }) {
                let r = stages[stage]![t]!
                lines.append([csvField(model), csvField(arch), stage, t, "\(r.side)", "\(r.side_ratio)", "\(r.area_ratio)", "\(r.reached)"]
                    .joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes `dir`/erf.json and `dir`/erf_stageS.safetensors (the mean map [H, W] as "mean", with the
    /// model title, stage and image count as metadata), each atomically. Returns the paths written.
    @discardableResult
    public static func write(_ result: ERFResult, report: ERFReport, title: String, to dir: String) throws -> [String] {
        var written: [String] = []
        let side = result.settings.size
        for stage in result.stages {
            let path = "\(dir)/erf_stage\(stage.stage).safetensors"
            try SafeTensors.write(path: path, tensors: [("mean", TensorRecord(shape: [side, side], values: stage.mean))],
                                  metadata: ["model": title, "stage": "\(stage.stage)", "images": "\(result.images.count)"])
            written.append(path)
        }
        let json = "\(dir)/erf.json", csv = "\(dir)/erf.csv"
        try writeAtomically(Data(report.csv().utf8), to: csv)
        try writeAtomically(try report.jsonData(), to: json)
        return written + [csv, json]
    }
}
