// Analysis: the aggregation kernel of one mixer for one output position (stm-analyze kernel): which
// input positions the token mixer of block B of stage S draws on at map position p, and with what
// weight (the w_pk of the STM study's M(p) = W_o sum_k w_pk X(k)). Two views:
//   - the mixer's own kernel (Models/MixerKernel.swift): attention weights per head and summed,
//     DCNv3's sampling points with bilinear footprints, the static depth-wise kernel;
//   - for every mixer, the Jacobian of the token-mixing branch's output at p with respect to its input:
//     at each input position k the Frobenius norm over (output, input) channels of dM(p)/dX(k), from C
//     backward passes (one per output channel), so all five mixers compare the same way.
// Files: kernel.png / jacobian.png (over the feature map, p marked, colour bar), kernel_head<h>.png,
// kernel_overlay.png / jacobian_overlay.png (over the image), kernel.safetensors (raw weights).
//
// Shape key: H/W the block's input map, C its channels, Hd heads or groups, Lk keys.

import Checkpoint
import Foundation
import Imaging
import Models
import Rendering
import TensorCore

/// Where to look: block `block` of stage `stage` (1-based), map position (row y, column x).
public struct KernelSite: Sendable, Equatable {
    public var stage: Int, block: Int, y: Int, x: Int
    public init(stage: Int, block: Int, y: Int, x: Int) {
        self.stage = stage
        self.block = block
        self.y = y
        self.x = x
    }
}

/// One model's kernel at one site.
public struct KernelResult {
    public var model: String
    public var mixer: String
    public var site: KernelSite
    /// The block's input map.
    public var height: Int, width: Int, channels: Int
    /// Input pixels per map pixel.
    public var stride: Int
    public var kernel: MixerKernel
    /// Jacobian norm per input position, [H*W].
    public var jacobian: [Float]
}

/// At each position k of x [1,H,W,C]: || d f(x)[0, y, x, :] / d x[0, k, :] ||_F, from one backward per
/// output channel. [H*W]
public func jacobianNorm(_ f: (Tensor) -> Tensor, input: Tensor, y: Int, x: Int) -> [Float] {
    let (h, w, c) = (input.shape[1], input.shape[2], input.shape[3])
    let leaf = input.detached().requiringGrad()
    let out = f(leaf)  // [1,H,W,Co]
    let co = out.shape[3]
    var sq = [Double](repeating: 0, count: h * w)
    for ch in 0..<co {
        let seed = Tensor.zeros(out.shape)
        seed.data[(y * out.shape[2] + x) * co + ch] = 1
        Tape.backward(out, seed: seed, retainGraph: ch + 1 < co)
        // The gradient tensor must outlive every read through its pointer (AddressSanitizer caught a
        // read after Swift had already released a temporary here).
        let grad = Tape.gradient(of: leaf)
        withExtendedLifetime(grad) {
            let g = grad.data
            for k in 0..<(h * w) {
                var s = 0.0
                for i in 0..<c { s += Double(g[k * c + i]) * Double(g[k * c + i]) }
                sq[k] += s
            }
        }
    }
    return sq.map { Float($0.squareRoot()) }
}

/// The kernel of `site` for `image` [1,Hi,Wi,3] (normalised). Throws for a site outside the model or the map.
public func computeKernel(model: UnifiedModel, name: String, image: Tensor, site: KernelSite) throws -> KernelResult {
    let counts = model.blockCounts
    guard (1...counts.count).contains(site.stage) else {
        throw ToolError("--stage \(site.stage)", "is outside the model", hint: "stages 1 to \(counts.count)")
    }
    guard (1...counts[site.stage - 1]).contains(site.block) else {
        throw ToolError("--block \(site.block)", "is outside stage \(site.stage)", hint: "blocks 1 to \(counts[site.stage - 1])")
    }
    let input = model.blockInput(image, stage: site.stage - 1, index: site.block - 1).detached()  // [1,H,W,C]
    let (h, w, c) = (input.shape[1], input.shape[2], input.shape[3])
    guard (0..<w).contains(site.x) && (0..<h).contains(site.y) else {
        throw ToolError("--at \(site.x),\(site.y)", "is outside the \(w)x\(h) map of stage \(site.stage)",
                        hint: "x from 0 to \(w - 1), y from 0 to \(h - 1)")
    }
    guard let block = model.block(stage: site.stage - 1, index: site.block - 1) as? InspectableBlock else {
        throw ToolError(name, "its \(model.config.family) block cannot be inspected")
    }
    let kernel = block.aggregationKernel(input, y: site.y, x: site.x)
    let jac = jacobianNorm({ block.mixer($0) }, input: input, y: site.y, x: site.x)
    return KernelResult(model: name, mixer: model.config.family.mixerName, site: site, height: h, width: w, channels: c,
                        stride: model.stageStrides[site.stage - 1], kernel: kernel, jacobian: jac)
}

/// Marks map pixel (y, x) of a map drawn at `r` with `s` x `s` pixels per map pixel with a red square outline.
func markPosition(_ image: inout Image8, rect r: Rect, scale s: Int, y: Int, x: Int) {
    let pad = max(2, s / 2), thick = max(2, s / 4)
    let x0 = Int(r.x) + x * s - pad, y0 = Int(r.y) + y * s - pad, x1 = Int(r.x) + (x + 1) * s + pad, y1 = Int(r.y) + (y + 1) * s + pad
    for yy in y0..<y1 {
        for xx in x0..<x1 where yy >= 0 && yy < image.height && xx >= 0 && xx < image.width {
            guard yy < y0 + thick || yy >= y1 - thick || xx < x0 + thick || xx >= x1 - thick else { continue }
            let o = (yy * image.width + xx) * image.channels
            image.pixels[o] = 255
            if image.channels > 2 { image.pixels[o + 1] = 0; image.pixels[o + 2] = 0 }
        }
    }
}

/// A heatmap of `map` ([H*W]) with the site marked.
public func kernelFigure(_ map: [Float], result r: KernelResult, title: String, label: String) throws -> Image8 {
    var fig = HeatmapFigure(map: try ScalarMap(height: r.height, width: r.width, values: map), title: title)
    fig.colorbarLabel = label
    var img = try fig.render()
    let layout = try fig.layout()
    markPosition(&img, rect: layout.mapRects[0], scale: layout.scales[0], y: r.site.y, x: r.site.x)
    return img
}

/// The map over the image: resized to the image and blended, the site's receptive pixel marked.
public func kernelOverlay(_ map: [Float], result r: KernelResult, image: Image8) throws -> Image8 {
    var img = try OverlayFigure(map: try ScalarMap(height: r.height, width: r.width, values: map), image: image).render()
    markPosition(&img, rect: Rect(x: 0, y: 0, width: Double(img.width), height: Double(img.height)), scale: r.stride,
                 y: r.site.y, x: r.site.x)
    return img
}

/// The main map of a kernel: attention summed over heads (or one head), the DCNv3 footprints summed
/// over groups, the static kernel; the Jacobian where the mixer has no kernel of its own.
public func primaryMap(_ r: KernelResult, head: Int? = nil) -> [Float] {
    if r.kernel.kind == .none { return r.jacobian }
    if let head, r.kernel.kind == .attention, r.kernel.maps.indices.contains(head) { return r.kernel.maps[head] }
    return r.kernel.summed
}

/// Writes one model's files into `dir` and returns their names.
public func writeKernelFiles(_ r: KernelResult, image: Image8, head: Int?, to dir: String) throws -> [String] {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var written: [String] = []
    func png(_ img: Image8, _ name: String) throws {
        try PNGCodec.write(img, to: dir + "/" + name)
        written.append(name)
    }
    let where_ = "stage \(r.site.stage) block \(r.site.block) at (\(r.site.x), \(r.site.y))"
    let label: String
    switch r.kernel.kind {
    case .attention: label = head.map { "attention weight, head \($0)" } ?? "attention weight (sum over heads)"
    case .sampling: label = "sampling weight (sum over groups)"
    case .staticKernel: label = "mean |w| over channels"
    case .none: label = "Jacobian norm (no explicit kernel)"
    }
    let main = primaryMap(r, head: head)
    try png(try kernelFigure(main, result: r, title: "\(r.model) (\(r.mixer)): \(where_)", label: label), "kernel.png")
    try png(try kernelOverlay(main, result: r, image: image), "kernel_overlay.png")
    if r.kernel.kind == .attention && head == nil && r.kernel.maps.count > 1 {
        for (h, m) in r.kernel.maps.enumerated() {
            try png(try kernelFigure(m, result: r, title: "\(r.model): head \(h), \(where_)", label: "attention weight"), "kernel_head\(h).png")
        }
    }
    try png(try kernelFigure(r.jacobian, result: r, title: "\(r.model) (\(r.mixer)): Jacobian, \(where_)",
                             label: "||dM(p)/dX(k)||"), "jacobian.png")
    try png(try kernelOverlay(r.jacobian, result: r, image: image), "jacobian_overlay.png")
    var tensors: [(String, TensorRecord)] = [("jacobian", TensorRecord(shape: [r.height, r.width], values: r.jacobian))]
    if r.kernel.kind != .none {
        tensors.append(("maps", TensorRecord(shape: [r.kernel.maps.count, r.height, r.width], values: r.kernel.maps.flatMap { $0 })))
        tensors.append(("summed", TensorRecord(shape: [r.height, r.width], values: r.kernel.summed)))
        tensors.append(("raw", TensorRecord(shape: r.kernel.rawShape, values: r.kernel.raw)))
    }
    try SafeTensors.write(path: dir + "/kernel.safetensors", tensors: tensors,
                          metadata: ["kind": r.kernel.kind.rawValue, "model": r.model, "mixer": r.mixer,
                                     "stage": "\(r.site.stage)", "block": "\(r.site.block)", "x": "\(r.site.x)", "y": "\(r.site.y)"])
    written.append("kernel.safetensors")
    return written
}

/// Several models side by side: one panel per model (each normalised to its maximum, so that the
/// shapes compare), the site marked in each. `jacobian` picks the Jacobian view.
public func kernelComparisonFigure(_ results: [KernelResult], jacobian: Bool) throws -> Image8 {
    let panels = try results.map { r -> (map: ScalarMap, title: String) in
        let m = jacobian ? r.jacobian : primaryMap(r)
        let peak = m.map(abs).max() ?? 0
        return (try ScalarMap(height: r.height, width: r.width, values: peak > 0 ? m.map { $0 / peak } : m), r.mixer)
    }
    let s = results[0].site
    var fig = StageRowFigure(panels: panels, title: (jacobian ? "Jacobian norm" : "Aggregation kernel")
                             + ", stage \(s.stage) block \(s.block) at (\(s.x), \(s.y))")
    fig.colorbarLabel = "weight / max"
    var img = try fig.render()
    let layout = try fig.layout()
    for (i, r) in results.enumerated() {
        markPosition(&img, rect: layout.mapRects[i], scale: layout.scales[i], y: r.site.y, x: r.site.x)
    }
    return img
}
