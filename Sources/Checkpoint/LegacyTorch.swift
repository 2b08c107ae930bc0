// Checkpoint: the legacy `torch.save` format (PyTorch before 1.6, and `_use_new_zipfile_serialization=
// False` since). One file holds five things one after another: a pickled magic number
// (0x1950a86a20f9469cfc6c), the pickled protocol version (1001), a pickled dict of system information
// (`little_endian`, type sizes), the pickled object itself, whose tensors name their storages through
// persistent ids `('storage', type, key, location, numel, None)`, and a pickled list of storage keys;
// then, for each key in that order, the storage's element count as a little-endian int64 followed by
// its raw little-endian elements. Every pickle runs through the same interpreter and allow-list as the
// zip format: nothing is imported or executed.
// Left out: the even older tar container (refused with a hint), big-endian files, storage views
// (a sixth persistent-id item other than None, written only by very old versions).

import Foundation

/// Reads legacy (non-zip) `torch.save` files into a `StateDict`.
enum LegacyTorchFile {
    /// The protocol version that legacy `torch.save` pickles second.
    static let protocolVersion = 1001

    /// Reads `file`, already known to start with the pickled magic number.
    static func read(_ file: MappedFile) throws -> StateDict {
        let b = file.bytes
        let path = file.path
        var offset = 0
        func corrupt(_ problem: String) -> CheckpointError {
            CheckpointError(path, "corrupt legacy torch.save file: \(problem)", hint: "the file is damaged or truncated; re-save it with torch.save")
        }
        /// Runs the next pickle of the file; `body` sees the machine before its containers are released.
        func nextPickle<T>(_ what: String, _ body: (PickleValue, inout Unpickler) throws -> T) throws -> T {
            var unpickler = Unpickler(data: UnsafeRawBufferPointer(rebasing: b[offset...]), path: path, entryName: "the legacy file's \(what) pickle")
            defer { unpickler.releaseContainers() }
            let value = try unpickler.run()
            offset += unpickler.consumed
            return try body(value, &unpickler)
        }

        try nextPickle("magic number") { value, _ in
            guard case .bigInt = value else { throw corrupt("the magic number is missing") }
        }
        try nextPickle("protocol version") { value, _ in
            guard case .int(let version) = value, version == protocolVersion else {
                throw CheckpointError(path, "legacy torch.save protocol \(value.summary) is not \(protocolVersion)",
                                      hint: "load it with torch.load and save it again with a recent torch.save")
            }
        }
        try nextPickle("system information") { value, _ in
            if case .dict(let info) = value, case .bool(false)? = info["little_endian"] {
                throw CheckpointError(path, "stores big-endian tensors; only little-endian files are supported",
                                      hint: "load it with torch.load on any machine and save it again with torch.save on a little-endian one")
            }
        }
        let (found, storages) = try nextPickle("checkpoint object") { value, machine in
            (try TorchArchive.locateStateDict(value, path: path), machine.storages)
        }
        let keys: [String] = try nextPickle("storage key list") { value, _ in
            guard case .list(let list) = value else { throw corrupt("the storage key list is a \(value.summary)") }
            return try list.items.map { item in
                switch item {
                case .string(let s): return s
                case .int(let i): return String(i)
                default: throw corrupt("a storage key is a \(item.summary)")
                }
            }
        }

        // The storages' raw bytes, in the order of the key list.
        var data: [String: UnsafeRawBufferPointer] = [:]
        for key in keys {
            guard let storage = storages[key] else { throw corrupt("storage '\(key)' is listed but no tensor names it") }
            guard let dtype = storage.dtype else {
                throw CheckpointError(path, "storage '\(key)' has type \(storage.typeName), which cannot be decoded",
                                      hint: "supported: float32, float16, bfloat16, float64, integer and bool storages")
            }
            guard offset <= b.count - 8 else { throw corrupt("the file ends before storage '\(key)'") }
            let count = b.le64(offset)
            offset += 8
            let (bytes, overflow) = Int(clamping: count).multipliedReportingOverflow(by: dtype.size)
            guard count <= UInt64(Int.max), !overflow, bytes <= b.count - offset else {
                throw corrupt("storage '\(key)' claims \(count) elements, past the end of the file (truncated?)")
            }
            data[key] = UnsafeRawBufferPointer(rebasing: b[offset..<(offset + bytes)])
            offset += bytes
        }

        var reader = StorageReader(path: path, recordPrefix: "") { key in data[key] }
        var entries: [(String, TensorRecord)] = []
        entries.reserveCapacity(found.tensors.count)
        for (name, tensor) in found.tensors {
            entries.append((name, try reader.materialise(tensor, name: name)))
        }
        return StateDict(entries: entries, location: found.location, format: .legacyTorch, otherObjects: found.others)
    }
}
