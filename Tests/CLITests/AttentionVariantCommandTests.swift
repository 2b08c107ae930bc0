// stm-analyze erf and invariance on untrained micro models of every attention variant, chosen in
// --arch block_kwargs; and the variants' bad input: an unknown activation name, a LayerNorm variant
// whose checkpoint lacks the parameters: one error line each. stm-analyze kernel on the five mixers
// at one position (files and the side-by-side figure), and --at outside the map.

import Foundation
import TestSupport
import XCTest

final class AttentionVariantCommandTests: XCTestCase {
    /// An architecture JSON of a small model of `family` with `kwargs` added to its block_kwargs.
    private func arch(_ family: String, _ kwargs: [String: String], in dir: String) throws -> String {
        var block: [String: Any] = ["num_heads": [1, 2, 4, 8]]
        if family == "swin" { block["window_size"] = 7 }
        if family == "pvt" { block["sr_ratios"] = [8, 4, 2, 1] }
        for (k, v) in kwargs { block[k] = v }
        let doc: [String: Any] = ["family": family, "img_size": 224, "dims": [16, 32, 64, 128], "depths": [1, 2, 1, 1],
                                  "block_kwargs": block, "extra_transform_ratio": 1.5, "eval_size": 224,
                                  "num_classes": 1000, "layer_norm_eps": 1e-6]
        let name = ([family] + kwargs.keys.sorted().map { kwargs[$0]! }).joined(separator: "_")
        let path = "\(dir)/\(name).json"
        try JSONSerialization.data(withJSONObject: doc).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testErfAndInvarianceRunOnEveryVariant() throws {
        let dir = temporaryDirectory()
        let photos = packageRoot() + "/assets/photos"
        var variants: [(String, [String: String])] = []
        for a in ["softmax", "scale", "scale-relu", "layernorm", "layernorm-relu"] {
            for family in ["swin", "halo", "pvt"] { variants.append((family, ["attention_activation": a])) }
        }
        variants.append(("swin", ["attention_activation": "scale", "attention_scale": "head_dim"]))
        variants.append(("swin", ["attention_kind": "depthwise"]))
        for (family, kwargs) in variants {
            let path = try arch(family, kwargs, in: dir)
            let model = ["--model", "unified_\(family)_micro", "--arch", path, "--init-layer-scale", "1"]
            let erfOut = dir + "/erf_" + URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            let erf = try runTool(["erf"] + model + ["--images", photos, "--num-images", "1", "--out", erfOut])
            XCTAssertEqual(erf.status, 0, "\(family) \(kwargs): \(erf.stderr)")
            let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: erfOut + "/erf.json"))) as? [String: Any]
            XCTAssertEqual((doc?["stages"] as? [String: Any])?.count, 4, "\(family) \(kwargs)")
            let invOut = erfOut.replacingOccurrences(of: "/erf_", with: "/inv_")
            let inv = try runTool(["invariance", "scale"] + model + ["--images", photos, "--levels", "0.5,0.875", "--out", invOut])
            XCTAssertEqual(inv.status, 0, "\(family) \(kwargs): \(inv.stderr)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: invOut + "/scale.json"), "\(family) \(kwargs)")
        }
    }

    private func assertOneLineError(_ run: ToolRun, mentions: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(run.status, 1, run.stderr, file: file, line: line)
        let lines = run.stderr.split(separator: "\n").filter { !$0.hasPrefix("warning:") }
        XCTAssertEqual(lines.count, 1, run.stderr, file: file, line: line)
        for m in mentions { XCTAssertTrue(run.stderr.contains(m), "'\(m)' not in: \(run.stderr)", file: file, line: line) }
    }

    func testBadVariants() throws {
        let dir = temporaryDirectory()
        let photos = packageRoot() + "/assets/photos"
        let unknown = try arch("halo", ["attention_activation": "sigmoid"], in: dir)
        assertOneLineError(try runTool(["erf", "--model", "unified_halo_micro", "--arch", unknown, "--images", photos, "--out", dir + "/x"]),
                           mentions: ["attention_activation 'sigmoid' is unknown", "softmax, scale, scale-relu, layernorm, layernorm-relu"])
        let kind = try arch("pvt", ["attention_kind": "depthwise"], in: dir)
        assertOneLineError(try runTool(["erf", "--model", "unified_pvt_micro", "--arch", kind, "--images", photos, "--out", dir + "/x"]),
                           mentions: ["attention_kind 'depthwise' is offered by the swin block only"])
        // A trained softmax checkpoint read as a LayerNorm variant: its logit_norm keys are missing.
        var doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: referencePath("swin_nano.json")))) as? [String: Any])
        var block = try XCTUnwrap(doc["block_kwargs"] as? [String: Any])
        block["attention_activation"] = "layernorm"
        doc["block_kwargs"] = block
        let ln = dir + "/nano_layernorm.json"
        try JSONSerialization.data(withJSONObject: doc).write(to: URL(fileURLWithPath: ln))
        assertOneLineError(try runTool(["erf", "--model", referencePath("swin_nano.pth"), "--arch", ln, "--images", photos, "--out", dir + "/y"]),
                           mentions: ["missing", "stages.0.0.attn.logit_norm.weight"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/y/erf.json"))
    }

    func testKernelOfTheFiveMixers() throws {
        let dir = temporaryDirectory()
        let photo = packageRoot() + "/assets/photos/rocket.jpg"
        let models = ["convnext", "swin", "halo", "pvt", "dcn_v3"].map { "unified_\($0)_micro" }
        let run = try runTool(["kernel", "--model"] + models + ["--init-layer-scale", "1", "--images", photo,
                               "--stage", "2", "--at", "10,12", "--out", dir + "/k"])
        XCTAssertEqual(run.status, 0, run.stderr)
        for m in models {
            for f in ["kernel.png", "jacobian.png", "kernel_overlay.png", "kernel.safetensors"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/k/\(m)_untrained/\(f)"), "\(m) \(f)")
            }
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/k/kernel_models.png"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/k/jacobian_models.png"))
        assertOneLineError(try runTool(["kernel", "--model", "unified_swin_micro", "--images", photo, "--stage", "2",
                                        "--at", "40,3", "--out", dir + "/k2"]),
                           mentions: ["--at 40,3", "outside the 28x28 map of stage 2"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/k2"))
    }
}
