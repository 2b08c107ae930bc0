// Checkpoint: the zip container of `torch.save` archives. Finds the end-of-central-directory record
// (and its zip64 form, which torch always writes), lists the central directory, and hands out the
// bytes of STORED entries straight from the memory-mapped file, without copying. The CRC-32 of every
// entry handed out is checked once against the central directory (zlib's crc32_z, several GB/s), so a
// checkpoint whose bytes changed after it was written is refused with the entry's name instead of
// loading wrong weights.
// Left out: compressed entries (torch never writes them; they are refused with a hint), encryption,
// multi-disk archives.
//
// Layout key (offsets in bytes, little-endian): EOCD = end of central directory (22 bytes + comment),
// CD = central directory (46-byte headers + name + extra + comment), LH = local header (30 bytes + name + extra).

import CZlib
import Foundation

/// One file inside a zip archive, as listed by the central directory.
struct ZipEntry {
    var name: String
    /// General-purpose flags (bit 0: encrypted).
    var flags: UInt16
    /// 0 = stored, 8 = deflate, others rare.
    var method: UInt16
    var compressedSize: Int
    var size: Int
    var localHeaderOffset: Int
    /// The CRC-32 of the entry's uncompressed bytes, from the central directory.
    var crc32: UInt32 = 0
}

/// The entries whose CRC-32 has been checked (shared by copies of a `ZipArchive`).
private final class CheckedEntries {
    var offsets: Set<Int> = []
}

/// A zip archive over a memory-mapped file. Entry data is returned as views into the mapping.
struct ZipArchive {
    let file: MappedFile
    /// Entries in central-directory order.
    let entries: [ZipEntry]
    private let indexByName: [String: Int]
    private let checked = CheckedEntries()

    private static let eocdSignature: UInt32 = 0x0605_4b50
    private static let zip64LocatorSignature: UInt32 = 0x0706_4b50
    private static let zip64EOCDSignature: UInt32 = 0x0606_4b50
    private static let centralSignature: UInt32 = 0x0201_4b50
    private static let localSignature: UInt32 = 0x0403_4b50

    /// Parses the central directory of `file`. Throws a `CheckpointError` naming the file when the
    /// end record is missing (a truncated file) or any record points outside the file.
    init(file: MappedFile) throws {
        self.file = file
        let b = file.bytes
        let path = file.path
        func corrupt(_ what: String) -> CheckpointError {
            CheckpointError(path, "corrupt zip archive: \(what)", hint: "the file is damaged or truncated; re-download or re-save it")
        }

        // 1. The end-of-central-directory record: 22 bytes, then a comment of up to 65535 bytes.
        guard b.count >= 22 else {
            throw CheckpointError(path, "zip archive is truncated: only \(b.count) bytes and no central directory",
                                  hint: "the file is incomplete; re-download or re-save it")
        }
        var eocd = -1
        var position = b.count - 22
        let lowest = max(0, b.count - 22 - 65535)
        while position >= lowest {
            if b.le32(position) == Self.eocdSignature, position + 22 + Int(b.le16(position + 20)) <= b.count {
                eocd = position
                break
            }
            position -= 1
        }
        guard eocd >= 0 else {
            throw CheckpointError(path, "zip archive is truncated: its central directory (the index at the end of the file) is missing",
                                  hint: "the file is incomplete, e.g. an interrupted download or copy; re-download or re-save it")
        }
        var entryCount = Int(b.le16(eocd + 10))
        var directorySize = Int(b.le32(eocd + 12))
        var directoryOffset = Int(b.le32(eocd + 16))

        // 2. The zip64 end record, found through its 20-byte locator just before the EOCD.
        if eocd >= 20, b.le32(eocd - 20) == Self.zip64LocatorSignature {
            let recordOffset64 = b.le64(eocd - 20 + 8)
            guard b.count >= 56, recordOffset64 <= UInt64(b.count - 56), b.le32(Int(recordOffset64)) == Self.zip64EOCDSignature else {
                throw corrupt("the zip64 end record is missing or out of place")
            }
            let record = Int(recordOffset64)
            let count64 = b.le64(record + 32), size64 = b.le64(record + 40), offset64 = b.le64(record + 48)
            guard count64 <= UInt64(b.count), size64 <= UInt64(b.count), offset64 <= UInt64(b.count) else {
                throw corrupt("the zip64 end record gives sizes larger than the file")
            }
            entryCount = Int(count64)
            directorySize = Int(size64)
            directoryOffset = Int(offset64)
        }
        guard directoryOffset <= b.count, directorySize <= b.count - directoryOffset else {
            throw CheckpointError(path, "zip archive is truncated: its central directory lies past the end of the file",
                                  hint: "the file is incomplete; re-download or re-save it")
        }
        guard entryCount <= directorySize / 46 else {
            throw corrupt("the end record lists \(entryCount) entries, more than a \(directorySize)-byte central directory can hold")
        }

        // 3. The central directory headers.
        var list: [ZipEntry] = []
        list.reserveCapacity(entryCount)
        var index: [String: Int] = [:]
        var p = directoryOffset
        let end = directoryOffset + directorySize
        for _ in 0..<entryCount {
            guard p + 46 <= end, b.le32(p) == Self.centralSignature else {
                throw corrupt("central directory entry \(list.count) is malformed")
            }
            let nameLength = Int(b.le16(p + 28)), extraLength = Int(b.le16(p + 30)), commentLength = Int(b.le16(p + 32))
            guard p + 46 + nameLength + extraLength + commentLength <= end else {
                throw corrupt("central directory entry \(list.count) runs past the directory's end")
            }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: b[(p + 46)..<(p + 46 + nameLength)]), as: UTF8.self)
            var compressed = UInt64(b.le32(p + 20))
            var size = UInt64(b.le32(p + 24))
            var localOffset = UInt64(b.le32(p + 42))
            // Zip64 extra field (id 1): 64-bit values for exactly those fields saturated at 0xFFFFFFFF.
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = b.le16(e), length = Int(b.le16(e + 2))
                let body = e + 4
                guard body + length <= extraEnd else { break }
                if id == 1 {
                    var q = body
                    func next() -> UInt64? {
                        guard q + 8 <= body + length else { return nil }
                        defer { q += 8 }
                        return b.le64(q)
                    }
                    if size == 0xFFFF_FFFF { size = next() ?? size }
                    if compressed == 0xFFFF_FFFF { compressed = next() ?? compressed }
                    if localOffset == 0xFFFF_FFFF { localOffset = next() ?? localOffset }
                }
                e = body + length
            }
            guard compressed <= UInt64(b.count), size <= UInt64(Int.max / 2), localOffset <= UInt64(b.count) else {
                throw corrupt("entry '\(name)' gives sizes or offsets larger than the file")
            }
            index[name] = list.count
            list.append(ZipEntry(name: name, flags: b.le16(p + 8), method: b.le16(p + 10),
                                 compressedSize: Int(compressed), size: Int(size), localHeaderOffset: Int(localOffset),
                                 crc32: b.le32(p + 16)))
            p += 46 + nameLength + extraLength + commentLength
        }
        entries = list
        indexByName = index
    }

    /// The entry called `name`, if the archive has one.
    func entry(named name: String) -> ZipEntry? {
        indexByName[name].map { entries[$0] }
    }

    /// The bytes of a stored entry, as a view into the mapped file (valid while `file` lives).
    func data(of entry: ZipEntry) throws -> UnsafeRawBufferPointer {
        let b = file.bytes
        let path = file.path
        if entry.flags & 1 != 0 {
            throw CheckpointError(path, "zip entry '\(entry.name)' is encrypted", hint: "only unencrypted torch.save archives can be read")
        }
        guard entry.method == 0 else {
            let method = entry.method == 8 ? "deflate-compressed" : "compressed with zip method \(entry.method)"
            throw CheckpointError(path, "zip entry '\(entry.name)' is \(method); only stored (uncompressed) entries are supported",
                                  hint: "torch.save writes stored entries; re-save with torch.save, or re-zip without compression (zip -0)")
        }
        guard entry.compressedSize == entry.size else {
            throw CheckpointError(path, "zip entry '\(entry.name)' is stored but its sizes disagree (\(entry.compressedSize) vs \(entry.size))",
                                  hint: "the archive is corrupt")
        }
        let header = entry.localHeaderOffset
        guard header <= b.count - 30, b.le32(header) == Self.localSignature else {
            throw CheckpointError(path, "zip entry '\(entry.name)' has no local header at offset \(header)",
                                  hint: "the archive is corrupt or truncated")
        }
        let start = header + 30 + Int(b.le16(header + 26)) + Int(b.le16(header + 28))
        guard start <= b.count, entry.size <= b.count - start else {
            throw CheckpointError(path, "zip entry '\(entry.name)' runs past the end of the file (\(entry.size) bytes at offset \(start))",
                                  hint: "the file is truncated; re-download or re-save it")
        }
        let bytes = UnsafeRawBufferPointer(rebasing: b[start..<(start + entry.size)])
        if !checked.offsets.contains(header) {
            let crc = UInt32(truncatingIfNeeded: crc32_z(0, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count))
            guard crc == entry.crc32 else {
                throw CheckpointError(path, "zip entry '\(entry.name)' is corrupt: its CRC-32 is \(hex(crc)) but the archive records \(hex(entry.crc32))",
                                      hint: "the file was damaged after it was written; re-download or re-save it")
            }
            checked.offsets.insert(header)
        }
        return bytes
    }

    private func hex(_ v: UInt32) -> String { String(format: "%08x", v) }
}
