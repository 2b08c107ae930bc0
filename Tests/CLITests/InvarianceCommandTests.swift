// stm-analyze invariance end to end: on the eight labelled images with two nano fixtures, consistency is
// 100 % at level 0, the JSON and CSV agree, and consistency and accuracies at a rotation equal what
// `classify` finds on the same rotated images; the plot decodes through libpng to the stated size and
// shows both curves; translate (with shift pairs) and scale runs without labels, byte-identical when
// repeated with another thread count; bad input gives one error line, exit 1 and no files.

import Analysis
import Foundation
import Imaging
import Rendering
import TestSupport
import XCTest

final class InvarianceCommandTests: XCTestCase {
    let imageFolder = sharedDirectory() + "/images/imagenet-val"
    var swin: [String] { ["--model", referencePath("swin_nano.pth"), "--arch", referencePath("swin_nano.json")] }

    func readJSON(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// classify's top-5 classes per image file name.
    func classifyTop5(model: String, arch: String, images: [String], extra: [String] = [], dir: String) throws -> [String: [Int]] {
        let json = dir + "/classify-\(UUID().uuidString).json"
        let run = try runTool(["classify", "--model", model, "--arch", arch, "--images"] + images + extra + ["--top", "5", "--json", json])
        XCTAssertEqual(run.status, 0, run.stderr)
        var table: [String: [Int]] = [:]
        for entry in try XCTUnwrap(try readJSON(json)["images"] as? [[String: Any]]) {
            let name = URL(fileURLWithPath: try XCTUnwrap(entry["path"] as? String)).deletingPathExtension().lastPathComponent
            table[name] = try XCTUnwrap(entry["top"] as? [[String: Any]]).compactMap { $0["class"] as? Int }
        }
        return table
    }

    /// For each colour, the pixels within `tolerance` of it in every channel (one pass over the image).
    func counts(_ colors: [Color], in image: Image8, tolerance: Int = 12) -> [Int] {
        let targets = colors.map { c in [c.red, c.green, c.blue].map { Int(($0 * 255).rounded()) } }
        var n = [Int](repeating: 0, count: colors.count)
        image.pixels.withUnsafeBufferPointer { px in
            var p = 0
            while p + 2 < px.count {
                let (r, g, b) = (Int(px[p]), Int(px[p + 1]), Int(px[p + 2]))
                for (k, t) in targets.enumerated()
                where abs(r - t[0]) <= tolerance && abs(g - t[1]) <= tolerance && abs(b - t[2]) <= tolerance {
                    n[k] += 1
                }
                p += image.channels
            }
        }
        return n
    }

    func testRotateTwoFixturesAgainstClassify() throws {
        let dir = temporaryDirectory("invariance-rotate")
        let names = try FileManager.default.contentsOfDirectory(atPath: imageFolder).filter { $0.hasSuffix(".JPEG") }.sorted()
        XCTAssertEqual(names.count, 8)
        let images = names.map { imageFolder + "/" + $0 }
        let models = [("swin", referencePath("swin_nano.pth"), referencePath("swin_nano.json")),
                      ("convnext", referencePath("convnext_nano.pth"), referencePath("convnext_nano.json"))]

        // Labels: swin's own standard top-1, so that accuracy is not trivially zero for random fixtures.
        var standard: [String: [String: [Int]]] = [:]
        for (name, model, arch) in models { standard[name] = try classifyTop5(model: model, arch: arch, images: images, dir: dir) }
        let stem = { (n: String) in URL(fileURLWithPath: n).deletingPathExtension().lastPathComponent }
        let labels = names.map { standard["swin"]![stem($0)]![0] }
        let labelsFile = dir + "/labels.txt"
        try zip(names, labels).map { "\($0) \($1)" }.joined(separator: "\n").write(toFile: labelsFile, atomically: true, encoding: .utf8)

        let out = dir + "/out"
        var args = ["invariance", "rotate"]
        for (_, model, arch) in models { args += ["--model", model, "--arch", arch] }
        args += ["--images", imageFolder, "--labels", labelsFile, "--levels", "0,30", "--batch", "6", "--out", out]
        let run = try runTool(args)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("mean"), run.stdout)

        let doc = try readJSON(out + "/rotate.json")
        XCTAssertEqual(doc["kind"] as? String, "rotate")
        XCTAssertEqual(doc["level_order"] as? [String], ["0", "30"])
        XCTAssertEqual(doc["labelled"] as? Bool, true)
        let results = try XCTUnwrap(doc["models"] as? [[String: Any]])
        XCTAssertEqual(results.map { $0["label"] as? String }, ["swin_nano", "convnext_nano"])

        // The rotated images, classified by `classify` (224 px PNGs: its transform leaves them as they are).
        let rotatedDir = dir + "/rotated"
        try FileManager.default.createDirectory(atPath: rotatedDir, withIntermediateDirectories: true)
        for name in names {
            let rotated = rotateTransform(try loadImage(path: imageFolder + "/" + name), degrees: 30, preCrop: false)
            try PNGCodec.write(rotated, to: "\(rotatedDir)/\(stem(name)).png")
        }
        for ((family, model, arch), result) in zip(models, results) {
            let levels = try XCTUnwrap(result["levels"] as? [String: [String: Double]])
            XCTAssertEqual(Set(levels.keys), ["0", "30"])
            XCTAssertEqual(levels["0"]?["consistency"], 100, family)
            XCTAssertEqual(result["mean_consistency"] as? Double ?? -1,
                           ((levels["0"]?["consistency"] ?? 0) + (levels["30"]?["consistency"] ?? 0)) / 2, accuracy: 1e-9)
            let rotated = try classifyTop5(model: model, arch: arch, images: [rotatedDir], extra: ["--size", "224", "--crop-pct", "1"], dir: dir)
            var same = 0, top1 = 0, top5 = 0
            for (file, label) in zip(names, labels) {
                let top = try XCTUnwrap(rotated[stem(file)])
                if top[0] == standard[family]?[stem(file)]?.first { same += 1 }
                if top[0] == label { top1 += 1 }
                if top.contains(label) { top5 += 1 }
            }
            let at30 = try XCTUnwrap(levels["30"])
            XCTAssertEqual(at30["consistency"] ?? -1, 100 * Double(same) / 8, accuracy: 1e-9, family)
            XCTAssertEqual(at30["acc1"] ?? -1, 100 * Double(top1) / 8, accuracy: 1e-9, family)
            XCTAssertEqual(at30["acc5"] ?? -1, 100 * Double(top5) / 8, accuracy: 1e-9, family)
            XCTAssertGreaterThanOrEqual(at30["kl"] ?? -1, 0)
        }
        XCTAssertEqual(results[0]["levels"].flatMap { ($0 as? [String: [String: Double]])?["0"]?["acc1"] }, 100,
                       "swin is labelled with its own standard predictions")

        // The CSV holds the same numbers.
        let csv = try String(contentsOfFile: out + "/rotate.csv", encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(csv.first, ["model", "label", "level", "consistency", "acc1", "acc5", "ce", "kl"])
        XCTAssertEqual(csv.count, 1 + 2 * 2)
        for row in csv.dropFirst() {
            let result = try XCTUnwrap(results.first { $0["label"] as? String == row[1] })
            XCTAssertEqual(result["model"] as? String, row[0])
            let level = try XCTUnwrap((result["levels"] as? [String: [String: Double]])?[row[2]])
            for (column, key) in [(3, "consistency"), (4, "acc1"), (5, "acc5"), (6, "ce"), (7, "kl")] {
                let value = try XCTUnwrap(Double(row[column]), row[column])
                XCTAssertEqual(value, level[key] ?? .nan, accuracy: 1e-12 * max(1, abs(value)), "\(row[1]) \(row[2]) \(key)")
            }
        }

        // The plot: the stated size, not blank, one curve per model in the first two tab10 colours.
        let png = try PNGCodec.read(path: out + "/rotate.png")
        let size = invarianceFigureSize(panels: 2)
        XCTAssertEqual(png.width, size.width)
        XCTAssertEqual(png.height, size.height)
        let white = counts([.white], in: png, tolerance: 2)[0]
        XCTAssertLessThan(white, png.width * png.height * 97 / 100, "the figure is nearly blank")
        let curves = counts([Palette.color(0), Palette.color(1), Palette.color(2)], in: png)
        XCTAssertGreaterThan(curves[0], 300, "no first curve")
        XCTAssertGreaterThan(curves[1], 300, "no second curve")
        XCTAssertLessThan(curves[2], 50, "a third curve where two were asked for")
    }

    func testTranslateWithPairsAndScaleWithoutLabels() throws {
        let dir = temporaryDirectory("invariance-translate")
        let images = [imageFolder + "/ILSVRC2012_val_00000004.JPEG", imageFolder + "/ILSVRC2012_val_00000160.JPEG"]
        let convnext = ["--model", referencePath("convnext_nano.pth"), "--arch", referencePath("convnext_nano.json")]
        var outputs: [[Data]] = []
        for threads in ["1", "2"] {
            let out = dir + "/translate-\(threads)"
            let run = try runTool(["invariance", "translate"] + convnext + ["--images"] + images
                                  + ["--levels", "0", "32", "--pairs", "--pair-rounds", "2", "--seed", "3", "--threads", threads, "--out", out])
            XCTAssertEqual(run.status, 0, run.stderr)
            outputs.append(try ["translate.json", "translate.csv", "translate.png"].map { try Data(contentsOf: URL(fileURLWithPath: "\(out)/\($0)")) })
        }
        XCTAssertEqual(outputs[0], outputs[1], "outputs differ with the thread count")
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: outputs[0][0]) as? [String: Any])
        XCTAssertEqual(doc["labelled"] as? Bool, false)
        XCTAssertEqual((doc["protocol"] as? [String: Any])?["directions"] as? Int, 8)
        let model = try XCTUnwrap((doc["models"] as? [[String: Any]])?.first)
        let shift = try XCTUnwrap(model["shift_consistency"] as? Double)
        XCTAssertTrue([0, 25, 50, 75, 100].contains(shift), "two images x two pairs: \(shift)")
        let levels = try XCTUnwrap(model["levels"] as? [String: [String: Double]])
        XCTAssertEqual(Set(levels.keys), ["0", "32"])
        XCTAssertNil(levels["32"]?["acc1"])
        XCTAssertEqual(String(decoding: outputs[0][1], as: UTF8.self).split(separator: "\n").first, "model,label,level,consistency,ce,kl")
        let png = try PNGCodec.decode([UInt8](outputs[0][2]), path: "translate.png")
        XCTAssertEqual(png.width, invarianceFigureSize(panels: 1).width)
        XCTAssertEqual(png.height, invarianceFigureSize(panels: 1).height)

        // Scale: crop ratio 0.875 is the standard transform itself.
        let out = dir + "/scale"
        let run = try runTool(["invariance", "scale"] + swin + ["--images"] + images + ["--levels", "0.5,0.875", "--out", out])
        XCTAssertEqual(run.status, 0, run.stderr)
        let scale = try XCTUnwrap((try readJSON(out + "/scale.json")["models"] as? [[String: Any]])?.first?["levels"] as? [String: [String: Double]])
        XCTAssertEqual(scale["0.875"]?["consistency"], 100)
        XCTAssertEqual(scale["0.875"]?["kl"] ?? -1, 0, accuracy: 1e-12)
        XCTAssertNotNil(scale["0.5"]?["consistency"])
    }

    func assertFailsCleanly(_ args: [String], mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let out = temporaryDirectory("invariance-bad") + "/out"
        let run = try runTool(["invariance"] + args + ["--out", out])
        XCTAssertEqual(run.status, 1, "\(args): \(run.stderr)", file: file, line: line)
        let lines = run.stderr.split(separator: "\n").filter { !$0.hasPrefix("warning:") }
        XCTAssertEqual(lines.count, 1, run.stderr, file: file, line: line)
        XCTAssertTrue(lines.first?.hasPrefix("stm-analyze: error: ") ?? false, run.stderr, file: file, line: line)
        for m in mentions { XCTAssertTrue(run.stderr.contains(m), "error should mention '\(m)': \(run.stderr)", file: file, line: line) }
        XCTAssertFalse(run.stderr.contains("Fatal error"), file: file, line: line)
        let written = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        XCTAssertEqual(written, [], "files written despite the error", file: file, line: line)
    }

    func testBadInput() throws {
        let dir = temporaryDirectory("invariance-bad-input")
        let image = imageFolder + "/ILSVRC2012_val_00000004.JPEG"
        // A labels file naming an image that does not exist.
        let stray = dir + "/stray.txt"
        try (try String(contentsOfFile: imageFolder + "/labels.txt", encoding: .utf8) + "\nILSVRC2012_val_99999999.JPEG 5\n")
            .write(toFile: stray, atomically: true, encoding: .utf8)
        try assertFailsCleanly(["rotate"] + swin + ["--images", imageFolder, "--labels", stray, "--levels", "0"],
                               mentions: [stray, "ILSVRC2012_val_99999999.JPEG", "not among the images"])
        // A class index the model does not have.
        let unknown = dir + "/unknown.txt"
        try "ILSVRC2012_val_00000004.JPEG 1000\n".write(toFile: unknown, atomically: true, encoding: .utf8)
        try assertFailsCleanly(["rotate"] + swin + ["--images", image, "--labels", unknown, "--levels", "0"],
                               mentions: [unknown, "line 1", "class index 1000"])
        // Empty, repeated and malformed levels.
        try assertFailsCleanly(["rotate"] + swin + ["--images", image, "--levels", ""], mentions: ["--levels", "no levels"])
        try assertFailsCleanly(["rotate"] + swin + ["--images", image, "--levels", "5,5"], mentions: ["--levels", "repeats"])
        try assertFailsCleanly(["translate"] + swin + ["--images", image, "--levels", "4.5"], mentions: ["--levels", "whole number"])
        // Options that do not fit together.
        try assertFailsCleanly(["rotate", "--model", "a.pth", "--model", "b.pth", "--arch", "x", "--arch", "y", "--arch", "z", "--images", image],
                               mentions: ["--arch", "3 times for 2"])
        try assertFailsCleanly(["translate"] + swin + ["--images", image, "--pre-crop"], mentions: ["--pre-crop"])
        try assertFailsCleanly(["rotate"] + swin + ["--images", image, "--pairs"], mentions: ["--pairs", "translate only"])
        try assertFailsCleanly(["spin"] + swin + ["--images", image], mentions: ["spin"])
        try assertFailsCleanly(["rotate", "--model", dir + "/missing.pth", "--images", image], mentions: [dir + "/missing.pth"])
    }
}
