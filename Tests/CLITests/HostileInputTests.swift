// Hostile and broken inputs, one table: each row builds its inputs in a fresh folder, runs the tool, and
// checks the exit status, words of the message, and that nothing in the folder was written, replaced or
// left half-written except the files the row names. Rows cover outputs (devices, links, FIFOs, folders
// that are files or read-only, `-`), checkpoints (stale CRC, truncated zips, a wrong central directory,
// absurd or overlapping safetensors headers, unknown dtypes, NaN weights, FIFOs, pickles naming
// builtins.eval, subprocess.Popen or os.system, whole pickled models, the legacy format), images
// (truncated, over the pixel limit, grey/palette/alpha PNGs) and options (negative values, ranges,
// STM_THREADS), and the exit status of a tripped check.

import Checkpoint
import Foundation
import Imaging
import TestSupport
import XCTest

/// One hostile input and what the tool must do with it.
struct HostileRow {
    var name: String
    /// Makes the inputs inside the row's folder (given as the argument).
    var setup: (String) throws -> Void = { _ in }
    /// The arguments, with `$D` standing for the row's folder.
    var args: [String]
    var environment: [String: String] = [:]
    var status: Int32
    /// Words the stderr (status != 0) or stdout must contain.
    var words: [String]
    /// Paths (relative to the folder) that the run may create or change; everything else must stay as it was.
    var changes: Set<String> = []
    /// Skipped when the tests run as root (root writes into read-only folders).
    var needsNonRoot = false
}

final class HostileInputTests: XCTestCase {
    static let image = sharedDirectory() + "/images/imagenet-val/ILSVRC2012_val_00000004.JPEG"
    static let micro = ["--model", "unified_convnext_micro"]
    static let nanoArch = referencePath("convnext_nano.json")

    // MARK: building inputs

    static func copy(_ source: String, to path: String, edit: (inout [UInt8]) -> Void = { _ in }) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
        edit(&bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// A safetensors file with a hand-written header and `data` bytes.
    static func safetensors(_ header: String, data: [UInt8], to path: String, length: UInt64? = nil) throws {
        var out = [UInt8]()
        let h = Array(header.utf8)
        withUnsafeBytes(of: (length ?? UInt64(h.count)).littleEndian) { out += $0 }
        out += h + data
        try Data(out).write(to: URL(fileURLWithPath: path))
    }

    /// A legacy torch.save file whose object pickle is `object` (protocol 2 opcodes, without PROTO/STOP).
    static func legacy(object: [UInt8], to path: String) throws {
        let magic: [UInt8] = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]
        let version: [UInt8] = [0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e]
        let sysInfo: [UInt8] = [0x80, 0x02, 0x7d, 0x2e]  // {}
        let keys: [UInt8] = [0x80, 0x02, 0x5d, 0x2e]  // []
        try Data(magic + version + sysInfo + [0x80, 0x02] + object + [0x2e] + keys).write(to: URL(fileURLWithPath: path))
    }

    /// GLOBAL module.name, then REDUCE with one string argument: `module.name(argument)`.
    static func call(_ module: String, _ name: String, _ argument: String) -> [UInt8] {
        Array("c\(module)\n\(name)\n".utf8) + [0x28] + Array("V\(argument)\n".utf8) + [0x74, 0x52]  // ( V... t R
    }

    // MARK: PNG files of every colour type (stored deflate blocks, so no zlib is needed here)

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return ~c
    }

    static func png(width: Int, height: Int, colorType: UInt8, bitDepth: UInt8 = 8, palette: [UInt8]? = nil, rows: [[UInt8]]) -> [UInt8] {
        func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let typed = Array(type.utf8) + body
            return be32(body.count) + typed + be32(Int(crc32(typed)))
        }
        let raw: [UInt8] = rows.flatMap { row -> [UInt8] in [0] + row }  // filter type 0 per row
        var a: UInt32 = 1, b: UInt32 = 0
        for x in raw { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
        let n = raw.count
        var zlib: [UInt8] = [0x78, 0x01, 0x01]  // zlib header, then one final stored block
        zlib += [UInt8(n & 255), UInt8(n >> 8 & 255), UInt8(~n & 255), UInt8(~n >> 8 & 255)]
        zlib += raw
        zlib += be32(Int(b << 16 | a))
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        out += chunk("IHDR", be32(width) + be32(height) + [bitDepth, colorType, 0, 0, 0])
        if let palette { out += chunk("PLTE", palette) }
        out += chunk("IDAT", zlib) + chunk("IEND", [])
        return out
    }

    // MARK: the table

    static let rows: [HostileRow] = {
        let img = image, arch = nanoArch
        let nano = referencePath("convnext_nano.pth"), nanoST = referencePath("convnext_nano.safetensors")
        var rows: [HostileRow] = []

        // Outputs never destroy anything.
        rows.append(HostileRow(name: "json to /dev/null", args: ["classify"] + micro + ["--images", img, "--json", "/dev/null"],
                               status: 0, words: ["top-5"]))
        rows.append(HostileRow(name: "json to a symlink replaces its target, keeps the link",
                               setup: { d in
                                   try Data("old".utf8).write(to: URL(fileURLWithPath: d + "/target.json"))
                                   try FileManager.default.createSymbolicLink(atPath: d + "/link.json", withDestinationPath: "target.json")
                               },
                               args: ["classify"] + micro + ["--images", img, "--json", "$D/link.json"], status: 0, words: ["json"],
                               changes: ["target.json"]))
        rows.append(HostileRow(name: "json to a FIFO nobody reads", setup: { d in _ = mkfifo(d + "/fifo", 0o644) },
                               args: ["classify"] + micro + ["--images", img, "--json", "$D/fifo"], status: 1,
                               words: ["fifo", "named pipe", "nothing reads"]))
        rows.append(HostileRow(name: "json to standard output", args: ["classify"] + micro + ["--images", img, "--json", "-"],
                               status: 0, words: ["\"images\"", "\"top\""]))
        rows.append(HostileRow(name: "--out is a file", setup: { d in try Data("x".utf8).write(to: URL(fileURLWithPath: d + "/afile")) },
                               args: ["erf"] + micro + ["--images", img, "--out", "$D/afile"], status: 1, words: ["--out", "afile", "is a file"]))
        rows.append(HostileRow(name: "--out under a file", setup: { d in try Data("x".utf8).write(to: URL(fileURLWithPath: d + "/afile")) },
                               args: ["erf"] + micro + ["--images", img, "--out", "$D/afile/sub"], status: 1, words: ["afile/sub", "is a file, not a folder"]))
        rows.append(HostileRow(name: "--out read-only", setup: { d in
                                   try FileManager.default.createDirectory(atPath: d + "/ro", withIntermediateDirectories: false)
                                   _ = chmod(d + "/ro", 0o555)
                               },
                               args: ["erf"] + micro + ["--images", img, "--out", "$D/ro/out"], status: 1, words: ["ro/out", "read-only"],
                               needsNonRoot: true))
        rows.append(HostileRow(name: "a failed run leaves no --out folder", setup: { d in
                                   try Data("not an image".utf8).write(to: URL(fileURLWithPath: d + "/bad.jpg"))
                               },
                               args: ["erf"] + micro + ["--images", "$D/bad.jpg", "--out", "$D/newout"], status: 1, words: ["bad.jpg", "not a JPEG or PNG"]))

        // Nothing silently wrong.
        rows.append(HostileRow(name: "stale zip CRC", setup: { d in try copy(nano, to: d + "/crc.pth") { $0[$0.count / 2] ^= 0x55 } },
                               args: ["classify", "--model", "$D/crc.pth", "--arch", arch, "--images", img], status: 1,
                               words: ["crc.pth", "zip entry", "CRC-32"]))
        let nanWeights: (String) throws -> Void = { d in
            // Every float of the first stem tensor becomes NaN.
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: nanoST)))
            let n = bytes.withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self)) }
            let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as! [String: Any]
            let entry = header["downsample_layers.0.stem.0.weight"] as! [String: Any]
            let o = (entry["data_offsets"] as! [Int])
            let nan = Float.nan.bitPattern
            for i in stride(from: 8 + n + o[0], to: 8 + n + o[1], by: 4) {
                for k in 0..<4 { bytes[i + k] = UInt8(nan >> (8 * UInt32(k)) & 255) }
            }
            try Data(bytes).write(to: URL(fileURLWithPath: d + "/nan.safetensors"))
        }
        rows.append(HostileRow(name: "NaN weights refused", setup: nanWeights,
                               args: ["classify", "--model", "$D/nan.safetensors", "--arch", arch, "--images", img, "--json", "$D/p.json"],
                               status: 1, words: ["downsample_layers.0.stem.0.weight", "not all finite", "--allow-nonfinite"]))
        rows.append(HostileRow(name: "NaN weights allowed: JSON has null and says so", setup: nanWeights,
                               args: ["classify", "--model", "$D/nan.safetensors", "--arch", arch, "--images", img, "--json", "$D/p.json", "--allow-nonfinite"],
                               status: 0, words: ["written as null"], changes: ["p.json"]))
        rows.append(HostileRow(name: "NaN weights with erf blame the checkpoint", setup: nanWeights,
                               args: ["erf", "--model", "$D/nan.safetensors", "--arch", arch, "--images", img, "--out", "$D/e", "--allow-nonfinite"],
                               status: 1, words: ["no image gave a finite ERF map", "the cause is the checkpoint", "nan.safetensors"]))

        // Checkpoints.
        rows.append(HostileRow(name: "a FIFO as --model", setup: { d in _ = mkfifo(d + "/m.pth", 0o644) },
                               args: ["classify", "--model", "$D/m.pth", "--images", img], status: 1, words: ["m.pth", "named pipe"]))
        rows.append(HostileRow(name: "truncated zip", setup: { d in try copy(nano, to: d + "/t.pth") { $0 = Array($0.prefix($0.count / 2)) } },
                               args: ["inspect", "--model", "$D/t.pth"], status: 1, words: ["t.pth", "truncated"]))
        rows.append(HostileRow(name: "wrong central directory", setup: { d in
                                   try copy(nano, to: d + "/cd.pth") { b in
                                       // Break the signature of the first central directory header (PK 01 02).
                                       for i in stride(from: b.count - 4, through: 0, by: -1) where b[i] == 0x50 && b[i + 1] == 0x4b && b[i + 2] == 1 && b[i + 3] == 2 {
                                           if i < b.count / 2 { break }
                                           b[i + 3] = 9
                                       }
                                   }
                               },
                               args: ["inspect", "--model", "$D/cd.pth"], status: 1, words: ["cd.pth", "corrupt zip archive", "central directory"]))
        rows.append(HostileRow(name: "safetensors header length 2^62", setup: { d in
                                   try safetensors("{}", data: [], to: d + "/h.safetensors", length: 1 << 62)
                               },
                               args: ["inspect", "--model", "$D/h.safetensors"], status: 1, words: ["h.safetensors", "safetensors header length"]))
        rows.append(HostileRow(name: "safetensors offsets past the data", setup: { d in
                                   try safetensors(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: [UInt8](repeating: 0, count: 8), to: d + "/p.safetensors")
                               },
                               args: ["inspect", "--model", "$D/p.safetensors"], status: 1, words: ["p.safetensors", "'w'", "outside the file"]))
        rows.append(HostileRow(name: "safetensors overlapping tensors", setup: { d in
                                   try safetensors(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                                                   data: [UInt8](repeating: 0, count: 12), to: d + "/o.safetensors")
                               },
                               args: ["inspect", "--model", "$D/o.safetensors"], status: 1, words: ["o.safetensors", "overlap"]))
        rows.append(HostileRow(name: "safetensors unknown dtype", setup: { d in
                                   try safetensors(#"{"w":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8), to: d + "/u.safetensors")
                               },
                               args: ["inspect", "--model", "$D/u.safetensors"], status: 1, words: ["u.safetensors", "unsupported dtype C64"]))
        for (module, name) in [("builtins", "eval"), ("subprocess", "Popen"), ("os", "system")] {
            rows.append(HostileRow(name: "pickle calling \(module).\(name)", setup: { d in
                                       try legacy(object: call(module, name, "open('\(d)/PWNED', 'w')"), to: d + "/evil.pth")
                                   },
                                   args: ["inspect", "--model", "$D/evil.pth"], status: 1,
                                   words: ["evil.pth", "\(module).\(name)", "whole pickled object", "state_dict()"]))
        }
        rows.append(HostileRow(name: "__reduce__ trick inside the checkpoint dict", setup: { d in
                                   // {'model': os.system('touch PWNED')}
                                   try legacy(object: [0x7d] + Array("Vmodel\n".utf8) + call("os", "system", "touch \(d)/PWNED") + [0x73],
                                              to: d + "/reduce.pth")
                               },
                               args: ["inspect", "--model", "$D/reduce.pth"], status: 1, words: ["reduce.pth", "'model'", "os.system", "state_dict()"]))
        rows.append(HostileRow(name: "a whole pickled nn.Module", setup: { d in
                                   try legacy(object: Array("ctorch.nn.modules.container\nSequential\n".utf8) + [0x29, 0x81, 0x7d, 0x62], to: d + "/module.pth")
                               },
                               args: ["classify", "--model", "$D/module.pth", "--images", img], status: 1,
                               words: ["module.pth", "torch.nn.modules.container.Sequential", "model.state_dict()"]))
        rows.append(HostileRow(name: "legacy torch.save file written by PyTorch", args: ["inspect", "--model", referencePath("convnext_nano_legacy.pth")],
                               status: 0, words: ["legacy torch.save file", "161 tensors", "convnext"]))

        // Images.
        rows.append(HostileRow(name: "truncated JPEG last in a folder fails before any compute", setup: { d in
                                   try FileManager.default.createDirectory(atPath: d + "/imgs", withIntermediateDirectories: false)
                                   try copy(img, to: d + "/imgs/a.jpg")
                                   try copy(img, to: d + "/imgs/z.jpg") { $0 = Array($0.prefix(3000)) }
                               },
                               args: ["erf"] + micro + ["--images", "$D/imgs", "--out", "$D/e"], status: 1, words: ["z.jpg", "truncated"]))
        rows.append(HostileRow(name: "--skip-bad skips and lists the truncated JPEG", setup: { d in
                                   try FileManager.default.createDirectory(atPath: d + "/imgs", withIntermediateDirectories: false)
                                   try copy(img, to: d + "/imgs/a.jpg")
                                   try copy(img, to: d + "/imgs/z.jpg") { $0 = Array($0.prefix(3000)) }
                               },
                               args: ["classify"] + micro + ["--images", "$D/imgs", "--skip-bad", "--json", "$D/p.json"], status: 0,
                               words: ["top-5", "skipped", "z.jpg", "truncated"], changes: ["p.json"]))
        rows.append(HostileRow(name: "20000 x 20000 PNG refused before decoding", setup: { d in
                                   var big = png(width: 1, height: 1, colorType: 2, rows: [[0, 0, 0]])
                                   // IHDR says 20000 x 20000 (its CRC is not checked before the limit).
                                   for (i, v) in [0, 0, 0x4e, 0x20, 0, 0, 0x4e, 0x20].enumerated() { big[16 + i] = UInt8(v) }
                                   try Data(big).write(to: URL(fileURLWithPath: d + "/big.png"))
                               },
                               args: ["classify"] + micro + ["--images", "$D/big.png"], status: 1, words: ["big.png", "20000x20000", "--max-pixels"]))
        rows.append(HostileRow(name: "grey, palette, grey+alpha and RGBA PNGs classify", setup: { d in
                                   try Data(png(width: 40, height: 40, colorType: 0, rows: Array(repeating: [UInt8](repeating: 90, count: 40), count: 40)))
                                       .write(to: URL(fileURLWithPath: d + "/grey.png"))
                                   try Data(png(width: 40, height: 40, colorType: 3, palette: [10, 20, 30, 200, 100, 50],
                                                rows: Array(repeating: (0..<40).map { UInt8($0 % 2) }, count: 40)))
                                       .write(to: URL(fileURLWithPath: d + "/palette.png"))
                                   try Data(png(width: 40, height: 40, colorType: 4, rows: Array(repeating: [UInt8](repeating: 7, count: 80), count: 40)))
                                       .write(to: URL(fileURLWithPath: d + "/greyalpha.png"))
                                   try Data(png(width: 40, height: 40, colorType: 6, rows: Array(repeating: [UInt8](repeating: 128, count: 160), count: 40)))
                                       .write(to: URL(fileURLWithPath: d + "/rgba.png"))
                               },
                               args: ["classify"] + micro + ["--images", "$D"], status: 0,
                               words: ["grey.png", "palette.png", "rgba.png", "smaller than the 224 px input"]))

        // Options.
        for (opt, value, word) in [("--size", "-5", "negative"), ("--crop-pct", "-1", "negative"), ("--threads", "-1", "--threads")] {
            rows.append(HostileRow(name: "classify \(opt) \(value)", args: ["classify"] + micro + ["--images", img, opt, value], status: 1,
                                   words: [opt, word]))
        }
        for extra in [["translate", "--size", "1"], ["translate", "--levels", "100000"], ["scale", "--levels", "1000"],
                      ["translate", "--crop-pct", "1e-9"], ["translate", "--levels", "-5,0"]] {
            rows.append(HostileRow(name: "invariance \(extra.joined(separator: " "))", args: ["invariance"] + extra + micro + ["--images", img],
                                   status: 1, words: [extra[1]]))
        }
        for value in ["abc", "0", "99999"] {
            rows.append(HostileRow(name: "STM_THREADS=\(value)", args: ["classify"] + micro + ["--images", img],
                                   environment: ["STM_THREADS": value], status: 1, words: ["STM_THREADS", "1 and 1024", value]))
        }

        // Exit statuses: a tripped check is 2, a run that could not be done is 1.
        rows.append(HostileRow(name: "--fail-below tripped exits 2", args: ["invariance", "scale", "--model", nano, "--arch", arch, "--images", img,
                                                                           "--levels", "0.2", "--out", "$D/inv", "--fail-below", "100"],
                               status: 2, words: ["check failed", "below --fail-below"],
                               changes: ["inv", "inv/scale.json", "inv/scale.csv", "inv/scale.png", "inv/scale.svg",
                                         "inv/scale_images.csv", "inv/.stm-analyze-results"]))
        return rows
    }()

    // MARK: running the table

    /// Every entry under `dir`: relative path -> its kind and contents (links by target, files by bytes and inode).
    func snapshot(_ dir: String) -> [String: String] {
        var out: [String: String] = [:]
        func walk(_ rel: String) {
            let path = rel.isEmpty ? dir : dir + "/" + rel
            var info = stat()
            guard lstat(path, &info) == 0 else { return }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                if !rel.isEmpty { out[rel] = "dir" }
                for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] { walk(rel.isEmpty ? name : rel + "/" + name) }
            case S_IFLNK:
                out[rel] = "link -> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?")
            case S_IFREG:
                let data = FileManager.default.contents(atPath: path) ?? Data()
                var fnv: UInt64 = 0xcbf2_9ce4_8422_2325
                for b in data { fnv = (fnv ^ UInt64(b)) &* 0x100_0000_01b3 }
                out[rel] = "file inode \(info.st_ino) mode \(info.st_mode) bytes \(data.count) fnv \(fnv)"
            default:
                out[rel] = "special \(info.st_mode & S_IFMT)"
            }
        }
        walk("")
        return out
    }

    func testHostileInputs() throws {
        let isRoot = geteuid() == 0
        for row in Self.rows {
            if row.needsNonRoot && isRoot { continue }  // root writes into read-only folders; the row runs as a user
            let dir = temporaryDirectory("hostile")
            try row.setup(dir)
            let before = snapshot(dir)
            let run = try runTool(row.args.map { $0.replacingOccurrences(of: "$D", with: dir) }, environment: row.environment)
            let after = snapshot(dir)
            let context = "[\(row.name)] status \(run.status)\nstderr: \(run.stderr)"
            XCTAssertEqual(run.status, row.status, context)
            let text = run.status == 0 ? run.stdout + run.stderr : run.stderr
            for w in row.words { XCTAssertTrue(text.contains(w), "[\(row.name)] should mention '\(w)': \(text.prefix(600))") }
            XCTAssertFalse(run.stderr.contains("Fatal error") || run.stderr.contains("NSCocoaErrorDomain"), context)
            if run.status == 1 {
                let errors = run.stderr.split(separator: "\n").filter { !$0.hasPrefix("warning:") }
                XCTAssertEqual(errors.count, 1, "[\(row.name)] one error line: \(run.stderr)")
            }
            // Nothing written, replaced or left over except what the row names.
            let unchanged = { (s: [String: String]) in s.filter { !row.changes.contains($0.key) } }
            XCTAssertEqual(unchanged(after), unchanged(before), "[\(row.name)] the folder changed")
            for path in row.changes where after[path] == nil { XCTFail("[\(row.name)] \(path) was not written") }
            XCTAssertNil(after["PWNED"], "[\(row.name)] a pickle ran code")
            _ = chmod(dir + "/ro", 0o755)
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// A symlinked output stays a link and its target gets the new bytes; NaN probabilities are null.
    func testLinkTargetAndNullsAreWritten() throws {
        let dir = temporaryDirectory("hostile")
        try Data("old".utf8).write(to: URL(fileURLWithPath: dir + "/target.json"))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.json", withDestinationPath: "target.json")
        let run = try runTool(["classify"] + Self.micro + ["--images", Self.image, "--json", dir + "/link.json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/link.json"), "target.json")
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/target.json"))) as? [String: Any]
        XCTAssertNotNil(doc?["images"])

        try Self.rows.first { $0.name.hasPrefix("NaN weights allowed") }!.setup(dir)
        let nan = try runTool(["classify", "--model", dir + "/nan.safetensors", "--arch", Self.nanoArch, "--images", Self.image,
                               "--json", dir + "/p.json", "--allow-nonfinite"])
        XCTAssertEqual(nan.status, 0, nan.stderr)
        let text = try String(contentsOfFile: dir + "/p.json", encoding: .utf8)
        XCTAssertTrue(text.contains("\"probability\" : null"), text)
    }

    /// Grey, grey+alpha and RGBA PNGs come out as RGB the way Pillow's convert("RGB") gives them:
    /// grey replicated, alpha dropped; a palette index gives its palette colour.
    func testPNGColourTypesBecomeRGB() throws {
        let dir = temporaryDirectory("hostile")
        try Self.rows.first { $0.name.hasPrefix("grey, palette") }!.setup(dir)
        let grey = try loadImage(path: dir + "/grey.png")
        XCTAssertEqual(grey.channels, 3)
        XCTAssertEqual(Array(grey.pixels.prefix(6)), [90, 90, 90, 90, 90, 90])
        let palette = try loadImage(path: dir + "/palette.png")
        XCTAssertEqual(Array(palette.pixels.prefix(6)), [10, 20, 30, 200, 100, 50])
        let greyAlpha = try loadImage(path: dir + "/greyalpha.png")
        XCTAssertEqual(Array(greyAlpha.pixels.prefix(3)), [7, 7, 7])
        let rgba = try loadImage(path: dir + "/rgba.png")
        XCTAssertEqual(rgba.channels, 3)
        XCTAssertEqual(Array(rgba.pixels.prefix(3)), [128, 128, 128])
    }
}
