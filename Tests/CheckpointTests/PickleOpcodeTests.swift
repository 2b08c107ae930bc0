// Tests: the pickle opcodes that torch's own archives do not use but other writers (older protocols,
// protocol 4/5, hand-made files) do. Each object is a raw opcode sequence that pushes one value into the
// top-level dict of an otherwise normal checkpoint; the value's one-line description in `otherObjects`
// shows how it was understood. Opcode bytes follow the pickle format of CPython's Lib/pickle.py.

import Checkpoint
import Foundation
import XCTest

final class PickleOpcodeTests: XCTestCase {
    private let scratch = ScratchFolder()

    /// Reads a checkpoint whose top level holds the model plus one raw-opcode object per entry,
    /// and returns the descriptions of those objects by name.
    private func describe(_ objects: [(String, [UInt8])]) throws -> [String: String] {
        let s = FakeStorage(key: "0", storageClass: "FloatStorage", numel: 1)
        let model = Py.orderedDict([("w", .tensor(FakeTensor(storage: s, shape: [1])))])
        let top = Py.dict([("model", model)] + objects.map { ($0.0, Py.raw($0.1)) })
        let sd = try readCheckpoint(path: scratch.write(torchArchive(top, storages: [("0", float32Bytes([1]))]), as: "ops.pth"))
        XCTAssertEqual(sd["w"]?.values, [1])
        XCTAssertEqual(sd.otherObjects.map(\.0), objects.map(\.0))
        return Dictionary(sd.otherObjects, uniquingKeysWith: { a, _ in a })
    }

    private func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }

    func testIntegerForms() throws {
        let d = try describe([
            ("int_text", ascii("I42\n")),
            ("true_text", ascii("I01\n")),
            ("false_text", ascii("I00\n")),
            ("long_text", ascii("L-7L\n")),
            ("huge_text", ascii("L123456789012345678901234567890L\n")),
            ("binint", [0x4a, 0xfe, 0xff, 0xff, 0xff]),  // -2
            ("binint2", [0x4d, 0x10, 0x27]),  // 10000
            ("long1_negative", [0x8a, 0x02, 0x00, 0xff]),  // -256
            ("long1_zero", [0x8a, 0x00]),
            ("long1_sign_extended", [0x8a, 0x09] + [UInt8](repeating: 0xff, count: 9)),  // -1 in 9 bytes
            ("long1_huge", [0x8a, 0x09] + [UInt8](repeating: 0, count: 8) + [0x01]),  // 2^64
            ("long4", [0x8b, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]),  // 65536
        ])
        XCTAssertEqual(d["int_text"], "int 42")
        XCTAssertEqual(d["true_text"], "bool True")
        XCTAssertEqual(d["false_text"], "bool False")
        XCTAssertEqual(d["long_text"], "int -7")
        XCTAssertTrue(d["huge_text"]?.hasSuffix("-byte integer)") ?? false, d["huge_text"] ?? "")
        XCTAssertEqual(d["binint"], "int -2")
        XCTAssertEqual(d["binint2"], "int 10000")
        XCTAssertEqual(d["long1_negative"], "int -256")
        XCTAssertEqual(d["long1_zero"], "int 0")
        XCTAssertEqual(d["long1_sign_extended"], "int -1")
        XCTAssertEqual(d["long1_huge"], "int (9-byte integer)")
        XCTAssertEqual(d["long4"], "int 65536")
    }

    func testFloatStringAndBytesForms() throws {
        let d = try describe([
            ("float_text", ascii("F1.5\n")),
            ("binfloat", [0x47, 0xc0, 0x04, 0, 0, 0, 0, 0, 0]),  // -2.5 big-endian
            ("string", ascii("S'abc'\n")),
            ("binstring", [0x54, 2, 0, 0, 0] + ascii("hi")),
            ("short_binstring", [0x55, 2] + ascii("yo")),
            ("unicode", ascii("Vcaf\\u00e9\n")),
            ("short_binunicode", [0x8c, 3] + ascii("xyz")),
            ("binunicode8", [0x8d, 1, 0, 0, 0, 0, 0, 0, 0] + ascii("q")),
            ("binbytes", [0x42, 3, 0, 0, 0, 1, 2, 3]),
            ("short_binbytes", [0x43, 2, 9, 9]),
            ("binbytes8", [0x8e, 1, 0, 0, 0, 0, 0, 0, 0, 5]),
            ("bytearray8", [0x96, 0, 0, 0, 0, 0, 0, 0, 0]),
        ])
        XCTAssertEqual(d["float_text"], "float 1.5")
        XCTAssertEqual(d["binfloat"], "float -2.5")
        XCTAssertEqual(d["string"], "str 'abc'")
        XCTAssertEqual(d["binstring"], "str 'hi'")
        XCTAssertEqual(d["short_binstring"], "str 'yo'")
        XCTAssertEqual(d["unicode"], "str 'café'")
        XCTAssertEqual(d["short_binunicode"], "str 'xyz'")
        XCTAssertEqual(d["binunicode8"], "str 'q'")
        XCTAssertEqual(d["binbytes"], "bytes (3)")
        XCTAssertEqual(d["short_binbytes"], "bytes (2)")
        XCTAssertEqual(d["binbytes8"], "bytes (1)")
        XCTAssertEqual(d["bytearray8"], "bytes (0)")
    }

    func testContainerAndStackForms() throws {
        let d = try describe([
            ("list_mark", ascii("(I1\nI2\nl")),
            ("dict_mark", ascii("(S'a'\nI1\nS'b'\nI2\nd")),
            ("tuple_mark", ascii("(I1\nI2\nI3\nI4\nt")),
            ("tuple2", [0x4b, 1, 0x4b, 2, 0x86]),
            ("set", [0x8f, 0x28, 0x4b, 1, 0x4b, 2, 0x4b, 3, 0x90]),  // EMPTY_SET MARK ... ADDITEMS
            ("frozenset", [0x28, 0x4b, 1, 0x91]),
            ("append", [0x5d, 0x4b, 7, 0x61]),  // EMPTY_LIST, APPEND
            ("put_pop_get", ascii("I5\np900\n0g900\n")),  // PUT, POP, GET (text memo)
            ("long_memo", [0x4b, 9, 0x72, 0x00, 0x00, 0x01, 0x00, 0x30, 0x6a, 0x00, 0x00, 0x01, 0x00]),
            ("dup_pop", ascii("I6\n20")),  // DUP, POP
            ("pop_mark", ascii("I8\n(I9\nI10\n1")),  // POP_MARK drops everything after the MARK
            ("framed", [0x95, 2, 0, 0, 0, 0, 0, 0, 0, 0x4b, 4]),  // FRAME around BININT1 4
        ])
        XCTAssertEqual(d["list_mark"], "list (2 items)")
        XCTAssertEqual(d["dict_mark"], "dict (2 entries)")
        XCTAssertEqual(d["tuple_mark"], "tuple (4 items)")
        XCTAssertEqual(d["tuple2"], "tuple (2 items)")
        XCTAssertEqual(d["set"], "set (3 items)")
        XCTAssertEqual(d["frozenset"], "set (1 item)")
        XCTAssertEqual(d["append"], "list (1 item)")
        XCTAssertEqual(d["put_pop_get"], "int 5")
        XCTAssertEqual(d["long_memo"], "int 9")
        XCTAssertEqual(d["dup_pop"], "int 6")
        XCTAssertEqual(d["pop_mark"], "int 8")
        XCTAssertEqual(d["framed"], "int 4")
    }

    func testObjectFormsAreOpaque() throws {
        let d = try describe([
            ("stack_global_newobj", [0x8c, 8] + ascii("argparse") + [0x8c, 9] + ascii("Namespace") + [0x93, 0x29, 0x81]),
            ("newobj_ex", ascii("cpathlib\nPath\n") + [0x29, 0x7d, 0x92]),
            ("inst", ascii("(S'x'\nicollections\nCounter\n")),
            ("obj", ascii("(cdatetime\ndate\nI2024\nI1\nI1\no")),
            ("reduce_twice", ascii("cbuiltins\neval\n(S'1+1'\ntR") + [0x29, 0x52]),  // calling the result again
            ("build_on_opaque", ascii("cos\nsystem\n(S'ls'\ntR}b")),  // BUILD with a dict state
            ("ext1", [0x82, 5]),
            ("persid_text", ascii("Pwhatever\n")),
            ("binpersid_other", ascii("S'not a storage'\nQ")),
            ("bare_global", ascii("cos\nremove\n")),
            ("unknown_tensor_rebuild", ascii("ctorch._utils\n_rebuild_qtensor\n(tR")),
            ("out_of_band", [0x97]),
        ])
        XCTAssertEqual(d["stack_global_newobj"], "argparse.Namespace (opaque, not loaded)")
        XCTAssertEqual(d["newobj_ex"], "pathlib.Path (opaque, not loaded)")
        XCTAssertEqual(d["inst"], "collections.Counter (opaque, not loaded)")
        XCTAssertEqual(d["obj"], "datetime.date (opaque, not loaded)")
        XCTAssertEqual(d["reduce_twice"], "result of calling builtins.eval (opaque, not loaded)")
        XCTAssertEqual(d["build_on_opaque"], "os.system (opaque, not loaded)")
        XCTAssertEqual(d["ext1"], "copyreg extension 5 (opaque, not loaded)")
        XCTAssertTrue(d["persid_text"]?.contains("persistent object") ?? false, d["persid_text"] ?? "")
        XCTAssertTrue(d["binpersid_other"]?.contains("persistent object") ?? false, d["binpersid_other"] ?? "")
        XCTAssertEqual(d["bare_global"], "reference to os.remove (not imported)")
        XCTAssertEqual(d["unknown_tensor_rebuild"], "torch._utils._rebuild_qtensor (opaque, not loaded)")
        XCTAssertEqual(d["out_of_band"], "out-of-band pickle buffer (opaque, not loaded)")
    }
}
