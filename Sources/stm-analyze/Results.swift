// stm-analyze: what result-writing subcommands share: a run replaces a folder's previous results as a
// whole (ResultFolder: every file is made in memory first, written atomically, and the files of the
// previous run that this one did not write are removed, so two runs never mix), image lists from files
// (`--images @list.txt`), `--shard i/n`, and the provenance of a model.

import Analysis
import ArgumentParser
import Checkpoint
import Foundation
import Imaging
import Models

/// The files of one run, made in memory, then written into a folder as a whole.
struct ResultFolder {
    /// The manifest that names the files of the last run written into a folder.
    static let manifestName = ".stm-analyze-results"

    let dir: String
    /// File name -> bytes, in the order added.
    private(set) var files: [(name: String, data: Data)] = []

    init(_ dir: String) { self.dir = dir }

    /// Adds a file (replacing one of the same name).
    mutating func add(_ name: String, _ data: Data) {
        files.removeAll { $0.name == name }
        files.append((name, data))
    }

    /// Adds a PNG of `image`.
    mutating func addPNG(_ name: String, _ image: Image8, dpi: Int = 200) throws {
        add(name, Data(try PNGCodec.encode(image, dpi: dpi)))
    }

    /// Writes every file atomically, then removes what the folder's previous run wrote and this one did
    /// not: the files its manifest names, and files matching `ownPatterns` (result names of this command,
    /// for folders written before manifests existed). Other files are never touched.
    func commit(ownPatterns: [String] = []) throws {
        try createOutputFolder(dir)  // only now, with everything rendered
        for (name, data) in files { try writeAtomically(data, to: "\(dir)/\(name)") }
        let written = Set(files.map(\.name))
        var stale = Set<String>()
        if let old = try? String(contentsOfFile: "\(dir)/\(Self.manifestName)", encoding: .utf8) {
            for line in old.split(separator: "\n") where !line.isEmpty && !line.contains("/") { stale.insert(String(line)) }
        }
        let present = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        for name in present where ownPatterns.contains(where: { fnmatch($0, name, 0) == 0 }) { stale.insert(name) }
        for name in stale.subtracting(written) { try? FileManager.default.removeItem(atPath: "\(dir)/\(name)") }
        try writeAtomically(Data((files.map(\.name).sorted().joined(separator: "\n") + "\n").utf8), to: "\(dir)/\(Self.manifestName)")
    }
}

/// The image arguments with every `@FILE` replaced by the paths it lists (one a line; blank lines and
/// lines starting with # skipped), so every shard of a run reads the same list in the same order.
func expandImageArguments(_ arguments: [String]) throws -> [String] {
    var out: [String] = []
    for a in arguments {
        guard a.hasPrefix("@") else { out.append(a); continue }
        let file = String(a.dropFirst())
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw CLIError("--images \(a): cannot read the list file \(file)")
        }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        if lines.isEmpty { throw CLIError("--images \(a): the list file \(file) names no image") }
        out += lines
    }
    return out
}

/// `--shard i/n`: this process measures every n-th image starting at i (0 <= i < n).
struct Shard: ExpressibleByArgument, CustomStringConvertible {
    var index: Int
    var count: Int

    init?(argument: String) {
        let parts = argument.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, n <= 1_000_000, i >= 0, i < n else { return nil }
        index = i
        count = n
    }

    var description: String { "\(index)/\(count)" }
    /// The partial file's name part: "shard-1-of-4".
    var fileTag: String { "shard-\(index)-of-\(count)" }
}

/// The provenance entry of a loaded model.
func modelSource(_ loaded: LoadedModel, path: String, loading: LoadOptions) throws -> Provenance.ModelSource {
    try Provenance.modelSource(path: path, arch: loaded.config.displayName, untrained: loaded.untrained,
                               seed: loading.initSeed, layerScale: loading.initLayerScale)
}
