// Sharded runs merge exactly (README, "Sharded runs"): `erf` and `invariance` split into 1, 2 and 4
// shards (`--shard i/n`) and combined with `stm-analyze merge` write the files one run over all images
// writes, byte for byte apart from the provenance block; the 4-way run is a shell loop over shards, as
// CI runs it on one machine. Also: image lists from files (@list.txt), a run replaces the previous
// results of its folder as a whole, the provenance block, erf.csv and per-image invariance rows, and
// merge's refusals (a missing or repeated shard, shards of different runs).

import Foundation
import TestSupport
import XCTest

final class ShardingTests: XCTestCase {
    private let imageFolder = "../shared/images/imagenet-val"
    private var images: [String] {
        ["ILSVRC2012_val_00000004.JPEG", "ILSVRC2012_val_00000019.JPEG", "ILSVRC2012_val_00000078.JPEG",
         "ILSVRC2012_val_00000098.JPEG", "ILSVRC2012_val_00000109.JPEG"].map { imageFolder + "/" + $0 }
    }

    private func model(_ name: String) -> [String] {
        _ = referencePath("\(name)_nano.pth")
        return ["--model", "../shared/reference/\(name)_nano.pth", "--arch", "../shared/reference/\(name)_nano.json"]
    }

    /// A list file of the five images, in the temporary folder.
    private func listFile() throws -> String {
        let path = temporaryDirectory("shard-list") + "/list.txt"
        try ("# five validation images\n" + images.joined(separator: "\n") + "\n\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Every file of a result folder (the manifest left out), with the JSON's provenance removed.
    private func contents(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for f in try FileManager.default.contentsOfDirectory(atPath: dir) where !f.hasPrefix(".") && !f.hasSuffix(".partial") && !f.hasSuffix(".partial.json") {
            var data = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f))
            if f.hasSuffix(".json") {
                var doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], f)
                XCTAssertNotNil(doc["provenance"], "\(dir)/\(f) has a provenance block")
                doc["provenance"] = nil
                data = try JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys])
            }
            out[f] = data
        }
        return out
    }

    private func provenance(_ path: String) throws -> [String: Any] {
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        return try XCTUnwrap(doc["provenance"] as? [String: Any])
    }

    func testErfShardsMergeIntoTheSingleRun() throws {
        let list = try listFile()
        let base = temporaryDirectory("shard-erf")
        let erf = ["erf"] + model("swin") + ["--images", "@" + list, "--num-images", "4", "--stages", "2,4", "--batch", "2"]
        let single = try runTool(erf + ["--out", base + "/single"])
        XCTAssertEqual(single.status, 0, single.stderr)
        let expected = try contents(base + "/single")
        XCTAssertEqual(Set(expected.keys), ["erf.json", "erf.csv", "erf_stage2.safetensors", "erf_stage4.safetensors",
                                            "erf_stage2.png", "erf_stage4.png", "erf_stages.png",
                                            "erf_stage2.svg", "erf_stage4.svg", "erf_stages.svg"])
        let p = try provenance(base + "/single/erf.json")
        XCTAssertEqual(p["tool"] as? String, "stm-analyze 0.1.0")
        XCTAssertEqual((p["images"] as? [String: Any])?["count"] as? Int, 4)
        let models = try XCTUnwrap(p["models"] as? [[String: Any]])
        XCTAssertEqual(models.first?["sha256"] as? String, try sha256(of: referencePath("swin_nano.pth")))
        XCTAssertNil(p["shard"])
        // erf.csv: a header and one row per stage and threshold.
        let csv = String(decoding: expected["erf.csv"]!, as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(csv.first, "model,arch,stage,threshold,side,side_ratio,area_ratio,reached")
        XCTAssertEqual(csv.count, 1 + 2 * 4)

        for n in [1, 2] {
            let dir = base + "/shards\(n)"
            for i in 0..<n {
                let run = try runTool(erf + ["--shard", "\(i)/\(n)", "--out", dir])
                XCTAssertEqual(run.status, 0, run.stderr)
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/erf-shard-\(i)-of-\(n).partial"), run.stdout)
            }
            let merged = try runTool(["merge", dir, "--out", base + "/merged\(n)"])
            XCTAssertEqual(merged.status, 0, merged.stderr)
            XCTAssertEqual(try contents(base + "/merged\(n)"), expected, "\(n) shards")
            XCTAssertEqual(try provenance(base + "/merged\(n)/erf.json")["merged_from"] as? Int, n)
        }

        // Four shards, as CI runs them: a shell loop on one machine.
        let dir = base + "/shards4"
        let script = """
            set -e
            for i in 0 1 2 3; do
              "$STM" \(erf.map { "'\($0)'" }.joined(separator: " ")) --shard $i/4 --out '\(dir)' --threads 1 &
            done
            wait
            "$STM" merge '\(dir)'/erf-shard-*-of-4.partial --out '\(base)/merged4'
            """
        let loop = try runShell(script)
        XCTAssertEqual(loop.status, 0, loop.stderr)
        XCTAssertEqual(try contents(base + "/merged4"), expected, "4 shards")

        // Refusals: a missing shard, a repeated one, a shard of another run.
        let missing = try runTool(["merge", "\(dir)/erf-shard-0-of-4.partial", "\(dir)/erf-shard-1-of-4.partial", "--out", base + "/bad"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("shards 2/4, 3/4 missing"), missing.stderr)
        XCTAssertEqual(missing.stderr.split(separator: "\n").count, 1, missing.stderr)
        let twice = try runTool(["merge", "\(dir)/erf-shard-0-of-4.partial", "\(dir)/erf-shard-0-of-4.partial", "--out", base + "/bad"])
        XCTAssertTrue(twice.status == 1 && twice.stderr.contains("given twice"), twice.stderr)
        let other = try runTool(["merge", "\(base)/shards2/erf-shard-0-of-2.partial", "\(dir)/erf-shard-1-of-4.partial", "--out", base + "/bad"])
        XCTAssertTrue(other.status == 1 && other.stderr.contains("is not a shard of the same run"), other.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: base + "/bad/erf.json"))
    }

    func testInvarianceShardsMergeIntoTheSingleRunWithDrawsByGlobalIndex() throws {
        let list = try listFile()
        let base = temporaryDirectory("shard-inv")
        // The labels of the five images (the shared file labels all eight).
        let all = try String(contentsOfFile: sharedDirectory() + "/images/imagenet-val/labels.txt", encoding: .utf8)
        let names = Set(images.map { URL(fileURLWithPath: $0).lastPathComponent })
        let labels = base + "/labels.txt"
        try all.split(separator: "\n").filter { names.contains(String($0.split(separator: " ")[0])) }.joined(separator: "\n")
            .write(toFile: labels, atomically: true, encoding: .utf8)
        // translate draws a direction per image and level and pairs per image: they must follow the image, not the shard.
        let inv = ["invariance", "translate"] + model("convnext") + ["--images", "@" + list, "--levels", "0,16,48",
                                                                     "--pairs", "--pair-rounds", "2", "--seed", "3", "--labels", labels]
        let single = try runTool(inv + ["--out", base + "/single"])
        XCTAssertEqual(single.status, 0, single.stderr)
        let expected = try contents(base + "/single")
        XCTAssertEqual(Set(expected.keys), ["translate.json", "translate.csv", "translate_images.csv", "translate.png", "translate.svg"])
        // Per-image rows: one per image and level, with the agreement and loss of each.
        let rows = String(decoding: expected["translate_images.csv"]!, as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(rows.first, "model,label,image,path,level,prediction,standard,agreement,loss,kl,top1,top5")
        XCTAssertEqual(rows.count, 1 + 5 * 3)
        for n in [1, 2, 4] {
            let dir = base + "/shards\(n)"
            for i in 0..<n {
                let run = try runTool(inv + ["--shard", "\(i)/\(n)", "--out", dir])
                XCTAssertEqual(run.status, 0, run.stderr)
            }
            let merged = try runTool(["merge", dir, "--out", base + "/merged\(n)"])
            XCTAssertEqual(merged.status, 0, merged.stderr)
            XCTAssertEqual(try contents(base + "/merged\(n)"), expected, "\(n) shards")
        }
    }

    func testARunReplacesTheFoldersPreviousResultsAsAWhole() throws {
        let out = temporaryDirectory("replace") + "/erf"
        let first = try runTool(["erf", "--model", "unified_convnext_micro", "--init-layer-scale", "1", "--images", images[0],
                                 "--size", "64", "--out", out])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/erf_stage1.png"))
        try "mine".write(toFile: out + "/notes.txt", atomically: true, encoding: .utf8)
        let second = try runTool(["erf", "--model", "unified_swin_micro", "--init-layer-scale", "1", "--images", images[0],
                                  "--size", "64", "--stages", "3,4", "--out", out])
        XCTAssertEqual(second.status, 0, second.stderr)
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: out))
        for gone in ["erf_stage1.png", "erf_stage2.png", "erf_stage1.svg", "erf_stage1.safetensors", "erf_stage2.safetensors"] {
            XCTAssertFalse(files.contains(gone), "\(gone) of the first run is left beside the second's: \(files.sorted())")
        }
        XCTAssertTrue(files.isSuperset(of: ["erf_stage3.png", "erf_stage4.safetensors", "erf.json", "erf.csv", "notes.txt"]), "\(files.sorted())")
        let models = try XCTUnwrap(try provenance(out + "/erf.json")["models"] as? [[String: Any]])
        XCTAssertEqual(models.first?["path"] as? String, "unified_swin_micro")
        XCTAssertNil(models.first?["sha256"] as? String)
    }

    func testInvarianceFoldersAreNamedByModel() throws {
        let root = temporaryDirectory("inv-names")
        let run = try runShell("cd '\(root)' && \"$STM\" invariance rotate --model unified_convnext_micro --init-layer-scale 1 --images '\(packageRoot())/\(images[0])' --levels 0,10 --size 64")
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/outputs/invariance/rotate/unified_convnext_micro_untrained/rotate.json"),
                      (try? FileManager.default.subpathsOfDirectory(atPath: root).joined(separator: " ")) ?? "")
    }

    func testAnUnreadableListFileIsOneError() throws {
        let run = try runTool(["erf", "--model", "unified_convnext_micro", "--images", "@/nonexistent/list.txt"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("cannot read the list file /nonexistent/list.txt"), run.stderr)
        XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
        let bad = try runTool(["erf", "--model", "unified_convnext_micro", "--images", images[0], "--shard", "4/4"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("--shard"), bad.stderr)
    }
}

/// What a shell script run by `runShell` did.
struct ShellRun {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `script` with bash in the package root, with STM set to the tool of this test build.
func runShell(_ script: String) throws -> ShellRun {
    let root = packageRoot()
    let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("stm-analyze").path
    #if DEBUG
    let candidates = [beside, "\(root)/.build/debug/stm-analyze"]
    #else
    let candidates = [beside, "\(root)/.build/release/stm-analyze"]
    #endif
    let binary = try XCTUnwrap(candidates.first { FileManager.default.isExecutableFile(atPath: $0) }, "stm-analyze is not built")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-c", script]
    process.currentDirectoryURL = URL(fileURLWithPath: root)
    var env = ProcessInfo.processInfo.environment
    env["STM"] = binary
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ShellRun(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}
