// Imaging: reading image files. `loadImage` detects the format from the leading bytes (JPEG or PNG,
// whatever the extension) and returns 8-bit RGB, as Pillow's `Image.open(p).convert("RGB")` does;
// `listImages` expands files and directories into the list of images to process.
// Not here: other formats (GIF, BMP, WebP, TIFF), recursive directory walks, EXIF orientation.

import Foundation

/// The file extensions that `listImages` picks up inside a directory (compared case-insensitively).
public let imageFileExtensions: Set<String> = ["jpg", "jpeg", "png"]

/// Reads a whole file, with one-line errors for the usual ways this fails.
func readFileBytes(_ path: String) throws -> [UInt8] {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw ImagingError(path, "no such file", hint: "check the path")
    }
    guard !isDirectory.boolValue else {
        throw ImagingError(path, "is a directory, not an image file")
    }
    // Read with POSIX calls: Foundation's FileManager.contents(atPath:) leaks a 4 KiB buffer on every
    // empty file (found by Fuzz/FuzzPNG; Tests/ImagingTests/Fuzz/empty.png).
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else { throw ImagingError(path, "cannot be read: \(String(cString: strerror(errno)))", hint: "check the file permissions") }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
        throw ImagingError(path, "is not a regular file (a pipe or device), not an image file")
    }
    var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
    var filled = 0
    while filled < bytes.count {
        let got = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
        if got < 0 {
            if errno == EINTR { continue }
            throw ImagingError(path, "cannot be read: \(String(cString: strerror(errno)))")
        }
        if got == 0 { break }  // the file shrank while it was read
        filled += got
    }
    return Array(bytes.prefix(filled))
}

/// Loads a JPEG or PNG file as 8-bit RGB (H x W x 3). The format is taken from the file's first
/// bytes, not its name. Grayscale and CMYK JPEGs, grey and palette PNGs come out as RGB; alpha is dropped.
/// - Throws: `ImagingError` naming the file when it is missing, unreadable, corrupt, truncated or
///   in another format.
public func loadImage(path: String) throws -> Image8 {
    let bytes = try readFileBytes(path)
    if JPEGCodec.looksLike(bytes) {
        return try JPEGCodec.decode(bytes, path: path)
    }
    if bytes.starts(with: PNGCodec.signature) {
        return try rgbImage(PNGCodec.decode(bytes, path: path, keepAlpha: false), path: path)
    }
    let lead = bytes.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")
    throw ImagingError(path, bytes.isEmpty ? "is empty, not an image" : "is not a JPEG or PNG image (starts with \(lead))",
                       hint: "convert it to JPEG or PNG")
}

/// Brings a decoded image to 3 channels: grey is replicated, alpha is dropped (Pillow's `convert("RGB")`).
func rgbImage(_ image: Image8, path: String) throws -> Image8 {
    switch image.channels {
    case 3:
        return image
    case 1, 2, 4:
        let n = image.width * image.height
        let c = image.channels
        let greyLike = c < 3
        let pixels = [UInt8](unsafeUninitializedCapacity: n * 3) { out, count in
            image.pixels.withUnsafeBufferPointer { src in
                for i in 0..<n {
                    let s = i * c
                    out[3 * i] = src[s]
                    out[3 * i + 1] = greyLike ? src[s] : src[s + 1]
                    out[3 * i + 2] = greyLike ? src[s] : src[s + 2]
                }
            }
            count = n * 3
        }
        return Image8(width: image.width, height: image.height, channels: 3, pixels: pixels)
    default:
        throw ImagingError(path, "decoded to \(image.channels) channels, expected 1 to 4")
    }
}

/// Expands `paths` into image files: a file is taken as given; a directory contributes its files
/// with a `.jpg`, `.jpeg` or `.png` extension (any letter case), sorted by name, not descending
/// into subdirectories. Order: the arguments' order, each directory's files in name order.
/// - Throws: `ImagingError` for a path that does not exist or a directory that cannot be listed,
///   and "no images found" when the result would be empty.
public func listImages(_ paths: [String]) throws -> [String] {
    var found: [String] = []
    let fm = FileManager.default
    for path in paths {
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ImagingError(path, "no such file or directory", hint: "check the path")
        }
        guard isDirectory.boolValue else {
            found.append(path)
            continue
        }
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: path)
        } catch {
            throw ImagingError(path, "directory cannot be listed", hint: "check the permissions")
        }
        let base = path.hasSuffix("/") ? path : path + "/"
        // Code-point order, as Python's sorted() gives, independent of the locale.
        for name in names.sorted(by: { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }) {
            let ext = (name as NSString).pathExtension.lowercased()
            guard imageFileExtensions.contains(ext) else { continue }
            var childIsDirectory: ObjCBool = false
            if fm.fileExists(atPath: base + name, isDirectory: &childIsDirectory), !childIsDirectory.boolValue {
                found.append(base + name)
            }
        }
    }
    guard !found.isEmpty else {
        let what = paths.isEmpty ? "(no paths given)" : paths.joined(separator: ", ")
        throw ImagingError(what, "no images found", hint: "give JPEG or PNG files, or directories holding .jpg, .jpeg or .png files")
    }
    return found
}
