// stm-analyze erf: effective receptive fields of every requested stage, faithful to RepLKNet's ERF
// tool, with the maps as safetensors, heatmaps and one figure of all stages, ERF@t in JSON and a table.
// The report and its files are Analysis's (`ERFReport`); this file parses options and prints.

import Analysis
import ArgumentParser
import Checkpoint
import Foundation
import Imaging
import Models
import Rendering

struct Erf: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Effective receptive fields: mean centre-point input gradients per stage, ERF@t, heatmaps.",
        discussion: """
            For each stage S the scalar sum_c relu(y_S[c, H/2, W/2]) of the stage output (after its stage norm) is \
            differentiated with respect to the input; relu (or abs) of that gradient, summed over channels, is \
            averaged over images (images whose map has a NaN are skipped and reported). ERF@t is the side of the \
            smallest centred square holding more than a share t of log10(map + 1) / max, as RepLKNet's ERF tool \
            measures it; where no square gets there the whole input is reported and flagged.

            --stm-legacy-scaling divides each stage's summed map by 4 x the image count, as the study's own \
            script does (its counter advances once per stage). Because log10(x + 1) is not scale-free this \
            shrinks the reported ratios; use it only to compare with numbers published that way. \
            RepLKNet's own setting is --resize square --size 1024.
            """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Image files or folders (folders are read in name order); @FILE reads a list of paths, one a line.", valueName: "path"))
    var images: [String]

    @Option(name: .long, help: ArgumentHelp("Measure every n-th of the first --num-images images from i and write a partial result (sums and counts) for 'stm-analyze merge'.", valueName: "i/n"))
    var shard: Shard?

    @Option(name: .long, help: "Use the first N images whose maps are finite.")
    var numImages = 50

    @Option(name: .long, help: "Input side in pixels.")
    var size = 224

    @Option(name: .long, help: "square: Resize((size, size)) bicubic, no crop (the study's ERF script); crop: the evaluation transform.")
    var resize = "square"

    @Option(name: .long, help: ArgumentHelp("Stages to measure, comma-separated.", valueName: "1,2,3,4"))
    var stages = "1,2,3,4"

    @Option(name: .long, help: "Images per forward/backward pass.")
    var batch = 4

    @Option(name: .long, help: ArgumentHelp("Output folder (default outputs/erf/<model name>).", valueName: "dir"))
    var out: String?

    @Option(name: .long, help: "Colour map of the heatmaps: \(Colormap.names.joined(separator: ", ")) (append _r to reverse).")
    var colormap = "viridis"

    @Option(name: .long, help: "relu (the study, RepLKNet) or abs.")
    var grad = "relu"

    @Option(name: .long, help: ArgumentHelp("log (log10(x + 1), the ERF tool's) or power:P.", valueName: "log|power:P"))
    var scaling = "log"

    @Flag(name: .long, help: "Divide each stage's map by 4 x images, as the study's script does (see the discussion above).")
    var stmLegacyScaling = false

    @Option(name: .long, help: ArgumentHelp("ERF@t thresholds, comma-separated.", valueName: "0.2,0.3,0.5,0.99"))
    var thresholds = "0.2,0.3,0.5,0.99"

    @Flag(name: .long, help: "With one image: also blend each map over the image (jet, 0.8 map / 0.2 image).")
    var overlay = false

    @OptionGroup var imageChecks: ImageCheckOptions

    @OptionGroup var memory: MemoryOptions

    @OptionGroup var runtime: RuntimeOptions

    var parsedStages: [Int] { stages.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
    var parsedThresholds: [Double] { thresholds.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        if images.isEmpty { throw ValidationError("--images needs at least one file or folder") }
        if numImages < 1 { throw ValidationError("--num-images must be at least 1") }
        try checkInputSize(size)
        if ERFResize(rawValue: resize) == nil { throw ValidationError("--resize must be square or crop (got \(resize))") }
        let s = parsedStages
        if s.isEmpty || s.count != stages.split(separator: ",").count || !s.allSatisfy({ (1...4).contains($0) }) {
            throw ValidationError("--stages takes stage numbers 1 to 4, comma-separated (got \(stages))")
        }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if GradientReduction(rawValue: grad) == nil { throw ValidationError("--grad must be relu or abs (got \(grad))") }
        if ERFScaling(scaling) == nil { throw ValidationError("--scaling must be log or power:P with P > 0 (got \(scaling))") }
        let t = parsedThresholds
        if t.isEmpty || t.count != thresholds.split(separator: ",").count || !t.allSatisfy({ $0 > 0 && $0 < 1 }) {
            throw ValidationError("--thresholds takes shares between 0 and 1, comma-separated (got \(thresholds))")
        }
        do { _ = try Colormap.named(colormap) } catch { throw ValidationError("--colormap: \(error)") }
    }

    func run() throws {
        runtime.apply()
        let (files, badImages) = try imageChecks.check(try listImages(try expandImageArguments(images)), inputSize: size)
        if overlay && shard != nil { throw CLIError("--overlay draws one image's map; it does not combine with --shard") }
        if overlay && min(numImages, files.count) != 1 {
            throw CLIError("--overlay needs exactly one image (got \(min(numImages, files.count))); pass one file or --num-images 1")
        }
        let loaded = try modelOptions.load(plan: memory.planner(size: size, batch: min(batch, numImages, files.count), backward: true,
                                                                subject: modelOptions.model))
        let outDir = out ?? "outputs/erf/\(safeName(loaded.displayName))"
        try checkOutputFolder(outDir)  // created when its first file is ready
        let source = try modelSource(loaded, path: modelOptions.model, loading: modelOptions.loading)

        var settings = ERFSettings()
        settings.size = size
        settings.resize = ERFResize(rawValue: resize)!
        settings.stages = Array(Set(parsedStages)).sorted()
        settings.batch = batch
        settings.numImages = numImages
        settings.reduction = GradientReduction(rawValue: grad)!
        settings.scaling = ERFScaling(scaling)!
        settings.legacyScaling = stmLegacyScaling
        settings.thresholds = parsedThresholds
        let provenanceSettings = [
            "size": "\(size)", "resize": resize, "grad": grad, "scaling": scaling, "stm_legacy_scaling": "\(stmLegacyScaling)",
            "stages": settings.stages.map(String.init).joined(separator: ","),
            "thresholds": parsedThresholds.map(formatShare).joined(separator: ","), "num_images": "\(numImages)",
        ]
        let reporter = ProgressReporter(label: "ERF")
        let onProgress: ERFProgress = { used, seen, wanted, seconds in
            reporter.update(done: used, total: wanted, seconds: seconds, detail: seen > used ? "\(seen - used) skipped" : nil)
        }
        let title = loaded.displayName

        if let shard {
            // A shard: sums and counts of its images, for merge.
            let candidates = erfShardCandidates(paths: files, numImages: numImages, shard: shard.index, shards: shard.count)
            let acc = try accumulateERF(model: loaded.backbone, candidates: candidates, want: candidates.count, settings: settings,
                                        progress: onProgress)
            reporter.finish()
            for s in acc.skipped { warn("skipped \(s.path): \(s.reason)") }
            let header = ERFPartialHeader(
                shard: shard.index, shards: shard.count, model: modelOptions.model, arch: loaded.config.displayName,
                family: loaded.config.family.rawValue, untrained: loaded.untrained, title: title, size: size, resize: resize,
                grad: grad, scaling: settings.scaling.description, stm_legacy_scaling: stmLegacyScaling, stages: settings.stages,
                thresholds: settings.thresholds, num_images: numImages, colormap: colormap,
                images: acc.images.map { .init(index: $0.index, path: $0.path, reason: nil) },
                skipped: acc.skipped.map { .init(index: $0.index, path: $0.path, reason: $0.reason) },
                provenance: Provenance(command: "erf", models: [source], images: Array(files.prefix(numImages)),
                                       settings: provenanceSettings, shard: shard.description))
            let path = "\(outDir)/erf-\(shard.fileTag).partial"
            try createOutputFolder(outDir)
            try ERFPartial(header: header, accumulation: acc).write(to: path)
            print("wrote \(path) (shard \(shard) of the first \(min(numImages, files.count)) images: \(acc.images.count) used, \(acc.skipped.count) skipped); combine all \(shard.count) with 'stm-analyze merge'")
            return
        }

        var result = try computeERF(model: loaded.backbone, paths: files, settings: settings, progress: onProgress)
        reporter.finish()
        for s in result.skipped { warn("skipped \(s.path): \(s.reason)") }
        guard !result.images.isEmpty else {
            throw CLIError("no image gave a finite ERF map (\(result.skipped.count) skipped); nothing written" + nonFiniteWeightsClause(loaded))
        }
        if result.images.count < numImages {
            let why = result.skipped.isEmpty ? "found" : "usable (\(result.skipped.count) skipped)"
            note("note: \(result.images.count) image\(result.images.count == 1 ? "" : "s") \(why) of the \(numImages) requested; the maps average those")
        }
        result.skipped = badImages.map { (path: $0.path, reason: $0.reason) } + result.skipped
        let overlayImage = overlay ? try result.images.first.map { erfInputImage(try loadImage(path: $0), settings: settings) } : nil
        let provenance = Provenance(command: "erf", models: [source], images: Array(files.prefix(numImages)), settings: provenanceSettings)
        let report = ERFReport(result, model: modelOptions.model, arch: loaded.config.displayName,
                               family: loaded.config.family.rawValue, untrained: loaded.untrained, provenance: provenance)
        try Self.writeOutputs(result, report: report, title: title, colormap: try Colormap.named(colormap), overlayImage: overlayImage, to: outDir)
        if runtime.verbose { note(String(format: "ERF of %d images in %.1f s", result.images.count, result.seconds)) }

        Self.printSummary(result, title: title)
        print("wrote \(outDir)/erf.json, erf.csv, erf_stage{\(settings.stages.map(String.init).joined(separator: ","))}.{safetensors,png,svg}, erf_stages.{png,svg}")
    }

    /// Renders every figure in memory, then writes the run's files into `dir`, replacing its previous results.
    static func writeOutputs(_ result: ERFResult, report: ERFReport, title: String, colormap cmap: Colormap,
                             overlayImage: Image8?, to dir: String) throws {
        var folder = ResultFolder(dir)
        for stage in result.stages {
            let figure = try erfStageFigure(stage, of: result, model: title, colormap: cmap)
            try folder.addPNG("erf_stage\(stage.stage).png", try figure.render())
            folder.add("erf_stage\(stage.stage).svg", try figure.svg())
            if let img = overlayImage {
                let titled = try erfTitledOverlayFigure(stage, of: result, image: img, model: title)
                try folder.addPNG("erf_stage\(stage.stage)_overlay.png", try titled.render())
                folder.add("erf_stage\(stage.stage)_overlay.svg", try titled.svg())
            }
        }
        let row = try erfStageRowFigure(result, model: title, colormap: cmap)
        try folder.addPNG("erf_stages.png", try row.render())
        folder.add("erf_stages.svg", try row.svg())
        let side = result.settings.size
        for stage in result.stages {
            folder.add("erf_stage\(stage.stage).safetensors",
                       try SafeTensors.encode(tensors: [("mean", TensorRecord(shape: [side, side], values: stage.mean))],
                                              metadata: ["model": title, "stage": "\(stage.stage)", "images": "\(result.images.count)"]))
        }
        folder.add("erf.csv", Data(report.csv().utf8))
        folder.add("erf.json", try report.jsonData())
        try folder.commit(ownPatterns: ["erf.json", "erf.csv", "erf_stage*.png", "erf_stage*.svg", "erf_stage*.safetensors", "erf_stages.png", "erf_stages.svg"])
    }

    static func printSummary(_ result: ERFResult, title: String) {
        let s = result.settings
        print("\(title): ERF@t as side px (side ratio), \(result.images.count) image\(result.images.count == 1 ? "" : "s"), \(s.size) px, \(s.resize.rawValue) resize\(s.legacyScaling ? ", legacy scaling" : "")")
        let header = ["stage"] + result.settings.thresholds.map { "t=\(formatShare($0))" }
        print(header.map { $0.padding(toLength: 16, withPad: " ", startingAt: 0) }.joined())
        var unreached = false
        for stage in result.stages {
            let cells = ["\(stage.stage)"] + stage.ratios.map { r -> String in
                if !r.reached { unreached = true }
                return "\(r.side)\(r.reached ? "" : "*") (\(String(format: "%.3f", r.sideRatio)))"
            }
            print(cells.map { $0.padding(toLength: 16, withPad: " ", startingAt: 0) }.joined())
        }
        if unreached { print("* not reached by any square smaller than the input: the whole input is reported") }
    }
}
