// Detection: RoIAlign as mmcv 1.x's `roi_align` (and torchvision's) runs it at test time: aligned
// (box corners times the spatial scale minus 0.5), adaptive sampling (ceil(bin size) samples per
// bin side when the sampling ratio is 0), average pooling, bilinear sampling with Caffe2's border
// rules (a sample beyond -1 or the map's size contributes 0; coordinates <= 0 read at 0; at or
// beyond the last row/column the last one is used), on channels-last maps.
// Left out: max pooling, the unaligned mode, the backward pass.
//
// Shape key: H/W feature map height/width, C channels, R regions, P output size (7).

import TensorCore

/// One sample point's four taps and weights, for every channel at once.
private struct Tap {
    var offsets: (Int, Int, Int, Int)
    var weights: (Float, Float, Float, Float)
}

/// Pools `boxes` (in input pixels) from a feature map.
/// - Parameters:
///   - map: [1, H, W, C] feature map.
///   - boxes: [R * 4] corners in the input frame.
///   - spatialScale: feature pixels per input pixel (1 / stride).
///   - outputSize: P.
///   - samplingRatio: samples per bin side; 0 means ceil(bin size).
///   - into: [R, P, P, C] rows to write (row `rows[i]` for box i).
///   - rows: the output row of each box.
public func roiAlign(map: Tensor, boxes: [Float], spatialScale: Float, outputSize p: Int = 7, samplingRatio: Int = 0,
                     into out: UnsafeMutablePointer<Float>, rows: [Int]) {
    precondition(map.rank == 4 && map.shape[0] == 1, "roiAlign: map must be [1,H,W,C]")
    let (h, w, c) = (map.shape[1], map.shape[2], map.shape[3])
    let count = boxes.count / 4
    let data = map.data
    boxes.withUnsafeBufferPointer { b in
        parallelFor(count, grain: grainFor(count, cost: p * p * c * 16)) { range in
            var taps: [Tap] = []
            var acc = [Float](repeating: 0, count: c)
            for r in range {
                let startX = b[4 * r] * spatialScale - 0.5, startY = b[4 * r + 1] * spatialScale - 0.5
                let roiW = b[4 * r + 2] * spatialScale - 0.5 - startX, roiH = b[4 * r + 3] * spatialScale - 0.5 - startY
                let binW = roiW / Float(p), binH = roiH / Float(p)
                let gridH = samplingRatio > 0 ? samplingRatio : Int((roiH / Float(p)).rounded(.up))
                let gridW = samplingRatio > 0 ? samplingRatio : Int((roiW / Float(p)).rounded(.up))
                let samples = Float(max(gridH * gridW, 1))
                let dst = out + rows[r] * p * p * c
                for py in 0..<p {
                    for px in 0..<p {
                        taps.removeAll(keepingCapacity: true)
                        for iy in 0..<max(gridH, 0) {
                            let y = startY + Float(py) * binH + (Float(iy) + 0.5) * binH / Float(gridH)
                            for ix in 0..<max(gridW, 0) {
                                let x = startX + Float(px) * binW + (Float(ix) + 0.5) * binW / Float(gridW)
                                if let t = bilinearTap(y: y, x: x, height: h, width: w, channels: c) { taps.append(t) }
                            }
                        }
                        let o = dst + (py * p + px) * c
                        acc.withUnsafeMutableBufferPointer { a in
                            for ch in 0..<c { a[ch] = 0 }
                            for t in taps {
                                let (o1, o2, o3, o4) = t.offsets, (w1, w2, w3, w4) = t.weights
                                for ch in 0..<c {
                                    a[ch] += w1 * data[o1 + ch] + w2 * data[o2 + ch] + w3 * data[o3 + ch] + w4 * data[o4 + ch]
                                }
                            }
                            for ch in 0..<c { o[ch] = a[ch] / samples }
                        }
                    }
                }
            }
        }
    }
}

/// The four taps of a bilinear sample at (y, x) with Caffe2's border rules; nil when the sample
/// lies beyond -1 or the map's extent (it contributes zero).
@inline(__always)
private func bilinearTap(y yIn: Float, x xIn: Float, height: Int, width: Int, channels c: Int) -> Tap? {
    if yIn < -1 || yIn > Float(height) || xIn < -1 || xIn > Float(width) { return nil }
    var y = max(yIn, 0), x = max(xIn, 0)
    var yLow = Int(y), xLow = Int(x), yHigh: Int, xHigh: Int
    if yLow >= height - 1 { yLow = height - 1; yHigh = yLow; y = Float(yLow) } else { yHigh = yLow + 1 }
    if xLow >= width - 1 { xLow = width - 1; xHigh = xLow; x = Float(xLow) } else { xHigh = xLow + 1 }
    let ly = y - Float(yLow), lx = x - Float(xLow), hy = 1 - ly, hx = 1 - lx
    return Tap(offsets: ((yLow * width + xLow) * c, (yLow * width + xHigh) * c, (yHigh * width + xLow) * c, (yHigh * width + xHigh) * c),
               weights: (hy * hx, hy * lx, ly * hx, ly * lx))
}
