// Mixers as a library user sees them: a sixth (toy) mixer added through the public registration
// path and run end to end (architecture JSON, model, key recognition, inference from a checkpoint);
// bad `block_kwargs` values of every built-in mixer, one error each naming the field; preset aliases
// and suggestions; two models running on two threads of one process at once.

import Checkpoint
import Foundation
import Models
import TensorCore
import TestSupport
import XCTest

extension Family {
    static let toy = Family("toy")
}

/// A toy mixer: LayerNorm, a channel MLP of width `expansion * C`, layer scale, residual.
struct ToySettings: MixerSettings, Equatable {
    var expansion: Int

    func validate(dims: [Int], source: String) throws {
        try requirePositive(expansion, "expansion", source: source)
    }
}

final class ToyBlock: Block {
    let toy_norm: LayerNorm
    let toy_proj: Mlp
    let gamma: Parameter

    init(dim: Int, expansion: Int, eps: Float) {
        toy_norm = LayerNorm(dim, eps: eps)
        toy_proj = Mlp(dim, hidden: expansion * dim)
        gamma = Parameter([dim], init: .layerScale)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { residual(x, toy_proj(toy_norm(x)), gamma) }
}

enum ToyMixer: Mixer {
    static let family = Family.toy
    static let presetName = "toy"
    static let blockClass = "ToyBlock"
    static let mixerName = "Toy"

    static func preset(scale: String) -> ArchConfig? { nil }
    static func makeBlock(_ ctx: BlockContext, settings: ToySettings) -> Block {
        ToyBlock(dim: ctx.dim, expansion: settings.expansion, eps: ctx.eps)
    }
    static func recognises(_ keys: [String]) -> Bool { keys.contains { $0.contains(".toy_proj.") } }
    static func inferSettings(from state: StateDict, dims: [Int], depths: [Int], path: String) throws
        -> (settings: ToySettings, assumptions: [String], imgSize: Int?) {
        let rows = try requireShape(state, "stages.0.0.toy_proj.fc1.weight", path: path)[0]
        return (ToySettings(expansion: rows / dims[0]), [], nil)
    }
}

final class MixerTests: XCTestCase {
    private func writeJSON(_ text: String) -> String {
        let path = temporaryDirectory() + "/arch.json"
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }

    func testASixthMixerThroughThePublicRegistry() throws {
        MixerRegistry.register(ToyMixer.self)
        XCTAssertTrue(Family.allCases.contains(.toy))
        XCTAssertEqual(Family.toy.mixerName, "Toy")
        let path = writeJSON("""
            {"family": "toy", "img_size": 224, "dims": [8, 16, 32, 64], "depths": [1, 2, 1, 1],
             "block_kwargs": {"expansion": 3}, "extra_transform_ratio": 1.5, "num_classes": 10, "layer_norm_eps": 1e-6}
            """)
        let config = try ArchConfig.load(path: path)
        XCTAssertEqual(try config.settings(ToySettings.self), ToySettings(expansion: 3))
        let model = UnifiedModel(config: config)
        model.initialize(seed: 1, layerScale: 0.5)
        let keys = model.namedParameters().map(\.0)
        XCTAssertTrue(keys.contains("stages.1.1.toy_proj.fc1.weight"), "\(keys.prefix(20))")
        let out = model.forward(syntheticImage(side: 64))
        XCTAssertEqual(out.stages.map(\.shape), [[1, 16, 16, 8], [1, 8, 8, 16], [1, 4, 4, 32], [1, 2, 2, 64]])
        XCTAssertEqual(try XCTUnwrap(out.logits).shape, [1, 10])
        XCTAssertTrue(out.logits!.values.allSatisfy(\.isFinite))

        // Its checkpoint is recognised and its settings inferred from the shapes.
        let state = StateDict(entries: model.namedParameters().map { ($0.0, TensorRecord(shape: $0.1.shape, values: $0.1.values)) })
        XCTAssertEqual(try ArchInference.family(of: state), .toy)
        let (inferred, _) = try ArchInference.infer(from: state, path: "toy.pth")
        XCTAssertEqual(try inferred.settings(ToySettings.self), ToySettings(expansion: 3))
        XCTAssertEqual(inferred.depths, [1, 2, 1, 1])
        let reloaded = UnifiedModel(config: inferred)
        XCTAssertTrue(reloaded.load(state).fits)
        XCTAssertEqual(reloaded.forward(syntheticImage(side: 64)).logits!.values, out.logits!.values)

        // Its own validation runs like the built-in ones'.
        let bad = writeJSON("""
            {"family": "toy", "img_size": 224, "dims": [8, 16, 32, 64], "depths": [1, 1, 1, 1],
             "block_kwargs": {"expansion": 0}, "extra_transform_ratio": 1.5, "num_classes": 10, "layer_norm_eps": 1e-6}
            """)
        XCTAssertThrowsError(try ArchConfig.load(path: bad)) { XCTAssertTrue("\($0)".contains("block_kwargs.expansion must be positive"), "\($0)") }
        // The twenty built-in presets are unchanged by the registration (the toy has none).
        XCTAssertEqual(Presets.names.count, 20)
    }

    func testUnknownFamilyIsOneError() throws {
        let path = writeJSON("""
            {"family": "mamba", "img_size": 224, "dims": [8, 16, 32, 64], "depths": [1, 1, 1, 1],
             "block_kwargs": {}, "extra_transform_ratio": 1.5, "num_classes": 10, "layer_norm_eps": 1e-6}
            """)
        XCTAssertThrowsError(try ArchConfig.load(path: path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("unknown family 'mamba'") && text.contains("swin"), text)
            XCTAssertFalse(text.contains("\n"), text)
        }
    }

    /// Each (family, block_kwargs) must fail with one line naming `field`.
    func testBadBlockSettingsAreOneErrorEach() throws {
        let cases: [(String, String, String)] = [
            ("swin", #"{"num_heads": [1, 2, 4, 8], "window_size": 0}"#, "block_kwargs.window_size must be positive"),
            ("swin", #"{"num_heads": [1, 2, 4, 8], "window_size": -7}"#, "block_kwargs.window_size must be positive"),
            ("swin", #"{"num_heads": [1, 2, 4]}"#, "block_kwargs.num_heads needs 4 entries"),
            ("swin", #"{"num_heads": [1, 2, 0, 8]}"#, "block_kwargs.num_heads[2] must be positive"),
            ("swin", #"{"num_heads": [1, 3, 4, 8]}"#, "block_kwargs.num_heads[1] = 3 does not divide dims[1] = 32"),
            ("swin", #"{"window_size": 7}"#, "block_kwargs.num_heads is missing"),
            ("swin", #"{"num_heads": [1, 2, 4, 8], "window_size": "7"}"#, "block_kwargs.window_size has the wrong type"),
            ("halo", #"{"num_heads": [1, 2, 4, 8], "block_size": 0, "halo_size": 3}"#, "block_kwargs.block_size must be positive"),
            ("halo", #"{"num_heads": [1, 2, 4, 8], "block_size": 7, "halo_size": -1}"#, "block_kwargs.halo_size must be positive"),
            ("halo", #"{"num_heads": [1, 2, 4, 8], "pos_embed_type": "query_free"}"#, "block_kwargs.pos_embed_type 'query_free'"),
            ("pvt", #"{"num_heads": [1, 2, 4, 8], "sr_ratios": [8, 4, 0, 1]}"#, "block_kwargs.sr_ratios[2] must be positive"),
            ("pvt", #"{"num_heads": [1, 2, 4, 8], "mlp_ratios": [8, 8, 4, -4]}"#, "block_kwargs.mlp_ratios[3] must be positive"),
            ("pvt", #"{"num_heads": [1, 2, 4, 8], "sr_ratios": [8, 4, 2]}"#, "block_kwargs.sr_ratios needs 4 entries"),
            ("dcnv3", #"{"num_heads": [1, 2, 4, 8], "deform_points": 0}"#, "block_kwargs.deform_points must be positive"),
            ("dcnv3", #"{"num_heads": [1, 2, 4, 8], "kernel_size": 0}"#, "block_kwargs.kernel_size must be positive"),
            ("dcnv3", #"{"num_heads": [1, 2, 4, 8], "kernel_size": 4}"#, "block_kwargs.kernel_size must be odd"),
        ]
        for (family, kwargs, message) in cases {
            let path = writeJSON("""
                {"family": "\(family)", "img_size": 224, "dims": [16, 32, 64, 128], "depths": [2, 2, 2, 2],
                 "block_kwargs": \(kwargs), "extra_transform_ratio": 1.5, "num_classes": 1000, "layer_norm_eps": 1e-6}
                """)
            XCTAssertThrowsError(try ArchConfig.load(path: path), "\(family) \(kwargs)") { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(message), "\(family) \(kwargs): \(text)")
                XCTAssertTrue(text.contains(path), text)
                XCTAssertFalse(text.contains("\n"), text)
            }
        }
    }

    func testPresetAliasesAndSuggestions() throws {
        XCTAssertEqual(Presets.named("unified_halonet_tiny"), Presets.named("unified_halo_tiny"))
        XCTAssertEqual(Presets.named("unified_internimage_base"), Presets.named("unified_dcn_v3_base"))
        XCTAssertEqual(Presets.named("unified_internimage_base")?.name, "unified_dcn_v3_base")
        XCTAssertNil(Presets.named("unified_halonet_huge"))
        XCTAssertThrowsError(try ModelLoader.load(model: "unified_swin_huge")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("unified_swin_huge: no such file or preset"), text)
            XCTAssertTrue(text.contains("closest presets: unified_swin_"), text)
        }
        XCTAssertThrowsError(try ModelLoader.resolveArch("unified_swim_tiny")) { error in
            XCTAssertTrue("\(error)".contains("closest presets: unified_swin_tiny"), "\(error)")
        }
    }

    /// Two different models, each on its own thread, at the same time: each must give exactly what it
    /// gives alone (geometry caches and the worker pool are shared state).
    func testTwoModelsOnTwoThreadsAtOnce() throws {
        let swin = try ModelLoader.load(model: referencePath("swin_nano.pth"), arch: referencePath("swin_nano.json")).model
        let halo = try ModelLoader.load(model: referencePath("halo_nano.pth"), arch: referencePath("halo_nano.json")).model
        let inputs = [syntheticImage(side: 288), syntheticImage(side: 320)]
        let alone = [swin.forward(inputs[0]).logits!.values, halo.forward(inputs[1]).logits!.values]
        // Fresh models too, so that the threads also race to fill the geometry caches.
        let fresh = [try ModelLoader.load(model: referencePath("swin_nano.pth"), arch: referencePath("swin_nano.json")).model,
                     try ModelLoader.load(model: referencePath("halo_nano.pth"), arch: referencePath("halo_nano.json")).model]
        let results = ResultBox(count: 4)
        let group = DispatchGroup()
        for (i, model) in [swin, halo, fresh[0], fresh[1]].enumerated() {
            let thread = Thread {
                var last: [Float] = []
                for _ in 0..<3 { last = model.forward(inputs[i % 2]).logits!.values }
                results.set(i, last)
                group.leave()
            }
            group.enter()
            thread.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 300), .success)
        for i in 0..<4 { XCTAssertEqual(results.get(i), alone[i % 2], "model \(i) on its own thread") }
    }
}

/// Results written from several threads.
private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [[Float]]
    init(count: Int) { values = Array(repeating: [], count: count) }
    func set(_ i: Int, _ v: [Float]) { lock.lock(); values[i] = v; lock.unlock() }
    func get(_ i: Int) -> [Float] { lock.lock(); defer { lock.unlock() }; return values[i] }
}
