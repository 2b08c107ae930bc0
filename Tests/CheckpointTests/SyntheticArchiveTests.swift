// Tests: archives built by the test writer (ArchiveWriter.swift) with one feature each: the storage
// dtypes, strided views (storage offsets, transposes, shared storages), the places a state dict can be
// found, the DataParallel prefix, zip64 variants, and objects that must stay opaque (never executed).
// Expected values are written down from the bytes the tests themselves put in the archives.

import Checkpoint
import Foundation
import XCTest

final class SyntheticArchiveTests: XCTestCase {
    private let scratch = ScratchFolder()

    private func read(_ archive: [UInt8], name: String = "test.pth") throws -> StateDict {
        try readCheckpoint(path: scratch.write(archive, as: name))
    }

    /// A checkpoint `{"model": OrderedDict(weight=<4 floats>)}` plus `extra` top-level objects.
    private func simpleArchive(extra: [(String, Py)] = []) -> [UInt8] {
        let s = FakeStorage(key: "0", storageClass: "FloatStorage", numel: 4)
        let model = Py.orderedDict([("weight", .tensor(FakeTensor(storage: s, shape: [2, 2])))])
        return torchArchive(.dict([("model", model)] + extra), storages: [("0", float32Bytes([1, 2, 3, 4]))])
    }

    // MARK: dtypes

    func testFloatingPointStorages() throws {
        let half = FakeStorage(key: "h", storageClass: "HalfStorage", numel: 6)
        let bf16 = FakeStorage(key: "b", storageClass: "BFloat16Storage", numel: 3)
        let f64 = FakeStorage(key: "d", storageClass: "DoubleStorage", numel: 3)
        let model = Py.orderedDict([
            ("half", .tensor(FakeTensor(storage: half, shape: [6]))),
            ("bf16", .tensor(FakeTensor(storage: bf16, shape: [3]))),
            ("f64", .tensor(FakeTensor(storage: f64, shape: [3, 1]))),
        ])
        // IEEE half: 1, -2, 0.5, 65504 (largest), 2^-24 (smallest subnormal), -0.
        let halfBits: [UInt16] = [0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000]
        // bfloat16 is the top half of a float32: 1.5, -3.25, 2^-100.
        let bfBits: [UInt16] = [Float(1.5), -3.25, 0x1p-100].map { UInt16($0.bitPattern >> 16) }
        let archive = torchArchive(.dict([("model", model)]), storages: [
            ("h", uint16Bytes(halfBits)), ("b", uint16Bytes(bfBits)), ("d", float64Bytes([0.1, -1e300, 3])),
        ])
        let sd = try read(archive)
        XCTAssertEqual(sd["half"]?.dtype, .float16)
        XCTAssertEqual(sd["half"]?.values, [1, -2, 0.5, 65504, 0x1p-24, 0])
        XCTAssertEqual(sd["half"]?.values[5].sign, .minus)
        XCTAssertEqual(sd["bf16"]?.dtype, .bfloat16)
        XCTAssertEqual(sd["bf16"]?.values, [1.5, -3.25, 0x1p-100])
        XCTAssertEqual(sd["f64"]?.dtype, .float64)
        XCTAssertEqual(sd["f64"]?.shape, [3, 1])
        XCTAssertEqual(sd["f64"]?.values, [Float(0.1), -Float.infinity, 3])
    }

    func testIntegerAndBoolStoragesAreWidened() throws {
        let long = FakeStorage(key: "l", storageClass: "LongStorage", numel: 3)
        let int = FakeStorage(key: "i", storageClass: "IntStorage", numel: 2)
        let short = FakeStorage(key: "s", storageClass: "ShortStorage", numel: 2)
        let char = FakeStorage(key: "c", storageClass: "CharStorage", numel: 2)
        let byte = FakeStorage(key: "u", storageClass: "ByteStorage", numel: 2)
        let bool = FakeStorage(key: "t", storageClass: "BoolStorage", numel: 3)
        let model = Py.orderedDict([
            ("long", .tensor(FakeTensor(storage: long, shape: [3]))),
            ("int", .tensor(FakeTensor(storage: int, shape: [2]))),
            ("short", .tensor(FakeTensor(storage: short, shape: [2]))),
            ("char", .tensor(FakeTensor(storage: char, shape: [2]))),
            ("byte", .tensor(FakeTensor(storage: byte, shape: [2]))),
            ("bool", .tensor(FakeTensor(storage: bool, shape: [3]))),
            ("scalar", .tensor(FakeTensor(storage: long, offset: 2, shape: [], stride: []))),
        ])
        let archive = torchArchive(.dict([("model", model)]), storages: [
            ("l", int64Bytes([-5, 168, 1 << 40])), ("i", int32Bytes([-70000, 70000])),
            ("s", uint16Bytes([0xFFFF, 300])), ("c", [0x80, 0x7F]), ("u", [0xFF, 7]), ("t", [1, 0, 1]),
        ])
        let sd = try read(archive)
        XCTAssertEqual(sd["long"]?.values, [-5, 168, 0x1p40])
        XCTAssertEqual(sd["long"]?.dtype, .int64)
        XCTAssertEqual(sd["int"]?.values, [-70000, 70000])
        XCTAssertEqual(sd["short"]?.values, [-1, 300])
        XCTAssertEqual(sd["char"]?.values, [-128, 127])
        XCTAssertEqual(sd["byte"]?.values, [255, 7])
        XCTAssertEqual(sd["bool"]?.values, [1, 0, 1])
        XCTAssertEqual(sd["bool"]?.dtype, .bool)
        XCTAssertEqual(sd["scalar"]?.shape, [])
        XCTAssertEqual(sd["scalar"]?.values, [0x1p40])
    }

    func testUntypedStorageWithRebuildTensorV3AndParameters() throws {
        // _rebuild_tensor_v3 names the dtype; the storage is untyped and counted in bytes.
        let untyped = FakeStorage(key: "0", storageClass: "UntypedStorage", numel: 8)
        var v3 = FakeTensor(storage: untyped, offset: 1, shape: [3], stride: [1])
        v3.v3DType = "float16"
        let floats = FakeStorage(key: "1", storageClass: "FloatStorage", numel: 2)
        var parameter = FakeTensor(storage: floats, shape: [2])
        parameter.asParameter = true
        let model = Py.orderedDict([("v3", .tensor(v3)), ("param", .tensor(parameter))])
        let archive = torchArchive(.dict([("model", model)]), storages: [
            ("0", uint16Bytes([0x3C00, 0x4000, 0x4200, 0x4400])), ("1", float32Bytes([7, 8])),
        ])
        let sd = try read(archive)
        XCTAssertEqual(sd["v3"]?.dtype, .float16)
        XCTAssertEqual(sd["v3"]?.values, [2, 3, 4])
        XCTAssertEqual(sd["param"]?.values, [7, 8])
        XCTAssertEqual(sd.keys, ["v3", "param"])
    }

    // MARK: views

    func testViewsAreMaterialisedContiguous() throws {
        // One storage of 12 floats 0...11 viewed five ways.
        let s = FakeStorage(key: "qkv", storageClass: "FloatStorage", numel: 12)
        let model = Py.orderedDict([
            // The whole storage as [3, 4].
            ("full", .tensor(FakeTensor(storage: s, shape: [3, 4]))),
            // Two tensors sharing the storage: rows 1... as [2, 4] at offset 4, and [4] at offset 8.
            ("tail", .tensor(FakeTensor(storage: s, offset: 4, shape: [2, 4], stride: [4, 1]))),
            ("last_row", .tensor(FakeTensor(storage: s, offset: 8, shape: [4], stride: [1]))),
            // The transpose of `full`: [4, 3] with strides [1, 4].
            ("transposed", .tensor(FakeTensor(storage: s, offset: 0, shape: [4, 3], stride: [1, 4]))),
            // A strided slice with an offset: full[1:, 1::2] -> [[5, 7], [9, 11]].
            ("slice", .tensor(FakeTensor(storage: s, offset: 5, shape: [2, 2], stride: [4, 2]))),
            // A broadcast (stride 0) view: row 0 repeated twice -> [2, 4].
            ("broadcast", .tensor(FakeTensor(storage: s, offset: 0, shape: [2, 4], stride: [0, 1]))),
            // A 3-d permutation of [2, 2, 3] (strides [6, 3, 1]) to [3, 2, 2] (strides [1, 6, 3]).
            ("permuted", .tensor(FakeTensor(storage: s, offset: 0, shape: [3, 2, 2], stride: [1, 6, 3]))),
        ])
        let archive = torchArchive(.dict([("model", model)]), storages: [("qkv", float32Bytes((0..<12).map(Float.init)))])
        let sd = try read(archive)
        XCTAssertEqual(sd["full"]?.values, (0..<12).map(Float.init))
        XCTAssertEqual(sd["tail"]?.values, (4..<12).map(Float.init))
        XCTAssertEqual(sd["last_row"]?.values, [8, 9, 10, 11])
        XCTAssertEqual(sd["transposed"]?.shape, [4, 3])
        XCTAssertEqual(sd["transposed"]?.values, [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11])
        XCTAssertEqual(sd["slice"]?.values, [5, 7, 9, 11])
        XCTAssertEqual(sd["broadcast"]?.values, [0, 1, 2, 3, 0, 1, 2, 3])
        // permuted[k][i][j] = x[i][j][k] with x[i][j][k] = 6i + 3j + k.
        XCTAssertEqual(sd["permuted"]?.values, [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11])
    }

    // MARK: where the state dict is

    func testStateDictLocations() throws {
        let s = FakeStorage(key: "0", storageClass: "FloatStorage", numel: 2)
        let tensorDict = Py.orderedDict([("w", .tensor(FakeTensor(storage: s, shape: [2])))])
        let storages = [("0", float32Bytes([1, 2]))]

        for key in ["model", "state_dict", "model_ema", "module"] {
            let sd = try read(torchArchive(.dict([("epoch", .int(3)), (key, tensorDict)]), storages: storages), name: "\(key).ckpt")
            XCTAssertEqual(sd.location, key)
            XCTAssertEqual(sd.keys, ["w"])
            XCTAssertEqual(sd.otherObjects.map(\.0), ["epoch"])
        }

        // A bare state dict at the top level (torch.save(model.state_dict())), as a .bin file.
        let top = try read(torchArchive(tensorDict, storages: storages), name: "pytorch_model.bin")
        XCTAssertEqual(top.location, "top level")
        XCTAssertEqual(top["w"]?.values, [1, 2])
        XCTAssertTrue(top.otherObjects.isEmpty)

        // `model` is preferred to `state_dict`, which is preferred to `model_ema`; unused ones are described.
        let both = try read(torchArchive(.dict([("model_ema", tensorDict), ("state_dict", tensorDict), ("model", tensorDict)]),
                                         storages: storages))
        XCTAssertEqual(both.location, "model")
        XCTAssertEqual(both.otherObjects.map(\.0), ["model_ema", "state_dict"])
        XCTAssertTrue(both.otherObjects[0].1.contains("1 tensor)"), both.otherObjects[0].1)

        // A `model` that is a pickled module object (opaque) is passed over for `state_dict`.
        let pickledModule = Py.newobj(module: "timm.models.convnext", name: "ConvNeXt", state: .dict([("training", .bool(false))]))
        let fallback = try read(torchArchive(.dict([("model", pickledModule), ("state_dict", tensorDict)]), storages: storages))
        XCTAssertEqual(fallback.location, "state_dict")
        XCTAssertEqual(Dictionary(fallback.otherObjects, uniquingKeysWith: { a, _ in a })["model"],
                       "timm.models.convnext.ConvNeXt (opaque, not loaded)")
    }

    func testDataParallelPrefixIsStripped() throws {
        let s = FakeStorage(key: "0", storageClass: "FloatStorage", numel: 2)
        let dict = Py.orderedDict([
            ("module.conv.weight", .tensor(FakeTensor(storage: s, offset: 0, shape: [1], stride: [1]))),
            ("module.conv.bias", .tensor(FakeTensor(storage: s, offset: 1, shape: [1], stride: [1]))),
        ])
        let sd = try read(torchArchive(.dict([("state_dict", dict)]), storages: [("0", float32Bytes([5, 6]))]))
        XCTAssertEqual(sd.keys, ["conv.weight", "conv.bias"])
        XCTAssertEqual(sd["conv.bias"]?.values, [6])
        XCTAssertNil(sd["module.conv.bias"])
        XCTAssertEqual(sd.notes.count, 1)
        XCTAssertTrue(sd.notes[0].contains("module."), sd.notes[0])

        // Keys that only partly carry the prefix are left alone.
        let mixed = Py.orderedDict([
            ("module.a", .tensor(FakeTensor(storage: s, offset: 0, shape: [1], stride: [1]))),
            ("b", .tensor(FakeTensor(storage: s, offset: 1, shape: [1], stride: [1]))),
        ])
        let kept = try read(torchArchive(mixed, storages: [("0", float32Bytes([5, 6]))]))
        XCTAssertEqual(kept.keys, ["module.a", "b"])
        XCTAssertTrue(kept.notes.isEmpty)
    }

    func testNonTensorEntriesOfTheStateDictAreReported() throws {
        let s = FakeStorage(key: "0", storageClass: "FloatStorage", numel: 1)
        let dict = Py.orderedDict([("w", .tensor(FakeTensor(storage: s, shape: [1]))), ("version", .int(2))])
        let sd = try read(torchArchive(.dict([("model", dict)]), storages: [("0", float32Bytes([1]))]))
        XCTAssertEqual(sd.keys, ["w"])
        XCTAssertEqual(sd.otherObjects.first?.0, "model.version")
        XCTAssertTrue(sd.otherObjects.first?.1.hasPrefix("int 2") ?? false)
    }

    // MARK: containers and extensions

    func testZipVariantsAndExtensionsDoNotMatter() throws {
        let s = FakeStorage(key: "0", storageClass: "FloatStorage", numel: 3)
        let model = Py.orderedDict([("w", .tensor(FakeTensor(storage: s, shape: [3])))])
        let storages = [("0", float32Bytes([1, 2, 3]))]
        let variants: [(String, ZipOptions)] = [
            ("classic.pt", ZipOptions(zip64End: false, zip64Fields: false)),
            ("zip64.ckpt", ZipOptions(zip64End: true, zip64Fields: false)),
            ("zip64fields.safetensors", ZipOptions(zip64End: true, zip64Fields: true)),
        ]
        for (name, options) in variants {
            let sd = try read(torchArchive(.dict([("model", model)]), storages: storages, prefix: "my_model", options: options), name: name)
            XCTAssertEqual(sd.format, .torchZip, name)
            XCTAssertEqual(sd["w"]?.values, [1, 2, 3], name)
        }
        // No byteorder record (older torch): little-endian is assumed.
        let old = try read(torchArchive(.dict([("model", model)]), storages: storages, byteorder: nil))
        XCTAssertEqual(old["w"]?.values, [1, 2, 3])
    }

    func testUnknownClassesStayOpaqueAndAreNeverRun() throws {
        let marker = scratch.path("pwned")
        let archive = simpleArchive(extra: [
            ("evil", .reduce(module: "os", name: "system", args: [.str("touch \(marker)")], state: .dict([("x", .int(1))]))),
            ("popen", .reduce(module: "subprocess", name: "Popen", args: [.list([.str("touch"), .str(marker)])], state: nil)),
            ("args", .newobj(module: "argparse", name: "Namespace",
                             state: .dict([("model", .str("unified_swin_nano")), ("lr", .float(0.001))]))),
            ("optimizer", .dict([("state", .dict([])), ("param_groups", .list([.dict([("lr", .float(0.5))])]))])),
            ("note", .str("trained\nfor a while")),
            ("nothing", .none),
            ("flag", .bool(true)),
            ("shape", .tuple([.int(1), .int(2), .int(3), .int(4)])),
            ("big", .int(1 << 40)),
            ("negative", .int(-70000)),
        ])
        let sd = try read(archive)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "a pickled call was executed")
        XCTAssertEqual(sd["weight"]?.values, [1, 2, 3, 4])
        let others = Dictionary(sd.otherObjects, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(others["evil"], "os.system (opaque, not loaded)")
        XCTAssertEqual(others["popen"], "subprocess.Popen (opaque, not loaded)")
        XCTAssertEqual(others["args"], "argparse.Namespace (opaque, not loaded)")
        XCTAssertEqual(others["optimizer"], "dict (2 entries)")
        XCTAssertEqual(others["note"], "str 'trained\\nfor a while'")
        XCTAssertEqual(others["nothing"], "None")
        XCTAssertEqual(others["flag"], "bool True")
        XCTAssertEqual(others["shape"], "tuple (4 items)")
        XCTAssertEqual(others["big"], "int 1099511627776")
        XCTAssertEqual(others["negative"], "int -70000")
        XCTAssertEqual(sd.otherObjects.count, 10)
    }

    func testStateDictSavedWithProtocol4Opcodes() throws {
        // {'model': OrderedDict(w=tensor)} as pickle protocol 4 writes it: FRAME, SHORT_BINUNICODE,
        // STACK_GLOBAL and MEMOIZE instead of GLOBAL and BINPUT.
        func text(_ s: String) -> [UInt8] { [0x8c, UInt8(s.utf8.count)] + Array(s.utf8) + [0x94] }
        var body: [UInt8] = [0x7d, 0x94, 0x28]  // EMPTY_DICT MEMOIZE MARK
        body += text("model")
        body += text("collections") + text("OrderedDict") + [0x93, 0x94, 0x29, 0x52, 0x94]  // STACK_GLOBAL ... REDUCE
        body += [0x28] + text("w")
        body += text("torch._utils") + text("_rebuild_tensor_v2") + [0x93, 0x94]
        body += [0x28, 0x28] + text("storage") + text("torch") + text("FloatStorage") + [0x93, 0x94]
        body += text("0") + text("cpu") + [0x4b, 0x02, 0x74, 0x94, 0x51]  // numel 2, TUPLE, BINPERSID
        body += [0x4b, 0x00, 0x4b, 0x02, 0x85, 0x94, 0x4b, 0x01, 0x85, 0x94, 0x89]  // offset, (2,), (1,), False
        body += [0x68, 0x04, 0x29, 0x52, 0x94, 0x74, 0x94, 0x52, 0x94]  // OrderedDict() hooks (memo 4), TUPLE, REDUCE
        body += [0x75, 0x75]  // SETITEMS (state dict), SETITEMS (top level)
        body += [0x2e]
        var pickle: [UInt8] = [0x80, 0x04, 0x95]
        for i in 0..<8 { pickle.append(UInt8(truncatingIfNeeded: body.count >> (8 * i))) }
        pickle += body
        let sd = try read(torchArchive(.none, storages: [("0", float32Bytes([3, 4]))], pickle: pickle))
        XCTAssertEqual(sd.location, "model")
        XCTAssertEqual(sd["w"]?.values, [3, 4])
    }
}
