// stm-analyze detect: the study's Mask R-CNN box path on images: detections per image in the original
// frame as JSON (stdout, or --json), and with --draw each image with its boxes, class names and scores.
// Also here: the detector options that `boxes` shares (test scale, loading with the untrained notice).
// Masks are not computed; one image per pass.

import Analysis
import ArgumentParser
import Detection
import Foundation
import Imaging

/// `--test-scale 1333x800` and loading a detector, shared by detect and boxes.
struct DetectorOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("mmdetection's img_scale (long x short) of the keep-ratio resize.", valueName: "LxS"))
    var testScale = "1333x800"

    @OptionGroup var loading: LoadOptions

    /// The parsed test scale.
    func scale() throws -> (Double, Double) {
        let parts = testScale.lowercased().split(separator: "x").compactMap { Double($0) }
        guard parts.count == 2, parts.allSatisfy({ $0.isFinite && $0 >= 1 }) else {
            throw ValidationError("--test-scale \(testScale): expected two sizes such as 1333x800")
        }
        return (parts[0], parts[1])
    }

    /// Loads a detector (a checkpoint or a preset), with the loud notice for untrained ones.
    func load(model: String, arch: String?) throws -> Detector {
        let loaded = try DetectorLoader.load(model: model, arch: arch, initLayerScale: loading.initLayerScale, seed: loading.initSeed)
        if loaded.checkpoint == nil {
            warn("\(loaded.detector.name) is UNTRAINED: random weights (seed \(loading.initSeed)); its boxes say nothing about a trained detector")
        }
        return loaded.detector
    }
}

/// (1333, 800) as [1333, 800]: whole sizes as integers.
func jsonSizes(_ s: (Double, Double)) -> [Any] {
    [s.0, s.1].map { $0.rounded() == $0 ? Int($0) as Any : $0 as Any }
}

/// The JSON of one detection.
func detectionJSON(_ d: Detection, names: [String]) -> [String: Any] {
    ["box": d.box.map(Double.init), "score": Double(d.score), "label": d.label,
     "class": d.label < names.count ? names[d.label] : "class \(d.label)"]
}

struct Detect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Detect objects with a Mask R-CNN box path (mmdetection checkpoint, or an untrained preset).",
        discussion: """
            The pipeline is mmdetection 2.x's test pipeline of the study: keep-ratio resize to --test-scale \
            (times --scale) with OpenCV's bilinear resize, normalisation, padding to 32; then backbone, FPN, RPN, \
            RoIAlign, box head and multiclass NMS. Boxes are in the original image's pixels. JSON: {"model", \
            "test_scale", "scale", "images": [{"file", "width", "height", "detections": [{"box": [x1, y1, x2, y2], \
            "score", "label", "class"}]}]}, on stdout unless --json names a file.
            """)

    @Option(name: .long, help: ArgumentHelp("mmdetection checkpoint, or a preset name for an untrained detector.", valueName: "ckpt|preset"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("Backbone architecture: preset name or JSON file (inferred from the keys when omitted).", valueName: "preset|file"))
    var arch: String?

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Image files or folders.", valueName: "path"))
    var images: [String] = []

    @OptionGroup var detector: DetectorOptions

    @Option(name: .long, help: "Multiplies the test scale.")
    var scale = 1.0

    @Option(name: .long, help: "Keep detections with a score above this (mmdetection's score_thr).")
    var scoreThr = 0.05

    @Option(name: .long, help: ArgumentHelp("Write the JSON here instead of stdout.", valueName: "file.json"))
    var json: String?

    @Option(name: .long, help: ArgumentHelp("Write each image with its boxes as <name>.png into this folder.", valueName: "DIR"))
    var draw: String?

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard scale.isFinite && scale > 0 else { throw ValidationError("--scale must be a number > 0, got \(scale)") }
        guard scoreThr.isFinite && scoreThr >= 0 && scoreThr < 1 else { throw ValidationError("--score-thr must be in [0, 1)") }
        guard !images.isEmpty else { throw ValidationError("--images: give at least one image file or folder") }
        _ = try detector.scale()
        if let json { try checkWritableOutput(json, option: "--json") }
    }

    func run() throws {
        runtime.apply()
        let files = try listImages(images)
        let loadStart = Date()
        let d = try detector.load(model: model, arch: arch)
        if runtime.verbose { note("loaded \(d.name) in \(String(format: "%.2f", Date().timeIntervalSince(loadStart))) s") }
        d.testConfig.scoreThreshold = Float(scoreThr)
        if let draw { try prepareOutputFolder(draw) }
        let base = try detector.scale()
        let pipeline = DetectionPipeline(testScale: base).scaled(by: scale)
        var out: [[String: Any]] = []
        for file in files {
            let image = try loadImage(path: file)
            let start = Date()
            let dets = try d.detect(image, pipeline: pipeline)
            if runtime.verbose { note("\(file): \(dets.count) detections in \(String(format: "%.2f", Date().timeIntervalSince(start))) s") }
            out.append(["file": file, "width": image.width, "height": image.height,
                        "detections": dets.map { detectionJSON($0, names: d.classNames) }])
            if let draw {
                let boxes = dets.reversed().map { x in
                    DrawnBox(x1: Double(x.box[0]), y1: Double(x.box[1]), x2: Double(x.box[2]), y2: Double(x.box[3]),
                             caption: "\(x.label < d.classNames.count ? d.classNames[x.label] : "\(x.label)") \(String(format: "%.2f", x.score))",
                             colorIndex: x.label)
                }
                let name = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
                try PNGCodec.write(try drawDetections(image, boxes: boxes), to: "\(draw)/\(safeName(name)).png")
            }
        }
        let doc: [String: Any] = ["model": d.name, "test_scale": jsonSizes(base), "scale": scale, "images": out]
        if let json {
            try writeJSON(doc, to: json)
            note("json         \(json)")
        } else {
            let data = try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
        if let draw { note("pictures     \(draw)/") }
    }
}
