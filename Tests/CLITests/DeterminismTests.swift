// The same inputs give the same bytes (README, "Determinism"): `erf` and `invariance` on the shared
// nano models write byte-identical result files for 1, 2, 3 and 5 threads, for --batch 1 and 4, and
// for every GEMM micro-kernel this CPU runs (STM_GEMM_KERNEL); and their SHA-256 digests are the
// golden ones committed below, so a CI run on a host of another kind (AVX2-only, AVX-512) or a
// build for another vector width fails if a single bit moves.

import Foundation
import TestSupport
import XCTest

final class DeterminismTests: XCTestCase {
    // Paths relative to the package root (where runTool runs the tool), so that the paths recorded in
    // the result files, and so their digests, are the same in every clone.
    private let imageFolder = "../shared/images/imagenet-val"
    private var twoImages: [String] { ["ILSVRC2012_val_00000004.JPEG", "ILSVRC2012_val_00000019.JPEG"].map { imageFolder + "/" + $0 } }
    private var fourImages: [String] {
        ["ILSVRC2012_val_00000004.JPEG", "ILSVRC2012_val_00000019.JPEG", "ILSVRC2012_val_00000078.JPEG",
         "ILSVRC2012_val_00000098.JPEG"].map { imageFolder + "/" + $0 }
    }

    /// SHA-256 of every ERF result file (maps and erf.json), and of the invariance JSON and CSV, for the
    /// shared swin and convnext nano models. Change them only with a deliberate, explained change of
    /// the numbers (say so in the commit).
    static let golden: [String: String] = [
        "erf/convnext/erf.json": "9c13b0cbead732603363d10722b8fe50d8127491de35785d45a26eaaa35ac63c",
        "erf/convnext/erf_stage1.safetensors": "6c61d627486903193d61488ef7b4f30f3ab9d13ca9456b3a04b613c0ad2070ea",
        "erf/convnext/erf_stage2.safetensors": "46d57534e5fe8d95e5d61b66f083d8b52ec2ee8590da1c4a864a2f50e494cd54",
        "erf/convnext/erf_stage3.safetensors": "b989d15aaff25feb8aa9bfaefbddc726155a80ebf8dc2d7c8d4c08be8b85f17c",
        "erf/convnext/erf_stage4.safetensors": "78c6f86711783b83e12a3524e6293feafe29af298f1a080290205ab3e1da89dd",
        "erf/swin/erf.json": "8128017745adaf6c43d8b52c0730e9a98e08cf5e0037b460adbbdd040ee2b570",
        "erf/swin/erf_stage1.safetensors": "1a4a7ffa9b2c4e18ed93cef5e6cf5710e3a71bcf4dec4d6ca5c8876daa750c29",
        "erf/swin/erf_stage2.safetensors": "3dda6ec8fd11a2aaff7ffbbe80516a6c7a38966cd43d6f5437a8389d795747ef",
        "erf/swin/erf_stage3.safetensors": "5745d608aae496cb4482958f895e6e63fc5b78566e412df8e8eca2075e35b880",
        "erf/swin/erf_stage4.safetensors": "66e72b57d5e446372613f5dc3384b2bc1e6ef83e0a86535c9177adbf997809c8",
        "invariance/convnext/rotate.csv": "4572389e577a11747f7506fa78bfb638f2133f5e8d4986d66f9717f6ba3e05ea",
        "invariance/convnext/rotate.json": "87c230ec6dce3b578344875c5056b5b9b3684ec8e56c78eb2f861c117bb46018",
        "invariance/swin/rotate.csv": "f483f86fe8567a684dd6a0f887cf2b9025e4a988f65cd509dc8b88c0d8845763",
        "invariance/swin/rotate.json": "91d658c07307dbc201160f63c6fc60ce73a09e9f0e2225d073e87b3fa7cc1a98",
    ]

    private func model(_ name: String) -> [String] {
        _ = referencePath("\(name)_nano.pth")  // fails the test when ../shared is missing
        return ["--model", "../shared/reference/\(name)_nano.pth", "--arch", "../shared/reference/\(name)_nano.json"]
    }

    /// Runs `erf` and returns name -> SHA-256 of each result file (the PNGs are derived from the maps
    /// and checked too).
    private func erfDigests(_ name: String, images: [String], extra: [String], env: [String: String] = [:]) throws -> [String: String] {
        let out = temporaryDirectory("determinism-erf") + "/\(name)"
        let run = try runTool(["erf"] + model(name) + ["--images"] + images + ["--out", out] + extra, environment: env)
        XCTAssertEqual(run.status, 0, run.stderr)
        let files = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        XCTAssertTrue(files.contains("erf.json") && files.contains("erf_stage4.safetensors"), "\(files)")
        var d: [String: String] = [:]
        for f in files { d[f] = try sha256(of: out + "/" + f) }
        return d
    }

    private func invarianceDigests(_ name: String, extra: [String], env: [String: String] = [:]) throws -> [String: String] {
        let out = temporaryDirectory("determinism-inv") + "/\(name)"
        let run = try runTool(["invariance", "rotate"] + model(name) + ["--images"] + twoImages
                              + ["--levels", "0,30", "--out", out] + extra, environment: env)
        XCTAssertEqual(run.status, 0, run.stderr)
        return ["rotate.json": try sha256(of: out + "/rotate.json"), "rotate.csv": try sha256(of: out + "/rotate.csv")]
    }

    func testErfIsByteIdenticalAcrossThreadCountsBatchesAndKernels() throws {
        for name in ["swin", "convnext"] {
            let base = try erfDigests(name, images: fourImages, extra: ["--threads", "1", "--batch", "1"])
            for threads in ["2", "3", "5"] {
                XCTAssertEqual(try erfDigests(name, images: fourImages, extra: ["--threads", threads, "--batch", "1"]), base,
                               "\(name): --threads \(threads)")
            }
            XCTAssertEqual(try erfDigests(name, images: fourImages, extra: ["--threads", "2", "--batch", "4"]), base, "\(name): --batch 4")
            XCTAssertEqual(try erfDigests(name, images: fourImages, extra: ["--threads", "3", "--batch", "3"]), base, "\(name): --batch 3")
            for kernel in runnableKernels() {
                XCTAssertEqual(try erfDigests(name, images: fourImages, extra: ["--threads", "2", "--batch", "2"], env: ["STM_GEMM_KERNEL": kernel]),
                               base, "\(name): STM_GEMM_KERNEL=\(kernel)")
            }
            // Golden digests: the same on every host and build.
            for (file, digest) in base.sorted(by: { $0.key < $1.key }) where !file.hasSuffix(".png") {
                XCTAssertEqual(digest, Self.golden["erf/\(name)/\(file)"], "golden digest of erf/\(name)/\(file)")
            }
        }
    }

    func testInvarianceIsByteIdenticalAcrossThreadCountsAndKernels() throws {
        for name in ["swin", "convnext"] {
            let base = try invarianceDigests(name, extra: ["--threads", "1"])
            for threads in ["2", "3", "5"] {
                XCTAssertEqual(try invarianceDigests(name, extra: ["--threads", threads]), base, "\(name): --threads \(threads)")
            }
            for kernel in runnableKernels() {
                XCTAssertEqual(try invarianceDigests(name, extra: ["--threads", "2"], env: ["STM_GEMM_KERNEL": kernel]), base,
                               "\(name): STM_GEMM_KERNEL=\(kernel)")
            }
            for (file, digest) in base { XCTAssertEqual(digest, Self.golden["invariance/\(name)/\(file)"], "golden digest of invariance/\(name)/\(file)") }
        }
    }

    func testAnUnknownOrUnrunnableKernelIsAnError() throws {
        let run = try runTool(["classify", "--model", "unified_convnext_micro", "--images", twoImages[0]],
                              environment: ["STM_GEMM_KERNEL": "sse9"])
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("STM_GEMM_KERNEL=sse9"), run.stderr)
        XCTAssertEqual(run.stderr.split(separator: "\n").filter { $0.hasPrefix("stm-analyze: error:") }.count, 1, run.stderr)
    }

    /// The micro-kernels this CPU can run besides its best (the portable one is too slow for whole
    /// runs and is covered bit for bit by GemmTests).
    private func runnableKernels() -> [String] {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        var out: [String] = []
        if flags.contains(" avx2") && flags.contains(" fma") { out.append("avx2") }
        if flags.contains(" avx512f") { out.append("avx512") }
        return out
    }
}

/// The SHA-256 of a file, through coreutils' sha256sum.
func sha256(of path: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    p.arguments = [path]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(String(decoding: data, as: UTF8.self).prefix(64))
}
