// stm-analyze merge: combines the partial results of a sharded `erf` or `invariance` run (one per shard,
// `--shard i/n`) into exactly the files one run over all images writes: the same bytes apart from the
// provenance block, which says how many partials were merged.

import Analysis
import ArgumentParser
import Foundation
import Rendering

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Combine the partial results of a sharded erf or invariance run into the single run's result.",
        discussion: """
            Each shard (erf --shard i/n, invariance KIND --shard i/n) writes a partial result holding sums and \\
            counts (erf: exact per-pixel sums of the maps; invariance: per-image rows). merge checks that the \\
            partials are the n shards of one run (same model files, images and settings, each shard once) and \\
            writes the files the unsharded run writes, identical apart from the provenance block. A folder \\
            argument stands for the partial files in it.
            """)

    @Argument(help: ArgumentHelp("Partial result files (erf-shard-I-of-N.partial, KIND-shard-I-of-N.partial.json) or folders holding them.", valueName: "partial"))
    var partials: [String]

    @Option(name: .long, help: ArgumentHelp("Output folder (default: the first partial's folder).", valueName: "dir"))
    var out: String?

    func validate() throws {
        if partials.isEmpty { throw ValidationError("merge needs the partial results of every shard") }
    }

    func run() throws {
        var files: [String] = []
        for p in partials {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { throw CLIError("\(p): no such file or folder") }
            if isDir.boolValue {
                let found = try FileManager.default.contentsOfDirectory(atPath: p).filter { $0.hasSuffix(".partial") || $0.hasSuffix(".partial.json") }.sorted()
                if found.isEmpty { throw CLIError("\(p): the folder holds no partial result (*.partial, *.partial.json)") }
                files += found.map { "\(p)/\($0)" }
            } else {
                files.append(p)
            }
        }
        let outDir = out ?? URL(fileURLWithPath: files[0]).deletingLastPathComponent().path
        let erf = files.filter { $0.hasSuffix(".partial") }
        if !erf.isEmpty && erf.count != files.count {
            throw CLIError("merge: \(erf[0]) is an erf partial but \(files.first { !$0.hasSuffix(".partial") }!) is not; merge one run at a time")
        }
        if !erf.isEmpty {
            let parts = try erf.map { ($0, try ERFPartial.read(path: $0)) }
            let (header, acc) = try ERFPartial.merge(parts)
            guard !acc.images.isEmpty else { throw CLIError("merge: no image of the \(parts.count) shards gave a finite ERF map; nothing written") }
            for s in acc.skipped { warn("skipped \(s.path): \(s.reason)") }
            let result = acc.result()
            var provenance = header.provenance
            provenance.shard = nil
            provenance.merged_from = parts.count
            let report = ERFReport(result, model: header.model, arch: header.arch, family: header.family,
                                   untrained: header.untrained, provenance: provenance)
            try Erf.writeOutputs(result, report: report, title: header.title, colormap: try Colormap.named(header.colormap),
                                 overlayImage: nil, to: outDir)
            Erf.printSummary(result, title: header.title)
            print("merged \(parts.count) partial results into \(outDir)/erf.json, erf.csv, erf_stage*.{safetensors,png,svg}, erf_stages.{png,svg}")
        } else {
            let parts = try files.map { path -> (String, InvariancePartial) in
                guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("\(path): cannot read the file") }
                do { return (path, try JSONDecoder().decode(InvariancePartial.self, from: data)) } catch {
                    throw CLIError("\(path): not a partial result of erf or invariance --shard")
                }
            }
            let (result, p0) = try InvariancePartial.merge(parts)
            var provenance = p0.provenance
            provenance.shard = nil
            provenance.merged_from = parts.count
            try Invariance.writeOutputs(result, provenance: provenance, to: outDir)
            Invariance.printTable(result)
            print("merged \(parts.count) partial results into \(outDir)/\(p0.kind).json, .csv, _images.csv, .png, .svg")
        }
    }
}
