// stm-analyze: how the subcommands check and write their outputs. Everything goes through the shared
// output path (Diagnostics/OutputFile.swift): files are replaced atomically, links are followed,
// devices and pipes are written through, `-` is standard output. Output folders are checked before the
// work and created only when their first file is ready, so a failed run leaves no empty folder. JSON
// never fails on a NaN or an infinity: they are written as null, with one warning naming them.

import Checkpoint
import Foundation

/// Checks, before any work, that `path` can be written (`-` is standard output).
func checkWritableOutput(_ path: String, option: String) throws {
    try OutputFile.check(path, option: option)
}

/// Checks, before any work, that the folder `dir` exists and is writable or can be created; creates nothing.
func checkOutputFolder(_ dir: String, option: String = "--out") throws {
    try OutputFile.checkFolder(dir, option: option)
}

/// Creates the output folder `dir` (and its parents) once there is something to put in it.
func createOutputFolder(_ dir: String, option: String = "--out") throws {
    try OutputFile.createFolder(dir, option: option)
}

/// Encodes a JSON-compatible value with sorted keys and writes it through the shared output path.
/// Non-finite numbers (which JSON cannot hold) are written as null, and one warning names where.
func writeJSON(_ value: Any, to path: String) throws {
    try OutputFile.write(try jsonData(value, name: path), to: path)
}

/// The bytes `writeJSON` writes: sorted keys, non-finite numbers as null (one warning naming where,
/// and the file `name`), a final newline.
func jsonData(_ value: Any, name path: String) throws -> Data {
    var replaced: [String] = []
    let clean = jsonSafe(value, at: "", replaced: &replaced)
    if !replaced.isEmpty {
        let shown = replaced.prefix(8).joined(separator: ", ") + (replaced.count > 8 ? ", ..." : "")
        warn("\(path == "-" ? "standard output" : path): \(replaced.count) non-finite number\(replaced.count == 1 ? "" : "s") (NaN or infinity) written as null: \(shown)")
    }
    let data = try JSONSerialization.data(withJSONObject: clean, options: [.prettyPrinted, .sortedKeys])
    return data + Data("\n".utf8)
}

/// `value` with every NaN and infinity replaced by `NSNull`; `replaced` collects their key paths.
func jsonSafe(_ value: Any, at path: String, replaced: inout [String]) -> Any {
    switch value {
    case let d as Double where !d.isFinite:
        replaced.append(path.isEmpty ? "(top level)" : path)
        return NSNull()
    case let f as Float where !f.isFinite:
        replaced.append(path.isEmpty ? "(top level)" : path)
        return NSNull()
    case let dict as [String: Any]:
        var out: [String: Any] = [:]
        for key in dict.keys.sorted() { out[key] = jsonSafe(dict[key]!, at: path.isEmpty ? key : path + "." + key, replaced: &replaced) }
        return out
    case let array as [Any]:
        return array.enumerated().map { jsonSafe($0.element, at: "\(path)[\($0.offset)]", replaced: &replaced) }
    default:
        return value
    }
}

/// One line for a Foundation file error, saying what happened and where, instead of its raw
/// "The operation could not be completed (NSCocoaErrorDomain error 512.)".
func describeFileError(_ error: NSError) -> String {
    let path = (error.userInfo[NSFilePathErrorKey] as? String) ?? (error.userInfo[NSURLErrorKey] as? URL)?.path
    let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError
    let code = error.domain == NSPOSIXErrorDomain ? error.code : (underlying?.domain == NSPOSIXErrorDomain ? underlying!.code : 0)
    let what: String
    switch (error.domain, error.code, Int32(code)) {
    case (_, _, EACCES), (_, _, EPERM), (NSCocoaErrorDomain, NSFileWriteNoPermissionError, _), (NSCocoaErrorDomain, NSFileReadNoPermissionError, _):
        what = "permission denied"
    case (_, _, EROFS), (NSCocoaErrorDomain, NSFileWriteVolumeReadOnlyError, _): what = "the file system is read-only"
    case (_, _, ENOSPC), (NSCocoaErrorDomain, NSFileWriteOutOfSpaceError, _): what = "no space left on the device"
    case (_, _, ENOTDIR): what = "a part of the path is a file, not a folder"
    case (_, _, EISDIR): what = "is a folder, not a file"
    case (_, _, ENOENT), (NSCocoaErrorDomain, NSFileNoSuchFileError, _), (NSCocoaErrorDomain, NSFileReadNoSuchFileError, _):
        what = "no such file or folder"
    case (_, _, EEXIST), (NSCocoaErrorDomain, NSFileWriteFileExistsError, _): what = "a file is in the way"
    case (NSCocoaErrorDomain, NSPropertyListReadCorruptError, _): what = "is not valid JSON"
    default:
        what = code != 0 ? String(cString: strerror(Int32(code))) : "the file operation failed"
    }
    return (path.map { "\($0): " } ?? "") + what
}
