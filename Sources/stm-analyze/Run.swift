// stm-analyze run: a recipe (analyses/<name>.yaml, read with Yams) run into outputs/<name>/: its models,
// images, analysis steps and figures. Each step of each model runs the tool's own subcommand in this
// process with options made from the recipe, into outputs/<name>/<step>/<model>/; each figure runs
// `figure` over those folders. Work whose inputs have not changed is skipped: a step's folder keeps
// the SHA-256 of the tool version, the command line, each model file's bytes and the image list (each
// path with its size and modification time); a figure's key also covers the result files it reads.
// --force redoes everything. A step of a subcommand this build lacks (boxes, before the detector lands)
// is skipped with a note, so the rest of the recipe still runs.

import Analysis
import ArgumentParser
import Checkpoint
import Foundation
import Imaging
import Yams

/// A recipe as written in YAML.
struct Recipe {
    struct Model {
        var label: String
        /// --model, --arch and the loading options (init_layer_scale, init_seed, key_prefix).
        var arguments: [String]
        var path: String
    }

    struct Step {
        /// The subcommand and its positional arguments ("invariance", "rotate").
        var command: [String]
        /// Options from the recipe.
        var options: [String]
        /// Folder name under the recipe's output.
        var name: String
    }

    struct FigureSpec {
        var kind: String
        /// The step whose results it draws.
        var step: String
        var out: String
        var options: [String]
    }

    var name: String
    var title: String?
    var images: [String]
    var models: [Model]
    var steps: [Step]
    var figures: [FigureSpec]

    /// Reads and checks a recipe; every problem is one line naming the file and the key.
    static func load(path: String) throws -> Recipe {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CLIError("\(path): cannot read the recipe") }
        let parsed: Any?
        do { parsed = try Yams.load(yaml: text) } catch {
            throw CLIError("\(path): not valid YAML (\(String(describing: error).replacingOccurrences(of: "\n", with: " ")))")
        }
        guard let doc = parsed as? [String: Any] else { throw CLIError("\(path): a recipe is a mapping with name, models, images, steps and figures") }
        func fail(_ key: String, _ problem: String) -> CLIError { CLIError("\(path): \(key): \(problem)") }
        let known: Set<String> = ["name", "title", "description", "images", "models", "steps", "figures"]
        if let extra = doc.keys.sorted().first(where: { !known.contains($0) }) {
            throw fail(extra, "unknown key (a recipe has \(known.sorted().joined(separator: ", ")))")
        }
        let name = (doc["name"] as? String) ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        guard safeName(name) == name, !name.isEmpty else { throw fail("name", "'\(name)' must be letters, digits, _ - or .") }
        let images = try strings(doc["images"], key: "images", fail)
        guard !images.isEmpty else { throw fail("images", "names no image file, folder or @list") }

        guard let modelList = doc["models"] as? [Any], !modelList.isEmpty else { throw fail("models", "needs a list of models") }
        var models: [Model] = []
        for (i, entry) in modelList.enumerated() {
            guard let m = entry as? [String: Any], let model = m["model"].map({ "\($0)" }) else {
                throw fail("models[\(i)]", "needs model: a checkpoint path or a preset name")
            }
            let label = (m["label"] as? String) ?? model
            var args = ["--model", model]
            for (key, value) in m.sorted(by: { $0.key < $1.key }) where !["model", "label"].contains(key) {
                guard ["arch", "init_layer_scale", "init_seed", "key_prefix"].contains(key) else {
                    throw fail("models[\(i)].\(key)", "unknown key (a model has label, model, arch, init_layer_scale, init_seed, key_prefix)")
                }
                args += ["--" + key.replacingOccurrences(of: "_", with: "-"), "\(value)"]
            }
            if models.contains(where: { $0.label == label }) { throw fail("models[\(i)].label", "'\(label)' is used twice") }
            models.append(Model(label: label, arguments: args, path: model))
        }

        var steps: [Step] = []
        for (i, entry) in ((doc["steps"] as? [Any]) ?? []).enumerated() {
            guard let s = entry as? [String: Any], s.count == 1, let (command, value) = s.first else {
                throw fail("steps[\(i)]", "each step is one of erf:, invariance:, boxes: with its settings")
            }
            var settings = (value as? [String: Any]) ?? [:]
            var positional = [command]
            var stepName = command
            if command == "invariance" {
                guard let kind = settings.removeValue(forKey: "kind") as? String, InvarianceKind(rawValue: kind) != nil else {
                    throw fail("steps[\(i)].invariance.kind", "must be translate, rotate or scale")
                }
                positional.append(kind)
                stepName = "invariance-\(kind)"
            } else if !["erf", "boxes"].contains(command) {
                throw fail("steps[\(i)]", "unknown step '\(command)' (erf, invariance, boxes)")
            }
            if let n = settings.removeValue(forKey: "name") as? String { stepName = n }
            if steps.contains(where: { $0.name == stepName }) { throw fail("steps[\(i)]", "a second step named '\(stepName)'; give one a name:") }
            for forbidden in ["model", "arch", "out", "images", "shard"] where settings[forbidden] != nil {
                throw fail("steps[\(i)].\(forbidden)", "is set by the recipe (models:, images:, the output folder)")
            }
            steps.append(Step(command: positional, options: try options(settings, key: "steps[\(i)].\(command)", fail), name: stepName))
        }
        guard !steps.isEmpty else { throw fail("steps", "needs at least one step") }

        var figures: [FigureSpec] = []
        for (i, entry) in ((doc["figures"] as? [Any]) ?? []).enumerated() {
            guard var f = entry as? [String: Any], let kind = f.removeValue(forKey: "kind") as? String,
                  Figure.Kind(rawValue: kind) != nil else {
                throw fail("figures[\(i)].kind", "must be \(Figure.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let step = f.removeValue(forKey: "step") as? String, steps.contains(where: { $0.name == step }) else {
                throw fail("figures[\(i)].step", "must name a step of this recipe (\(steps.map(\.name).joined(separator: ", ")))")
            }
            let out = (f.removeValue(forKey: "out") as? String) ?? "\(kind)-\(step)"
            guard safeName(out) == out else { throw fail("figures[\(i)].out", "'\(out)' must be a plain file name") }
            figures.append(FigureSpec(kind: kind, step: step, out: out, options: try options(f, key: "figures[\(i)]", fail)))
        }
        return Recipe(name: name, title: doc["title"] as? String, images: images, models: models, steps: steps, figures: figures)
    }

    private static func strings(_ value: Any?, key: String, _ fail: (String, String) -> CLIError) throws -> [String] {
        if let s = value as? String { return [s] }
        if let list = value as? [Any] { return list.map { "\($0)" } }
        throw fail(key, "needs a path or a list of paths")
    }

    /// `key: value` settings as options: `--kebab-key value`; lists give their items after one flag,
    /// true gives the flag alone, false leaves it out.
    private static func options(_ settings: [String: Any], key: String, _ fail: (String, String) -> CLIError) throws -> [String] {
        var out: [String] = []
        for (k, v) in settings.sorted(by: { $0.key < $1.key }) {
            let flag = "--" + k.replacingOccurrences(of: "_", with: "-")
            switch v {
            case let b as Bool: if b { out.append(flag) }
            case let list as [Any]: out.append(flag); out += list.map { "\($0)" }
            case is [String: Any]: throw fail("\(key).\(k)", "takes a value or a list, not a mapping")
            default: out += [flag, "\(v)"]
            }
        }
        return out
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a recipe (analyses/<name>.yaml) into outputs/<name>/, skipping work whose inputs have not changed.",
        discussion: """
            A recipe names models (checkpoints or presets), images, steps (erf, invariance KIND, boxes) with their \\
            settings, and figures drawn from the steps' results. Each step runs for each model into \\
            OUT/<step>/<model>/, each figure into OUT/<figure>.{png,svg}. A step or figure is skipped when the \\
            hash of its inputs (tool version, command line, model file bytes, image paths with sizes and \\
            modification times, and for figures the result files) equals the one stored beside its results; \\
            --force redoes everything. See README, "Recipes".
            """)

    @Argument(help: ArgumentHelp("The recipe file.", valueName: "recipe.yaml"))
    var recipe: String

    @Option(name: .long, help: ArgumentHelp("Output folder (default outputs/<recipe name>).", valueName: "dir"))
    var out: String?

    @Flag(name: .long, help: "Redo every step and figure, whatever is stored.")
    var force = false

    @Option(name: .long, help: "Threads for the kernels and matrix products (passed to every step).")
    var threads: Int?

    @Flag(name: .long, help: "Check the recipe and print the commands it would run, without running them.")
    var dryRun = false

    static let keyFile = ".stm-analyze-recipe-key"

    func run() throws {
        let r = try Recipe.load(path: recipe)
        let root = out ?? "outputs/\(r.name)"
        if dryRun {
            for step in r.steps {
                for m in r.models {
                    let dir = "\(root)/\(step.name)/\(safeName(m.label))"
                    print("stm-analyze " + (step.command + m.arguments + ["--images"] + r.images + step.options + ["--out", dir]).joined(separator: " "))
                }
            }
            for f in r.figures {
                print("stm-analyze figure \(f.kind) " + r.models.map { "\(root)/\(f.step)/\(safeName($0.label))" }.joined(separator: " ")
                      + " " + (f.options + ["--out", "\(root)/\(f.out)"]).joined(separator: " "))
            }
            return
        }
        try prepareOutputFolder(root)
        note("recipe \(r.name)\(r.title.map { ": \($0)" } ?? "") -> \(root)")
        let imageKey = try imageListKey(r.images)
        var modelKeys: [String: String] = [:]
        for m in r.models {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: m.path, isDirectory: &isDir), !isDir.boolValue {
                modelKeys[m.label] = try SHA256Digest.hex(file: m.path)
            } else {
                modelKeys[m.label] = "preset:" + m.path
            }
        }
        let available = Set(STMAnalyze.configuration.subcommands.map { $0._commandName })
        var done = 0, skipped = 0, missing: [String] = []
        var stepFolders: [String: [(label: String, dir: String)]] = [:]
        for step in r.steps {
            guard available.contains(step.command[0]) else {
                note("note: step '\(step.name)' needs the '\(step.command[0])' command, which this build of stm-analyze does not have; skipped (the recipe runs it once that command is there)")
                missing.append(step.name)
                continue
            }
            for m in r.models {
                let dir = "\(root)/\(step.name)/\(safeName(m.label))"
                var args = step.command + m.arguments + ["--images"] + r.images + step.options + ["--out", dir]
                if step.command[0] == "invariance" { args += ["--label", m.label] }
                let key = SHA256Digest.hex(([toolVersion, modelKeys[m.label]!, imageKey] + step.command + m.arguments + step.options
                                            + (step.command[0] == "invariance" ? [m.label] : [])).joined(separator: "\u{1F}"))
                stepFolders[step.name, default: []].append((m.label, dir))
                if !force, stored(dir) == key, hasResults(dir) {
                    note("\(step.name) \(m.label): unchanged, skipped")
                    skipped += 1
                    continue
                }
                note("\(step.name) \(m.label): stm-analyze \(args.joined(separator: " "))")
                var command = try STMAnalyze.parseAsRoot(args + (threads.map { ["--threads", "\($0)"] } ?? []))
                try command.run()
                try writeAtomically(Data((key + "\n").utf8), to: "\(dir)/\(Self.keyFile)")
                done += 1
            }
        }
        for f in r.figures {
            guard let folders = stepFolders[f.step] else {
                note("note: figure '\(f.out)' draws step '\(f.step)', which was skipped; not drawn")
                continue
            }
            let inputs = folders.map { f.kind == "curves" ? $0.dir : $0.dir }
            var args = ["figure", f.kind] + inputs + f.options + ["--out", "\(root)/\(f.out)"]
            if !f.options.contains("--labels") { args += ["--labels", folders.map(\.label).joined(separator: ",")] }
            var hash = SHA256Digest()
            hash.update(data: Data(([toolVersion] + args).joined(separator: "\u{1F}").utf8))
            for dir in inputs {
                for file in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() where !file.hasPrefix(".") && !file.hasSuffix(".png") {
                    hash.update(data: Data(file.utf8))
                    if let data = FileManager.default.contents(atPath: "\(dir)/\(file)") { hash.update(data: data) }
                }
            }
            let key = hash.hexDigest()
            let keyPath = "\(root)/.\(f.out).key"
            if !force, (try? String(contentsOfFile: keyPath, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == key,
               FileManager.default.fileExists(atPath: "\(root)/\(f.out).png"), FileManager.default.fileExists(atPath: "\(root)/\(f.out).svg") {
                note("figure \(f.out): unchanged, skipped")
                skipped += 1
                continue
            }
            var command = try STMAnalyze.parseAsRoot(args)
            try command.run()
            try writeAtomically(Data((key + "\n").utf8), to: keyPath)
            done += 1
        }
        print("recipe \(r.name): \(done) run, \(skipped) unchanged and skipped" + (missing.isEmpty ? "" : ", steps not available in this build: \(missing.joined(separator: ", "))") + "; results in \(root)")
    }

    private func stored(_ dir: String) -> String? {
        (try? String(contentsOfFile: "\(dir)/\(Self.keyFile)", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Whether the folder still holds a result file (a key beside deleted results does not count).
    private func hasResults(_ dir: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).contains { $0.hasSuffix(".json") }
    }

    /// The image list's key: every path the image arguments expand to, with its size and modification time.
    private func imageListKey(_ images: [String]) throws -> String {
        let files = try listImages(try expandImageArguments(images))
        var parts: [String] = []
        for f in files {
            let attributes = try? FileManager.default.attributesOfItem(atPath: f)
            let size = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            parts.append("\(f)\t\(size)\t\(modified)")
        }
        return SHA256Digest.hex(parts.joined(separator: "\n"))
    }
}
