// COCOEval: COCOeval.summarize() for boxes: which (AP/AR, IoU, area, maxDets) setting each of the 12
// stats reads, the numpy mean over the selected entries, and the 12 printed lines in pycocotools'
// format. The keypoint summary is left out.

import Foundation

/// One of the 12 summary settings.
public struct COCOSummarySetting: Sendable, Equatable {
    /// true: average precision; false: average recall.
    public var averagePrecision: Bool
    /// A single IoU threshold (0.5 or 0.75), or nil for all of them.
    public var iouThreshold: Double?
    /// The area range's label: all, small, medium or large.
    public var area: String
    /// The maxDets value (stats[0] asks for the literal 100, whatever the list holds).
    public var maxDetections: Int
}

/// The layout of pycocotools' summary.
public enum COCOSummary {
    /// The 12 settings of `_summarizeDets`, given the sorted maxDets list.
    public static func settings(maxDetections md: [Int]) -> [COCOSummarySetting] {
        [
            COCOSummarySetting(averagePrecision: true, iouThreshold: nil, area: "all", maxDetections: 100),
            COCOSummarySetting(averagePrecision: true, iouThreshold: 0.5, area: "all", maxDetections: md[2]),
            COCOSummarySetting(averagePrecision: true, iouThreshold: 0.75, area: "all", maxDetections: md[2]),
            COCOSummarySetting(averagePrecision: true, iouThreshold: nil, area: "small", maxDetections: md[2]),
            COCOSummarySetting(averagePrecision: true, iouThreshold: nil, area: "medium", maxDetections: md[2]),
            COCOSummarySetting(averagePrecision: true, iouThreshold: nil, area: "large", maxDetections: md[2]),
            COCOSummarySetting(averagePrecision: false, iouThreshold: nil, area: "all", maxDetections: md[0]),
            COCOSummarySetting(averagePrecision: false, iouThreshold: nil, area: "all", maxDetections: md[1]),
            COCOSummarySetting(averagePrecision: false, iouThreshold: nil, area: "all", maxDetections: md[2]),
            COCOSummarySetting(averagePrecision: false, iouThreshold: nil, area: "small", maxDetections: md[2]),
            COCOSummarySetting(averagePrecision: false, iouThreshold: nil, area: "medium", maxDetections: md[2]),
            COCOSummarySetting(averagePrecision: false, iouThreshold: nil, area: "large", maxDetections: md[2]),
        ]
    }
}

extension COCOEvaluation {
    /// The mean of the entries of `setting` that are > -1, taken in C order (IoU threshold, recall
    /// threshold, category, then the selected maxDets) and averaged as numpy does; -1 when none is left.
    public func summarize(_ setting: COCOSummarySetting) -> Double {
        let p = parameters
        let T = p.iouThresholds.count, R = p.recallThresholds.count, K = categorySlots
        let thresholds = setting.iouThreshold.map { v in (0..<T).filter { p.iouThresholds[$0] == v } } ?? Array(0..<T)
        let areas = p.areaRanges.indices.filter { p.areaRanges[$0].label == setting.area }
        let maxDets = p.maxDetections.indices.filter { p.maxDetections[$0] == setting.maxDetections }
        // numpy broadcasts the two index lists of s[..., aind, mind] against each other.
        let pairs: [(Int, Int)]
        if areas.count == maxDets.count { pairs = Array(zip(areas, maxDets)) }
        else if areas.count == 1 { pairs = maxDets.map { (areas[0], $0) } }
        else if maxDets.count == 1 { pairs = areas.map { ($0, maxDets[0]) } }
        else { pairs = [] }
        var values: [Double] = []
        for t in thresholds {
            if setting.averagePrecision {
                for r in 0..<R {
                    for k in 0..<K {
                        for (a, m) in pairs {
                            let v = precision(t: t, r: r, k: k, a: a, m: m)
                            if v > -1 { values.append(v) }
                        }
                    }
                }
            } else {
                for k in 0..<K {
                    for (a, m) in pairs {
                        let v = recall(t: t, k: k, a: a, m: m)
                        if v > -1 { values.append(v) }
                    }
                }
            }
        }
        return values.isEmpty ? -1 : numpyMean(values)
    }

    /// The 12 lines that pycocotools' summarize() prints, e.g.
    /// ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.123`.
    public var summaryLines: [String] {
        let settings = COCOSummary.settings(maxDetections: parameters.maxDetections)
        let thresholds = parameters.iouThresholds
        return zip(settings, stats).map { setting, value in
            let title = setting.averagePrecision ? "Average Precision" : "Average Recall"
            let kind = setting.averagePrecision ? "(AP)" : "(AR)"
            let iou = setting.iouThreshold.map { String(format: "%0.2f", $0) }
                ?? String(format: "%0.2f:%0.2f", thresholds[0], thresholds[thresholds.count - 1])
            return " " + title.padding(toLength: max(18, title.count), withPad: " ", startingAt: 0)
                + " \(kind) @[ IoU=" + iou.padding(toLength: max(9, iou.count), withPad: " ", startingAt: 0)
                + " | area=" + String(repeating: " ", count: max(0, 6 - setting.area.count)) + setting.area
                + " | maxDets=" + String(format: "%3d", setting.maxDetections)
                + " ] = " + String(format: "%0.3f", value)
        }
    }
}
