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
/// - Throws: `InvarianceError` for bad settings or labels outside a model's classes, and
///   `ImagingError` for an image that cannot be read.
public func runInvariance(subjects: [InvarianceSubject], images: LabelledImages, settings: InvarianceSettings,
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
    let directions = settings.kind == .translate
        ? jitterDirections(images: images.paths.count, levels: levelCount, seed: settings.seed, studyDirections: settings.studyDirections)
        : []
    let pairOffsets = settings.pairs
        ? shiftPairOffsets(images: images.paths.count, rounds: settings.pairRounds,
                           margin: settings.resizedSide - settings.size, seed: settings.seed)
        : []
    var tallies = subjects.map { _ in InvarianceTally(levels: levelCount) }
    var queue = InvarianceQueue(subjects: subjects.map(\.model), labels: images.labels)
    var forwardImages = 0

    for (index, path) in images.paths.enumerated() {
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
                queue.flush(into: &tallies)
                progress?(queue.finished, images.paths.count, Date().timeIntervalSince(started))
            }
        }
    }
    if queue.flush(into: &tallies) {
        progress?(queue.finished, images.paths.count, Date().timeIntervalSince(started))
    }

    let n = Double(images.paths.count)
    let models = subjects.enumerated().map { (m, subject) -> InvarianceModelResult in
        let t = tallies[m]
        let levels = settings.levels.enumerated().map { (l, level) in
            InvarianceLevelMetrics(level: level, consistency: 100 * Double(t.consistent[l]) / n,
                                   acc1: images.labels == nil ? nil : 100 * Double(t.top1[l]) / n,
                                   acc5: images.labels == nil ? nil : 100 * Double(t.top5[l]) / n,
                                   ce: t.ce[l] / n, kl: t.kl[l] / n)
        }
        return InvarianceModelResult(
            label: subject.label, source: subject.source, arch: subject.model.config.displayName,
            family: subject.model.config.family.rawValue, untrained: subject.untrained, levels: levels,
            meanConsistency: levels.map(\.consistency).reduce(0, +) / Double(levels.count),
            standardAcc1: images.labels == nil ? nil : 100 * Double(t.standardTop1) / n,
            standardAcc5: images.labels == nil ? nil : 100 * Double(t.standardTop5) / n,
            shiftConsistency: settings.pairs ? 100 * Double(t.pairsAgreeing) / Double(t.pairs) : nil)
    }
    return InvarianceResult(settings: settings, images: images.paths, labelSource: images.labelSource, models: models,
                            forwardImages: forwardImages, seconds: Date().timeIntervalSince(started))
}

// MARK: - Bookkeeping

/// What a queued image is to its source image.
enum InvarianceSlot {
    case standard
    case level(Int)
    case pairFirst(Int)
    case pairSecond(Int)
}

/// One model's running counts and sums, in image order.
struct InvarianceTally {
    var consistent: [Int], top1: [Int], top5: [Int]
    var ce: [Double], kl: [Double]
    var standardTop1 = 0, standardTop5 = 0
    var pairs = 0, pairsAgreeing = 0

    init(levels: Int) {
        consistent = [Int](repeating: 0, count: levels)
        top1 = consistent
        top5 = consistent
        ce = [Double](repeating: 0, count: levels)
        kl = ce
    }
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
    private var pending: [(image: Int, slot: InvarianceSlot, input: Image8?)] = []
    /// Per source image in flight: queued images not yet scored, and each model's standard prediction.
    private var remaining: [Int: Int] = [:]
    private var standards: [Int: [StandardPrediction]] = [:]
    /// Queued images that need a forward pass.
    private(set) var inputs = 0
    /// Source images whose every image has been scored.
    private(set) var finished = 0

    init(subjects: [any Backbone], labels: [Int]?) {
        self.subjects = subjects
        self.labels = labels
    }

    mutating func begin(image: Int, samples: Int) {
        remaining[image] = samples
    }

    /// Queues one image; `input` nil means "the same pixels as the standard image".
    mutating func add(image: Int, slot: InvarianceSlot, input: Image8?) {
        pending.append((image, slot, input))
        if input != nil { inputs += 1 }
    }

    /// Runs the queued images through every model and scores them in queue order; false when nothing was queued.
    @discardableResult
    mutating func flush(into tallies: inout [InvarianceTally]) -> Bool {
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
                score(item.image, item.slot, logits: values, model: m, tally: &tallies[m])
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

    private mutating func score(_ image: Int, _ slot: InvarianceSlot, logits z: [Float], model m: Int, tally: inout InvarianceTally) {
        let label = labels?[image]
        switch slot {
        case .standard:
            let (probabilities, logSum) = softmax(z)
            var entropy = logSum
            for (p, v) in zip(probabilities, z) { entropy -= p * Double(v) }
            let prediction = StandardPrediction(logits: z, top1: argmax(z), probabilities: probabilities, entropy: entropy)
            if m == 0 { standards[image] = [] }
            standards[image]?.append(prediction)
            if let label {
                if prediction.top1 == label { tally.standardTop1 += 1 }
                if rank(of: label, in: z) < 5 { tally.standardTop5 += 1 }
            }
        case .level(let l):
            guard let reference = standards[image]?[m] else { return }
            if argmax(z) == reference.top1 { tally.consistent[l] += 1 }
            if let label {
                if argmax(z) == label { tally.top1[l] += 1 }
                if rank(of: label, in: z) < 5 { tally.top5[l] += 1 }
            }
            // SoftTargetCrossEntropy: sum_k -p_k log_softmax(z)_k = logsumexp(z) - sum_k p_k z_k.
            var ce = logSumExp(z)
            for (p, v) in zip(reference.probabilities, z) { ce -= p * Double(v) }
            tally.ce[l] += ce
            tally.kl[l] += ce - reference.entropy
        case .pairFirst(let r):
            standards[image]?[m].pairFirst[r] = argmax(z)
        case .pairSecond(let r):
            tally.pairs += 1
            if standards[image]?[m].pairFirst[r] == argmax(z) { tally.pairsAgreeing += 1 }
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
