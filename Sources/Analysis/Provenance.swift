// Analysis: the provenance block of every result file: which tool made it, from which model files
// (SHA-256 of each file, or the preset name for an untrained model), which images (how many, and the
// SHA-256 of the list of paths in order) and with which settings, and for sharded work which shard
// or how many partial results were merged. It holds no time and no host name, so identical runs give
// identical files. `compare` and `merge` skip it: it says where numbers came from, not what they are.

import Foundation

/// The tool's version, written into every result file.
public let toolVersion = "0.1.0"

/// The `provenance` object of a result file.
public struct Provenance: Codable, Equatable, Sendable {
    /// A model that contributed to the result.
    public struct ModelSource: Codable, Equatable, Sendable {
        /// The --model argument.
        public var path: String
        /// SHA-256 of the checkpoint file, or nil for a preset (untrained weights from a seed).
        public var sha256: String?
        /// The architecture's display name.
        public var arch: String
        /// "checkpoint" or "preset (untrained, seed S, layer scale L)".
        public var weights: String

        /// A model source as written.
        public init(path: String, sha256: String?, arch: String, weights: String) {
            self.path = path
            self.sha256 = sha256
            self.arch = arch
            self.weights = weights
        }
    }

    /// The images a result was computed on.
    public struct ImageList: Codable, Equatable, Sendable {
        /// How many images the run was given (before sharding).
        public var count: Int
        /// SHA-256 of the paths joined by "\n", in processing order.
        public var sha256: String

        /// The block of `paths`.
        public init(paths: [String]) {
            count = paths.count
            sha256 = SHA256Digest.hex(paths.joined(separator: "\n"))
        }
    }

    /// "stm-analyze 0.1.0".
    public var tool: String
    /// The command that made the result ("erf", "invariance rotate", ...).
    public var command: String
    public var models: [ModelSource]
    public var images: ImageList
    /// Every setting that changes the numbers, as text.
    public var settings: [String: String]
    /// "i/n" in a partial result of a sharded run; nil otherwise.
    public var shard: String?
    /// The number of partial results a merged result was made of; nil for a single run.
    public var merged_from: Int?

    /// A provenance block.
    public init(command: String, models: [ModelSource], images: [String], settings: [String: String],
                shard: String? = nil, mergedFrom: Int? = nil) {
        tool = "stm-analyze \(toolVersion)"
        self.command = command
        self.models = models
        self.images = ImageList(paths: images)
        self.settings = settings
        self.shard = shard
        merged_from = mergedFrom
    }

    /// The block as a JSONSerialization object (for documents built as dictionaries).
    public func jsonObject() -> [String: Any] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(self)) ?? Data("{}".utf8)
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    /// The model source of `path`: the file's SHA-256 when it is a file, else a preset.
    public static func modelSource(path: String, arch: String, untrained: Bool, seed: UInt64, layerScale: Double?) throws -> ModelSource {
        var isDir: ObjCBool = false
        if !untrained, FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue {
            return ModelSource(path: path, sha256: try SHA256Digest.hex(file: path), arch: arch, weights: "checkpoint")
        }
        let scale = layerScale.map { "\($0)" } ?? "default"
        return ModelSource(path: path, sha256: nil, arch: arch, weights: "preset (untrained, seed \(seed), layer scale \(scale))")
    }
}

/// The name of the provenance key, which `compare` and `merge` skip.
public let provenanceKey = "provenance"
