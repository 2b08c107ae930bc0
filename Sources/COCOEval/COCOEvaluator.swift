// COCOEval: pycocotools' COCOeval for iouType "bbox" (evaluate, accumulate, summarize), with the same
// numbers to the last bit: maskApi.c's box IoU in double, greedy matching per IoU threshold with the
// stable score order and crowd rules of evaluateImg, the cumulative precision/recall with numpy's
// spacing(1), the right-to-left envelope, searchsorted on the 101 recall thresholds, and numpy's
// pairwise mean for the 12 stats. ../shared/reference/detection/BOXMAP.md lists the behaviours one by one.
// Left out: segm and keypoints, the `scores` array, per-call timing prints, and `loadRes`'s failure on
// an empty result list (an empty list is evaluated: 0 wherever ground truth exists).

/// The result of a COCO box evaluation: the accumulated arrays and the 12 summary stats.
public struct COCOEvaluation: Sendable {
    /// The parameters used, `maxDetections` sorted ascending.
    public var parameters: COCOParameters
    /// The evaluated image ids, sorted and unique.
    public var imageIds: [Int]
    /// The evaluated category ids, sorted and unique (all of them pooled into one when class-agnostic).
    public var categoryIds: [Int]
    /// Precision, row-major `[T, R, K, A, M]` (IoU thresholds, recall thresholds, categories, area
    /// ranges, maxDets); -1 where a setting has no ground truth. K is 1 when class-agnostic.
    public var precision: [Double]
    /// Final recall, row-major `[T, K, A, M]`; -1 where a setting has no ground truth.
    public var recall: [Double]
    /// The 12 numbers of `COCOeval.stats` (AP, AP50, AP75, AP small/medium/large, AR at maxDets
    /// 1/10/100, AR small/medium/large); -1 where nothing was left to average.
    public var stats: [Double]

    /// Number of category slots K of the arrays (1 when class-agnostic).
    public var categorySlots: Int { parameters.useCategories ? categoryIds.count : 1 }

    /// `precision[t, r, k, a, m]`.
    public func precision(t: Int, r: Int, k: Int, a: Int, m: Int) -> Double {
        let R = parameters.recallThresholds.count, K = categorySlots
        let A = parameters.areaRanges.count, M = parameters.maxDetections.count
        return precision[(((t * R + r) * K + k) * A + a) * M + m]
    }

    /// `recall[t, k, a, m]`.
    public func recall(t: Int, k: Int, a: Int, m: Int) -> Double {
        let K = categorySlots, A = parameters.areaRanges.count, M = parameters.maxDetections.count
        return recall[((t * K + k) * A + a) * M + m]
    }
}

/// One evaluated (image, category) pair in one area range: what accumulate needs of evaluateImg.
private struct ImageResult {
    /// Scores of the kept detections, highest first (stable order).
    var scores: [Double]
    /// `[T, D]`: matched to a ground truth with a non-zero id.
    var matched: [Bool]
    /// `[T, D]`: ignored (matched to an ignored ground truth, or unmatched and outside the area range).
    var ignored: [Bool]
    /// Ground truths that are not ignored in this area range.
    var nonIgnoredGroundTruth: Int
}

/// pycocotools' COCOeval for boxes.
public enum COCOEvaluator {
    /// numpy's `spacing(1)`, added to `tp + fp` in the precision.
    public static let eps = 2.220446049250313e-16

    /// maskApi.c `bbIou` for one detection and one ground truth: intersection over union in double,
    /// 0 when the boxes do not overlap, and intersection over the detection's area for a crowd box.
    @inline(__always)
    public static func iou(detection d: COCOBox, groundTruth g: COCOBox, crowd: Bool) -> Double {
        let w = min(d.width + d.x, g.width + g.x) - max(d.x, g.x)
        if w <= 0 { return 0 }
        let h = min(d.height + d.y, g.height + g.y) - max(d.y, g.y)
        if h <= 0 { return 0 }
        let inter = w * h
        let detArea = d.width * d.height
        let union = crowd ? detArea : detArea + g.width * g.height - inter
        return inter / union
    }

    /// Indices of `scores` ordered by descending score, ties in index order (numpy's stable argsort of -score).
    static func stableDescendingOrder(_ scores: [Double]) -> [Int] {
        Array(scores.indices).sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
    }

    /// Evaluates `detections` against `groundTruth` as `COCOeval(gt, loadRes(detections), "bbox")`
    /// followed by `evaluate()`, `accumulate()` and `summarize()` would. Detections and annotations on
    /// images or categories that are not listed are left out. Throws when a detection names an image
    /// that the ground truth does not list (pycocotools' loadRes assertion) or the parameters are unusable.
    public static func evaluate(groundTruth: COCOGroundTruth, detections: [COCODetection],
                                parameters: COCOParameters = COCOParameters()) throws -> COCOEvaluation {
        var p = parameters
        p.maxDetections.sort()
        guard p.maxDetections.count >= 3, p.maxDetections.allSatisfy({ $0 >= 0 }) else {
            throw COCOEvalError("maxDets", "needs at least three values >= 0 (got \(parameters.maxDetections))")
        }
        guard !p.iouThresholds.isEmpty, !p.recallThresholds.isEmpty, !p.areaRanges.isEmpty else {
            throw COCOEvalError("parameters", "IoU thresholds, recall thresholds and area ranges must not be empty")
        }
        let imageIds = Array(Set(groundTruth.imageIds)).sorted()
        let categoryIds = Array(Set(groundTruth.categoryIds)).sorted()
        var imageIndex: [Int: Int] = [:], categoryIndex: [Int: Int] = [:]
        for (i, id) in imageIds.enumerated() { imageIndex[id] = i }
        for (k, id) in categoryIds.enumerated() { categoryIndex[id] = k }
        if let bad = detections.firstIndex(where: { imageIndex[$0.imageId] == nil }) {
            throw COCOEvalError("detections", "detection \(bad + 1) names image id \(detections[bad].imageId), which the ground truth's images do not list")
        }

        // Group by (image, category), keeping input order within each group. COCO loads annotations by
        // id, so an id that is used twice loads as its last annotation at each place it is listed.
        let I = imageIds.count, C = categoryIds.count
        let annotations = groundTruth.annotations
        var gtGroups = [[Int]](repeating: [], count: I * C)
        var dtGroups = [[Int]](repeating: [], count: I * C)
        var lastWithId: [Int: Int] = [:]
        var perImage = [[Int]](repeating: [], count: I)
        for (n, a) in annotations.enumerated() {
            lastWithId[a.id] = n
            if let i = imageIndex[a.imageId] { perImage[i].append(n) }
        }
        for listed in perImage {
            for n in listed where !p.useCategories || categoryIndex[annotations[n].categoryId] != nil {
                let loaded = lastWithId[annotations[n].id]!
                if let i = imageIndex[annotations[loaded].imageId], let k = categoryIndex[annotations[loaded].categoryId] {
                    gtGroups[i * C + k].append(loaded)
                }
            }
        }
        for (n, d) in detections.enumerated() {
            if let i = imageIndex[d.imageId], let k = categoryIndex[d.categoryId] { dtGroups[i * C + k].append(n) }
        }

        let K = p.useCategories ? C : 1
        let A = p.areaRanges.count, T = p.iouThresholds.count
        let maxDetLast = p.maxDetections[p.maxDetections.count - 1]
        var results = [ImageResult?](repeating: nil, count: K * A * I)
        for k in 0..<K {
            for i in 0..<I {
                let gts: [Int], dtsAll: [Int]
                if p.useCategories {
                    gts = gtGroups[i * C + k]
                    dtsAll = dtGroups[i * C + k]
                } else {
                    gts = (0..<C).flatMap { gtGroups[i * C + $0] }
                    dtsAll = (0..<C).flatMap { dtGroups[i * C + $0] }
                }
                if gts.isEmpty && dtsAll.isEmpty { continue }
                let order = stableDescendingOrder(dtsAll.map { detections[$0].score })
                let dts = order.prefix(maxDetLast).map { dtsAll[$0] }
                let gtList = gts.map { annotations[$0] }, dtList = dts.map { detections[$0] }
                let G = gtList.count, D = dtList.count
                var ious = [Double](repeating: 0, count: D * G)
                for d in 0..<D {
                    for g in 0..<G {
                        ious[d * G + g] = iou(detection: dtList[d].bbox, groundTruth: gtList[g].bbox, crowd: gtList[g].isCrowd)
                    }
                }
                for a in 0..<A {
                    results[(k * A + a) * I + i] = evaluateImage(
                        groundTruth: gtList, detections: dtList, detectionIds: dts.map { $0 + 1 }, ious: ious,
                        range: p.areaRanges[a], thresholds: p.iouThresholds, T: T)
                }
            }
        }

        // Accumulate.
        let R = p.recallThresholds.count, M = p.maxDetections.count
        var precision = [Double](repeating: -1, count: T * R * K * A * M)
        var recall = [Double](repeating: -1, count: T * K * A * M)
        for k in 0..<K {
            for a in 0..<A {
                let E = (0..<I).compactMap { results[(k * A + a) * I + $0] }
                if E.isEmpty { continue }
                let npig = E.reduce(0) { $0 + $1.nonIgnoredGroundTruth }
                for (m, maxDet) in p.maxDetections.enumerated() {
                    var entries: [(image: Int, det: Int)] = []
                    var scores: [Double] = []
                    for (e, r) in E.enumerated() {
                        for d in 0..<min(maxDet, r.scores.count) {
                            entries.append((e, d))
                            scores.append(r.scores[d])
                        }
                    }
                    if npig == 0 { continue }
                    let sorted = stableDescendingOrder(scores).map { entries[$0] }
                    let nd = sorted.count
                    var rc = [Double](repeating: 0, count: nd), pr = [Double](repeating: 0, count: nd)
                    for t in 0..<T {
                        var tp = 0, fp = 0
                        for (j, entry) in sorted.enumerated() {
                            let r = E[entry.image], idx = t * r.scores.count + entry.det
                            if !r.ignored[idx] {
                                if r.matched[idx] { tp += 1 } else { fp += 1 }
                            }
                            rc[j] = Double(tp) / Double(npig)
                            pr[j] = Double(tp) / (Double(tp + fp) + eps)
                        }
                        recall[((t * K + k) * A + a) * M + m] = nd > 0 ? rc[nd - 1] : 0
                        var i = nd - 1
                        while i > 0 {
                            if pr[i] > pr[i - 1] { pr[i - 1] = pr[i] }
                            i -= 1
                        }
                        for (ri, threshold) in p.recallThresholds.enumerated() {
                            // searchsorted(rc, threshold, side="left"); thresholds past the last recall keep 0.
                            var lo = 0, hi = nd
                            while lo < hi {
                                let mid = (lo + hi) / 2
                                if rc[mid] < threshold { lo = mid + 1 } else { hi = mid }
                            }
                            if lo >= nd {
                                for rj in ri..<R { precision[(((t * R + rj) * K + k) * A + a) * M + m] = 0 }
                                break
                            }
                            precision[(((t * R + ri) * K + k) * A + a) * M + m] = pr[lo]
                        }
                    }
                }
            }
        }

        var evaluation = COCOEvaluation(parameters: p, imageIds: imageIds, categoryIds: categoryIds,
                                        precision: precision, recall: recall, stats: [])
        evaluation.stats = COCOSummary.settings(maxDetections: p.maxDetections).map { evaluation.summarize($0) }
        return evaluation
    }

    /// evaluateImg for one (image, category) pair and one area range, detections already in score
    /// order and cut to maxDets[-1]; `ious` is `[D, G]` in the ground truth's input order.
    private static func evaluateImage(groundTruth gts: [COCOAnnotation], detections dts: [COCODetection],
                                      detectionIds: [Int], ious: [Double], range: COCOAreaRange,
                                      thresholds: [Double], T: Int) -> ImageResult {
        let G = gts.count, D = dts.count
        let gtIgnored = gts.map { $0.isCrowd || $0.area < range.lower || $0.area > range.upper }
        // Non-ignored ground truth first, ignored last, each in input order (stable argsort).
        let gtOrder = gts.indices.filter { !gtIgnored[$0] } + gts.indices.filter { gtIgnored[$0] }
        var matchedId = [Int](repeating: 0, count: T * D)
        var ignored = [Bool](repeating: false, count: T * D)
        if G > 0 && D > 0 {
            var gtMatch = [Int](repeating: 0, count: G)
            for (t, threshold) in thresholds.enumerated() {
                for g in 0..<G { gtMatch[g] = 0 }
                for d in 0..<D {
                    var best = min(threshold, 1 - 1e-10)
                    var m = -1
                    for (gi, g) in gtOrder.enumerated() {
                        if gtMatch[gi] > 0 && !gts[g].isCrowd { continue }
                        if m > -1 && !gtIgnored[gtOrder[m]] && gtIgnored[g] { break }
                        let v = ious[d * G + g]
                        if v < best { continue }
                        best = v
                        m = gi
                    }
                    if m == -1 { continue }
                    let g = gtOrder[m]
                    ignored[t * D + d] = gtIgnored[g]
                    matchedId[t * D + d] = gts[g].id
                    gtMatch[m] = detectionIds[d]
                }
            }
        }
        for d in 0..<D {
            let area = dts[d].bbox.area
            if area < range.lower || area > range.upper {
                for t in 0..<T where matchedId[t * D + d] == 0 { ignored[t * D + d] = true }
            }
        }
        return ImageResult(scores: dts.map(\.score), matched: matchedId.map { $0 != 0 }, ignored: ignored,
                           nonIgnoredGroundTruth: gtIgnored.filter { !$0 }.count)
    }
}
