// stm-analyze classify: top-k ImageNet classes for image files through the evaluation transform.

import Analysis
import ArgumentParser
import Checkpoint
import Foundation
import Imaging
import Models

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images: evaluation transform (bicubic resize of the short side to int(size/crop-pct), centre crop, the model's mean/std: ImageNet's for the study's models, 0.5 for EfficientNet-Lite), top-k classes.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Image files or folders (folders are read in name order).", valueName: "path"))
    var images: [String]

    @Option(name: .long, help: "Crop side in pixels (the network's input size).")
    var size = 224

    @Option(name: .long, help: "Crop fraction: the short side is resized to int(size / crop-pct) before the centre crop.")
    var cropPct = 0.875

    @Option(name: .long, help: "Number of classes to show per image.")
    var top = 5

    @Option(name: .long, help: "Images per forward pass.")
    var batch = 8

    @Option(name: .long, help: ArgumentHelp("Write the logits [N,classes] as a safetensors tensor 'logits' (- for standard output).", valueName: "file.safetensors"))
    var logits: String?

    @Option(name: .long, help: ArgumentHelp("Write the predictions as JSON (- for standard output).", valueName: "file.json"))
    var json: String?

    @OptionGroup var imageChecks: ImageCheckOptions

    @OptionGroup var memory: MemoryOptions

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if images.isEmpty { throw ValidationError("--images needs at least one file or folder") }
        try checkInputSize(size)
        try checkCropFraction(cropPct, size: size)
        if top < 1 { throw ValidationError("--top must be at least 1 (got \(top))") }
        if batch < 1 { throw ValidationError("--batch must be at least 1 (got \(batch))") }
        if let logits { try checkWritableOutput(logits, option: "--logits") }
        if let json { try checkWritableOutput(json, option: "--json") }
        if logits == "-" && json == "-" { throw ValidationError("--logits - and --json - both ask for standard output; send one of them to a file") }
    }

    func run() throws {
        runtime.apply()
        let (files, skipped) = try imageChecks.check(try listImages(images), inputSize: size)
        let loaded = try modelOptions.load(plan: memory.planner(size: size, batch: min(batch, files.count), backward: false,
                                                                subject: modelOptions.model))
        guard loaded.backbone.hasHead else {
            throw ModelError(modelOptions.model, "has no classification head (a \(loaded.form == .detection ? "detection backbone" : "backbone-only checkpoint")): classify needs it; erf does not")
        }
        let started = Date()
        let results = try classify(model: loaded.backbone, paths: files, size: size, cropPct: cropPct,
                                   top: min(top, loaded.config.num_classes), batch: batch) { done, total in
            if Date().timeIntervalSince(started) > 2 { note("classified \(done)/\(total) images") }
        }
        let title = loaded.displayName
        // With an output on standard output (`-`), the readable report goes to stderr.
        let print: (String) -> Void = logits == "-" || json == "-" ? { note($0) } : { Swift.print($0) }
        print("\(title): top-\(top) of \(files.count) image\(files.count == 1 ? "" : "s") at \(size)px (crop-pct \(cropPct))")
        for r in results {
            print(URL(fileURLWithPath: r.path).lastPathComponent)
            for (i, t) in r.top.enumerated() {
                let name = ImageNetClasses.name(t.index, classes: loaded.config.num_classes).map { "  " + $0 } ?? ""
                print(String(format: "  %d. class %4d  %6.2f%%", i + 1, t.index, 100 * t.probability) + name)
            }
        }
        if let logits {
            let n = results.count, k = results.first?.logits.count ?? 0
            let record = TensorRecord(shape: [n, k], values: results.flatMap(\.logits))
            try SafeTensors.write(path: logits, tensors: [("logits", record)])
            if logits != "-" { print("logits       \(logits) [\(n), \(k)]") }
        }
        if let json {
            let doc: [String: Any] = [
                "model": modelOptions.model, "arch": loaded.config.displayName, "untrained": loaded.untrained,
                "size": size, "crop_pct": cropPct, "skipped": skipped.map { ["path": $0.path, "reason": $0.reason] },
                "images": results.map { r in
                    ["path": r.path, "top": r.top.map { t -> [String: Any] in
                        var entry: [String: Any] = ["class": t.index, "probability": Double(t.probability)]
                        if let name = ImageNetClasses.name(t.index, classes: loaded.config.num_classes) { entry["name"] = name }
                        return entry
                    }] as [String: Any]
                },
            ]
            try writeJSON(doc, to: json)
            if json != "-" { print("json         \(json)") }
        }
    }
}
