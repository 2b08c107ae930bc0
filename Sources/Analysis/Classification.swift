// Analysis: classification of image files. Images are decoded once, put through the evaluation
// transform (short side to int(size / crop_pct), bicubic as Pillow does it, centre crop, the
// model's mean/std), batched, and run through the model; results keep each image's logits and top-k
// classes with softmax probabilities. Printing and file output belong to the CLI.
//
// Shape key: N batch, S input side, K classes.

import Foundation
import Imaging
import Models
import TensorCore

/// One image's prediction.
public struct Prediction: Sendable {
    public var path: String
    /// Raw logits, K of them.
    public var logits: [Float]
    /// The best classes, most probable first: (class index, softmax probability).
    public var top: [(index: Int, probability: Float)]
}

/// Packs preprocessed images into one [N,S,S,3] input tensor, normalised with `normalization` (the
/// model's: `model.normalization`; ImageNet mean/std by default).
public func batchTensor(_ images: [Image8], normalization: InputNormalization = .imageNet) -> Tensor {
    precondition(!images.isEmpty, "batchTensor: no images")
    let (h, w) = (images[0].height, images[0].width)
    let t = Tensor(uninitializedShape: [images.count, h, w, 3])
    let per = h * w * 3
    for (i, img) in images.enumerated() {
        precondition(img.width == w && img.height == h, "batchTensor: images differ in size")
        writeTensorHWC(img, mean: normalization.mean, std: normalization.std,
                       into: UnsafeMutableBufferPointer(start: t.data + i * per, count: per))
    }
    return t
}

/// Indices of the `k` largest values with their softmax probabilities, ties broken by lower index.
public func topK(_ logits: [Float], k: Int) -> [(index: Int, probability: Float)] {
    guard let mx = logits.max() else { return [] }
    var z = 0.0
    for v in logits { z += Foundation.exp(Double(v - mx)) }
    let order = logits.indices.sorted { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }
    return order.prefix(max(0, k)).map { ($0, Float(Foundation.exp(Double(logits[$0] - mx)) / z)) }
}

/// Classifies image files with the evaluation transform.
/// - Parameters:
///   - paths: image files (JPEG or PNG).
///   - size: crop side; cropPct: crop fraction (short side resized to int(size / cropPct)).
///   - batch: images per forward pass.
///   - progress: called after each batch with (images done, total).
/// - Throws: `ToolError` when the model has no classifier head, `ImagingError` for unreadable images.
public func classify(model: any Backbone, paths: [String], size: Int = 224, cropPct: Double = 0.875,
                     top k: Int = 5, batch: Int = 8, progress: ((Int, Int) -> Void)? = nil) throws -> [Prediction] {
    guard model.hasHead else {
        throw ToolError(model.config.displayName, "has no classification head (a backbone-only checkpoint): classify needs it; erf does not")
    }
    var results: [Prediction] = []
    var start = 0
    while start < paths.count {
        let chunk = Array(paths[start..<min(start + max(batch, 1), paths.count)])
        let images = try chunk.map { try evalTransform(loadImage(path: $0), size: size, cropPct: cropPct) }
        let logits = model.logits(batchTensor(images, normalization: model.normalization))
        let classes = logits.shape[1]
        for (i, path) in chunk.enumerated() {
            let row = Array(UnsafeBufferPointer(start: logits.data + i * classes, count: classes))
            results.append(Prediction(path: path, logits: row, top: topK(row, k: k)))
        }
        start += chunk.count
        progress?(start, paths.count)
    }
    return results
}
