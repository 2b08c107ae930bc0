// stm-analyze invariance: translation, rotation and scale consistency curves of one or more models, with
// the study's protocol, written as JSON, CSV and a PNG line plot, with a table on stdout.

import Analysis
import ArgumentParser
import Checkpoint
import Foundation
import Imaging
import Models

extension InvarianceKind: ExpressibleByArgument {}

struct Invariance: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Consistency of the prediction under translation, rotation or scale, per level, for one or more models.",
        discussion: """
            The protocol is the STM-Evaluation study's (invariance_eval_all.py, tools/variance_transforms.py). Each \
            image's "standard" version is the evaluation transform (bicubic resize of the short side to \
            int(size / crop-pct), centre crop); its top-1 is the reference.
              translate  jitter 0 to 64 px, step 4: the crop centre moves along one of the eight compass directions, \
            drawn per image and level (image by image, levels in order) as numpy's np.random.seed(seed) then \
            randint(8) would draw them. The study's code draws randint(7) and so never moves down-left; we use all \
            eight (--study-directions draws randint(7)). Where the window leaves the image it is zero-padded. As in the \
            study, jitter 0 can sit one pixel off the standard crop (the window starts at side // 2 - size // 2, \
            the centre crop rounds half to even), so its consistency need not be 100 %.
              rotate     0 to 90 degrees, step 5, counter-clockwise, bicubic, zero fill, after the centre crop \
            (--pre-crop: before it).
              scale      the evaluation transform with crop ratio 0.2, 0.325, ..., 1.95 (the study's \
            range(200, 2001, 125) / 1000; 2.0 itself is not a step), zero padding where the crop is larger.
            Per level: consistency (% of images whose top-1 equals the standard top-1), and with labels top-1 and \
            top-5 accuracy; ce is the study's soft-target cross-entropy against the softmax of the standard \
            prediction (it includes that prediction's entropy; kl leaves it out). mean_consistency averages the \
            levels. translate --pairs adds Zhang's shift consistency (antialiased-cnns): two random size x size \
            windows of the int(size / crop-pct) centre square, offsets drawn with randint(margin, size=2), share \
            of equal top-1, --pair-rounds pairs per image.
            Labels: --labels FILE of 'name class-index' lines matched to the images' file names, or --images \
            FOLDER whose sub-folders are classes (sorted names give the indices, as torchvision's ImageFolder; \
            with all 1000 ImageNet wnid folders these are ImageNet's indices).
            Writes <kind>.json, <kind>.csv (means per level), <kind>_images.csv (per-image rows: prediction, \
            agreement, loss) and <kind>.png to --out; with --shard i/n only the partial result, for 'stm-analyze merge'. \
            --images @FILE reads the image paths from FILE, one a line.
            """)

    @Argument(help: ArgumentHelp("The perturbation.", valueName: "kind"))
    var kind: InvarianceKind

    @Option(name: .long, help: ArgumentHelp("Checkpoint file, or a preset name for an untrained model; repeat for one curve per model.", valueName: "ckpt|preset"))
    var model: [String] = []

    @Option(name: .long, help: ArgumentHelp("Architecture (preset name or JSON file): once for all models or once per --model, in order; inferred from the keys when omitted.", valueName: "preset|file"))
    var arch: [String] = []

    @Option(name: .long, help: ArgumentHelp("Curve name in the legend and reports, once per --model (default: the checkpoint's file name).", valueName: "name"))
    var label: [String] = []

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Image files or folders (folders are read in name order; a folder of class folders gives labels).", valueName: "path"))
    var images: [String] = []

    @Option(name: .long, help: ArgumentHelp("File of 'name class-index' lines giving each image's class.", valueName: "file"))
    var labels: String?

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Levels instead of the study's, comma- or space-separated (px, degrees or crop ratios).", valueName: "list"))
    var levels: [String] = []

    @Option(name: .long, help: "Crop side in pixels (the network's input size).")
    var size = 224

    @Option(name: .long, help: "Crop fraction of the standard transform: the short side is resized to int(size / crop-pct).")
    var cropPct = 0.875

    @Option(name: .long, help: "Seed of the jitter directions and shift-pair offsets (0 to 4294967295).")
    var seed = 0

    @Option(name: .long, help: "Images per forward pass.")
    var batch = 32

    @Flag(name: .long, help: "rotate: rotate the resized image before the centre crop.")
    var preCrop = false

    @Flag(name: .long, help: "translate: draw directions with randint(7), as the study's code does (never down-left).")
    var studyDirections = false

    @Flag(name: .long, help: "translate: also measure Zhang's shift consistency (pairs of random shifts).")
    var pairs = false

    @Option(name: .long, help: "translate --pairs: pairs per image.")
    var pairRounds = 5

    @Option(name: .long, help: ArgumentHelp("Output folder (default outputs/invariance/<kind>/<model names joined by +>).", valueName: "dir"))
    var out: String?

    @Option(name: .long, help: ArgumentHelp("Measure every n-th image from i and write a partial result (per-image rows) for 'stm-analyze merge'.", valueName: "i/n"))
    var shard: Shard?

    @OptionGroup var loading: LoadOptions

    @Flag(name: .long, help: "Run even when a checkpoint's weights hold NaN or infinite values (refused by default).")
    var allowNonfinite = false

    @Option(name: .long, help: ArgumentHelp("Regression check: exit with status 2 (after writing the outputs; 1 means the run itself failed) when any model's mean consistency is below this percentage.", valueName: "percent"))
    var failBelow: Double?

    @OptionGroup var imageChecks: ImageCheckOptions

    @OptionGroup var memory: MemoryOptions

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if let f = failBelow, !(f.isFinite && f >= 0 && f <= 100) { throw ValidationError("--fail-below must be a percentage from 0 to 100 (got \(f))") }
        if model.isEmpty { throw ValidationError("--model is needed (repeat it for several models)") }
        if !(arch.count <= 1 || arch.count == model.count) {
            throw ValidationError("--arch is given \(arch.count) times for \(model.count) --model; give it once for all or once per model")
        }
        if !(label.isEmpty || label.count == model.count) {
            throw ValidationError("--label is given \(label.count) times for \(model.count) --model; give it once per model")
        }
        if images.isEmpty { throw ValidationError("--images needs at least one file or folder") }
        if !(0...Int(UInt32.max)).contains(seed) { throw ValidationError("--seed must be between 0 and 4294967295 (got \(seed))") }
        if preCrop && kind != .rotate { throw ValidationError("--pre-crop applies to rotate only") }
        if studyDirections && kind != .translate { throw ValidationError("--study-directions applies to translate only") }
        try checkInputSize(size)
        try checkCropFraction(cropPct, size: size)
        if batch < 1 { throw ValidationError("--batch must be at least 1" + (batch < 0 ? "; it is negative (\(batch))" : "")) }
        if pairRounds < 1 { throw ValidationError("--pair-rounds must be at least 1") }
        do { try settings().validate() } catch let e as InvarianceError { throw ValidationError(e.description) }
        // Levels within what the input allows: a jitter up to the input side, a scale as a crop fraction.
        for level in try settings().levels {
            switch kind {
            case .translate where level.value > Double(size):
                throw ValidationError("--levels: jitter \(level.key) px is larger than the \(size) px input (at most \(size))")
            case .rotate where abs(level.value) > 360:
                throw ValidationError("--levels: rotation \(level.key) degrees is outside -360 to 360")
            case .scale:
                try checkCropFraction(level.value, size: size, option: "--levels (crop ratio \(level.key))")
            default:
                break
            }
        }
    }

    /// The run's settings from the options.
    func settings() throws -> InvarianceSettings {
        var s = InvarianceSettings(kind: kind)
        if !levels.isEmpty { s.levels = try kind.parseLevels(levels, size: size) }
        s.size = size
        s.cropPct = cropPct
        s.seed = UInt32(clamping: seed)
        s.batch = batch
        s.preCrop = preCrop
        s.studyDirections = studyDirections
        s.pairs = pairs
        s.pairRounds = pairRounds
        return s
    }

    func run() throws {
        runtime.apply()
        let settings = try self.settings()
        var inputs = try LabelledImages.gather(images: try expandImageArguments(images), labelsFile: labels)
        let (usable, badImages) = try imageChecks.check(inputs.paths, inputSize: size)
        if !badImages.isEmpty {  // keep the labels of the usable images only
            let usableSet = Set(usable)
            let keep = inputs.paths.indices.filter { usableSet.contains(inputs.paths[$0]) }
            inputs.labels = inputs.labels.map { l in keep.map { l[$0] } }
            if inputs.labelOrigins.count == inputs.paths.count { inputs.labelOrigins = keep.map { inputs.labelOrigins[$0] } }
            inputs.paths = keep.map { inputs.paths[$0] }
        }

        var loaded: [LoadedModel] = []
        var parameterBytes = 0  // of the models loaded so far: all are held during the run
        for (i, m) in model.enumerated() {
            let a = arch.count == 1 ? arch[0] : (arch.isEmpty ? nil : arch[i])
            let l = try loading.load(model: m, arch: a,
                                     plan: memory.planner(size: size, batch: batch, backward: false, subject: m, alreadyUsed: parameterBytes))
            parameterBytes += MemoryPlan.estimate(l.config, size: size, batch: batch, backward: false).parameterBytes
            try checkFiniteWeights(l, allow: allowNonfinite, analysis: "the invariance curves")
            loaded.append(l)
        }
        if let folders = inputs.classFolderCount, let classes = loaded.first?.config.num_classes, folders != classes {
            warn("\(folders) class folders give classes 0 to \(folders - 1) in name order; they are the model's class indices only when all \(classes) class folders (e.g. ImageNet's wnids) are there")
        }
        let names = label.isEmpty ? curveNames(loaded) : label
        let outDir = out ?? "outputs/invariance/\(kind.rawValue)/\(names.map(safeName).joined(separator: "+"))"
        try checkOutputFolder(outDir)  // created when its first file is ready
        var sources: [Provenance.ModelSource] = []
        for (l, m) in zip(loaded, model) { sources.append(try modelSource(l, path: m, loading: loading)) }
        let provenanceSettings = [
            "kind": kind.rawValue, "levels": settings.levels.map(\.key).joined(separator: ","), "size": "\(size)",
            "crop_pct": "\(cropPct)", "seed": "\(seed)", "pre_crop": "\(preCrop)", "study_directions": "\(studyDirections)",
            "pairs": "\(pairs)", "pair_rounds": "\(pairRounds)", "labels": inputs.labelSource ?? "none",
        ]
        let subjects = zip(loaded, zip(model, names)).map { l, mn in
            InvarianceSubject(label: mn.1, source: mn.0, model: l.backbone, untrained: l.untrained)
        }
        let reporter = ProgressReporter(label: "invariance \(kind.rawValue)")
        let result = try runInvariance(subjects: subjects, images: inputs, settings: settings,
                                       shard: shard.map { ($0.index, $0.count) }) { done, total, seconds in
            reporter.update(done: done, total: total, seconds: seconds)
        }
        reporter.finish()

        if let shard {
            let provenance = Provenance(command: "invariance \(kind.rawValue)", models: sources, images: inputs.paths,
                                        settings: provenanceSettings, shard: shard.description)
            let path = "\(outDir)/\(kind.rawValue)-\(shard.fileTag).partial.json"
            try createOutputFolder(outDir)
            try writeAtomically(try InvariancePartial(result, shard: shard.index, shards: shard.count, provenance: provenance).data(), to: path)
            print("wrote \(path) (shard \(shard): \(result.records.first?.count ?? 0) of \(inputs.paths.count) images); combine all \(shard.count) with 'stm-analyze merge'")
            return
        }
        let provenance = Provenance(command: "invariance \(kind.rawValue)", models: sources, images: inputs.paths, settings: provenanceSettings)
        try Self.writeOutputs(result, provenance: provenance, skipped: imageChecks.skipBad ? badImages.map { ($0.path, $0.reason) } : nil, to: outDir)

        Self.printTable(result)
        let base = "\(outDir)/\(kind.rawValue)"
        print("wrote \(base).json, \(base).csv, \(base)_images.csv, \(base).png, \(base).svg (\(String(format: "%.1f", result.seconds)) s, \(result.forwardImages) forward images per model)")
        if let failBelow {
            let low = result.models.filter { $0.meanConsistency < failBelow }
            if !low.isEmpty {
                throw CheckTripped("regression check: " + low.map { String(format: "%@ mean consistency %.2f %%", $0.label, $0.meanConsistency) }
                    .joined(separator: ", ") + String(format: " is below --fail-below %.2f %%", failBelow))
            }
            print(String(format: "regression check passed: every mean consistency is at least %.2f %%", failBelow))
        }
    }

    /// Renders the figure in memory, then writes the run's files into `dir`, replacing its previous results.
    /// `skipped` (with --skip-bad): the images left out before the run, listed in the JSON.
    static func writeOutputs(_ result: InvarianceResult, provenance: Provenance, skipped: [(String, String)]? = nil,
                             to dir: String) throws {
        let kind = result.settings.kind.rawValue
        var folder = ResultFolder(dir)
        folder.add("\(kind).csv", Data(invarianceCSV(result).utf8))
        folder.add("\(kind)_images.csv", Data(invarianceImagesCSV(result).utf8))
        let figure = invarianceFigure(result)
        try folder.addPNG("\(kind).png", try figure.render())
        folder.add("\(kind).svg", try figure.svg())
        var document = invarianceDocument(result, provenance: provenance)
        if let skipped { document["skipped"] = skipped.map { ["path": $0.0, "reason": $0.1] } }
        folder.add("\(kind).json", try jsonData(document, name: "\(dir)/\(kind).json"))
        try folder.commit(ownPatterns: ["\(kind).json", "\(kind).csv", "\(kind)_images.csv", "\(kind).png", "\(kind).svg"])
    }

    /// Legend names: the checkpoint names, with the mixer (then a number) added where two would be equal.
    private func curveNames(_ loaded: [LoadedModel]) -> [String] {
        var names = loaded.map(\.displayName)
        if Set(names).count < names.count {
            names = loaded.map { "\($0.displayName) (\($0.config.family.mixerName))" }
        }
        if Set(names).count < names.count {
            names = names.enumerated().map { "\($0.element) #\($0.offset + 1)" }
        }
        return names
    }

    static func printTable(_ r: InvarianceResult) {
        let n = r.images.count
        let kind = r.settings.kind, size = r.settings.size
        print("\(kind.rawValue): consistency (%) on \(n) image\(n == 1 ? "" : "s") at \(size) px, levels in \(kind.levelUnit)"
              + (r.labelled ? "; top-1 accuracy (%) after the slash" : ""))
        let width = max(14, (r.models.map(\.label.count).max() ?? 0) + 2)
        func cell(_ s: String) -> String { s.padding(toLength: width, withPad: " ", startingAt: 0) }
        func pct(_ v: Double?) -> String { v.map { String(format: "%.1f", $0) } ?? "-" }
        print(cell("level") + r.models.map { cell($0.label) }.joined())
        for (i, level) in r.settings.levels.enumerated() {
            print(cell(level.key) + r.models.map { m in
                let l = m.levels[i]
                return cell(pct(l.consistency) + (r.labelled ? " / " + pct(l.acc1) : ""))
            }.joined())
        }
        print(cell("mean") + r.models.map { cell(pct($0.meanConsistency)) }.joined())
        if r.labelled { print(cell("standard acc1") + r.models.map { cell(pct($0.standardAcc1)) }.joined()) }
        if r.settings.pairs { print(cell("shift consist.") + r.models.map { cell(pct($0.shiftConsistency)) }.joined()) }
    }
}
