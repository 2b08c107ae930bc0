// Models: memory planned before it is allocated. `MemoryPlan.estimate` bounds, from an architecture
// alone (nothing is built), the bytes of a model's parameters and of the activations a run keeps:
// for a forward and backward pass (the ERF: the tape holds every intermediate of the forward pass)
// or for a forward pass alone (classification, invariance: intermediates are freed as they go). The
// command line compares the sum with `--max-memory` before it builds the model, so that a run too
// large for the machine is one error with a hint instead of the tensor core's out-of-memory trap.
// The bound is generous (tests hold it between 1 and 3 times the measured peak on the micro presets)
// and reads the mixers' attention settings from `block_kwargs` by their common names (`num_heads`,
// `window_size`, `block_size`/`halo_size`, `sr_ratios`, `mlp_ratios`, `deform_points`); a mixer with
// none of them is taken as a 7 x 7 neighbourhood mixer.

import Foundation

/// Byte bounds of one run of a model, computed from its architecture before anything is allocated.
public struct MemoryPlan: Sendable, Equatable {
    /// Bytes of the parameters (float32), with the classifier head.
    public var parameterBytes: Int
    /// Most bytes of activations (and their gradients, for a backward pass) alive at once.
    public var activationBytes: Int
    /// Everything: parameters and activations.
    public var totalBytes: Int { parameterBytes.addingClamped(activationBytes) }

    /// The plan of running `config` on `batch` square inputs of side `size`, with a backward pass to
    /// the input when `backward` (the ERF) or a forward pass alone.
    public static func estimate(_ config: ArchConfig, size: Int, batch: Int, backward: Bool) -> MemoryPlan {
        let dims = config.dims.map(Double.init)
        let kw = config.block_kwargs
        func list(_ key: String) -> [Double] {
            guard case .array(let a)? = kw[key] else { return [] }
            return a.compactMap { if case .number(let n) = $0 { return n } else { return nil } }
        }
        func number(_ key: String) -> Double? { if case .number(let n)? = kw[key] { return n } else { return nil } }
        let heads = list("num_heads"), mlpRatios = list("mlp_ratios"), srRatios = list("sr_ratios")
        func at(_ l: [Double], _ s: Int, _ fallback: Double) -> Double { l.indices.contains(s) ? max(l[s], 1) : fallback }

        // Parameters: stem, transitions, blocks (MLP, projections, the mixer's own), norms, head; and
        // 30 % more for buffers (relative-position indices, masks, norm statistics).
        var params = 27 * dims[0] / 2 + 9 * dims[0] / 2 * dims[0]
        for s in dims.indices {
            let c = dims[s], r = at(mlpRatios, s, 4), sr = at(srRatios, s, 1)
            if s > 0 { params += 9 * dims[s - 1] * c }
            let perBlock = (2 * r + 4 + sr * sr + (number("deform_points") != nil ? 2 : 0)) * c * c + 64 * c
                + at(heads, s, 1) * 4 * pow(max(number("window_size") ?? 7, number("block_size").map { $0 + 2 * (number("halo_size") ?? 3) } ?? 7), 2)
            params += Double(config.depths[safe: s] ?? 1) * perBlock + 2 * c
        }
        let features = dims[dims.count - 1] * config.extra_transform_ratio
        params += dims[dims.count - 1] * features + 4 * features + (features + 1) * Double(config.num_classes)

        // Activations per image, in floats: what each block keeps for its backward pass.
        let n = Double(batch), side = Double(size)
        var kept = side * side * 3 * 2 + pow(side / 2, 2) * dims[0] / 2 * 4 + pow(side / 4, 2) * dims[0] * 3
        var largestBlock = 0.0, largestWorking = 0.0
        for s in dims.indices {
            let c = dims[s], r = at(mlpRatios, s, 4), h = at(heads, s, 1)
            let mapSide = max(1, (side / 4 / pow(2, Double(s))).rounded(.up)), tokens = mapSide * mapSide
            // Keys each query attends to (scores and softmax are kept per head).
            var keys = 0.0
            if let w = number("window_size") { keys = pow(min(w, mapSide) + 1, 2) }
            if let b = number("block_size") { keys = pow(b + 2 * (number("halo_size") ?? 3) + 1, 2) }
            if !srRatios.isEmpty { keys = pow((mapSide / at(srRatios, s, 1)).rounded(.up) + 1, 2) }
            // Kept per token: the norms' normalised inputs, GELU's slope in the MLP, attention's q, k, v and
            // scores; products keep no input (their input gradient needs only the weight).
            var perToken = (r + 8) * c + 3 * h * keys
            // Forward alone: a block's MLP hidden layer (once: GELU runs in place in the product), its in-
            // and output, and one head's scores at a time.
            // (HaloNet's keys and values are read through its windows' plan a window and head at a
            // time, not copied whole, so its overlapping windows count 2 per key and head.)
            var working = (r + 8) * c + (number("block_size") != nil ? 2 : 3) * h * keys
            // Deformable sampling: offsets and weights (4 G P), and its query's intermediates; forward
            // alone keeps no sampled values.
            if let p = number("deform_points") { perToken += p * c + 4 * h * p; working += 3 * c + 4 * h * p }
            if keys == 0, number("deform_points") == nil { perToken += 2 * c; working += 2 * c }  // 7 x 7 depth-wise convolution
            let block = tokens * perToken
            largestBlock = max(largestBlock, block)
            largestWorking = max(largestWorking, tokens * working)
            kept += Double(config.depths[safe: s] ?? 1) * block + tokens * c * 6
        }
        let activations = backward ? 0.8 * (1.25 * kept + 2 * largestBlock) : largestWorking + side * side * 3 * 2
        return MemoryPlan(parameterBytes: bytes(1.3 * params), activationBytes: bytes(activations * n))
    }

    private static func bytes(_ floats: Double) -> Int {
        let b = floats * 4 * 1.05  // allocation rounding
        return b.isFinite && b < 9e18 ? Int(b) : Int.max
    }

    /// Physical memory in bytes (MemTotal of /proc/meminfo), or nil where it cannot be read.
    public static func physicalMemory() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else {
            let p = ProcessInfo.processInfo.physicalMemory
            return p > 0 ? Int(p) : nil
        }
        for line in text.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let kb = Int(fields[1]) { return kb * 1024 }
        }
        return nil
    }

    /// The default memory budget: 80 % of the physical memory (8 GiB where it is unknown).
    public static var defaultBudget: Int { Int(Double(physicalMemory() ?? 8 << 30) * 0.8) }

    /// Parses a byte count: a whole or decimal number with an optional unit K, M, G or T (powers of
    /// 1024; a trailing B or iB is allowed: "512M", "3G", "1.5GiB", "1000000"). Nil when it is not one.
    public static func parseBytes(_ text: String) -> Int? {
        var t = text.trimmingCharacters(in: .whitespaces).uppercased()
        if t.hasSuffix("IB") { t.removeLast(2) } else if t.hasSuffix("B") { t.removeLast() }
        var scale = 1.0
        if let u = t.last, let power = ["K": 1, "M": 2, "G": 3, "T": 4][String(u)] {
            scale = pow(1024, Double(power))
            t.removeLast()
        }
        guard let v = Double(t), v.isFinite, v > 0, v * scale < 9e18 else { return nil }
        return Int(v * scale)
    }

    /// `bytes` as "1.5 GiB" / "512 MiB".
    public static func format(_ bytes: Int) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var v = Double(bytes), i = 0
        while v >= 1024, i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(bytes) bytes" : String(format: v < 10 ? "%.1f %@" : "%.0f %@", v, units[i])
    }

    /// Throws when the plan exceeds `budget` bytes: one error naming `subject` (the model), what was
    /// estimated and a hint to make the run smaller.
    public func check(budget: Int, subject: String, batch: Int, size: Int) throws {
        guard totalBytes > budget else { return }
        var hints: [String] = []
        if batch > 1 { hints.append("--batch 1") }
        if size > 224 { hints.append("a smaller --size (224)") }
        if parameterBytes > budget { hints = ["the model's parameters alone need \(Self.format(parameterBytes)): use a smaller architecture"] }
        hints.append("--max-memory raises the limit if the machine has the memory")
        throw ModelError(subject, "the run would need about \(Self.format(totalBytes)) (parameters \(Self.format(parameterBytes)), activations \(Self.format(activationBytes)) for batch \(batch) at \(size) px), over the \(Self.format(budget)) allowed by --max-memory",
                         hint: hints.joined(separator: "; "))
    }
}

fileprivate extension Int {
    /// `self + other`, or `Int.max` on overflow.
    func addingClamped(_ other: Int) -> Int {
        let (r, o) = addingReportingOverflow(other)
        return o ? .max : r
    }
}

fileprivate extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
