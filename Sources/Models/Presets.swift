// Models: the released presets by name, `unified_<mixer>_{micro,tiny,small,base}`. Each mixer's file
// holds its presets (the dims, depths, heads and block settings of the study's model factories,
// classification/models/model_factory/*.py of STM-Evaluation); this file names and finds them,
// accepts the released files' spellings (`unified_halonet_*`, `unified_internimage_*`) and suggests
// the closest names for a mistyped one.

/// Released architectures by name.
public enum Presets {
    /// The four model scales.
    public static let scales = ["micro", "tiny", "small", "base"]

    /// All preset names, mixer by mixer (registered mixers without presets add none).
    public static var names: [String] {
        MixerRegistry.mixers.flatMap { m in scales.filter { m.preset($0) != nil }.map { "unified_\(m.presetName)_\($0)" } }
    }

    /// The preset called `name` (or an alias spelling such as `unified_halonet_tiny`), or nil.
    public static func named(_ name: String) -> ArchConfig? {
        for m in MixerRegistry.mixers {
            for spelling in [m.presetName] + m.presetAliases {
                let prefix = "unified_\(spelling)_"
                guard name.hasPrefix(prefix) else { continue }
                let scale = String(name.dropFirst(prefix.count))
                guard scales.contains(scale), var c = m.preset(scale) else { continue }
                c.name = "unified_\(m.presetName)_\(scale)"
                return c
            }
        }
        return nil
    }

    /// The preset names closest to `name` (edit distance), as a hint line.
    public static func suggestion(for name: String) -> String {
        let base = name.split(separator: "/").last.map(String.init) ?? name
        let ranked = names.map { ($0, editDistance($0, base)) }.sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }
        let close = ranked.prefix(3).map(\.0)
        return "closest presets: " + close.joined(separator: ", ") + "; or give a .pth/.safetensors checkpoint or an architecture .json file"
    }

    /// Levenshtein distance.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var prev = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return a.isEmpty ? b.count : row[b.count]
    }

    /// `[base, 2 base, 4 base, 8 base]`, the widths of most presets.
    public static func doubling(_ base: Int) -> [Int] { (0..<4).map { base << $0 } }
}
