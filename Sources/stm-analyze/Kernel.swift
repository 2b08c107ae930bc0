// stm-analyze kernel: the aggregation kernel of one token mixer at one output position, for one or
// more models (Analysis/Kernel.swift does the work; this file parses options and prints).

import Analysis
import ArgumentParser
import Foundation
import Imaging
import Models
import TensorCore

struct Kernel: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Aggregation kernel of one mixer at one position: attention, sampling points, static kernel, Jacobian.",
        discussion: """
            For block B of stage S and map position p = (x, y) of the block's input map: attention weights \
            per head and summed (Swin, halo, PVT), DCNv3's sampling points with their bilinear footprints, the \
            static 7x7 kernel of U-DWConv (mean |w| over channels), and for every mixer the Jacobian norm \
            ||dM(p)/dX(k)|| of the token-mixing branch (before layer scale) at each input position k. \
            Written per model under --out/<model>: kernel.png, jacobian.png (p marked, colour bar), \
            kernel_head<h>.png, kernel_overlay.png and jacobian_overlay.png over the image, kernel.safetensors. \
            With several --model, kernel_models.png and jacobian_models.png set them side by side.
            """)

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Checkpoints or presets (one or more).", valueName: "ckpt|preset"))
    var model: [String]

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Architectures: none, or one per --model.", valueName: "preset|file"))
    var arch: [String] = []

    @OptionGroup var loading: LoadOptions

    @Option(name: .long, help: ArgumentHelp("The image (its first file when a folder).", valueName: "path"))
    var images: String

    @Option(name: .long, help: "Stage, 1-based.")
    var stage: Int

    @Option(name: .long, help: "Block within the stage, 1-based.")
    var block = 1

    @Option(name: .long, help: ArgumentHelp("Map position x,y of the block's input map (0-based column, row).", valueName: "x,y"))
    var at: String

    @Option(name: .long, help: "Draw this head (0-based) instead of the sum over heads.")
    var head: Int?

    @Option(name: .long, help: "Input side in pixels (Resize((size, size)), as erf does).")
    var size = 224

    @Option(name: .long, help: ArgumentHelp("Output folder (default outputs/kernel).", valueName: "dir"))
    var out = "outputs/kernel"

    @OptionGroup var runtime: RuntimeOptions

    var position: (x: Int, y: Int)? {
        let parts = at.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let x = parts[0], let y = parts[1] else { return nil }
        return (x, y)
    }

    func validate() throws {
        if position == nil { throw ValidationError("--at takes x,y (two whole numbers), got '\(at)'") }
        if !arch.isEmpty && arch.count != model.count { throw ValidationError("--arch: give none or one per --model (\(model.count))") }
        if let head, head < 0 { throw ValidationError("--head must be 0 or more") }
        if size < 32 { throw ValidationError("--size must be at least 32") }
    }

    func run() throws {
        runtime.apply()
        guard let file = try listImages([images]).first else { throw CLIError("--images \(images): no image found") }
        let picture = squareResize(try loadImage(path: file), size: size)
        let (x, y) = position!
        var results: [KernelResult] = []
        for (i, m) in model.enumerated() {
            let loaded = try loading.load(model: m, arch: arch.isEmpty ? nil : arch[i])
            let name = loaded.displayName
            guard let unified = loaded.unified else {
                throw CLIError("\(name): kernel views the study's token mixers; \(loaded.config.family.rawValue) models have none (erf, classify and invariance take them)")
            }
            let input = Tensor(shape: [1, size, size, 3],
                               values: toTensorHWC(picture, mean: unified.normalization.mean, std: unified.normalization.std))
            let r = try computeKernel(model: unified, name: name, image: input,
                                      site: KernelSite(stage: stage, block: block, y: y, x: x))
            if let head, r.kernel.kind == .attention, head >= r.kernel.maps.count {
                throw CLIError("--head \(head): \(name) has \(r.kernel.maps.count) heads in stage \(stage)")
            }
            let dir = out + "/" + safeName(name)
            let files = try writeKernelFiles(r, image: picture, head: head, to: dir)
            print("\(name) (\(r.mixer)), stage \(stage) block \(block) at (\(x), \(y)) of \(r.width)x\(r.height): "
                  + "\(r.kernel.kind.rawValue) kernel; wrote \(dir)/{\(files.joined(separator: ","))}")
            results.append(r)
        }
        if results.count > 1 {
            try PNGCodec.write(try kernelComparisonFigure(results, jacobian: false), to: out + "/kernel_models.png")
            try PNGCodec.write(try kernelComparisonFigure(results, jacobian: true), to: out + "/jacobian_models.png")
            print("wrote \(out)/kernel_models.png, \(out)/jacobian_models.png")
        }
    }
}
