// Tests: the five reference checkpoints of ../shared/reference, written by real torch.save. Known key
// names and shapes come from the model definitions (STM-Evaluation's unified models, shrunk to the nano
// size described in the reference README); a few values were read from the archives independently with
// Python's zipfile and struct modules. Also: the .pth and .safetensors copies of convnext agree bit for bit.

import Checkpoint
import Foundation
import XCTest

final class ReferenceCheckpointTests: XCTestCase {
    static let families = ["convnext", "swin", "halo", "pvt", "dcnv3"]

    private func read(_ name: String) throws -> StateDict {
        try readCheckpoint(path: TestData.reference(name))
    }

    func testAllFiveReadAsTorchArchivesWithTheirModelStateDict() throws {
        // Tensor counts per family (storage records of each archive, one per tensor).
        let expectedCounts = ["convnext": 161, "swin": 164, "halo": 161, "pvt": 189, "dcnv3": 209]
        for family in Self.families {
            let sd = try read("\(family)_nano.pth")
            XCTAssertEqual(sd.format, .torchZip, family)
            XCTAssertEqual(sd.location, "model", family)
            XCTAssertEqual(sd.entries.count, expectedCounts[family], family)
            XCTAssertEqual(Set(sd.keys).count, sd.keys.count, "\(family): duplicate keys")
            for (name, t) in sd.entries {
                XCTAssertEqual(t.shape.reduce(1, *), t.values.count, "\(family) \(name)")
                XCTAssertTrue(t.values.allSatisfy(\.isFinite), "\(family) \(name) has non-finite values")
            }
            // Shared by all five: the stem, the head and the conv head's BatchNorm counter (a 0-d int64).
            XCTAssertEqual(sd["downsample_layers.0.stem.0.weight"]?.shape, [8, 3, 3, 3], family)
            XCTAssertEqual(sd["head.weight"]?.shape, [1000, 192], family)
            XCTAssertEqual(sd["conv_head.1.num_batches_tracked"]?.shape, [], family)
            XCTAssertEqual(sd["conv_head.1.num_batches_tracked"]?.dtype, .int64, family)
            XCTAssertEqual(sd["conv_head.1.num_batches_tracked"]?.values.count, 1, family)
        }
    }

    func testFileOrderIsKept() throws {
        let sd = try read("convnext_nano.pth")
        XCTAssertEqual(Array(sd.keys.prefix(3)), ["downsample_layers.0.stem.0.weight", "downsample_layers.0.stem.0.bias",
                                                  "downsample_layers.0.stem.1.weight"])
        XCTAssertEqual(Array(sd.keys.suffix(2)), ["head.weight", "head.bias"])
    }

    func testSwinWindowAttentionBuffers() throws {
        let sd = try read("swin_nano.pth")
        XCTAssertEqual(sd["stages.0.0.attn.relative_position_bias_table"]?.shape, [169, 1])
        XCTAssertEqual(sd["stages.3.1.attn.relative_position_bias_table"]?.shape, [169, 8])
        XCTAssertEqual(sd["stages.0.1.attn_mask"]?.shape, [64, 49, 49])
        XCTAssertEqual(sd["stages.0.0.attn.qkv.weight"]?.shape, [48, 16])

        // relative_position_index for window M = 7: index(i, j) = (dy + M-1) * (2M-1) + (dx + M-1),
        // so 0...168, 84 on the diagonal, 0 for (first, last) and 168 for (last, first).
        let index = try XCTUnwrap(sd["stages.0.0.attn.relative_position_index"])
        XCTAssertEqual(index.shape, [49, 49])
        XCTAssertEqual(index.dtype, .int64)
        XCTAssertEqual(index.values.min(), 0)
        XCTAssertEqual(index.values.max(), 168)
        XCTAssertTrue(index.values.allSatisfy { $0 == $0.rounded() }, "indices must be integers")
        for i in 0..<49 { XCTAssertEqual(index.values[i * 49 + i], 84) }
        XCTAssertEqual(index.values[48], 0)
        XCTAssertEqual(index.values[48 * 49], 168)
        XCTAssertEqual(Set(index.values).count, 169, "every table row is used")

        // The shifted-window mask holds 0 (same region) and -100 (different regions) only.
        let mask = try XCTUnwrap(sd["stages.0.1.attn_mask"])
        XCTAssertEqual(Set(mask.values), [0, -100])

        // First values of the bias table, read independently with Python's struct module.
        let table = try XCTUnwrap(sd["stages.0.0.attn.relative_position_bias_table"])
        XCTAssertEqual(Array(table.values.prefix(3)), [-0.05953095853328705, -0.2946954071521759, 0.052539873868227005])
    }

    func testSwinExtraObjectsAreDescribedNotLoaded() throws {
        let sd = try read("swin_nano.pth")
        let others = Dictionary(sd.otherObjects, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(others["epoch"], "int 299")
        let args = try XCTUnwrap(others["args"])
        XCTAssertTrue(args.hasPrefix("argparse.Namespace"), args)
        XCTAssertTrue(args.contains("opaque"), args)
        XCTAssertEqual(sd.otherObjects.map(\.0), ["epoch", "args"])
    }

    func testOtherFamiliesKnownShapes() throws {
        let dcn = try read("dcnv3_nano.pth")
        XCTAssertEqual(dcn["stages.0.0.attn.sampling_offsets.weight"]?.shape, [18, 16])
        XCTAssertEqual(dcn["stages.0.0.attn.attention_weights.weight"]?.shape, [9, 16])
        XCTAssertEqual(dcn["stages.0.0.attn.dw_conv.0.weight"]?.shape, [16, 1, 3, 3])

        let pvt = try read("pvt_nano.pth")
        XCTAssertEqual(pvt["stages.0.0.pos_embed"]?.shape, [1, 16, 56, 56])
        XCTAssertEqual(pvt["stages.0.0.attn.sr.weight"]?.shape, [16, 16, 8, 8])
        XCTAssertEqual(pvt["stages.0.0.mlp.fc1.weight"]?.shape, [128, 16])

        let halo = try read("halo_nano.pth")
        // Halo: block 7 + 2 * halo 3 = 13 keys per axis, so 2 * 13 - 1 = 25 relative positions.
        XCTAssertEqual(halo["stages.0.0.attn.pos_embed.height_rel"]?.shape, [25, 16])
        XCTAssertEqual(halo["stages.0.0.attn.kv.weight"]?.shape, [32, 16, 1, 1])

        let convnext = try read("convnext_nano.pth")
        XCTAssertEqual(convnext["stages.0.0.dwconv.weight"]?.shape, [16, 1, 7, 7])
        XCTAssertEqual(convnext["stages.0.0.gamma_2"]?.shape, [1, 1, 1, 16])
        // Layer scales hold values of useful size (the reference README: gamma in [0.3, 1.0]).
        let gamma = try XCTUnwrap(convnext["stages.0.0.gamma_2"])
        XCTAssertTrue(gamma.values.allSatisfy { $0 >= 0.3 && $0 <= 1.0 }, "\(gamma.values)")
    }

    func testConvNeXtTorchArchiveAndSafetensorsAgreeBitForBit() throws {
        let pth = try read("convnext_nano.pth")
        let safe = try read("convnext_nano.safetensors")
        XCTAssertEqual(safe.format, .safetensors)
        XCTAssertEqual(safe.location, "top level")
        XCTAssertEqual(Set(pth.keys), Set(safe.keys))
        XCTAssertEqual(pth.entries.count, safe.entries.count)
        for (name, a) in pth.entries {
            let b = try XCTUnwrap(safe[name], name)
            XCTAssertEqual(a.shape, b.shape, name)
            XCTAssertEqual(a.dtype, b.dtype, name)
            XCTAssertEqual(a.values.map(\.bitPattern), b.values.map(\.bitPattern), name)
        }
    }

    func testReadingIsFast() throws {
        let path = TestData.reference("swin_nano.pth")
        _ = try readCheckpoint(path: path)  // warm the page cache
        let start = Date()
        let sd = try readCheckpoint(path: path)
        let seconds = Date().timeIntervalSince(start)
        XCTAssertEqual(sd.entries.count, 164)
        // A few milliseconds in release builds; the bound leaves room for unoptimised debug builds.
        XCTAssertLessThan(seconds, 0.5, "reading swin_nano.pth took \(seconds) s")
    }
}

/// The legacy (pre-1.6) torch.save format, as PyTorch itself wrote convnext_nano_legacy.pth: the same
/// tensors, bit for bit, as the zip archive of the same weights.
final class LegacyCheckpointTests: XCTestCase {
    func testLegacyFileGivesTheZipArchivesTensors() throws {
        let legacy = try readCheckpoint(path: TestData.reference("convnext_nano_legacy.pth"))
        let zip = try readCheckpoint(path: TestData.reference("convnext_nano.pth"))
        XCTAssertEqual(legacy.format, .legacyTorch)
        XCTAssertEqual(legacy.keys, zip.keys)
        XCTAssertGreaterThan(legacy.entries.count, 10)
        for (name, record) in zip.entries {
            let other = try XCTUnwrap(legacy[name], name)
            XCTAssertEqual(other.shape, record.shape, name)
            XCTAssertEqual(other.dtype, record.dtype, name)
            XCTAssertEqual(other.values.map(\.bitPattern), record.values.map(\.bitPattern), name)
        }
    }
}
