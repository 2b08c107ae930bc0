// Checkpoint: a whole file mapped read-only into memory, so that multi-hundred-megabyte checkpoints are
// read without copying them into a buffer first (the kernel pages them in as tensors are decoded).
// It leaves out writing and partial mappings; the mapping lives as long as the `MappedFile` object.
// A member inflated out of another archive (a checkpoint inside a wheel) is held the same way, in
// memory the object owns.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Errors name the file and say what went wrong.
final class MappedFile {
    /// The path the file was opened with (for error messages).
    let path: String
    /// The mapped bytes; empty (and `nil` base address) for an empty file.
    let bytes: UnsafeRawBufferPointer
    /// True when `bytes` is memory this object allocated (an inflated archive member), not a mapping.
    private let owned: Bool

    /// Maps `path`. Throws `CheckpointError` for a missing file, a directory, a pipe or device (never
    /// waiting on one), or an unreadable file.
    init(path: String) throws {
        self.path = path
        owned = false
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CheckpointError(path, "no such file", hint: "check the path")
        }
        if isDirectory.boolValue {
            throw CheckpointError(path, "is a directory, not a checkpoint file")
        }
        // O_NONBLOCK: opening a named pipe must not wait for a writer (it is refused just below).
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw CheckpointError(path, "cannot be opened: \(String(cString: strerror(errno)))",
                                  hint: "check the file's permissions")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw CheckpointError(path, "cannot be examined: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            let kind = info.st_mode & S_IFMT == S_IFIFO ? "a named pipe" : "a device or other special file"
            throw CheckpointError(path, "is \(kind), not a regular checkpoint file", hint: "copy the checkpoint to a file first")
        }
        let size = Int(info.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw CheckpointError(path, "cannot be mapped into memory: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
    }

    /// Takes ownership of `buffer` (allocated with `UnsafeMutableRawPointer.allocate`), named `path`
    /// in errors: the bytes of a file that lives inside another archive.
    init(path: String, taking buffer: UnsafeMutableRawBufferPointer) {
        self.path = path
        owned = true
        bytes = UnsafeRawBufferPointer(buffer)
    }

    deinit {
        if owned {
            bytes.baseAddress.map { UnsafeMutableRawPointer(mutating: $0).deallocate() }
        } else if let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }
}

/// Little-endian loads from a byte buffer, bounds-checked by the callers.
extension UnsafeRawBufferPointer {
    @inline(__always) func le16(_ at: Int) -> UInt16 { UInt16(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
    @inline(__always) func le32(_ at: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    @inline(__always) func le64(_ at: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
}
