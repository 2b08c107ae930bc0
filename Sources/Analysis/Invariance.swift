// Analysis: how stable a model's prediction is when the image moves, turns or changes size, with the
// protocol of the STM-Evaluation study (classification/invariance_eval_all.py, tools/variance_transforms.py
// and engine.py's evaluate_invariance):
//  * every image also goes through the evaluation transform ("standard": short side to
//    int(size / crop-pct), bicubic, centre crop), whose prediction is the reference;
//  * translate: the crop centre moves by the level (0 to 64 px, step 4) along one of the eight compass
//    directions, drawn per image and level (image by image, levels in order) from MT19937 seeded as
//    numpy's `np.random.seed(seed)`; the study's code draws `randint(7)` and so never moves down-left,
//    we draw `randint(8)` unless `studyDirections` asks for the study's draw;
//  * rotate: 0 to 90 degrees, step 5, counter-clockwise, bicubic, zero fill, after the centre crop (or
//    before it with `preCrop`);
//  * scale: the evaluation transform with crop ratio 0.2, 0.325, ... 1.95 (the study's
//    `range(200, 2001, 125) / 1000`: 2.0 itself is not a step);
//  * per level: consistency (share whose top-1 equals the standard image's top-1), top-1/top-5 accuracy
//    against labels, and timm's SoftTargetCrossEntropy of the transformed logits against the softmax of
//    the standard logits (so it includes the entropy of that prediction; `kl` removes it);
//  * optionally Zhang's shift consistency (antialiased-cnns' validate_shift): two random size x size
//    windows of the int(size / crop-pct) centre square of the resized image, offsets drawn per image
//    with `randint(margin, size=2)`, share of equal top-1, over `pairRounds` rounds.
// Each image is decoded once; its transformed versions go through every model in batches of `batch`
// images; a transformed image identical to its standard image reuses the standard prediction. Files and
// printing are the CLI's.
//
// Shape key: N batch, S crop side, K classes; logits are row-major [N, K].

import Foundation
import Imaging
import Models
import TensorCore

/// The three perturbations of the study.
public enum InvarianceKind: String, CaseIterable, Sendable {
    case translate, rotate, scale

    /// The study's levels: jitter 0...64 px step 4, angles 0...90 step 5, crop ratios 0.2...1.95 step 0.125.
    public var defaultLevels: [InvarianceLevel] {
        switch self {
        case .translate: return stride(from: 0, through: 64, by: 4).map { InvarianceLevel(key: "\($0)", value: Double($0)) }
        case .rotate: return stride(from: 0, through: 90, by: 5).map { InvarianceLevel(key: "\($0)", value: Double($0)) }
        case .scale:
            return stride(from: 200, through: 2000, by: 125).map { r in
                let ratio = Double(r) / 1000
                return InvarianceLevel(key: "\(ratio)", value: ratio)
            }
        }
    }

    /// What a level measures, with its unit, for axis titles ("translation (px)").
    public var levelTitle: String {
        switch self {
        case .translate: return "translation (px)"
        case .rotate: return "rotation angle (degrees)"
        case .scale: return "crop ratio (crop side / resized short side)"
        }
    }

    /// The unit of a level ("px", "degrees", "ratio").
    public var levelUnit: String {
        switch self {
        case .translate: return "px"
        case .rotate: return "degrees"
        case .scale: return "ratio"
        }
    }

    /// Parses `--levels` arguments: values separated by commas and/or given as several arguments, kept
    /// in the order given, each keeping its text as its key.
    /// - Throws: `InvarianceError` for an empty list, an empty entry, a value that is not a number, a
    ///   negative or fractional jitter, a crop ratio that is not positive or asks for too large a resize
    ///   at `size`, and a value given twice.
    public func parseLevels(_ arguments: [String], size: Int = 224) throws -> [InvarianceLevel] {
        let option = "--levels"
        let entries = arguments.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard entries.contains(where: { !$0.isEmpty }) else {
            throw InvarianceError(option, "lists no levels", hint: "e.g. --levels \(defaultLevels.prefix(3).map(\.key).joined(separator: ","))")
        }
        var levels: [InvarianceLevel] = []
        for text in entries {
            guard !text.isEmpty else { throw InvarianceError(option, "has an empty entry in '\(arguments.joined(separator: " "))'") }
            guard let value = Double(text), value.isFinite else {
                throw InvarianceError(option, "'\(text)' is not a number")
            }
            switch self {
            case .translate:
                guard value >= 0, value == value.rounded(), value <= 100_000 else {
                    throw InvarianceError(option, "jitter '\(text)' must be a whole number of pixels from 0 to 100000")
                }
            case .rotate:
                break
            case .scale:
                guard value > 0 else { throw InvarianceError(option, "crop ratio '\(text)' must be above 0") }
                do {
                    try validateTransformArguments(size: size, cropPct: value, what: option)
                } catch let e as ImagingError {
                    throw InvarianceError(option, e.problem)
                }
            }
            if let twin = levels.first(where: { $0.value == value }) {
                throw InvarianceError(option, "'\(text)' repeats the level '\(twin.key)'")
            }
            levels.append(InvarianceLevel(key: text, value: value))
        }
        return levels
    }
}

/// One perturbation level: its text as given (the key in reports) and its value.
public struct InvarianceLevel: Sendable, Equatable {
    /// The level as written (on the command line, or the study's spelling): the key in reports.
    public var key: String
    /// Jitter in pixels, angle in degrees, or crop ratio.
    public var value: Double

    /// A level `value` reported under `key`.
    public init(key: String, value: Double) {
        self.key = key
        self.value = value
    }
}

/// The settings of an invariance run.
public struct InvarianceSettings: Sendable {
    /// The perturbation.
    public var kind: InvarianceKind
    /// The levels measured, in report order.
    public var levels: [InvarianceLevel]
    /// Crop side (network input).
    public var size = 224
    /// Crop fraction of the standard transform (short side to int(size / cropPct)).
    public var cropPct = 0.875
    /// Seed of the jitter directions and shift-pair offsets.
    public var seed: UInt32 = 0
    /// Images per forward pass.
    public var batch = 32
    /// Rotate before the centre crop instead of after it.
    public var preCrop = false
    /// Draw directions with `randint(7)` as the study's code does (never down-left).
    public var studyDirections = false
    /// Also measure Zhang's shift consistency (translate only).
    public var pairs = false
    /// Pairs per image for the shift consistency (antialiased-cnns' `epochs_shift`).
    public var pairRounds = 5

    /// The study's settings for `kind` (its default levels).
    public init(kind: InvarianceKind) {
        self.kind = kind
        levels = kind.defaultLevels
    }

    /// int(size / cropPct): the short side of the resized image.
    public var resizedSide: Int { Int(Double(size) / cropPct) }

    /// Checks the settings before any work.
    /// - Throws: `InvarianceError` for an impossible size, crop fraction, batch or level, or pairs that do not fit.
    public func validate() throws {
        guard (1...4096).contains(size) else { throw InvarianceError("--size", "\(size) is outside 1 to 4096") }
        do { try validateTransformArguments(size: size, cropPct: cropPct, what: "--crop-pct") } catch let e as ImagingError {
            throw InvarianceError("--crop-pct", e.problem)
        }
        guard batch >= 1 else { throw InvarianceError("--batch", "must be at least 1") }
        guard !levels.isEmpty else { throw InvarianceError("--levels", "lists no levels") }
        if pairs {
            guard kind == .translate else { throw InvarianceError("--pairs", "applies to translate only") }
            guard pairRounds >= 1 else { throw InvarianceError("--pair-rounds", "must be at least 1") }
            guard resizedSide > size else {
                throw InvarianceError("--pairs", "needs room to shift: int(size / crop-pct) = \(resizedSide) is not larger than --size \(size)",
                                      hint: "use a --crop-pct below 1, e.g. 0.875")
            }
        }
    }
}

/// A model taking part in a run.
public struct InvarianceSubject {
    /// Name in legends, tables and reports.
    public var label: String
    /// Where it came from (the --model argument).
    public var source: String
    /// The network; it needs a classifier head.
    public var model: any Backbone
    /// True for a preset with random weights.
    public var untrained: Bool

    /// A model to measure, named `label` in reports and `source` as given.
    public init(label: String, source: String, model: any Backbone, untrained: Bool) {
        self.label = label
        self.source = source
        self.model = model
        self.untrained = untrained
    }
}

/// The metrics of one model at one level. Percentages are 0 to 100.
public struct InvarianceLevelMetrics: Sendable {
    /// The level these numbers belong to.
    public var level: InvarianceLevel
    /// Share of images whose top-1 equals the standard image's top-1 (%).
    public var consistency: Double
    /// Top-1 accuracy against the labels (%), nil without labels.
    public var acc1: Double?
    /// Top-5 accuracy against the labels (%), nil without labels.
    public var acc5: Double?
    /// Mean soft-target cross-entropy against the standard prediction (nats).
    public var ce: Double
    /// `ce` minus the standard prediction's entropy: the mean KL divergence (nats).
    public var kl: Double
}

/// One model's curve and summary numbers.
public struct InvarianceModelResult: Sendable {
    /// Name in legends and reports.
    public var label: String
    /// The --model argument.
    public var source: String
    /// Architecture name (preset or file name).
    public var arch: String
    /// Mixer family ("swin", "convnext", ...).
    public var family: String
    /// True for a preset with random weights.
    public var untrained: Bool
    /// In the order of the settings' levels.
    public var levels: [InvarianceLevelMetrics]
    /// Mean of `consistency` over the levels (%).
    public var meanConsistency: Double
    /// Top-1 accuracy of the standard images (%), nil without labels.
    public var standardAcc1: Double?
    /// Top-5 accuracy of the standard images (%), nil without labels.
    public var standardAcc5: Double?
    /// Zhang's shift consistency (%), when pairs were asked for.
    public var shiftConsistency: Double?
}

/// A whole invariance run.
public struct InvarianceResult: Sendable {
    /// The settings the run used.
    public var settings: InvarianceSettings
    /// The images, in order.
    public var images: [String]
    /// Where the labels came from; nil without labels.
    public var labelSource: String?
    /// One result per subject, in the order given.
    public var models: [InvarianceModelResult]
    /// Images each model ran through its forward pass (standard, levels and pairs, less reused ones).
    public var forwardImages: Int
    /// Wall time of the run.
    public var seconds: Double
    /// Per model (in subject order), one record per image in index order: the per-image rows.
    public var records: [[InvarianceImageRecord]] = []

    /// Whether accuracies were measured.
    public var labelled: Bool { labelSource != nil }
}

/// Progress of a run: images finished, images in all, seconds so far.
public typealias InvarianceProgress = (_ done: Int, _ total: Int, _ seconds: Double) -> Void

/// The jitter direction of each image at each level, in the study's order of draws
/// (image by image, the levels of an image in order), from MT19937 seeded with `seed`.
public func jitterDirections(images: Int, levels: Int, seed: UInt32, studyDirections: Bool = false) -> [[JitterDirection]] {
    var rng = MersenneTwister(seed: seed)
    let bound: UInt32 = studyDirections ? 7 : 8
    return (0..<images).map { _ in
        (0..<levels).map { _ in JitterDirection.allCases[Int(rng.randint(bound))] }
    }
}

/// The shift-pair window offsets (top, left) of each image and round, as antialiased-cnns draws them
/// (`randint(margin, size=2)` for the first window, then for the second), from MT19937 seeded with `seed`.
public func shiftPairOffsets(images: Int, rounds: Int, margin: Int, seed: UInt32)
    -> [[(first: (top: Int, left: Int), second: (top: Int, left: Int))]] {
    var rng = MersenneTwister(seed: seed)
    let bound = UInt32(max(margin, 1))
    func draw() -> (top: Int, left: Int) {
        let top = Int(rng.randint(bound))
        return (top, Int(rng.randint(bound)))
    }
    return (0..<images).map { _ in
        (0..<rounds).map { _ in
            let first = draw()
            return (first, draw())
        }
    }
}

/// The image a level makes of a decoded image (8-bit, before normalisation).
public func invarianceImage(_ image: Image8, level: Double, settings: InvarianceSettings,
                            direction: JitterDirection = .down) -> Image8 {
    switch settings.kind {
    case .translate:
        return jitterTransform(image, size: settings.size, cropPct: settings.cropPct, jitter: Int(level), direction: direction)
    case .rotate:
        return rotateTransform(image, size: settings.size, cropPct: settings.cropPct, degrees: level, preCrop: settings.preCrop)
    case .scale:
        return scaleTransform(image, size: settings.size, ratio: level)
    }
}

/// The two windows of a shift pair: the int(size / cropPct) centre square of the resized image,
/// cropped at each offset to size x size.
public func shiftPairImages(_ image: Image8, settings: InvarianceSettings,
                            offsets: (first: (top: Int, left: Int), second: (top: Int, left: Int))) -> (Image8, Image8) {
    let side = settings.resizedSide
    let square = evalTransform(image, size: side, cropPct: 1)
    let s = settings.size
    return (crop(square, left: offsets.first.left, top: offsets.first.top, width: s, height: s),
            crop(square, left: offsets.second.left, top: offsets.second.top, width: s, height: s))
}

/// Runs the protocol of `settings` on `images` for every subject.
/// - Parameters:
///   - shard: with `(i, n)`, only every n-th image from index i is measured (a shard of a sharded run);
///     seeded draws depend on the image's index in the whole list, so shards agree with one run.
/// - Throws: `InvarianceError` for bad settings or labels outside a model's classes, and
///   `ImagingError` for an image that cannot be read.
public func runInvariance(subjects: [InvarianceSubject], images: LabelledImages, settings: InvarianceSettings,
                          shard: (index: Int, count: Int)? = nil,
                          progress: InvarianceProgress? = nil) throws -> InvarianceResult {
    try settings.validate()
    guard !subjects.isEmpty else { throw InvarianceError("--model", "no model to measure") }
    guard !images.paths.isEmpty else { throw InvarianceError("--images", "no images") }
    for s in subjects where !s.model.hasHead {
        throw InvarianceError(s.source, "has no classification head (a backbone-only checkpoint): invariance needs the head's predictions; erf does not")
    }
    for s in subjects { try images.checkLabels(classes: s.model.config.num_classes, model: s.label) }
    let started = Date()
    let levelCount = settings.levels.count
    // Draws for the whole list, taken by each image's index in it.
    let directions = settings.kind == .translate
        ? jitterDirections(images: images.paths.count, levels: levelCount, seed: settings.seed, studyDirections: settings.studyDirections)
        : []
    let pairOffsets = settings.pairs
        ? shiftPairOffsets(images: images.paths.count, rounds: settings.pairRounds,
                           margin: settings.resizedSide - settings.size, seed: settings.seed)
        : []
    let indices = shard.map { Array(stride(from: $0.index, to: images.paths.count, by: $0.count)) } ?? Array(images.paths.indices)
    var queue = InvarianceQueue(subjects: subjects.map(\.model), labels: images.labels, levels: levelCount)
    var forwardImages = 0

    for index in indices {
        let path = images.paths[index]
        let decoded = try loadImage(path: path)
        let standard = evalTransform(decoded, size: settings.size, cropPct: settings.cropPct)
        // The level images of this image, made in parallel (each level only writes its own slot).
        var made = [Image8?](repeating: nil, count: levelCount)
        made.withUnsafeMutableBufferPointer { slots in
            parallelFor(levelCount) { range in
                for l in range {
                    let direction = settings.kind == .translate ? directions[index][l] : .down
                    slots[l] = invarianceImage(decoded, level: settings.levels[l].value, settings: settings, direction: direction)
                }
            }
        }
        var samples: [(InvarianceSlot, Image8?)] = [(.standard, standard)]
        for (l, image) in made.enumerated() {
            // An image identical to the standard one reuses its prediction.
            samples.append((.level(l), image.flatMap { $0 == standard ? nil : $0 }))
        }
        for (r, offsets) in (settings.pairs ? pairOffsets[index] : []).enumerated() {
            let (a, b) = shiftPairImages(decoded, settings: settings, offsets: offsets)
            samples.append((.pairFirst(r), a))
            samples.append((.pairSecond(r), b))
        }
        queue.begin(image: index, samples: samples.count)
        for (slot, image) in samples {
            if image != nil { forwardImages += 1 }
            queue.add(image: index, slot: slot, input: image)
            if queue.inputs >= settings.batch {
                queue.flush()
                progress?(queue.finished, indices.count, Date().timeIntervalSince(started))
            }
        }
    }
    if queue.flush() {
        progress?(queue.finished, indices.count, Date().timeIntervalSince(started))
    }
    let records = subjects.indices.map { m in indices.map { queue.records[m][$0]! } }
    let meta = subjects.map {
        InvarianceModelInfo(label: $0.label, source: $0.source, arch: $0.model.config.displayName,
                            family: $0.model.config.family.rawValue, untrained: $0.untrained)
    }
    var result = summariseInvariance(settings: settings, images: images.paths, labelSource: images.labelSource,
                                     models: meta, records: records)
    result.forwardImages = forwardImages
    result.seconds = Date().timeIntervalSince(started)
    return result
}

/// A model of a run as its reports name it.
public struct InvarianceModelInfo: Codable, Equatable, Sendable {
    public var label: String
    public var source: String
    public var arch: String
    public var family: String
    public var untrained: Bool

    /// A model's names.
    public init(label: String, source: String, arch: String, family: String, untrained: Bool) {
        self.label = label
        self.source = source
        self.arch = arch
        self.family = family
        self.untrained = untrained
    }
}

/// One image's outcome for one model: the per-image row of every level, and the counts of its shift pairs.
public struct InvarianceImageRecord: Codable, Equatable, Sendable {
    /// Index of the image in the run's whole list.
    public var image: Int
    /// Top-1 class of the standard image.
    public var standard: Int
    /// Whether the standard top-1 / top-5 hold the label (nil without labels).
    public var standard_top1: Bool?
    public var standard_top5: Bool?
    /// Per level: the top-1 class.
    public var predictions: [Int]
    /// Per level: whether the label is the top-1 / in the top-5 (nil without labels).
    public var top1: [Bool]?
    public var top5: [Bool]?
    /// Per level: soft-target cross-entropy against the standard prediction, and that minus its entropy (nats).
    public var ce: [Double]
    public var kl: [Double]
    /// Shift pairs measured and pairs whose two windows agreed.
    public var pairs: Int
    public var pairs_agreeing: Int

    /// Whether the level's prediction equals the standard one.
    public func agrees(_ level: Int) -> Bool { predictions[level] == standard }

    init(image: Int, levels: Int, labelled: Bool) {
        self.image = image
        standard = -1
        predictions = [Int](repeating: -1, count: levels)
        if labelled {
            top1 = [Bool](repeating: false, count: levels)
            top5 = top1
        }
        ce = [Double](repeating: 0, count: levels)
        kl = ce
        pairs = 0
        pairs_agreeing = 0
    }
}

/// The curves and summaries of `records` (per model, one record per image in index order): the
/// numbers of a run, whether its records came from one process or from merged shards. Sums run over
/// images in index order, so the same records give the same bits.
public func summariseInvariance(settings: InvarianceSettings, images: [String], labelSource: String?,
                                models: [InvarianceModelInfo], records: [[InvarianceImageRecord]]) -> InvarianceResult {
    let n = Double(images.count)
    let labelled = labelSource != nil
    let results = models.enumerated().map { (m, info) -> InvarianceModelResult in
        let rows = records[m]
        let levels = settings.levels.enumerated().map { (l, level) -> InvarianceLevelMetrics in
            var consistent = 0, top1 = 0, top5 = 0
            var ce = 0.0, kl = 0.0
            for r in rows {
                if r.agrees(l) { consistent += 1 }
                if r.top1?[l] == true { top1 += 1 }
                if r.top5?[l] == true { top5 += 1 }
                ce += r.ce[l]
                kl += r.kl[l]
            }
            return InvarianceLevelMetrics(level: level, consistency: 100 * Double(consistent) / n,
                                          acc1: labelled ? 100 * Double(top1) / n : nil,
                                          acc5: labelled ? 100 * Double(top5) / n : nil,
                                          ce: ce / n, kl: kl / n)
        }
        let pairs = rows.reduce(0) { $0 + $1.pairs }, agreeing = rows.reduce(0) { $0 + $1.pairs_agreeing }
        return InvarianceModelResult(
            label: info.label, source: info.source, arch: info.arch, family: info.family, untrained: info.untrained,
            levels: levels, meanConsistency: levels.map(\.consistency).reduce(0, +) / Double(levels.count),
            standardAcc1: labelled ? 100 * Double(rows.filter { $0.standard_top1 == true }.count) / n : nil,
            standardAcc5: labelled ? 100 * Double(rows.filter { $0.standard_top5 == true }.count) / n : nil,
            shiftConsistency: settings.pairs ? 100 * Double(agreeing) / Double(pairs) : nil)
    }
    return InvarianceResult(settings: settings, images: images, labelSource: labelSource, models: results,
                            forwardImages: 0, seconds: 0, records: records)
}

// MARK: - Bookkeeping

/// What a queued image is to its source image.
enum InvarianceSlot {
    case standard
    case level(Int)
    case pairFirst(Int)
    case pairSecond(Int)
}

/// One source image's standard prediction for one model, kept until its last queued image is scored.
struct StandardPrediction {
    var logits: [Float]
    var top1: Int
    /// Softmax of the logits and its entropy, in Double.
    var probabilities: [Double]
    var entropy: Double
    /// The top-1 of each pair's first window, by round.
    var pairFirst: [Int: Int] = [:]
}

/// Images waiting for a forward pass, in order, and the state of the source images in flight.
struct InvarianceQueue {
    let subjects: [any Backbone]
    let labels: [Int]?
    let levels: Int
    /// Per model: image index -> its record.
    private(set) var records: [[Int: InvarianceImageRecord]]
    private var pending: [(image: Int, slot: InvarianceSlot, input: Image8?)] = []
    /// Per source image in flight: queued images not yet scored, and each model's standard prediction.
    private var remaining: [Int: Int] = [:]
    private var standards: [Int: [StandardPrediction]] = [:]
    /// Queued images that need a forward pass.
    private(set) var inputs = 0
    /// Source images whose every image has been scored.
    private(set) var finished = 0

    init(subjects: [any Backbone], labels: [Int]?, levels: Int) {
        self.subjects = subjects
        self.labels = labels
        self.levels = levels
        records = subjects.map { _ in [:] }
    }

    mutating func begin(image: Int, samples: Int) {
        remaining[image] = samples
        for m in subjects.indices { records[m][image] = InvarianceImageRecord(image: image, levels: levels, labelled: labels != nil) }
    }

    /// Queues one image; `input` nil means "the same pixels as the standard image".
    mutating func add(image: Int, slot: InvarianceSlot, input: Image8?) {
        pending.append((image, slot, input))
        if input != nil { inputs += 1 }
    }

    /// Runs the queued images through every model and scores them in queue order; false when nothing was queued.
    @discardableResult
    mutating func flush() -> Bool {
        guard !pending.isEmpty else { return false }
        let batch = pending.compactMap(\.input)
        for (m, model) in subjects.enumerated() {
            let logits = batch.isEmpty ? nil : model.logits(batchTensor(batch, normalization: model.normalization))
            let classes = model.config.num_classes
            var row = 0
            for item in pending {
                let values: [Float]
                if item.input != nil, let logits {
                    values = Array(UnsafeBufferPointer(start: logits.data + row * classes, count: classes))
                    row += 1
                } else {
                    values = standards[item.image]?[m].logits ?? []
                }
                var record = records[m][item.image]!
                score(item.image, item.slot, logits: values, model: m, record: &record)
                records[m][item.image] = record
            }
        }
        for item in pending {
            remaining[item.image, default: 1] -= 1
            if remaining[item.image] == 0 {
                remaining[item.image] = nil
                standards[item.image] = nil
                finished += 1
            }
        }
        pending.removeAll(keepingCapacity: true)
        inputs = 0
        return true
    }

    private mutating func score(_ image: Int, _ slot: InvarianceSlot, logits z: [Float], model m: Int, record: inout InvarianceImageRecord) {
        let label = labels?[image]
        switch slot {
        case .standard:
            let (probabilities, logSum) = softmax(z)
            var entropy = logSum
            for (p, v) in zip(probabilities, z) { entropy -= p * Double(v) }
            let prediction = StandardPrediction(logits: z, top1: argmax(z), probabilities: probabilities, entropy: entropy)
            if m == 0 { standards[image] = [] }
            standards[image]?.append(prediction)
            record.standard = prediction.top1
            if let label {
                record.standard_top1 = prediction.top1 == label
                record.standard_top5 = rank(of: label, in: z) < 5
            }
        case .level(let l):
            guard let reference = standards[image]?[m] else { return }
            record.predictions[l] = argmax(z)
            if let label {
                record.top1?[l] = argmax(z) == label
                record.top5?[l] = rank(of: label, in: z) < 5
            }
            // SoftTargetCrossEntropy: sum_k -p_k log_softmax(z)_k = logsumexp(z) - sum_k p_k z_k.
            var ce = logSumExp(z)
            for (p, v) in zip(reference.probabilities, z) { ce -= p * Double(v) }
            record.ce[l] = ce
            record.kl[l] = ce - reference.entropy
        case .pairFirst(let r):
            standards[image]?[m].pairFirst[r] = argmax(z)
        case .pairSecond(let r):
            record.pairs += 1
            if standards[image]?[m].pairFirst[r] == argmax(z) { record.pairs_agreeing += 1 }
        }
    }
}

/// Index of the largest value, the lowest index among equals.
func argmax(_ z: [Float]) -> Int {
    var best = 0
    for i in z.indices where z[i] > z[best] { best = i }
    return best
}

/// How many classes come before `label` when sorting by logit, highest first, lower index first among
/// equals (so `rank < k` means "in the top k").
func rank(of label: Int, in z: [Float]) -> Int {
    guard z.indices.contains(label) else { return z.count }
    let v = z[label]
    var before = 0
    for i in z.indices where z[i] > v || (z[i] == v && i < label) { before += 1 }
    return before
}

/// log(sum(exp(z))) in Double, shifted by the maximum.
func logSumExp(_ z: [Float]) -> Double {
    guard let peak = z.max() else { return 0 }
    let m = Double(peak)
    var sum = 0.0
    for v in z { sum += Foundation.exp(Double(v) - m) }
    return m + Foundation.log(sum)
}

/// Softmax in Double and log(sum(exp(z))).
func softmax(_ z: [Float]) -> (probabilities: [Double], logSum: Double) {
    let logSum = logSumExp(z)
    return (z.map { Foundation.exp(Double($0) - logSum) }, logSum)
}
