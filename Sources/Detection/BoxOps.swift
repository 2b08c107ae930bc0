// Detection: the box arithmetic of mmdetection 2.x's test path, in float32 as mmdet runs it:
// anchor generation (`AnchorGenerator`, centre offset 0), delta decoding with clipping
// (`DeltaXYWHBBoxCoder`), greedy NMS as mmcv's `nms_cpu` (sorted by score, a box dropped when its
// IoU with a kept box is > the threshold, areas without +1), NMS per group id (mmcv's
// `batched_nms` in its exact per-id form) and the RoI level mapping of `SingleRoIExtractor`.
// Boxes are flat float arrays, 4 values per box (x1, y1, x2, y2).
// Left out: the +1 box convention of mmdet 1.x, soft-NMS, rotated boxes.
//
// Shape key: A anchors per cell (ratios x scales), R boxes.

import Foundation

/// mmdet's `AnchorGenerator` with one scale and centre offset 0.
public struct AnchorGenerator: Sendable {
    /// Input pixels per feature pixel of each level.
    public var strides: [Int]
    /// Height/width ratios.
    public var ratios: [Float]
    /// Octave scales (anchor side = stride x scale for ratio 1).
    public var scales: [Float]

    /// The study's generator: strides 4...64, ratios 0.5, 1, 2, scale 8.
    public init(strides: [Int] = [4, 8, 16, 32, 64], ratios: [Float] = [0.5, 1, 2], scales: [Float] = [8]) {
        self.strides = strides
        self.ratios = ratios
        self.scales = scales
    }

    /// Anchors per cell.
    public var anchorsPerCell: Int { ratios.count * scales.count }

    /// The base anchors of a level, centred at (0, 0): [A * 4], ratios outer, scales inner.
    public func baseAnchors(stride: Int) -> [Float] {
        let base = Float(stride)
        var out: [Float] = []
        for r in ratios {
            let hRatio = r.squareRoot(), wRatio = 1 / hRatio
            for s in scales {
                let ws = base * wRatio * s, hs = base * hRatio * s
                out += [-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs]
            }
        }
        return out
    }

    /// Every anchor of a level with a (height x width) feature map: [h * w * A * 4], in (y, x, anchor) order.
    public func anchors(level: Int, height: Int, width: Int) -> [Float] {
        let stride = strides[level]
        let base = baseAnchors(stride: stride)
        let a = anchorsPerCell
        var out = [Float](repeating: 0, count: height * width * a * 4)
        for y in 0..<height {
            let sy = Float(y * stride)
            for x in 0..<width {
                let sx = Float(x * stride)
                let o = (y * width + x) * a * 4
                for k in 0..<a {
                    out[o + 4 * k] = base[4 * k] + sx
                    out[o + 4 * k + 1] = base[4 * k + 1] + sy
                    out[o + 4 * k + 2] = base[4 * k + 2] + sx
                    out[o + 4 * k + 3] = base[4 * k + 3] + sy
                }
            }
        }
        return out
    }
}

/// mmdet's `DeltaXYWHBBoxCoder.decode` (means 0): deltas (dx, dy, dw, dh) times `stds` applied to
/// reference boxes, dw/dh clamped to |ln(16/1000)|, then clipped to [0, width] x [0, height].
public struct DeltaDecoder: Sendable {
    /// Standard deviations the deltas are multiplied by (1 for the RPN, 0.1/0.1/0.2/0.2 for the box head).
    public var stds: [Float]
    /// The clamp of dw and dh: |ln(16 / 1000)|.
    public static let maxRatio = Float(abs(log(16.0 / 1000.0)))

    /// A decoder with these standard deviations.
    public init(stds: [Float]) { self.stds = stds }

    /// Decodes one box: `ref` and `delta` point at 4 values each; the box goes to `out` (4 values),
    /// clipped to the image (`clipWidth` x `clipHeight`).
    @inline(__always)
    public func decode(_ ref: UnsafePointer<Float>, _ delta: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                       clipWidth: Float, clipHeight: Float) {
        let m = Self.maxRatio
        let dx = delta[0] * stds[0], dy = delta[1] * stds[1]
        let dw = min(max(delta[2] * stds[2], -m), m), dh = min(max(delta[3] * stds[3], -m), m)
        let px = (ref[0] + ref[2]) * 0.5, py = (ref[1] + ref[3]) * 0.5
        let pw = ref[2] - ref[0], ph = ref[3] - ref[1]
        let gw = pw * expf(dw), gh = ph * expf(dh)
        let gx = px + pw * dx, gy = py + ph * dy
        out[0] = min(max(gx - gw * 0.5, 0), clipWidth)
        out[1] = min(max(gy - gh * 0.5, 0), clipHeight)
        out[2] = min(max(gx + gw * 0.5, 0), clipWidth)
        out[3] = min(max(gy + gh * 0.5, 0), clipHeight)
    }

    /// Decodes R boxes. refs [R * 4], deltas [R * 4] -> [R * 4].
    public func decode(refs: [Float], deltas: [Float], clipWidth: Float, clipHeight: Float) -> [Float] {
        precondition(refs.count == deltas.count && refs.count % 4 == 0)
        var out = [Float](repeating: 0, count: refs.count)
        refs.withUnsafeBufferPointer { r in deltas.withUnsafeBufferPointer { d in out.withUnsafeMutableBufferPointer { o in
            for i in 0..<(refs.count / 4) {
                decode(r.baseAddress! + 4 * i, d.baseAddress! + 4 * i, into: o.baseAddress! + 4 * i,
                       clipWidth: clipWidth, clipHeight: clipHeight)
            }
        } } }
        return out
    }
}

/// Greedy non-maximum suppression, NMS per group, and the RoI level rule.
public enum NMS {
    /// Indices into `scores` in descending score order (ties: lower index first).
    public static func order(_ scores: [Float]) -> [Int] {
        scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
    }

    /// mmcv's `nms_cpu`: the kept indices of `boxes` [R * 4], highest score first. A box is dropped
    /// when its IoU with an already kept box is greater than `iouThreshold`.
    public static func suppress(boxes: [Float], scores: [Float], iouThreshold: Float) -> [Int] {
        suppress(boxes: boxes, scores: scores, candidates: order(scores), iouThreshold: iouThreshold)
    }

    /// NMS over `candidates` (indices into boxes/scores), which must be in descending score order.
    public static func suppress(boxes: [Float], scores: [Float], candidates: [Int], iouThreshold: Float) -> [Int] {
        let n = candidates.count
        var removed = [Bool](repeating: false, count: n)
        var keep: [Int] = []
        boxes.withUnsafeBufferPointer { b in
            var x1 = [Float](repeating: 0, count: n), y1 = x1, x2 = x1, y2 = x1, area = x1
            for (k, i) in candidates.enumerated() {
                x1[k] = b[4 * i]; y1[k] = b[4 * i + 1]; x2[k] = b[4 * i + 2]; y2[k] = b[4 * i + 3]
                area[k] = (x2[k] - x1[k]) * (y2[k] - y1[k])
            }
            for i in 0..<n where !removed[i] {
                keep.append(candidates[i])
                let (ix1, iy1, ix2, iy2, ia) = (x1[i], y1[i], x2[i], y2[i], area[i])
                for j in (i + 1)..<max(n, i + 1) where !removed[j] {
                    let w = max(0, min(ix2, x2[j]) - max(ix1, x1[j]))
                    let h = max(0, min(iy2, y2[j]) - max(iy1, y1[j]))
                    let inter = w * h
                    if inter / (ia + area[j] - inter) > iouThreshold { removed[j] = true }
                }
            }
        }
        return keep
    }

    /// mmcv's `batched_nms` in its exact form: NMS within each group id separately, then every kept
    /// index sorted by score, descending (ties: lower index first).
    public static func batched(boxes: [Float], scores: [Float], groups: [Int], iouThreshold: Float) -> [Int] {
        var byGroup: [Int: [Int]] = [:]
        for i in order(scores) { byGroup[groups[i], default: []].append(i) }
        var kept: [Int] = []
        for g in byGroup.keys.sorted() {
            kept += suppress(boxes: boxes, scores: scores, candidates: byGroup[g]!, iouThreshold: iouThreshold)
        }
        return kept.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
    }

    /// `SingleRoIExtractor.map_roi_levels`: floor(log2(sqrt(w*h) / finestScale + 1e-6)), clamped to 0..<levels.
    public static func roiLevel(_ box: UnsafePointer<Float>, finestScale: Float = 56, levels: Int = 4) -> Int {
        let scale = ((box[2] - box[0]) * (box[3] - box[1])).squareRoot()
        let l = Int(log2f(scale / finestScale + 1e-6).rounded(.down))
        return min(max(l, 0), levels - 1)
    }
}
