// COCOEval: the inputs of a COCO `bbox` evaluation (ground truth, detections, parameters) as plain
// values, with pycocotools' default parameters built the way numpy builds them. Reading them from
// COCO JSON files is in COCOFiles.swift; the evaluation itself is in COCOEvaluator.swift. Masks,
// keypoints and segmentations are left out: only boxes are evaluated.

@_exported import Diagnostics

/// Errors of this module: one line naming the file or input and the problem (see Diagnostics).
public typealias COCOEvalError = ToolError

/// A COCO box `[x, y, width, height]`, in double precision and used exactly as given (no clipping,
/// negative sizes allowed).
public struct COCOBox: Sendable, Equatable {
    /// Left edge.
    public var x: Double
    /// Top edge.
    public var y: Double
    /// Width (may be zero or negative; used as given).
    public var width: Double
    /// Height (may be zero or negative; used as given).
    public var height: Double

    /// A box from its top-left corner and size.
    public init(x: Double, y: Double, width: Double, height: Double) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    /// A box from corners `x1, y1, x2, y2` (width `x2 - x1`, height `y2 - y1`, computed in double).
    public init(x1: Double, y1: Double, x2: Double, y2: Double) {
        self.init(x: x1, y: y1, width: x2 - x1, height: y2 - y1)
    }

    /// `width * height`: the area `loadRes` gives a detection (negative when one side is negative).
    public var area: Double { width * height }
}

/// One ground-truth annotation. Its `area` (not the box) decides its area range, as in pycocotools.
public struct COCOAnnotation: Sendable, Equatable {
    /// The annotation id. An id of 0 makes its matches count as unmatched (pycocotools tests "matched" as
    /// id != 0); an id used twice loads as the last annotation with that id wherever it is listed (COCO's index).
    public var id: Int
    /// The image it lies on (`image_id`).
    public var imageId: Int
    /// Its category (`category_id`).
    public var categoryId: Int
    /// The box, used for IoU only.
    public var bbox: COCOBox
    /// The annotation's `area` field (for masks often smaller than the box).
    public var area: Double
    /// Crowd regions are ignored and may absorb any number of detections.
    public var isCrowd: Bool

    /// An annotation with every field given.
    public init(id: Int, imageId: Int, categoryId: Int, bbox: COCOBox, area: Double, isCrowd: Bool = false) {
        self.id = id
        self.imageId = imageId
        self.categoryId = categoryId
        self.bbox = bbox
        self.area = area
        self.isCrowd = isCrowd
    }
}

/// The ground truth: the images and categories that are evaluated, and the annotations.
public struct COCOGroundTruth: Sendable {
    /// Ids of the `images` list, in file order (duplicates allowed; the evaluation sorts and dedups them).
    public var imageIds: [Int]
    /// Ids of the `categories` list, in file order (sorted and deduplicated by the evaluation).
    public var categoryIds: [Int]
    /// Annotations in file order (the order breaks ties in matching).
    public var annotations: [COCOAnnotation]

    /// Ground truth from its three lists.
    public init(imageIds: [Int], categoryIds: [Int], annotations: [COCOAnnotation]) {
        self.imageIds = imageIds
        self.categoryIds = categoryIds
        self.annotations = annotations
    }
}

/// One detection of a COCO results list. Its id is its 1-based position in the list, its area
/// `bbox.area`, and it is never crowd (as `COCO.loadRes` makes it).
public struct COCODetection: Sendable, Equatable {
    /// The image it was found on (must be listed by the ground truth).
    public var imageId: Int
    /// Its category; detections of categories the ground truth does not list are left out.
    public var categoryId: Int
    /// The box; its area `w * h` decides its area range when it is unmatched.
    public var bbox: COCOBox
    /// Confidence; higher scores are matched first.
    public var score: Double

    /// A detection with every field given.
    public init(imageId: Int, categoryId: Int, bbox: COCOBox, score: Double) {
        self.imageId = imageId
        self.categoryId = categoryId
        self.bbox = bbox
        self.score = score
    }
}

/// A labelled area range: ground truth whose area lies outside `[lower, upper]` (both ends closed) is ignored.
public struct COCOAreaRange: Sendable, Equatable {
    /// The name the summary selects it by: all, small, medium, large.
    public var label: String
    /// Smallest area in the range (inclusive).
    public var lower: Double
    /// Largest area in the range (inclusive).
    public var upper: Double

    /// A range `[lower, upper]` called `label`.
    public init(_ label: String, _ lower: Double, _ upper: Double) {
        self.label = label
        self.lower = lower
        self.upper = upper
    }
}

/// The parameters of `COCOeval` for `iouType = "bbox"`; the defaults are pycocotools' defaults.
public struct COCOParameters: Sendable, Equatable {
    /// false: one class-agnostic pseudo-category pools every listed category (`useCats = 0`).
    public var useCategories: Bool = true
    /// Detections kept per image and category (sorted before use). At least three values: the summary
    /// reads the first three.
    public var maxDetections: [Int] = [1, 10, 100]
    /// IoU thresholds: `np.linspace(0.5, 0.95, 10)`.
    public var iouThresholds: [Double] = numpyLinspace(0.5, 0.95, count: 10)
    /// Recall thresholds: `np.linspace(0, 1, 101)`.
    public var recallThresholds: [Double] = numpyLinspace(0.0, 1.0, count: 101)
    /// all, small, medium, large: pycocotools' ranges in squared pixels.
    public var areaRanges: [COCOAreaRange] = [
        COCOAreaRange("all", 0, 1e10), COCOAreaRange("small", 0, 1024),
        COCOAreaRange("medium", 1024, 9216), COCOAreaRange("large", 9216, 1e10),
    ]

    /// The defaults, optionally class-agnostic or with other maxDets.
    public init(useCategories: Bool = true, maxDetections: [Int] = [1, 10, 100]) {
        self.useCategories = useCategories
        self.maxDetections = maxDetections
    }
}

/// `np.linspace(start, stop, count)` with its exact arithmetic: `k * ((stop - start) / (count - 1)) + start`,
/// the last value set to `stop`. (So the IoU thresholds hold 0.8999999999999999, not 0.9.)
public func numpyLinspace(_ start: Double, _ stop: Double, count: Int) -> [Double] {
    precondition(count >= 2, "numpyLinspace needs at least two points")
    let step = (stop - start) / Double(count - 1)
    var values = (0..<count).map { Double($0) * step + start }
    values[count - 1] = stop
    return values
}
