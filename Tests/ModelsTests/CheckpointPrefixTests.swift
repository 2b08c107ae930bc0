// Checkpoints as users have them: the convnext nano weights saved under each wrapper's key prefix
// (DataParallel, Lightning, mmdetection with a neck beside the backbone, torch.compile, an encoder,
// nested prefixes, and one named with `keyPrefix`) load to the same logits as the plain file; a
// backbone-only checkpoint (no conv_head/head) loads in the headless form, runs features and the
// ERF gradient, and refuses classification in one line.

import Analysis
import Checkpoint
import Foundation
import Models
import TensorCore
import TestSupport
import XCTest

final class CheckpointPrefixTests: XCTestCase {
    private func write(_ entries: [(String, TensorRecord)], name: String) throws -> String {
        let path = temporaryDirectory() + "/\(name).safetensors"
        try SafeTensors.write(path: path, tensors: entries)
        return path
    }

    private func plain() throws -> [(String, TensorRecord)] {
        try readCheckpoint(path: referencePath("convnext_nano.pth")).entries
    }

    func testEveryKnownPrefixIsStrippedAndSaid() throws {
        let arch = referencePath("convnext_nano.json")
        let x = syntheticImage(side: 96)
        let reference = try ModelLoader.load(model: referencePath("convnext_nano.pth"), arch: arch).model.forward(x).logits!.values
        let neck = ("neck.lateral_convs.0.conv.weight", TensorRecord(shape: [2, 2], values: [1, 2, 3, 4]))
        let cases: [(prefix: String, extra: [(String, TensorRecord)], stripped: [String], setAside: Int)] = [
            ("module.", [], ["module."], 0),
            ("model.", [], ["model."], 0),
            ("backbone.", [neck], ["backbone."], 1),
            ("_orig_mod.", [], ["_orig_mod."], 0),
            ("encoder.", [], ["encoder."], 0),
            ("model.backbone.", [("model.neck.x", neck.1)], ["model.", "backbone."], 1),
        ]
        for c in cases {
            let path = try write(try plain().map { (c.prefix + $0.0, $0.1) } + c.extra, name: "prefixed")
            let loaded = try ModelLoader.load(model: path, arch: arch)
            XCTAssertEqual(loaded.prefixes.stripped, c.stripped, c.prefix)
            XCTAssertEqual(loaded.prefixes.setAside, c.setAside, c.prefix)
            XCTAssertEqual(loaded.form, .classifier, c.prefix)
            XCTAssertEqual(loaded.model.forward(x).logits!.values, reference, c.prefix)
            // Inference reads the architecture through the prefix too.
            XCTAssertEqual(try ModelLoader.load(model: path).config.dims, [16, 32, 64, 128], c.prefix)
        }
    }

    func testANamedPrefix() throws {
        let path = try write(try plain().map { ("net.trunk." + $0.0, $0.1) }, name: "named")
        XCTAssertThrowsError(try ModelLoader.load(model: path)) { error in
            XCTAssertTrue("\(error)".contains("not a known prefix") && "\(error)".contains("--key-prefix net.trunk."), "\(error)")
        }
        let loaded = try ModelLoader.load(model: path, keyPrefix: "net.trunk.")
        XCTAssertEqual(loaded.prefixes.stripped, ["net.trunk."])
        XCTAssertThrowsError(try ModelLoader.load(model: path, keyPrefix: "nope.")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("no model key starts with the --key-prefix 'nope.'"), text)
            XCTAssertFalse(text.contains("\n"), text)
        }
    }

    func testBackboneOnlyCheckpointRunsFeaturesButNotClassification() throws {
        let entries = try plain().filter { !$0.0.hasPrefix("conv_head.") && !$0.0.hasPrefix("head.") }
        let path = try write(entries.map { ("backbone." + $0.0, $0.1) }, name: "backbone_only")
        let loaded = try ModelLoader.load(model: path)  // architecture inferred without a head
        XCTAssertEqual(loaded.form, .headless)
        XCTAssertFalse(loaded.model.hasHead)
        XCTAssertTrue(loaded.notes.contains { $0.contains("no classification head") }, "\(loaded.notes)")
        let full = try ModelLoader.load(model: referencePath("convnext_nano.pth"), arch: referencePath("convnext_nano.json")).model
        let x = syntheticImage(side: 64)
        let a = loaded.model.forward(x, through: 4, logits: true), b = full.forward(x)
        XCTAssertNil(a.logits)
        XCTAssertEqual(a.stages.map(\.values), b.stages.map(\.values))
        XCTAssertEqual(a.strides, [4, 8, 16, 32])
        let maps = centreContributions(model: loaded.model, input: x, stages: [2])
        XCTAssertEqual(maps[2]?.values, centreContributions(model: full, input: x, stages: [2])[2]?.values)
        XCTAssertThrowsError(try classify(model: loaded.model, paths: [])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("has no classification head"), text)
            XCTAssertFalse(text.contains("\n"), text)
        }
    }
}
