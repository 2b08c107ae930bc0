// Analysis: effective receptive fields. Averages the centre-point contribution maps of each stage
// over images (skipping, with a reason, images whose map has a NaN), and measures ERF@t the way
// RepLKNet's ERF tool does: scale the mean map (`log10(x + 1)` by default), divide by its maximum,
// then grow a centred square of side 2i + 1 (i = 1, 2, ... < H/2) until it holds more than a share t
// of the total. Where no square gets there the whole input is reported and flagged, instead of the
// tool's crash. Pictures and files are written by the CLI.
//
// Shape key: H/W input height/width; maps are row-major [H, W].

import Foundation
import Imaging
import Models
import TensorCore

/// How images are brought to the network's input size.
public enum ERFResize: String, CaseIterable, Sendable {
    /// `Resize((size, size))`, bicubic, no crop: the study's ERF script and RepLKNet's tool.
    case square
    /// The evaluation transform: short side to int(size / 0.875), centre crop.
    case crop
}

/// How the mean map is compressed before normalising by its maximum.
public enum ERFScaling: Equatable, Sendable, CustomStringConvertible {
    /// `log10(x + 1)`, the ERF tool's choice.
    case log
    /// `x^p`.
    case power(Double)

    /// Parses "log" or "power:P".
    public init?(_ text: String) {
        if text == "log" { self = .log; return }
        if text.hasPrefix("power:"), let p = Double(text.dropFirst(6)), p > 0, p.isFinite { self = .power(p); return }
        return nil
    }

    public var description: String {
        switch self {
        case .log: return "log"
        case .power(let p): return "power:\(p)"
        }
    }
}

/// One ERF@t measurement.
public struct ERFRatio: Sendable, Equatable {
    public var threshold: Double
    /// Side of the centred square in input pixels.
    public var side: Int
    /// side / input side (the study's ERF@t).
    public var sideRatio: Double
    /// side^2 / (H*W) (the ERF tool's number).
    public var areaRatio: Double
    /// False when no square below the full input held the share (the whole input is reported).
    public var reached: Bool
}

/// The normalised scaled map: scaling, then division by the maximum (all zeros stay zeros).
public func normalisedMap(_ map: [Float], scaling: ERFScaling = .log) -> [Float] {
    var d = map.map { v -> Float in
        switch scaling {
        case .log: return Float(Foundation.log10(Double(v) + 1))
        case .power(let p): return Float(Foundation.pow(Double(max(v, 0)), p))
        }
    }
    let mx = d.max() ?? 0
    if mx > 0 { for i in d.indices { d[i] /= mx } }
    return d
}

/// ERF@t for each threshold on an already normalised map [H, W].
public func erfRatios(normalised d: [Float], height h: Int, width w: Int, thresholds: [Double]) -> [ERFRatio] {
    precondition(d.count == h * w, "erfRatios: \(d.count) values for \(h)x\(w)")
    // Square sums from a summed-area table (Double), so every threshold costs O(H).
    var sat = [Double](repeating: 0, count: (h + 1) * (w + 1))
    for y in 0..<h {
        var row = 0.0
        for x in 0..<w {
            row += Double(d[y * w + x])
            sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1] + row
        }
    }
    let total = sat[h * (w + 1) + w]
    func squareSum(_ i: Int) -> Double {
        let y0 = max(h / 2 - i, 0), y1 = min(h / 2 + i + 1, h), x0 = max(w / 2 - i, 0), x1 = min(w / 2 + i + 1, w)
        return sat[y1 * (w + 1) + x1] - sat[y0 * (w + 1) + x1] - sat[y1 * (w + 1) + x0] + sat[y0 * (w + 1) + x0]
    }
    return thresholds.map { t in
        if total > 0 {
            for i in 1..<max(h / 2, 1) where squareSum(i) / total > t {
                let side = 2 * i + 1
                return ERFRatio(threshold: t, side: side, sideRatio: Double(side) / Double(h),
                                areaRatio: Double(side) / Double(h) * Double(side) / Double(w), reached: true)
            }
        }
        return ERFRatio(threshold: t, side: h, sideRatio: 1, areaRatio: 1, reached: false)
    }
}

/// Settings of an ERF run.
public struct ERFSettings: Sendable {
    public var size = 224
    public var resize = ERFResize.square
    public var stages = [1, 2, 3, 4]
    public var batch = 4
    public var numImages = 50
    public var reduction = GradientReduction.relu
    public var scaling = ERFScaling.log
    /// Divide each stage's summed map by 4 x images, as the study's script does (see `--stm-legacy-scaling`).
    public var legacyScaling = false
    public var thresholds: [Double] = [0.2, 0.3, 0.5, 0.99]

    public init() {}
}

/// The ERF of one stage.
public struct ERFStage: Sendable {
    public var stage: Int
    /// The mean contribution map before scaling, [H, W].
    public var mean: [Float]
    public var ratios: [ERFRatio]

    public init(stage: Int, mean: [Float], ratios: [ERFRatio]) {
        self.stage = stage
        self.mean = mean
        self.ratios = ratios
    }
}

/// A whole ERF run.
public struct ERFResult: Sendable {
    public var settings: ERFSettings
    /// Images that entered the mean, in order.
    public var images: [String]
    /// Images left out, with the reason.
    public var skipped: [(path: String, reason: String)]
    public var stages: [ERFStage]
    public var seconds: Double

    public init(settings: ERFSettings, images: [String], skipped: [(path: String, reason: String)], stages: [ERFStage], seconds: Double) {
        self.settings = settings
        self.images = images
        self.skipped = skipped
        self.stages = stages
        self.seconds = seconds
    }
}

/// Progress of a run: images used, images looked at, images wanted, seconds so far.
public typealias ERFProgress = (_ used: Int, _ seen: Int, _ wanted: Int, _ seconds: Double) -> Void

/// Brings one decoded image to the network's input as the settings say.
public func erfInputImage(_ image: Image8, settings: ERFSettings) -> Image8 {
    switch settings.resize {
    case .square: return squareResize(image, size: settings.size)
    case .crop: return evalTransform(image, size: settings.size, cropPct: 0.875)
    }
}

/// The sums of an ERF run before averaging: exact per-pixel sums of each stage's maps, and which
/// images (by their index in the whole image list) entered them. Sums of disjoint image sets add up
/// exactly, so shards of a run merge into the bits of the single run.
public struct ERFAccumulation: Sendable {
    public var settings: ERFSettings
    /// Images that entered the sums: index in the whole list, and path; in index order.
    public var images: [(index: Int, path: String)]
    /// Images left out, with the reason; in index order.
    public var skipped: [(index: Int, path: String, reason: String)]
    /// Stage -> exact sums of its maps [H * W].
    public var sums: [Int: ExactFloatSums]

    /// An empty accumulation for `settings`.
    public init(settings: ERFSettings) {
        self.settings = settings
        images = []
        skipped = []
        sums = [:]
        for s in settings.stages { sums[s] = ExactFloatSums(count: settings.size * settings.size) }
    }

    /// Adds another accumulation of the same settings over other images (exact; images kept in index order).
    public mutating func add(_ other: ERFAccumulation) {
        for s in settings.stages { sums[s]!.add(other.sums[s]!) }
        images = (images + other.images).sorted { $0.index < $1.index }
        skipped = (skipped + other.skipped).sorted { $0.index < $1.index }
    }

    /// The means, ERF@t and image lists of the accumulated images.
    public func result(seconds: Double = 0) -> ERFResult {
        let side = settings.size
        let divisor = Double(max(images.count, 1)) * (settings.legacyScaling ? 4 : 1)
        let stages = settings.stages.map { s -> ERFStage in
            let mean = sums[s]!.values().map { Float($0 / divisor) }
            let ratios = erfRatios(normalised: normalisedMap(mean, scaling: settings.scaling), height: side, width: side,
                                   thresholds: settings.thresholds)
            return ERFStage(stage: s, mean: mean, ratios: ratios)
        }
        return ERFResult(settings: settings, images: images.map(\.path), skipped: skipped.map { ($0.path, $0.reason) },
                         stages: stages, seconds: seconds)
    }
}

/// Runs the ERF over `paths` (in order) until `numImages` images gave finite maps or the list ends.
public func computeERF(model: any Backbone, paths: [String], settings: ERFSettings,
                       progress: ERFProgress? = nil) throws -> ERFResult {
    let started = Date()
    let acc = try accumulateERF(model: model, candidates: Array(paths.enumerated()).map { ($0.offset, $0.element) },
                                want: settings.numImages, settings: settings, progress: progress)
    return acc.result(seconds: Date().timeIntervalSince(started))
}

/// The images of shard `shard` of `shards` among the first `numImages` of `paths`: every `shards`-th
/// image starting at index `shard`, with its index in the whole list.
public func erfShardCandidates(paths: [String], numImages: Int, shard: Int, shards: Int) -> [(Int, String)] {
    let n = min(numImages, paths.count)
    return stride(from: shard, to: n, by: shards).map { ($0, paths[$0]) }
}

/// Sums the maps of `candidates` (index in the whole list, path), in order, until `want` images gave
/// finite maps or the candidates end (images with a NaN or infinity are skipped with a reason).
public func accumulateERF(model: any Backbone, candidates: [(Int, String)], want: Int, settings: ERFSettings,
                          progress: ERFProgress? = nil) throws -> ERFAccumulation {
    let started = Date()
    let side = settings.size
    let pixels = side * side
    var acc = ERFAccumulation(settings: settings)
    var next = 0
    while acc.images.count < want && next < candidates.count {
        let take = min(settings.batch, want - acc.images.count, candidates.count - next)
        let chunk = Array(candidates[next..<(next + take)])
        next += take
        let images = try chunk.map { try erfInputImage(loadImage(path: $0.1), settings: settings) }
        let maps = centreContributions(model: model, input: batchTensor(images, normalization: model.normalization), stages: settings.stages,
                                       reduction: settings.reduction)
        for (i, (index, path)) in chunk.enumerated() {
            var bad: Int? = nil
            for s in settings.stages {
                let m = maps[s]!.data + i * pixels
                for p in 0..<pixels where !m[p].isFinite { bad = s; break }
                if bad != nil { break }
            }
            if let bad {
                acc.skipped.append((index, path, "the stage \(bad) map has a NaN or infinity"))
                continue
            }
            for s in settings.stages { acc.sums[s]!.add(UnsafePointer(maps[s]!.data + i * pixels)) }
            acc.images.append((index, path))
        }
        progress?(acc.images.count, next, min(want, candidates.count), Date().timeIntervalSince(started))
    }
    return acc
}
