// Tests: bad input gives one CheckpointError whose description is one line naming the file and the
// problem, never a crash: missing, empty and random files, the legacy torch format, truncated and
// corrupt archives, corrupt pickles, compressed or big-endian archives, missing storages, views past
// their storage, and files that hold no state dict.

import Checkpoint
import Foundation
import XCTest

final class ErrorTests: XCTestCase {
    private let scratch = ScratchFolder()

    /// Reads `path`, expects a failure, checks the description's form and returns it.
    @discardableResult
    private func expectFailure(_ path: String, mentions fragments: [String], file: StaticString = #filePath, line: UInt = #line) -> String {
        let text = checkpointErrorDescription({ try readCheckpoint(path: path) }, file: file, line: line)
        XCTAssertTrue(text.hasPrefix(path + ":"), "description should start with the path: \(text)", file: file, line: line)
        XCTAssertFalse(text.contains("\n"), "description should be one line: \(text)", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(text.contains(fragment), "'\(fragment)' missing from: \(text)", file: file, line: line)
        }
        return text
    }

    /// A small valid checkpoint: {"model": OrderedDict(w=[1, 2, 3, 4] as [2, 2])}.
    private func validArchive(pickle: [UInt8]? = nil, byteorder: String? = "little", options: ZipOptions = ZipOptions(),
                              storages: [(String, [UInt8])]? = nil, tensor: FakeTensor? = nil) -> [UInt8] {
        let s = FakeStorage(key: "0", storageClass: "FloatStorage", numel: 4)
        let model = Py.orderedDict([("w", .tensor(tensor ?? FakeTensor(storage: s, shape: [2, 2])))])
        return torchArchive(.dict([("model", model)]), storages: storages ?? [("0", float32Bytes([1, 2, 3, 4]))],
                            byteorder: byteorder, pickle: pickle, options: options)
    }

    func testMissingEmptyAndDirectory() {
        expectFailure(scratch.path("does-not-exist.pth"), mentions: ["no such file"])
        expectFailure(scratch.write([], as: "empty.pth"), mentions: ["empty"])
        expectFailure(scratch.url.path, mentions: ["directory"])
    }

    func testRandomBytesAreNotACheckpoint() {
        // Deterministic noise (xorshift64), so that every run tests the same bytes.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var bytes = (0..<4096).map { _ -> UInt8 in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state >> 24)
        }
        bytes[0] = 0x13  // not 'P', not a safetensors length followed by '{'
        let text = expectFailure(scratch.write(bytes, as: "random.pth"),
                                 mentions: ["not a PyTorch zip archive or safetensors file", "safetensors", "torch.save"])
        XCTAssertTrue(text.contains("hint"), text)
        expectFailure(scratch.write(Array("hello, world\n".utf8), as: "text.safetensors"),
                      mentions: ["not a PyTorch zip archive or safetensors file"])
    }

    func testTruncatedLegacyTorchFileIsNamed() {
        // The legacy format starts with the pickled magic number 0x1950a86a20f9469cfc6c (protocol 2, LONG1)
        // and the protocol version 1001; this one ends there, before its system information.
        let legacy: [UInt8] = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
                               0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e]
        expectFailure(scratch.write(legacy, as: "old.pth"), mentions: ["legacy", "truncated", "torch.save"])
        // A wrong protocol version is named.
        var wrong = legacy
        wrong[18] = 0xea
        expectFailure(scratch.write(wrong, as: "old2.pth"), mentions: ["legacy", "1002", "1001"])
    }

    func testTruncatedRealCheckpoint() throws {
        let data = try XCTUnwrap(FileManager.default.contents(atPath: TestData.reference("swin_nano.pth")))
        let half = Array(data.prefix(data.count / 2))
        expectFailure(scratch.write(half, as: "half.pth"), mentions: ["truncated", "central directory"])
        // Cut just before the end record, and with only a few bytes.
        expectFailure(scratch.write(Array(data.dropLast(30)), as: "almost.pth"), mentions: ["truncated"])
        expectFailure(scratch.write(Array(data.prefix(10)), as: "tiny.pth"), mentions: ["truncated"])
    }

    func testCorruptPickles() throws {
        let good = Pickler.pickle(.dict([("model", .orderedDict([]))]))
        // An unknown opcode in the middle.
        var unknown = good
        unknown[good.count / 2] = 0xff
        expectFailure(scratch.write(validArchive(pickle: unknown), as: "unknown-op.pth"), mentions: ["corrupt pickle", "data.pkl"])
        // REDUCE on an empty stack, APPEND without a list, SETITEMS without a MARK.
        for (name, pickle) in [("underflow", [0x80, 0x02, 0x52, 0x2e]), ("append", [0x80, 0x02, 0x4b, 1, 0x4b, 2, 0x61, 0x2e]),
                               ("nomark", [0x80, 0x02, 0x7d, 0x75, 0x2e]), ("empty-stop", [0x80, 0x02, 0x2e])] as [(String, [UInt8])] {
            expectFailure(scratch.write(validArchive(pickle: pickle), as: "\(name).pth"), mentions: ["corrupt pickle"])
        }
        // No STOP, a length past the end, a memo key never stored, a protocol from the future.
        expectFailure(scratch.write(validArchive(pickle: Array(good.dropLast())), as: "nostop.pth"), mentions: ["STOP"])
        expectFailure(scratch.write(validArchive(pickle: [0x80, 0x02, 0x58, 0xff, 0xff, 0, 0, 0x41]), as: "long.pth"), mentions: ["ends"])
        expectFailure(scratch.write(validArchive(pickle: [0x80, 0x02, 0x68, 0x07, 0x2e]), as: "memo.pth"), mentions: ["memo"])
        expectFailure(scratch.write(validArchive(pickle: [0x80, 0x09, 0x4e, 0x2e]), as: "proto.pth"), mentions: ["protocol 9"])
        // Deeply nested tuples are refused instead of exhausting the stack.
        let deep: [UInt8] = [0x80, 0x02, 0x4e] + [UInt8](repeating: 0x85, count: 200_000) + [0x2e]
        expectFailure(scratch.write(validArchive(pickle: deep), as: "deep.pth"), mentions: ["nested"])
        // Deep nesting built through memo aliasing (list i appended into list i+1 after both exist)
        // is torn down without recursion: reading fails cleanly (the top is a list, not a dict).
        var aliased: [UInt8] = [0x80, 0x02]
        func index(_ i: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: i >> (8 * $0)) } }
        let levels = 200_000
        for i in 0..<levels { aliased += [0x5d, 0x72] + index(i) + [0x30] }  // EMPTY_LIST, LONG_BINPUT i, POP
        for i in (1..<levels).reversed() { aliased += [0x6a] + index(i) + [0x6a] + index(i - 1) + [0x61, 0x30] }  // list_i.append(list_i-1), outermost first
        aliased += [0x6a] + index(levels - 1) + [0x2e]
        expectFailure(scratch.write(validArchive(pickle: aliased), as: "aliased.pth"), mentions: ["list", "not a dict"])
        // Every single-byte truncation of a real pickle fails cleanly.
        let sample = Pickler.pickle(.dict([("model", .orderedDict([("w", .tensor(FakeTensor(storage: FakeStorage(key: "0", storageClass: "FloatStorage", numel: 4), shape: [2, 2])))]))]))
        for cut in stride(from: 1, to: sample.count - 1, by: 7) {
            let archive = validArchive(pickle: Array(sample.prefix(cut)))
            _ = checkpointErrorDescription({ try readCheckpoint(path: scratch.write(archive, as: "cut.pth")) })
        }
    }

    func testRandomDamageNeverCrashes() throws {
        // Overwrite a few bytes of a real archive (its pickle, its central directory, or anywhere) and
        // sometimes cut it short: every read must succeed or throw a one-line CheckpointError.
        let original = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: TestData.reference("swin_nano.pth"))))
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next(_ bound: Int) -> Int {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return Int(state % UInt64(bound))
        }
        for round in 0..<60 {
            var damaged = original
            for _ in 0...next(4) {
                let position: Int
                switch round % 3 {
                case 0: position = 64 + next(24_000)  // inside data.pkl
                case 1: position = damaged.count - 1 - next(15_000)  // central directory and end records
                default: position = next(damaged.count)
                }
                damaged[position] = UInt8(next(256))
            }
            if round % 5 == 0 { damaged = Array(damaged.prefix(next(damaged.count))) }
            let path = scratch.write(damaged, as: "damaged-\(round).pth")
            do {
                _ = try readCheckpoint(path: path)
            } catch let error as CheckpointError {
                XCTAssertFalse(error.description.contains("\n"), error.description)
                XCTAssertTrue(error.description.hasPrefix(path), error.description)
            }
        }
    }

    func testMalformedTensorArguments() {
        // _rebuild_tensor_v2 with a string where the storage belongs.
        let pickle: [UInt8] = [0x80, 0x02] + Array("}(S'model'\n}(S'w'\nctorch._utils\n_rebuild_tensor_v2\n(S'oops'\nI0\n(I2\nt(I1\nttRuu.".utf8)
        let text = expectFailure(scratch.write(validArchive(pickle: pickle), as: "badargs.pth"), mentions: ["_rebuild_tensor_v2"])
        XCTAssertTrue(text.contains("storage"), text)
    }

    func testArchiveLevelProblems() {
        expectFailure(scratch.write(validArchive(byteorder: "big"), as: "big.pth"), mentions: ["big-endian", "little-endian"])
        expectFailure(scratch.write(validArchive(options: ZipOptions(method: 8)), as: "deflated.pth"),
                      mentions: ["deflate", "stored", "zip -0"])
        // No data.pkl: a plain zip, and a TorchScript archive.
        expectFailure(scratch.write(zipStored([("notes/readme.txt", Array("hi".utf8))]), as: "plain.zip"), mentions: ["data.pkl"])
        expectFailure(scratch.write(zipStored([("m/constants.pkl", [0x80, 0x02, 0x29, 0x2e]), ("m/code/x.py", [])]), as: "script.pt"),
                      mentions: ["TorchScript"])
    }

    func testStorageProblems() {
        // The storage record named by the pickle is not in the archive.
        expectFailure(scratch.write(validArchive(storages: [("7", float32Bytes([1, 2, 3, 4]))]), as: "nostorage.pth"),
                      mentions: ["'w'", "data/0", "missing"])
        // The record is shorter than the storage's declared size.
        expectFailure(scratch.write(validArchive(storages: [("0", float32Bytes([1, 2, 3]))]), as: "short.pth"), mentions: ["'w'", "bytes"])
        // A view that reaches past the end of its storage: offset 2 + [2, 2] contiguous needs 6 elements.
        let s = FakeStorage(key: "0", storageClass: "FloatStorage", numel: 4)
        expectFailure(scratch.write(validArchive(tensor: FakeTensor(storage: s, offset: 2, shape: [2, 2], stride: [2, 1])), as: "past.pth"),
                      mentions: ["'w'", "past the end"])
        // A transposed view whose stride is too large by one.
        expectFailure(scratch.write(validArchive(tensor: FakeTensor(storage: s, offset: 0, shape: [2, 2], stride: [1, 3])), as: "stride.pth"),
                      mentions: ["past the end"])
        // A storage type the reader cannot decode.
        let complex = FakeStorage(key: "0", storageClass: "ComplexFloatStorage", numel: 2)
        expectFailure(scratch.write(validArchive(tensor: FakeTensor(storage: complex, shape: [2])), as: "complex.pth"),
                      mentions: ["ComplexFloatStorage"])
    }

    func testFilesWithoutAStateDict() {
        expectFailure(scratch.write(torchArchive(.list([.int(1)]), storages: []), as: "list.pth"), mentions: ["list", "not a dict"])
        expectFailure(scratch.write(torchArchive(.dict([("epoch", .int(1)), ("model", .dict([]))]), storages: []), as: "nodict.pth"),
                      mentions: ["no state dict", "epoch"])
    }

    func testCorruptSafetensors() {
        // Header length larger than the file.
        var header: [UInt8] = [0xff, 0, 0, 0, 0, 0, 0, 0]
        header += Array("{\"a\":1}".utf8)
        expectFailure(scratch.write(header, as: "bad.safetensors"), mentions: ["header"])
        // A tensor whose data offsets run past the end.
        let json = Array("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}".utf8)
        var file: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: json.count >> (8 * $0)) }
        file += json + float32Bytes([1, 2])
        expectFailure(scratch.write(file, as: "short.safetensors"), mentions: ["'w'"])
        // A shape whose element count overflows.
        let huge = Array("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,0]}}".utf8)
        var overflow: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: huge.count >> (8 * $0)) }
        overflow += huge
        expectFailure(scratch.write(overflow, as: "huge.safetensors"), mentions: ["'w'"])
    }
}
