// Diagnostics: the one path by which every output of stm-analyze reaches the file system, so that no
// output ever destroys anything. A regular file (or a new path) is written to a temporary file beside
// it and renamed into place, so a reader sees the old bytes or the new ones, never half a file; a
// symbolic link is followed and its target replaced that way (the link stays a link); a character
// device or a named pipe (`/dev/null`, `/dev/stdout`, a FIFO with a reader) is written through, as a
// shell redirection would; a block device, socket or folder is refused. `-` is standard output.
// Folders are checked before a run's work and created only when there is something to put in them.
// Every failure is one line saying what happened and where (a missing folder, a folder that is a file,
// a read-only folder), never a raw Foundation error.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes outputs without destroying anything: atomic replacement of regular files, write-through for
/// devices and pipes, `-` for standard output, and one-line errors naming the path.
public enum OutputFile {
    /// How a path will be written.
    public enum Kind: Equatable, Sendable {
        /// `-`: standard output.
        case standardOutput
        /// A new file or a regular file: a temporary file beside `target` renamed over it
        /// (`target` differs from the path given when that is a symbolic link).
        case replace(target: String)
        /// A character device or a named pipe: opened and written in place.
        case writeThrough
    }

    /// Decides how `path` would be written, without writing anything.
    /// - Throws: `ToolError` naming `path` when it is a folder, a block device or a socket, a read-only
    ///   file, or a path whose folder is missing, is a file, or is not writable.
    public static func plan(_ path: String) throws -> Kind {
        if path == "-" { return .standardOutput }
        guard !path.isEmpty else { throw ToolError("(empty path)", "is not a file name") }
        if path.hasSuffix("/") { throw ToolError(path, "names a folder, not a file") }
        var info = stat()
        if stat(path, &info) == 0 {
            switch info.st_mode & S_IFMT {
            case S_IFREG:
                break
            case S_IFDIR:
                throw ToolError(path, "is a folder, not a file", hint: "give a file name inside it")
            case S_IFCHR, S_IFIFO:
                return .writeThrough
            case S_IFBLK:
                throw ToolError(path, "is a block device; refusing to write over it", hint: "give a regular file name")
            default:
                throw ToolError(path, "is a socket or another special file; refusing to write to it", hint: "give a regular file name")
            }
            // A regular file reached through /dev or /proc (/dev/stdout redirected to a file) belongs
            // to an open descriptor: write through it rather than replace the file under it.
            if path.hasPrefix("/dev/") || path.hasPrefix("/proc/") { return .writeThrough }
            let target = resolveLinks(path)
            guard access(target, W_OK) == 0 else {
                throw ToolError(path, (target == path ? "" : "(a link to \(target)) ") + "is read-only; refusing to replace it",
                                hint: "make it writable or choose another name")
            }
            try checkFolder(of: target, for: path)
            return .replace(target: target)
        }
        // Nothing there, or a link to nothing: a new file at the end of the links.
        let target = resolveLinks(path)
        try checkFolder(of: target, for: path)
        return .replace(target: target)
    }

    /// Writes `data` to `path` as `plan(path)` says: atomically for files, through for devices and pipes.
    public static func write(_ data: Data, to path: String) throws {
        try data.withUnsafeBytes { try write(bytes: $0, to: path) }
    }

    /// Writes `bytes` to `path` as `plan(path)` says: atomically for files, through for devices and pipes.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        try bytes.withUnsafeBytes { try write(bytes: $0, to: path) }
    }

    /// Writes raw bytes to `path` as `plan(path)` says.
    public static func write(bytes: UnsafeRawBufferPointer, to path: String) throws {
        switch try plan(path) {
        case .standardOutput:
            fflush(stdout)  // what print() buffered comes first
            if let problem = writeAll(1, bytes) { throw ToolError("standard output", "cannot be written: \(problem)") }
        case .writeThrough:
            // O_NONBLOCK: a pipe without a reader fails at once (ENXIO) instead of waiting for one.
            let fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
            guard fd >= 0 else {
                let e = errno
                if e == ENXIO { throw ToolError(path, "is a named pipe that nothing reads; nothing was written", hint: "start its reader first") }
                throw ToolError(path, "cannot be opened for writing: \(String(cString: strerror(e)))")
            }
            defer { close(fd) }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
            if let problem = writeAll(fd, bytes) { throw ToolError(path, "cannot be written: \(problem)") }
        case .replace(let target):
            try replace(target, with: bytes, shownAs: path)
        }
    }

    /// Checks, before a run's work, that `path` can be written (see `plan`). `option` prefixes the error.
    public static func check(_ path: String, option: String) throws {
        do { _ = try plan(path) } catch let e as ToolError {
            throw ToolError("\(option) \(e.subject)", e.problem, hint: e.hint)
        }
    }

    /// Checks, before a run's work, that the folder `dir` exists and is writable or can be created,
    /// without creating it. `option` (e.g. `--out`) prefixes the error.
    public static func checkFolder(_ dir: String, option: String) throws {
        var info = stat()
        if stat(dir, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw ToolError("\(option) \(dir)", "is a file, not a folder", hint: "give a folder, or remove the file")
            }
            guard access(dir, W_OK) == 0 else {
                throw ToolError("\(option) \(dir)", "the folder is read-only", hint: "choose a writable folder")
            }
            return
        }
        let (existing, isFolder) = nearestExisting(dir)
        guard isFolder else {
            throw ToolError("\(option) \(dir)", "cannot be created: \(existing) is a file, not a folder")
        }
        guard access(existing, W_OK) == 0 else {
            throw ToolError("\(option) \(dir)", "cannot be created: the folder \(existing) is read-only")
        }
    }

    /// Creates the folder `dir` with its missing parents (call it when its first file is ready).
    public static func createFolder(_ dir: String, option: String) throws {
        try checkFolder(dir, option: option)
        var built = dir.hasPrefix("/") ? "" : "."
        for part in dir.split(separator: "/") {
            built += "/" + part
            if mkdir(built, 0o777) != 0 && errno != EEXIST {
                let e = errno
                throw ToolError("\(option) \(dir)", "cannot be created: \(built): \(String(cString: strerror(e)))")
            }
        }
    }

    // MARK: helpers

    /// Follows symbolic links at the end of `path` (up to 40), relative links from the link's folder.
    static func resolveLinks(_ path: String) -> String {
        var current = path
        for _ in 0..<40 {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(current, &buffer, buffer.count - 1)
            guard n > 0 else { return current }
            let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if target.hasPrefix("/") {
                current = target
            } else {
                let slash = current.lastIndex(of: "/")
                current = slash.map { String(current[...$0]) + target } ?? target
            }
        }
        return current
    }

    /// The folder part of `path` ("." for a bare name).
    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The longest existing prefix of `path` and whether it is a folder.
    static func nearestExisting(_ path: String) -> (String, Bool) {
        var current = path
        while true {
            var info = stat()
            if stat(current, &info) == 0 { return (current, info.st_mode & S_IFMT == S_IFDIR) }
            let parent = folder(of: current)
            if parent == current { return (current, true) }
            current = parent
        }
    }

    /// Checks that the folder of `target` exists and is writable; errors name `shown`.
    private static func checkFolder(of target: String, for shown: String) throws {
        let dir = folder(of: target)
        var info = stat()
        guard stat(dir, &info) == 0 else {
            let (existing, isFolder) = nearestExisting(dir)
            if !isFolder { throw ToolError(shown, "cannot be written under \(existing), which is a file, not a folder") }
            throw ToolError(shown, "cannot be written: the folder \(dir) does not exist", hint: "create it first")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw ToolError(shown, "cannot be written under \(dir), which is a file, not a folder")
        }
        guard access(dir, W_OK) == 0 else {
            throw ToolError(shown, "cannot be written: the folder \(dir) is read-only", hint: "choose a writable folder")
        }
    }

    /// Writes to a temporary file beside `target` and renames it over `target`, keeping the replaced
    /// file's permissions; on any failure the temporary file is removed and `target` is left as it was.
    private static func replace(_ target: String, with bytes: UnsafeRawBufferPointer, shownAs shown: String) throws {
        let dir = folder(of: target)
        let name = target.split(separator: "/").last.map(String.init) ?? target
        let prefix = target.contains("/") ? (dir == "/" ? "/" : dir + "/") : ""
        let temporary = prefix + ".\(name).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            let e = errno
            switch e {
            case EACCES, EPERM: throw ToolError(shown, "cannot be written: the folder \(dir) is read-only")
            case EROFS: throw ToolError(shown, "cannot be written: \(dir) is on a read-only file system")
            case ENOSPC, EDQUOT: throw ToolError(shown, "cannot be written: no space left in \(dir)")
            default: throw ToolError(shown, "cannot be written in \(dir): \(String(cString: strerror(e)))")
            }
        }
        var old = stat()
        if stat(target, &old) == 0 { _ = fchmod(fd, old.st_mode & 0o7777) }
        var failure = writeAll(fd, bytes)
        if close(fd) != 0, failure == nil { failure = String(cString: strerror(errno)) }
        if failure == nil, rename(temporary, target) != 0 { failure = "cannot rename into place: " + String(cString: strerror(errno)) }
        if let failure {
            unlink(temporary)
            throw ToolError(shown, "cannot be written: \(failure)")
        }
    }

    /// Writes every byte to `fd`; the error text on failure.
    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> String? {
        var written = 0
        while written < bytes.count {
            let put = systemWrite(fd, bytes.baseAddress! + written, bytes.count - written)
            if put < 0 {
                if errno == EINTR { continue }
                return String(cString: strerror(errno))
            }
            written += put
        }
        return nil
    }
}

/// The C library's write(2) (the enum's own `write` methods hide the plain name inside it).
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}
