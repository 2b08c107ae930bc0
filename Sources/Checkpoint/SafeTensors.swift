// Checkpoint: the safetensors format, read and written. An 8-byte little-endian header length, a JSON
// header naming each tensor's dtype, shape and byte range, then the raw little-endian data. Writing
// goes through the shared output path (Diagnostics/OutputFile.swift), so a failed write never leaves
// half a file and never replaces a device, pipe or link.
// Reads float and integer dtypes (widened to float32) from a memory-mapped file; writes float32 only.

import Foundation

/// Reader and writer for `.safetensors` files.
public enum SafeTensors {
    /// The largest header accepted, as the safetensors library itself limits it (100 MB).
    static let maxHeaderBytes: UInt64 = 100_000_000

    /// True when `bytes` start like a safetensors file (a header length, whatever its size, then `{`),
    /// so that an absurd header length gets a safetensors error rather than "unknown format".
    public static func looksLike(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { looksLike($0) }
    }

    static func looksLike(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 9 else { return false }
        let n = bytes.le64(0)
        return n > 1 && bytes[8] == UInt8(ascii: "{")
    }

    /// Reads every tensor of the file, in the order of their data offsets.
    /// - Returns: the tensors and the header's `__metadata__` strings.
    public static func read(path: String) throws -> (tensors: [(String, TensorRecord)], metadata: [String: String]) {
        let file = try MappedFile(path: path)
        return try parse(raw: file.bytes, path: path)
    }

    /// Reads the tensors of the file into a dictionary.
    public static func readDictionary(path: String) throws -> [String: TensorRecord] {
        Dictionary(try read(path: path).tensors, uniquingKeysWith: { a, _ in a })
    }

    /// Parses an in-memory safetensors file. `path` is used in error messages only.
    public static func parse(_ bytes: [UInt8], path: String) throws -> (tensors: [(String, TensorRecord)], metadata: [String: String]) {
        try bytes.withUnsafeBytes { try parse(raw: $0, path: path) }
    }

    /// Parses safetensors bytes held anywhere in memory (a mapped file, an array).
    static func parse(raw bytes: UnsafeRawBufferPointer, path: String) throws -> (tensors: [(String, TensorRecord)], metadata: [String: String]) {
        guard bytes.count >= 8, let base = bytes.baseAddress else {
            throw CheckpointError(path, "too short to be a safetensors file (\(bytes.count) bytes)")
        }
        let n = bytes.le64(0)
        guard n <= maxHeaderBytes else {
            throw CheckpointError(path, "safetensors header length \(n) is absurd (the format allows at most \(maxHeaderBytes) bytes)",
                                  hint: "the file is corrupt or not safetensors")
        }
        guard n <= UInt64(bytes.count - 8) else {
            throw CheckpointError(path, "safetensors header claims \(n) bytes but the file has \(bytes.count - 8) after the length",
                                  hint: "the file is truncated or not safetensors")
        }
        let headerBytes = Data(bytes: base + 8, count: Int(n))
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes) as? [String: Any] else {
            throw CheckpointError(path, "safetensors header is not a JSON object")
        }
        let dataStart = 8 + Int(n)
        let dataCount = bytes.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [(String, TensorRecord, Int)] = []
        for (name, value) in json {
            if name == "__metadata__" {
                if let m = value as? [String: Any] { for (k, v) in m { metadata[k] = "\(v)" } }
                continue
            }
            guard let info = value as? [String: Any],
                  let dtypeName = info["dtype"] as? String,
                  let shapeAny = info["shape"] as? [Any],
                  let offsets = info["data_offsets"] as? [Any], offsets.count == 2 else {
                throw CheckpointError(path, "tensor '\(name)' has a malformed header entry")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw CheckpointError(path, "tensor '\(name)' has unsupported dtype \(dtypeName)",
                                      hint: "supported: F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL")
            }
            let shape = shapeAny.compactMap { ($0 as? NSNumber)?.intValue }
            guard shape.count == shapeAny.count, shape.allSatisfy({ $0 >= 0 }) else {
                throw CheckpointError(path, "tensor '\(name)' has a malformed shape")
            }
            let o = offsets.compactMap { ($0 as? NSNumber)?.intValue }
            guard o.count == 2, o[0] >= 0, o[1] >= o[0], o[1] <= dataCount else {
                throw CheckpointError(path, "tensor '\(name)' has data offsets outside the file",
                                      hint: "the file is truncated")
            }
            var count = 1
            for d in shape {
                let (c, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow, c <= dataCount else {
                    throw CheckpointError(path, "tensor '\(name)' of shape \(shape) is larger than the file")
                }
                count = c
            }
            guard count * dtype.size == o[1] - o[0] else {
                throw CheckpointError(path, "tensor '\(name)' of shape \(shape) and dtype \(dtypeName) does not fill its \(o[1] - o[0]) bytes")
            }
            let values = decodeElements(base + dataStart + o[0], dtype: dtype, count: count)
            entries.append((name, TensorRecord(dtype: dtype, shape: shape, values: values), o[0]))
        }
        entries.sort { $0.2 != $1.2 ? $0.2 < $1.2 : $0.0 < $1.0 }
        // Two tensors must never share bytes (a crafted header could alias them); empty tensors take none.
        var previous: (name: String, end: Int)? = nil
        for (name, record, start) in entries where record.count > 0 {
            if let p = previous, start < p.end {
                throw CheckpointError(path, "tensors '\(p.name)' and '\(name)' overlap in the data (offset \(start) is before \(p.end))",
                                      hint: "the header is corrupt")
            }
            previous = (name, start + record.count * record.dtype.size)
        }
        return (entries.map { ($0.0, $0.1) }, metadata)
    }

    /// Writes float32 tensors, in the given order, atomically (temporary file, then rename).
    public static func write(path: String, tensors: [(String, TensorRecord)], metadata: [String: String] = [:]) throws {
        try writeAtomically(try encode(tensors: tensors, metadata: metadata), to: path)
    }

    /// The bytes of a safetensors file of float32 tensors, in the given order.
    public static func encode(tensors: [(String, TensorRecord)], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for (name, t) in tensors {
            let bytes = t.count * 4
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var headerData = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (headerData.count + 8) % 8 != 0 { headerData.append(UInt8(ascii: " ")) }
        var out = Data(capacity: 8 + headerData.count + offset)
        var n = UInt64(headerData.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(headerData)
        for (_, t) in tensors {
            t.values.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: UInt8.self) { out.append($0) }  // x86-64 and arm64 are little-endian
            }
        }
        return out
    }
}

/// Writes `data` to `path` through the shared output path (`OutputFile.write`): a temporary file beside
/// a regular file (or a symbolic link's target) renamed into place; devices and pipes written through;
/// `-` is standard output.
public func writeAtomically(_ data: Data, to path: String) throws {
    try OutputFile.write(data, to: path)
}
