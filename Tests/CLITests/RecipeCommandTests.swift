// stm-analyze run: a recipe runs its steps for each model and draws its figures; a second run skips
// every step and figure (inputs unchanged); a changed setting or --force redoes the work; a bad recipe is one error line naming the
// file and the key; every shipped recipe in analyses/ parses (--dry-run).

import Foundation
import TestSupport
import XCTest

final class RecipeCommandTests: XCTestCase {
    private func write(_ text: String, _ name: String = "recipe.yaml") throws -> String {
        let path = temporaryDirectory("recipe") + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func recipe(size: Int) -> String {
        """
        name: tiny
        images: [assets/photos/\(try! FileManager.default.contentsOfDirectory(atPath: packageRoot() + "/assets/photos").filter { $0.hasSuffix(".jpg") }.sorted()[0])]
        models:
          - {label: A, model: unified_convnext_micro, init_layer_scale: 1}
          - {label: B, model: unified_swin_micro, init_layer_scale: 1}
        steps:
          - erf: {num_images: 1, size: \(size), stages: "3,4"}
        figures:
          - {kind: erf-bars, step: erf, out: bars, threshold: 0.5}
        """
    }

    func testARecipeRunsThenSkipsUnchangedWork() throws {
        let out = temporaryDirectory("recipe-out")
        let path = try write(recipe(size: 64))
        let first = try runTool(["run", path, "--out", out])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("recipe tiny: 3 run, 0 unchanged"), first.stdout)
        for f in ["erf/A/erf.json", "erf/B/erf_stage4.safetensors", "bars.png", "bars.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/\(f)"), f)
        }
        let bars = try Data(contentsOf: URL(fileURLWithPath: out + "/bars.svg"))
        XCTAssertTrue(String(decoding: bars, as: UTF8.self).contains(">A</text>"), "legend names from the recipe's labels")

        let second = try runTool(["run", path, "--out", out])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.stdout.contains("0 run, 3 unchanged and skipped"), second.stdout)

        // A changed setting redoes the steps (and so the figure, whose inputs changed).
        try recipe(size: 96).write(toFile: path, atomically: true, encoding: .utf8)
        let changed = try runTool(["run", path, "--out", out])
        XCTAssertTrue(changed.stdout.contains("3 run, 0 unchanged"), changed.stdout)
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/erf/A/erf.json"))) as? [String: Any]
        XCTAssertEqual(doc?["size"] as? Int, 96)
        let forced = try runTool(["run", path, "--out", out, "--force"])
        XCTAssertTrue(forced.stdout.contains("3 run, 0 unchanged"), forced.stdout)
        // A deleted result is redone even though its key is still there; the figure, whose inputs come
        // back byte for byte, is not.
        try FileManager.default.removeItem(atPath: out + "/erf/B/erf.json")
        let repaired = try runTool(["run", path, "--out", out])
        XCTAssertTrue(repaired.stdout.contains("1 run, 2 unchanged"), repaired.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/erf/B/erf.json"))
    }

    func testBadRecipesAreOneErrorLine() throws {
        let cases: [(String, String)] = [
            ("name: x\nimages: [a]\nmodels: []\nsteps: [{erf: {}}]\n", "models: needs a list of models"),
            ("images: [a]\nmodels: [{model: m}]\nsteps: [{erf: {}}]\ncolour: red\n", "colour: unknown key"),
            ("images: [a]\nmodels: [{model: m}]\nsteps: [{invariance: {kind: twist}}]\n", "steps[0].invariance.kind: must be translate, rotate or scale"),
            ("images: [a]\nmodels: [{model: m}]\nsteps: [{erf: {out: x}}]\n", "steps[0].out: is set by the recipe"),
            ("images: [a]\nmodels: [{model: m}]\nsteps: [{erf: {}}]\nfigures: [{kind: erf-bars, step: nope}]\n", "figures[0].step: must name a step"),
            ("images: [a\nmodels: {\n", "not valid YAML"),
        ]
        for (text, expected) in cases {
            let path = try write(text)
            let run = try runTool(["run", path, "--dry-run"])
            XCTAssertEqual(run.status, 1, text)
            XCTAssertTrue(run.stderr.contains(path) && run.stderr.contains(expected), "\(expected): \(run.stderr)")
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
        }
    }

    func testEveryShippedRecipeParses() throws {
        let dir = packageRoot() + "/analyses"
        let recipes = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertEqual(recipes, ["box_consistency.yaml", "erf50.yaml", "erf_maps.yaml", "invariance.yaml"])
        for r in recipes {
            let run = try runTool(["run", "analyses/" + r, "--dry-run"])
            XCTAssertEqual(run.status, 0, "\(r): \(run.stderr)")
            XCTAssertTrue(run.stdout.contains("--init-layer-scale 1") && run.stdout.contains("assets/photos"), "\(r) runs on presets and the bundled photos")
        }
        // No Python anywhere in the recipes and scripts.
        for f in try FileManager.default.contentsOfDirectory(atPath: dir) {
            let text = try String(contentsOfFile: dir + "/" + f, encoding: .utf8)
            XCTAssertFalse(text.contains("python"), "\(f) uses Python")
        }
    }
}
