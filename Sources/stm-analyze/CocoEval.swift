// stm-analyze coco-eval: COCO box AP of a results file against a ground-truth file, equal to
// pycocotools' COCOeval (iouType "bbox"): its 12-line summary on stdout and the 12 stats in JSON.
// Masks and keypoints are not evaluated; the parameters other than class-agnostic mode are the defaults.

import ArgumentParser
import COCOEval
import Foundation

struct CocoEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coco-eval",
        abstract: "COCO box AP/AR of detections against COCO annotations, equal to pycocotools' COCOeval (bbox).")

    @Option(name: .long, help: ArgumentHelp("COCO ground truth (images, categories, annotations).", valueName: "GT.json"))
    var annotations: String

    @Option(name: .long, help: ArgumentHelp("COCO results: a list of {image_id, category_id, bbox, score}.", valueName: "DETS.json"))
    var detections: String

    @Flag(name: .long, help: "Pool all categories into one (pycocotools' useCats = 0).")
    var classAgnostic = false

    @Option(name: .long, help: ArgumentHelp("Write {\"stats\": [12 numbers], ...} as JSON (- for standard output).", valueName: "file.json"))
    var json: String?

    /// Short names of the 12 stats, in order.
    static let statNames = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]

    func validate() throws {
        if let json { try checkWritableOutput(json, option: "--json") }
    }

    func run() throws {
        let truth = try COCOFiles.readGroundTruth(path: annotations)
        let results = try COCOFiles.readDetections(path: detections, groundTruth: truth)
        let evaluation = try COCOEvaluator.evaluate(groundTruth: truth, detections: results,
                                                    parameters: COCOParameters(useCategories: !classAgnostic))
        // With --json - the JSON alone goes to standard output, the summary to stderr.
        for line in evaluation.summaryLines { if json == "-" { note(line) } else { print(line) } }
        if let json {
            let doc: [String: Any] = [
                "stats": evaluation.stats,
                "stat_names": Self.statNames,
                "annotations": annotations,
                "detections": detections,
                "class_agnostic": classAgnostic,
                "max_dets": evaluation.parameters.maxDetections,
                "images": evaluation.imageIds.count,
                "categories": evaluation.categoryIds.count,
                "ground_truth_boxes": truth.annotations.count,
                "detection_boxes": results.count,
            ]
            try writeJSON(doc, to: json)
            if json != "-" { note("json         \(json)") }
        }
    }
}
