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
        "erf/convnext/erf.csv": "94589b9f72f3de7c3a9e9466cfca540d6d8f45041936c9c5add991f764db3a39",
        "erf/convnext/erf.json": "80e965a6c3676c43f2851e80dc791f494d13be584a71818997445d0f393f5445",
        "erf/convnext/erf_stage1.safetensors": "6c61d627486903193d61488ef7b4f30f3ab9d13ca9456b3a04b613c0ad2070ea",
        "erf/convnext/erf_stage2.safetensors": "46d57534e5fe8d95e5d61b66f083d8b52ec2ee8590da1c4a864a2f50e494cd54",
        "erf/convnext/erf_stage3.safetensors": "b989d15aaff25feb8aa9bfaefbddc726155a80ebf8dc2d7c8d4c08be8b85f17c",
        "erf/convnext/erf_stage4.safetensors": "78c6f86711783b83e12a3524e6293feafe29af298f1a080290205ab3e1da89dd",
        "erf/swin/erf.csv": "380e2468fd5c2c294c6849fadb125911f6012393575f895be01a1f28994b8d8c",
        "erf/swin/erf.json": "999526a4b9a1a43d5ef0872435af81fb851744139caaf8f6622a0cd1bca0fe26",
        "erf/swin/erf_stage1.safetensors": "1a4a7ffa9b2c4e18ed93cef5e6cf5710e3a71bcf4dec4d6ca5c8876daa750c29",
        "erf/swin/erf_stage2.safetensors": "3dda6ec8fd11a2aaff7ffbbe80516a6c7a38966cd43d6f5437a8389d795747ef",
        "erf/swin/erf_stage3.safetensors": "5745d608aae496cb4482958f895e6e63fc5b78566e412df8e8eca2075e35b880",
        "erf/swin/erf_stage4.safetensors": "66e72b57d5e446372613f5dc3384b2bc1e6ef83e0a86535c9177adbf997809c8",
        "invariance/convnext/rotate.csv": "4572389e577a11747f7506fa78bfb638f2133f5e8d4986d66f9717f6ba3e05ea",
        "invariance/convnext/rotate_images.csv": "3bc8b080d6249a5ee525185d585b4a13a31135c48814a5c2101e733e826dccdf",
        "invariance/convnext/rotate.json": "c4d0b88edccb232d50771f7012c539804a38b651e3cf3192c0b20c55e9bd3a57",
        "invariance/swin/rotate.csv": "f483f86fe8567a684dd6a0f887cf2b9025e4a988f65cd509dc8b88c0d8845763",
        "invariance/swin/rotate_images.csv": "fde2c1faa085d9e39523abbd2e29c2150fb703403f725cb29dcfb3a1bfac0e6a",
        "invariance/swin/rotate.json": "8b80d3b472df961c88d0fcdb4dda1f8562232d63ab728844aea160da962558bf",
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
        // Result files only (the folder's manifest of them, .stm-analyze-results, is left out).
        let files = try FileManager.default.contentsOfDirectory(atPath: out).filter { !$0.hasPrefix(".") }.sorted()
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
        return ["rotate.json": try sha256(of: out + "/rotate.json"), "rotate.csv": try sha256(of: out + "/rotate.csv"),
                "rotate_images.csv": try sha256(of: out + "/rotate_images.csv")]
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
            for (file, digest) in base.sorted(by: { $0.key < $1.key }) where !file.hasSuffix(".png") && !file.hasSuffix(".svg") {
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
