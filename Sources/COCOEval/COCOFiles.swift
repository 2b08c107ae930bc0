// COCOEval: reading COCO JSON files: a ground-truth file (`images`, `categories`, `annotations`, as
// `COCO(annotation_file)` reads it) and a results file (a list of `{image_id, category_id, bbox,
// score}`, as `COCO.loadRes` reads it). Every failure is one COCOEvalError naming the file and the
// place in it. Only the fields a box evaluation uses are read; segmentations, captions and keypoints
// are skipped, and results given as segmentations or keypoints instead of boxes are refused.

import Foundation

/// Reads COCO ground-truth and results files.
public enum COCOFiles {
    /// Reads a COCO ground-truth file. `images` and `categories` must be present; `annotations` may be
    /// absent (nothing to find). Each annotation needs `id`, `image_id`, `category_id`, a 4-number
    /// `bbox` and `area`; `iscrowd` defaults to 0.
    public static func readGroundTruth(path: String) throws -> COCOGroundTruth {
        try decodeGroundTruth(readFile(path), source: path)
    }

    /// Reads a COCO results file and checks that every detection names an image of `groundTruth`
    /// (pycocotools' loadRes asserts the same). An empty list is allowed.
    public static func readDetections(path: String, groundTruth: COCOGroundTruth) throws -> [COCODetection] {
        let detections = try decodeDetections(readFile(path), source: path)
        let images = Set(groundTruth.imageIds)
        if let bad = detections.firstIndex(where: { !images.contains($0.imageId) }) {
            throw COCOEvalError(path, "the detection at index \(bad) names image_id \(detections[bad].imageId), which is not among the \(images.count) images of the annotations",
                                hint: "the detections must come from the images that the annotations file lists")
        }
        return detections
    }

    /// Parses the bytes of a ground-truth file; `source` names it in errors.
    public static func decodeGroundTruth(_ data: Data, source: String) throws -> COCOGroundTruth {
        let raw = try decode(RawGroundTruth.self, from: data, source: source, what: "a COCO annotations file")
        var annotations: [COCOAnnotation] = []
        annotations.reserveCapacity(raw.annotations?.count ?? 0)
        for (n, a) in (raw.annotations ?? []).enumerated() {
            guard a.bbox.count == 4 else {
                throw COCOEvalError(source, "annotations[\(n)].bbox has \(a.bbox.count) numbers, not 4 (x, y, width, height)")
            }
            annotations.append(COCOAnnotation(id: a.id, imageId: a.image_id, categoryId: a.category_id,
                                              bbox: COCOBox(x: a.bbox[0], y: a.bbox[1], width: a.bbox[2], height: a.bbox[3]),
                                              area: a.area, isCrowd: a.iscrowd))
        }
        return COCOGroundTruth(imageIds: raw.images.map(\.id), categoryIds: raw.categories.map(\.id), annotations: annotations)
    }

    /// Parses the bytes of a results file; `source` names it in errors.
    public static func decodeDetections(_ data: Data, source: String) throws -> [COCODetection] {
        let raw = try decode([RawDetection].self, from: data, source: source, what: "a COCO results list")
        return try raw.enumerated().map { n, d in
            guard let bbox = d.bbox else {
                throw COCOEvalError(source, "detection \(n) has no bbox", hint: "only box results are evaluated (iouType bbox)")
            }
            guard bbox.count == 4 else {
                throw COCOEvalError(source, "detection \(n): bbox has \(bbox.count) numbers, not 4 (x, y, width, height)")
            }
            return COCODetection(imageId: d.image_id, categoryId: d.category_id,
                                 bbox: COCOBox(x: bbox[0], y: bbox[1], width: bbox[2], height: bbox[3]), score: d.score)
        }
    }

    private static func readFile(_ path: String) throws -> Data {
        guard FileManager.default.fileExists(atPath: path) else { throw COCOEvalError(path, "no such file") }
        guard let data = FileManager.default.contents(atPath: path) else { throw COCOEvalError(path, "cannot be read") }
        return data
    }

    private static func decode<T: Decodable>(_ type: T.Type, from data: Data, source: String, what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let error as DecodingError {
            throw COCOEvalError(source, "not \(what): " + describe(error))
        } catch {
            throw COCOEvalError(source, "not \(what): \(error)")
        }
    }

    /// "at annotations[3].area: no such key" and the like, on one line.
    private static func describe(_ error: DecodingError) -> String {
        func place(_ path: [CodingKey]) -> String {
            var s = ""
            for key in path {
                if let i = key.intValue { s += "[\(i)]" } else { s += (s.isEmpty ? "" : ".") + key.stringValue }
            }
            return s.isEmpty ? "top level" : s
        }
        switch error {
        case .keyNotFound(let key, let ctx):
            return "\(place(ctx.codingPath)) has no '\(key.stringValue)'"
        case .typeMismatch(let type, let ctx):
            return "\(place(ctx.codingPath)): expected \(typeName(type))"
        case .valueNotFound(let type, let ctx):
            return "\(place(ctx.codingPath)): expected \(typeName(type)), found null"
        case .dataCorrupted(let ctx):
            let detail = (ctx.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return ctx.codingPath.isEmpty ? "invalid JSON" + (detail.map { " (\($0))" } ?? "")
                : "\(place(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        if type == Int.self { return "an integer" }
        if type == Double.self { return "a number" }
        if type == Bool.self { return "true or false" }
        if type == [Any].self { return "a list" }
        if type == [String: Any].self { return "an object" }
        return String(describing: type)
    }
}

// MARK: - raw file layout

private struct RawGroundTruth: Decodable {
    struct Entry: Decodable { var id: Int }
    var images: [Entry]
    var categories: [Entry]
    var annotations: [RawAnnotation]?
}

private struct RawAnnotation: Decodable {
    var id: Int
    var image_id: Int
    var category_id: Int
    var bbox: [Double]
    var area: Double
    var iscrowd: Bool

    enum CodingKeys: String, CodingKey { case id, image_id, category_id, bbox, area, iscrowd }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int.self, forKey: .id)
        image_id = try c.decode(Int.self, forKey: .image_id)
        category_id = try c.decode(Int.self, forKey: .category_id)
        bbox = try c.decode([Double].self, forKey: .bbox)
        area = try c.decode(Double.self, forKey: .area)
        // pycocotools takes int(iscrowd); files write 0/1, a few write true/false.
        if let flag = try? c.decodeIfPresent(Int.self, forKey: .iscrowd) {
            iscrowd = flag != 0
        } else {
            iscrowd = try c.decodeIfPresent(Bool.self, forKey: .iscrowd) ?? false
        }
    }
}

private struct RawDetection: Decodable {
    var image_id: Int
    var category_id: Int
    var bbox: [Double]?
    var score: Double
}
