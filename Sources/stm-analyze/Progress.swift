// stm-analyze: helpers the subcommands share: the progress reporter on stderr, output folders and
// file-system-safe names, and threshold labels.

import Analysis
import Foundation

/// "0.2" for 0.2, "0.99" for 0.99: the shortest decimal that reads back as the same Double.
func formatShare(_ t: Double) -> String { ERFReport.shareKey(t) }

/// A file-system-safe version of a model name.
func safeName(_ s: String) -> String {
    String(s.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." ? $0 : "_" })
        .replacingOccurrences(of: "__", with: "_").trimmingCharacters(in: CharacterSet(charactersIn: "_"))
}

/// Creates `dir` (and parents) and checks it is writable, before any work is done.
func prepareOutputFolder(_ dir: String) throws {
    do {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    } catch {
        throw CLIError("--out \(dir): cannot create the folder (\((error as NSError).localizedDescription))")
    }
    guard FileManager.default.isWritableFile(atPath: dir) else {
        throw CLIError("--out \(dir): the folder is not writable")
    }
}

/// Progress on stderr for long runs: images done, rate and time left; quiet for the first 3 seconds.
final class ProgressReporter {
    let label: String
    private var lastPrint = -10.0
    private var printed = false
    private let tty = isatty(2) != 0

    init(label: String) { self.label = label }

    func update(done: Int, total: Int, seconds: Double, detail: String? = nil) {
        guard seconds > 3, seconds - lastPrint >= (tty ? 0.5 : 5) || done == total else { return }
        lastPrint = seconds
        let rate = Double(done) / max(seconds, 1e-9)
        let left = rate > 0 ? Double(total - done) / rate : 0
        var line = "\(label): \(done)/\(total) images, \(String(format: "%.2f", rate)) img/s, ~\(Int(left.rounded())) s left"
        if let detail { line += ", \(detail)" }
        FileHandle.standardError.write(Data(((tty ? "\r" : "") + line + (tty ? "\u{1B}[K" : "\n")).utf8))
        printed = true
    }

    func finish() {
        if printed && tty { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
