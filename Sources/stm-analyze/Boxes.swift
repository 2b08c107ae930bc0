// stm-analyze boxes: box-consistency mAP of detectors under scaling. For each scale s the keep-ratio
// resize targets s times the test scale; the boxes, mapped back to the original frame, are scored with
// COCOeval (all 12 stats) against the same detector's scale-1 detections with score >= --gt-score-thr;
// with --annotations also against real COCO boxes. Writes boxes.json, boxes.csv and boxes.png.
// Each image is decoded once for every model and scale. Masks and test-time augmentation are left out.

import Analysis
import Checkpoint
import ArgumentParser
import COCOEval
import Detection
import Foundation
import Imaging

struct Boxes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Box-consistency mAP of detectors across scales (COCO AP against their own scale-1 boxes).",
        discussion: """
            Ground truth per image: the detector's own detections at scale 1 with score >= --gt-score-thr \
            (class-aware, ids from 1, area w*h, not crowd); candidates: every detection at scale s, in the original \
            frame. The 12 COCOeval stats per scale, and their mean over the scales (-1 where undefined, left out \
            of the mean). --annotations instances.json (images matched by file_name) adds real box AP per scale. \
            Writes boxes.json, boxes.csv and boxes.png (AP against scale, one line per model) to --out.
            """)

    /// The study's 12 scales.
    static let studyScales = (1...12).map { Double($0) * 0.25 }

    @Option(name: .long, help: ArgumentHelp("mmdetection checkpoint or preset name; repeat for one curve per model.", valueName: "ckpt|preset"))
    var model: [String] = []

    @Option(name: .long, help: ArgumentHelp("Backbone architecture: once for all models or once per --model.", valueName: "preset|file"))
    var arch: [String] = []

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Image files or folders.", valueName: "path"))
    var images: [String] = []

    @Option(name: .long, help: ArgumentHelp("Comma-separated scales (default the study's 0.25, 0.5, ..., 3.0).", valueName: "list"))
    var scales: String?

    @Option(name: .long, help: "Scale-1 detections with at least this score are the ground truth.")
    var gtScoreThr = 0.5

    @Option(name: .long, help: ArgumentHelp("COCO annotations of the images, for real box AP per scale.", valueName: "instances.json"))
    var annotations: String?

    @OptionGroup var detector: DetectorOptions

    @Option(name: .long, help: "Output folder.")
    var out = "outputs/boxes"

    @OptionGroup var runtime: RuntimeOptions

    func scaleList() throws -> [Double] {
        guard let scales else { return Self.studyScales }
        let parts = scales.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var values: [Double] = []
        for p in parts {
            guard let v = Double(p), v.isFinite, v > 0 else { throw ValidationError("--scales: '\(p)' is not a scale > 0") }
            values.append(v)
        }
        guard !values.isEmpty else { throw ValidationError("--scales: give at least one scale") }
        return values
    }

    func validate() throws {
        guard !model.isEmpty else { throw ValidationError("--model: give at least one detector") }
        guard arch.isEmpty || arch.count == 1 || arch.count == model.count else {
            throw ValidationError("--arch: give it once, or once per --model (\(model.count))")
        }
        guard !images.isEmpty else { throw ValidationError("--images: give at least one image file or folder") }
        guard gtScoreThr.isFinite && gtScoreThr >= 0 && gtScoreThr <= 1 else { throw ValidationError("--gt-score-thr must be in [0, 1]") }
        _ = try scaleList()
        _ = try detector.scale()
    }

    func run() throws {
        runtime.apply()
        let scaleValues = try scaleList()
        let files = try listImages(images)
        let truth = try annotations.map { try RealBoxes(path: $0, files: files) }
        try prepareOutputFolder(out)
        let detectors = try model.enumerated().map { i, m in
            try detector.load(model: m, arch: arch.isEmpty ? nil : arch[arch.count == 1 ? 0 : i])
        }
        let base = DetectionPipeline(testScale: try detector.scale())
        // All scales plus 1 (the reference), each image decoded once.
        let runScales = scaleValues.contains(1) ? scaleValues : scaleValues + [1]
        var dets = [[[[LabeledBox]]]](repeating: [[[LabeledBox]]](repeating: [], count: runScales.count), count: detectors.count)
        let progress = ProgressReporter(label: "boxes")
        let start = Date()
        for (n, file) in files.enumerated() {
            let image = try loadImage(path: file)
            for (m, d) in detectors.enumerated() {
                for (k, s) in runScales.enumerated() {
                    let found = try d.detect(image, pipeline: base.scaled(by: s))
                    dets[m][k].append(found.map { LabeledBox(x1: Double($0.box[0]), y1: Double($0.box[1]), x2: Double($0.box[2]),
                                                             y2: Double($0.box[3]), score: Double($0.score), label: $0.label) })
                }
            }
            progress.update(done: n + 1, total: files.count, seconds: Date().timeIntervalSince(start))
        }
        progress.finish()
        let refIndex = runScales.firstIndex(of: 1)!
        var modelDocs: [[String: Any]] = []
        var csv = "model,scale,kind," + CocoEval.statNames.joined(separator: ",") + "\n"
        var series: [(String, [Double])] = []
        print("model".padding(toLength: 28, withPad: " ", startingAt: 0) + scaleValues.map { String(format: "%7.2f", $0) }.joined() + "   mean")
        for (m, d) in detectors.enumerated() {
            var perScale: [String: Any] = [:], real: [String: Any] = [:], all: [[Double]] = []
            for (k, s) in runScales.enumerated() where k < scaleValues.count {
                let stats = try BoxConsistency.evaluate(reference: dets[m][refIndex], candidate: dets[m][k], scoreThreshold: gtScoreThr,
                                                        classes: d.classCount).stats
                all.append(stats)
                perScale[formatShare(s)] = stats
                csv += "\(safeName(d.name)),\(s),consistency," + stats.map { "\($0)" }.joined(separator: ",") + "\n"
                if let truth {
                    let r = try truth.evaluate(dets[m][k]).stats
                    real[formatShare(s)] = r
                    csv += "\(safeName(d.name)),\(s),annotations," + r.map { "\($0)" }.joined(separator: ",") + "\n"
                }
            }
            let mean = (0..<12).map { i -> Double in
                let v = all.map { $0[i] }.filter { $0 >= 0 }
                return v.isEmpty ? -1 : v.reduce(0, +) / Double(v.count)
            }
            var doc: [String: Any] = ["model": d.name, "scales": perScale, "mean": mean]
            if truth != nil { doc["annotations"] = real }
            modelDocs.append(doc)
            series.append((d.name, all.map { $0[0] }))
            print(d.name.padding(toLength: 28, withPad: " ", startingAt: 0) + all.map { String(format: "%7.3f", $0[0]) }.joined()
                  + String(format: "  %6.3f", mean[0]))
        }
        let doc: [String: Any] = ["models": modelDocs, "scales": scaleValues, "stat_names": CocoEval.statNames,
                                  "test_scale": jsonSizes(base.testScale), "gt_score_thr": gtScoreThr, "images": files]
        try writeJSON(doc, to: "\(out)/boxes.json")
        try writeAtomically(Data(csv.utf8), to: "\(out)/boxes.csv")
        let title = "Box consistency under scaling, \(files.count) image\(files.count == 1 ? "" : "s"), test scale \(Int(base.testScale.0))x\(Int(base.testScale.1))"
        try boxConsistencyFigure(scales: scaleValues, series: series, title: title).write(to: "\(out)/boxes.png")
        note("wrote        \(out)/boxes.json, boxes.csv, boxes.png")
    }
}

/// Real COCO boxes for --annotations: the images matched by file name, labels mapped to the sorted category ids.
struct RealBoxes {
    var truth: COCOGroundTruth
    /// The COCO image id of each processed file.
    var imageIds: [Int]
    var categoryIds: [Int]

    private struct Images: Decodable {
        struct Entry: Decodable { var id: Int; var file_name: String? }
        var images: [Entry]
    }

    init(path: String, files: [String]) throws {
        let all = try COCOFiles.readGroundTruth(path: path)
        let listed = try JSONDecoder().decode(Images.self, from: Data(contentsOf: URL(fileURLWithPath: path))).images
        var byName: [String: Int] = [:]
        for e in listed { if let f = e.file_name { byName[URL(fileURLWithPath: f).lastPathComponent] = e.id } }
        imageIds = try files.map { f in
            guard let id = byName[URL(fileURLWithPath: f).lastPathComponent] else {
                throw CLIError("--annotations \(path): no image with file_name \(URL(fileURLWithPath: f).lastPathComponent)")
            }
            return id
        }
        let keep = Set(imageIds)
        truth = COCOGroundTruth(imageIds: imageIds, categoryIds: all.categoryIds,
                                annotations: all.annotations.filter { keep.contains($0.imageId) })
        categoryIds = all.categoryIds.sorted()
    }

    /// COCOeval of one scale's detections (per processed image) against the annotations.
    func evaluate(_ boxes: [[LabeledBox]]) throws -> COCOEvaluation {
        var dets: [COCODetection] = []
        for (n, list) in boxes.enumerated() {
            for b in list where b.label < categoryIds.count {
                dets.append(COCODetection(imageId: imageIds[n], categoryId: categoryIds[b.label], bbox: b.cocoBox, score: b.score))
            }
        }
        return try COCOEvaluator.evaluate(groundTruth: truth, detections: dets)
    }
}
