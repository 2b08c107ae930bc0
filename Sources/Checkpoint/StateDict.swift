// Checkpoint: the public entry point. `readCheckpoint(path:)` recognises the format by the file's first
// bytes (never by its extension, so .pth .pt .ckpt .bin .safetensors all work), reads a `torch.save`
// zip archive or a safetensors file, finds the state dict inside (`model`, `state_dict`, `model_ema`,
// `module`, or the top level) and returns its tensors in file order, widened to float32, with a
// one-line description of every other top-level object. The legacy pre-1.6 torch format is read with
// the same pickle allow-list; the tar format, TorchScript archives and anything else are refused with
// a one-line error and a hint.
//
// Typical use:
//
//     let sd = try readCheckpoint(path: "swin_nano.pth")
//     sd["stages.0.0.attn.relative_position_bias_table"]?.shape   // [169, 1]
//     sd.location                                                 // "model"
//     sd.otherObjects                                             // [("epoch", "int 299"), ("args", "argparse.Namespace (opaque, not loaded)")]

import Foundation

/// The container formats `readCheckpoint` understands.
public enum CheckpointFormat: String, Sendable {
    /// A `torch.save` zip archive (PyTorch 1.6 and later): `data.pkl` plus one record per storage.
    case torchZip = "torch zip archive"
    /// A `.safetensors` file.
    case safetensors
    /// A legacy `torch.save` file (before PyTorch 1.6): pickles and raw storages one after another.
    case legacyTorch = "legacy torch.save file"
}

/// The tensors of a model checkpoint, in file order, with where they were found and what else the file held.
public struct StateDict: Sendable {
    /// Names and tensors, in the order the file lists them.
    public var entries: [(String, TensorRecord)] {
        didSet { index = Self.makeIndex(entries) }
    }
    /// Where the state dict was found: `model`, `state_dict`, `model_ema`, `module` or `top level`.
    public var location: String
    /// The container format of the file.
    public var format: CheckpointFormat
    /// Objects of the file that were not used, each with a one-line description,
    /// e.g. `("epoch", "int 300")`, `("args", "argparse.Namespace (opaque, not loaded)")`.
    public var otherObjects: [(String, String)]
    /// Remarks about how the file was read, e.g. that a DataParallel `module.` prefix was removed from the keys.
    public var notes: [String]
    /// The key prefix the reader removed from every key (`module.`), if any.
    public var removedPrefix: String?
    /// The file inside the container the tensors came from, when `readCheckpoint` was given a wheel
    /// (the zip member's name) or a folder (the file's path); nil for a plain checkpoint file.
    public var member: String?

    private var index: [String: Int]

    /// Makes a state dict from tensors already in memory (the readers use it; so can tests).
    public init(entries: [(String, TensorRecord)], location: String = "top level", format: CheckpointFormat = .safetensors,
                otherObjects: [(String, String)] = [], notes: [String] = []) {
        self.entries = entries
        self.location = location
        self.format = format
        self.otherObjects = otherObjects
        self.notes = notes
        self.index = Self.makeIndex(entries)
    }

    /// The tensor called `key`, if there is one.
    public subscript(key: String) -> TensorRecord? {
        index[key].map { entries[$0].1 }
    }

    /// The tensor names, in file order.
    public var keys: [String] { entries.map(\.0) }

    private static func makeIndex(_ entries: [(String, TensorRecord)]) -> [String: Int] {
        var index: [String: Int] = [:]
        index.reserveCapacity(entries.count)
        for (i, entry) in entries.enumerated() where index[entry.0] == nil { index[entry.0] = i }
        return index
    }

    /// The tensors holding NaN or infinite values, in file order, with how many of their values are
    /// not finite (a diverged training run, or bytes damaged in a way no checksum caught).
    public var nonFiniteTensors: [(name: String, count: Int)] {
        entries.compactMap { name, record in
            let bad = record.values.withUnsafeBufferPointer { v in v.reduce(0) { $0 + ($1.isFinite ? 0 : 1) } }
            return bad > 0 ? (name, bad) : nil
        }
    }

    /// Removes the `module.` prefix that `torch.nn.DataParallel` puts on every key, when every key has it.
    mutating func stripDataParallelPrefix() {
        let prefix = "module."
        guard !entries.isEmpty, entries.allSatisfy({ $0.0.hasPrefix(prefix) }) else { return }
        entries = entries.map { (String($0.0.dropFirst(prefix.count)), $0.1) }
        removedPrefix = prefix
        notes.append("removed the DataParallel prefix '\(prefix)' from all \(entries.count) keys")
    }
}

/// Reads the state dict of a checkpoint: a `torch.save` zip archive (`.pth`, `.pt`, `.ckpt`, `.bin`, ...)
/// or a safetensors file, told apart by their first bytes; or the one `.pth`/`.pt` checkpoint inside a
/// wheel (a zip of compressed members) or below a folder (see Wheel.swift).
///
/// The pickle inside a torch archive is interpreted, never executed: unknown classes become opaque
/// values listed in `otherObjects`. Views (storage offsets, strides, shared storages) are materialised
/// contiguous and row-major; float16, bfloat16, float64, integer and bool tensors are widened to float32.
/// - Throws: `CheckpointError`, whose description is one line naming the file and the problem.
public func readCheckpoint(path: String) throws -> StateDict {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
        let inner = try PackagedCheckpoint.file(in: path)
        var state: StateDict
        do { state = try readCheckpoint(path: inner) } catch let e as CheckpointError {
            // Name the folder first: it is what the user gave.
            let name = String(inner.dropFirst(URL(fileURLWithPath: path).path.count)).drop { $0 == "/" }
            throw CheckpointError(path, "is a directory whose checkpoint \(name) cannot be read: \(e.problem)", hint: e.hint)
        }
        state.member = inner
        state.notes.append("read \(inner) found in the folder")
        return state
    }
    return try readCheckpointFile(try MappedFile(path: path))
}

/// `readCheckpoint` on bytes already in memory (a file, or a member inflated out of a wheel).
func readCheckpointFile(_ file: MappedFile) throws -> StateDict {
    let path = file.path
    let b = file.bytes
    guard b.count > 0 else {
        throw CheckpointError(path, "is empty (0 bytes)", hint: "the download or save did not finish; fetch or save it again")
    }
    var state: StateDict
    if b.count >= 4, b[0] == 0x50, b[1] == 0x4b, (b[2] == 3 && b[3] == 4) || (b[2] == 5 && b[3] == 6) {
        state = try TorchArchive.read(file)
    } else if SafeTensors.looksLike(b) {
        let (tensors, metadata) = try SafeTensors.parse(raw: b, path: path)
        state = StateDict(entries: tensors, location: "top level", format: .safetensors,
                          otherObjects: metadata.sorted { $0.key < $1.key }.map { ("__metadata__.\($0.key)", PickleValue.string($0.value).summary) })
    } else if isLegacyTorchFile(b) {
        guard b.first == 0x80 else {
            throw CheckpointError(path, "is a tar-format torch.save file (PyTorch 0.1-0.3), which is not supported",
                                  hint: "load it with torch.load and save it again with a recent torch.save, or convert it to safetensors")
        }
        state = try LegacyTorchFile.read(file)
    } else {
        let head = b.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")
        throw CheckpointError(path, "not a PyTorch zip archive or safetensors file (it starts with bytes \(head))",
                              hint: "supported formats: torch.save zip archives from PyTorch 1.6 or later (.pth .pt .ckpt .bin) and .safetensors")
    }
    state.stripDataParallelPrefix()
    return state
}

/// True for the files of `torch.save` before PyTorch 1.6: a pickled magic number first
/// (0x1950a86a20f9469cfc6c as a 10-byte LONG1), or the even older tar container.
func isLegacyTorchFile(_ b: UnsafeRawBufferPointer) -> Bool {
    let magic: [UInt8] = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]
    let head = Array(b.prefix(32))
    if head.first == 0x80, head.count >= magic.count {
        for start in 0...(head.count - magic.count) where Array(head[start..<(start + magic.count)]) == magic { return true }
    }
    // POSIX tar: "ustar" at offset 257.
    return b.count >= 262 && Array(b[257..<262]) == Array("ustar".utf8)
}
