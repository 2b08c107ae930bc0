// Analysis: the inputs of an invariance run. Image lists with optional ground-truth classes, from a
// labels file of `name class-index` lines (matched to the images by file name) or from ImageNet-style
// class folders (a folder whose sub-folders hold the images; the sorted folder names give the class
// indices, as torchvision's ImageFolder numbers them); and the one-line error every bad input gives.
// Not here: other label formats (CSV, ImageNet's LOC_val_solution), recursive walks below a class folder.

@_exported import Diagnostics
import Foundation
import Imaging

/// Errors of this module: one line naming the subject and the problem (see Diagnostics).
public typealias InvarianceError = ToolError

/// Image files in processing order, with a class index per image when labels were given.
public struct LabelledImages: Sendable {
    /// The image files, in order.
    public var paths: [String]
    /// One class index per image, or nil when the run has no labels.
    public var labels: [Int]?
    /// Where the labels came from (the labels file, or "class folders of DIR"); nil without labels.
    public var labelSource: String?
    /// For each label, where it was read ("labels.txt line 3", "class folder n01440764"), for error messages.
    public var labelOrigins: [String]
    /// The number of classes when the labels came from class folders (the largest count of one root).
    public var classFolderCount: Int?

    /// Unlabelled images.
    public init(paths: [String]) {
        self.paths = paths
        labels = nil
        labelSource = nil
        labelOrigins = []
    }

    /// Images with their classes; `origins` says where each label was read.
    public init(paths: [String], labels: [Int], source: String, origins: [String]) {
        precondition(paths.count == labels.count && labels.count == origins.count, "LabelledImages: counts differ")
        self.paths = paths
        self.labels = labels
        labelSource = source
        labelOrigins = origins
    }

    /// Expands `images` (files and folders) and attaches labels.
    ///
    /// - With `labelsFile`: every image must have a line in it (matched by file name) and every line
    ///   must name one of the images.
    /// - Without it: a folder whose entries are sub-folders only (no image files of its own) is read
    ///   as class folders: its sub-folders in name order are classes 0, 1, ...; their images, in name
    ///   order, are the images. Either every path is such a folder, or the run has no labels.
    /// - Throws: `InvarianceError` or `ImagingError` naming the file and the problem.
    public static func gather(images: [String], labelsFile: String?) throws -> LabelledImages {
        var files: [String] = []
        var folderLabels: [(label: Int, origin: String)] = []
        var classRoots = 0
        var classCount = 0
        for path in images {
            if let classes = try classFolders(of: path) {
                classRoots += 1
                classCount = max(classCount, classes.count)
                for (index, name) in classes.enumerated() {
                    let found = try listImages([joined(path, name)])
                    files += found
                    folderLabels += found.map { _ in (index, "class folder \(name) of \(path)") }
                }
            } else {
                files += try listImages([path])
            }
        }
        if let labelsFile {
            return try LabelledImages(paths: files, labelsFile: labelsFile)
        }
        if classRoots == 0 { return LabelledImages(paths: files) }
        guard classRoots == images.count else {
            throw InvarianceError("--images", "mixes class folders with other images, so some images would have no class",
                                  hint: "give only class-folder roots, or a --labels file for all of them")
        }
        var set = LabelledImages(paths: files, labels: folderLabels.map(\.label),
                                 source: "class folders of " + images.joined(separator: ", "), origins: folderLabels.map(\.origin))
        set.classFolderCount = classCount
        return set
    }

    /// Labels `paths` from a file of `name class-index` lines (blank lines and lines starting with `#`
    /// are skipped). Names are file names without folders; every image needs one line and every line an image.
    public init(paths: [String], labelsFile: String) throws {
        guard let data = FileManager.default.contents(atPath: labelsFile) else {
            let exists = FileManager.default.fileExists(atPath: labelsFile)
            throw InvarianceError(labelsFile, exists ? "labels file cannot be read" : "no such labels file",
                                  hint: exists ? "check the permissions" : "check the path")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw InvarianceError(labelsFile, "labels file is not UTF-8 text", hint: "one 'name class-index' per line")
        }
        var table: [String: (label: Int, line: Int)] = [:]
        var order: [String] = []
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let number = offset + 1
            guard fields.count == 2 else {
                throw InvarianceError("\(labelsFile) line \(number)", "expected 'name class-index', got '\(line.prefix(80))'")
            }
            let name = String(fields[0])
            guard let label = Int(fields[1]), label >= 0 else {
                throw InvarianceError("\(labelsFile) line \(number)", "class index '\(fields[1])' is not a whole number >= 0")
            }
            if let earlier = table[name] {
                throw InvarianceError("\(labelsFile) line \(number)", "\(name) was already labelled on line \(earlier.line)")
            }
            table[name] = (label, number)
            order.append(name)
        }
        var byName: [String: String] = [:]
        for path in paths {
            let name = URL(fileURLWithPath: path).lastPathComponent
            if let other = byName[name] {
                throw InvarianceError(labelsFile, "two images are called \(name) (\(other) and \(path)), so labels matched by file name are ambiguous")
            }
            byName[name] = path
        }
        let strays = order.filter { byName[$0] == nil }
        if let first = strays.first {
            throw InvarianceError(labelsFile, "line \(table[first]?.line ?? 0) names \(first), which is not among the images"
                                  + (strays.count > 1 ? " (and \(strays.count - 1) more names are not)" : ""),
                                  hint: "labels are matched to the images' file names; give those images or trim the file")
        }
        var labels: [Int] = []
        var origins: [String] = []
        for path in paths {
            let name = URL(fileURLWithPath: path).lastPathComponent
            guard let entry = table[name] else {
                throw InvarianceError(labelsFile, "has no line for \(path)", hint: "add '\(name) <class-index>'")
            }
            labels.append(entry.label)
            origins.append("\(labelsFile) line \(entry.line)")
        }
        self.init(paths: paths, labels: labels, source: labelsFile, origins: origins)
    }

    /// Checks every class index against a model's class count.
    /// - Throws: `InvarianceError` naming where the first bad label was read.
    public func checkLabels(classes: Int, model: String) throws {
        guard let labels else { return }
        for (i, label) in labels.enumerated() where label >= classes {
            throw InvarianceError(labelOrigins[i], "class index \(label) is unknown to \(model), which has \(classes) classes (0 to \(classes - 1))")
        }
    }
}

/// The sorted sub-folder names of `path` when it is a class-folder root: a folder holding at least
/// one sub-folder and no image files of its own. nil for files and flat image folders.
func classFolders(of path: String) throws -> [String]? {
    let fm = FileManager.default
    var isDirectory: ObjCBool = false
    guard fm.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
    guard let names = try? fm.contentsOfDirectory(atPath: path) else {
        throw InvarianceError(path, "directory cannot be listed", hint: "check the permissions")
    }
    var folders: [String] = []
    for name in names {
        var child: ObjCBool = false
        guard fm.fileExists(atPath: joined(path, name), isDirectory: &child) else { continue }
        if child.boolValue {
            folders.append(name)
        } else if imageFileExtensions.contains((name as NSString).pathExtension.lowercased()) {
            return nil
        }
    }
    if folders.isEmpty { return nil }
    // Code-point order, as Python's sorted() gives, so that sorted wnids give ImageNet's indices.
    return folders.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
}

private func joined(_ folder: String, _ name: String) -> String {
    folder.hasSuffix("/") ? folder + name : folder + "/" + name
}
