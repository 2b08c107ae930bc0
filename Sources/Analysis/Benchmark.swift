// Analysis: timing the core on untrained presets, for `stm-analyze bench`: ERF of one stage and of all
// four stages per image, forward throughput at two batch sizes, the sgemm rate of this machine and
// the share of it the model reaches, and peak tensor memory. Timings live here and in `make bench`
// only, never in tests.
//
// Shape key: N batch, S input side.

import Foundation
import Models
import TensorCore

/// One preset's measurements.
public struct BenchResult: Sendable {
    public var preset: String
    public var params: Int
    /// Seconds per image for stage-4 ERF (forward to stage 4 + one input-gradient backward): the
    /// median repeat, and the fastest one.
    public var erfStage4: Double
    public var erfStage4Best: Double
    /// Seconds per image for all four stages' ERF from one forward.
    public var erfAllStages: Double
    /// Forward images per second at batch 1 and at the large batch.
    public var forwardBatch1: Double
    public var forwardBatchLarge: Double
    public var largeBatch: Int
    /// Multiply-add flops (x2) of one image's stage-4 ERF pass, counted from the GEMM shapes.
    public var erfFlops: Double
    /// Wall seconds of that pass spent inside matrix products (one counted pass, batch `erfBatch`,
    /// per image).
    public var erfGemmSeconds: Double
    /// Multiply-add flops (x2) of one image's forward to the logits, counted the same way.
    public var forwardFlops: Double
    /// Peak bytes of tensor storage during the ERF pass.
    public var peakTensorBytes: Int
    /// Peak resident set size of the process after the ERF passes (weights included), before the
    /// forward-throughput runs.
    public var erfPeakRSSBytes: Int
    /// The pass's longest GEMM shapes, each timed alone against OpenBLAS.
    public var gemmShapes: [GemmShapeRate]
}

/// One matrix-product shape of the ERF pass, timed on its own: our GEMM's rate beside OpenBLAS's on
/// the same shape and threads, in the same process.
public struct GemmShapeRate: Codable, Sendable {
    public var shape: GemmShape
    /// Calls of this shape in one stage-4 ERF pass, and its share of the pass's GEMM flops.
    public var calls: Int
    public var flopShare: Double
    /// GFLOP/s of our GEMM and of OpenBLAS's sgemm on this shape.
    public var oursGflops: Double
    public var openblasGflops: Double

    enum CodingKeys: String, CodingKey {
        case shape, calls, flopShare = "flop_share", oursGflops = "ours_gflops", openblasGflops = "openblas_gflops"
    }
}

/// What the PyTorch baseline (bench/pytorch/bench_torch.py) reports for one preset and mode.
public struct PyTorchTimes: Codable, Sendable {
    public var erfStage4Ms: Double
    public var erfAllStagesMs: Double
    public var forwardB1Ips: Double
    public var forwardLargeIps: Double
    public var erfPeakRSSBytes: Double

    enum CodingKeys: String, CodingKey {
        case erfStage4Ms = "erf_stage4_ms", erfAllStagesMs = "erf_all_stages_ms", forwardB1Ips = "forward_b1_ips"
        case forwardLargeIps = "forward_large_ips", erfPeakRSSBytes = "erf_peak_rss_bytes"
    }
}

/// One preset's row of `stm-analyze bench`, as its JSON holds it: what the preset's own process
/// measured, the rates it measured just before, and (filled in by the parent) the PyTorch times.
public struct BenchRow: Codable, Sendable {
    public var preset: String
    public var params: Int
    public var erfStage4MsPerImage: Double
    /// The fastest repeat of that pass (the row's figures are medians). Absent in files written
    /// before session 19.
    public var erfStage4BestMsPerImage: Double?
    public var erfAllStagesMsPerImage: Double
    public var forwardBatch1ImagesPerS: Double
    public var forwardLargeBatchImagesPerS: Double
    public var largeBatch: Int
    public var erfBatch: Int
    /// GEMM flops of one image's stage-4 ERF pass, and the wall time spent in GEMM calls.
    public var erfGflopPerImage: Double
    public var erfGemmMsPerImage: Double
    /// GEMM flops of one image's forward to the logits.
    public var forwardGflopPerImage: Double
    public var peakTensorMB: Double
    public var peakRSSMB: Double
    public var peakRSSAllMB: Double
    /// OpenBLAS's 1024^3 sgemm rate and the float32 FMA peak, measured by this preset's process.
    public var sgemmGflops: Double
    public var fmaPeakGflops: Double
    /// The GEMM kernel that ran.
    public var gemmKernel: String
    /// The ERF's GEMM shapes, longest first, each timed alone (ours and OpenBLAS's).
    public var gemmShapes: [GemmShapeRate]
    /// PyTorch's times per mode ("eager", "lossless"), when compared.
    public var pytorch: [String: PyTorchTimes] = [:]
    /// Per PyTorch mode, each speed-up taken pair by pair over the rounds (see `init(pairs:modes:)`).
    public var ratios: [String: PairedRatios] = [:]
    /// With more than one round, every round's row (this row is the median pair's); else nil.
    public var rounds: [BenchRow]?

    /// The row of one preset's measurements `r`, with the machine's rates measured by the same process.
    public init(_ r: BenchResult, erfBatch: Int, sgemmGflops: Double, fmaPeakGflops: Double) {
        preset = r.preset
        params = r.params
        erfStage4MsPerImage = 1000 * r.erfStage4
        erfStage4BestMsPerImage = 1000 * r.erfStage4Best
        erfAllStagesMsPerImage = 1000 * r.erfAllStages
        forwardBatch1ImagesPerS = r.forwardBatch1
        forwardLargeBatchImagesPerS = r.forwardBatchLarge
        largeBatch = r.largeBatch
        self.erfBatch = erfBatch
        erfGflopPerImage = r.erfFlops / 1e9
        erfGemmMsPerImage = 1000 * r.erfGemmSeconds
        forwardGflopPerImage = r.forwardFlops / 1e9
        peakTensorMB = Double(r.peakTensorBytes) / 1e6
        peakRSSMB = Double(r.erfPeakRSSBytes) / 1e6
        peakRSSAllMB = Double(peakRSSBytes()) / 1e6
        self.sgemmGflops = sgemmGflops
        self.fmaPeakGflops = fmaPeakGflops
        gemmKernel = GemmKernel.label
        gemmShapes = r.gemmShapes
    }

    /// One row from rounds of (ours, PyTorch) pairs taken in turn: each speed-up is PyTorch's time over
    /// ours within a pair, summarised as median and range, so that a comparison holds when a shared
    /// host's speed drifts between pairs. The row's own values are those of the median pair by the
    /// ERF speed-up against the first mode (by our ERF time when there is no mode; the lower of the
    /// two middle pairs for an even count), so that every figure shown comes from one pair.
    public init(pairs: [BenchRow], modes: [String]) {
        precondition(!pairs.isEmpty, "BenchRow(pairs:): no rounds")
        func key(_ r: BenchRow) -> Double {
            if let m = modes.first, let t = r.pytorch[m] { return SpeedUps(r, t).erfStage4 }
            return -r.erfStage4MsPerImage
        }
        let order = pairs.indices.sorted { key(pairs[$0]) < key(pairs[$1]) }
        self = pairs[order[(order.count - 1) / 2]]
        rounds = pairs.count > 1 ? pairs.map { var r = $0; r.rounds = nil; return r } : nil
        ratios = [:]
        for mode in modes {
            let each = pairs.compactMap { r in r.pytorch[mode].map { SpeedUps(r, $0) } }
            if !each.isEmpty { ratios[mode] = PairedRatios(each) }
        }
    }

    /// GEMM rate reached during the stage-4 ERF pass (flops over the whole pass's time).
    public var gflops: Double { erfGflopPerImage / (erfStage4MsPerImage / 1000) }
    /// The pass's GEMM floor (its flops at the FMA peak) as a share of its time: 1 is the physical limit.
    public var floorShare: Double { floorShare(msPerImage: erfStage4MsPerImage) }
    /// The same share for the fastest repeat: what the pass reaches when the host is quiet (a shared
    /// host's slow moments only add time). The targets are read on the median, `floorShare`.
    public var bestFloorShare: Double? { erfStage4BestMsPerImage.map { floorShare(msPerImage: $0) } }
    /// The GEMM floor's share of a pass that took `msPerImage` milliseconds per image.
    func floorShare(msPerImage: Double) -> Double { (1000 * erfGflopPerImage / fmaPeakGflops) / msPerImage }
    /// Share of the pass's time spent inside matrix products.
    public var gemmTimeShare: Double { erfGemmMsPerImage / erfStage4MsPerImage }

    enum CodingKeys: String, CodingKey {
        case preset, params, erfStage4MsPerImage = "erf_stage4_ms_per_image"
        case erfStage4BestMsPerImage = "erf_stage4_best_ms_per_image", erfAllStagesMsPerImage = "erf_all_stages_ms_per_image"
        case forwardBatch1ImagesPerS = "forward_batch1_images_per_s", forwardLargeBatchImagesPerS = "forward_large_batch_images_per_s"
        case largeBatch = "large_batch", erfBatch = "erf_batch", erfGflopPerImage = "erf_gflop_per_image"
        case erfGemmMsPerImage = "erf_gemm_ms_per_image", forwardGflopPerImage = "forward_gflop_per_image", peakTensorMB = "peak_tensor_mb", peakRSSMB = "peak_rss_mb"
        case peakRSSAllMB = "peak_rss_all_mb", sgemmGflops = "sgemm_gflops", fmaPeakGflops = "fma_peak_gflops"
        case gemmKernel = "gemm_kernel", gemmShapes = "gemm_shapes", pytorch, ratios, rounds
    }
}

/// Values of one ratio over rounds: each round's, in round order, and their lower median and range.
public struct RatioSpread: Codable, Sendable, Equatable {
    public var rounds: [Double]
    public var median: Double
    public var min: Double
    public var max: Double

    public init(_ values: [Double]) {
        precondition(!values.isEmpty, "RatioSpread: no values")
        rounds = values
        let sorted = values.sorted()
        median = sorted[(sorted.count - 1) / 2]
        min = sorted.first!
        max = sorted.last!
    }
}

/// One round's speed-ups over one PyTorch mode (PyTorch's time over ours; for throughputs ours over
/// PyTorch's) and the ERF's peak-RSS ratio (ours over PyTorch's): the one definition the pairing and
/// the tables use.
public struct SpeedUps: Sendable {
    public var erfStage4, erfAllStages, forwardBatch1, forwardLarge, rss: Double

    public init(_ row: BenchRow, _ t: PyTorchTimes) {
        erfStage4 = t.erfStage4Ms / row.erfStage4MsPerImage
        erfAllStages = t.erfAllStagesMs / row.erfAllStagesMsPerImage
        forwardBatch1 = row.forwardBatch1ImagesPerS / t.forwardB1Ips
        forwardLarge = row.forwardLargeBatchImagesPerS / t.forwardLargeIps
        rss = row.peakRSSMB / (t.erfPeakRSSBytes / 1e6)
    }
}

/// `SpeedUps` over one PyTorch mode taken pair by pair, each summarised over the rounds.
public struct PairedRatios: Codable, Sendable, Equatable {
    public var erfStage4: RatioSpread
    public var erfAllStages: RatioSpread
    public var forwardBatch1: RatioSpread
    public var forwardLarge: RatioSpread
    public var rss: RatioSpread

    /// The spreads of rounds' speed-ups (at least one).
    public init(_ rounds: [SpeedUps]) {
        erfStage4 = RatioSpread(rounds.map(\.erfStage4))
        erfAllStages = RatioSpread(rounds.map(\.erfAllStages))
        forwardBatch1 = RatioSpread(rounds.map(\.forwardBatch1))
        forwardLarge = RatioSpread(rounds.map(\.forwardLarge))
        rss = RatioSpread(rounds.map(\.rss))
    }

    enum CodingKeys: String, CodingKey {
        case erfStage4 = "erf_stage4", erfAllStages = "erf_all_stages", forwardBatch1 = "forward_batch1"
        case forwardLarge = "forward_large", rss = "erf_rss"
    }
}

/// The process's peak resident set size in bytes (getrusage).
public func peakRSSBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}

/// Median of `repeats` timings of `body` after one warm-up run.
public func medianTime(repeats: Int, _ body: () -> Void) -> Double {
    timeRepeats(repeats: repeats, body).median
}

/// The median (the upper middle one for an even count) and the fastest of `repeats` timings of
/// `body`, in seconds, after one warm-up run.
public func timeRepeats(repeats: Int, _ body: () -> Void) -> (median: Double, best: Double) {
    body()
    var times: [Double] = []
    for _ in 0..<max(repeats, 1) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    times.sort()
    return (times[times.count / 2], times[0])
}

/// Benchmarks one untrained preset at `size`.
/// `shapeClasses` of the ERF pass's GEMM shapes (those that took longest) are also timed alone,
/// ours against OpenBLAS.
public func benchmarkPreset(_ name: String, size: Int = 224, erfBatch: Int = 4, largeBatch: Int = 32, repeats: Int = 3,
                            shapeClasses: Int = 6) throws -> BenchResult {
    let loaded = try ModelLoader.load(model: name, initLayerScale: 1)
    let model = loaded.model
    func input(_ n: Int) -> Tensor {
        var rng = SeededNormal(seed: 7)
        return Tensor(shape: [n, size, size, 3], values: (0..<(n * size * size * 3)).map { _ in Float(rng.normal()) })
    }
    let xErf = input(erfBatch)
    MemoryStats.resetPeak()
    let base = MemoryStats.liveBytes
    let stage4Times = timeRepeats(repeats: repeats) { _ = centreContributions(model: model, input: xErf, stages: [4]) }
    let stage4 = stage4Times.median / Double(erfBatch)
    let peak = MemoryStats.peakBytes - base
    let all = medianTime(repeats: repeats) { _ = centreContributions(model: model, input: xErf, stages: [1, 2, 3, 4]) } / Double(erfBatch)
    let erfRSS = peakRSSBytes()
    let x1 = input(1)
    let f1 = medianTime(repeats: repeats) { _ = model.logits(x1) }
    let xl = input(largeBatch)
    let fl = medianTime(repeats: max(1, repeats - 1)) { _ = model.logits(xl) }
    // The counted pass follows an uncounted one, so that its buffers come from the pool as in the
    // timed passes (the batch-32 forward just before leaves buffers of other sizes there).
    _ = centreContributions(model: model, input: xErf, stages: [4])
    FlopCounter.reset()
    GemmProfile.reset()
    FlopCounter.enabled = true
    _ = centreContributions(model: model, input: xErf, stages: [4])
    FlopCounter.enabled = false
    let erfFlops = FlopCounter.flops, erfGemmSeconds = FlopCounter.seconds
    if ProcessInfo.processInfo.environment["STM_GEMM_PROFILE"] != nil {
        FileHandle.standardError.write(Data("\(name): matrix products of one stage-4 ERF pass\n\(GemmProfile.report(limit: 400))\n".utf8))
    }
    let shapes = GemmProfile.shapes(limit: shapeClasses)
    // One image's forward, counted (the flops of every product are linear in the batch).
    FlopCounter.reset()
    FlopCounter.enabled = true
    _ = model.logits(x1)
    FlopCounter.enabled = false
    let forwardFlops = FlopCounter.flops
    let shapeRates = shapes.map { s -> GemmShapeRate in
        let r = measureGemmShape(transA: s.shape.transA, transB: s.shape.transB, m: s.shape.m, n: s.shape.n, k: s.shape.k)
        return GemmShapeRate(shape: s.shape, calls: s.calls, flopShare: s.flopShare, oursGflops: r.ours, openblasGflops: r.openblas)
    }
    return BenchResult(preset: name, params: model.parameterCount, erfStage4: stage4,
                       erfStage4Best: stage4Times.best / Double(erfBatch), erfAllStages: all,
                       forwardBatch1: 1 / f1, forwardBatchLarge: Double(largeBatch) / fl, largeBatch: largeBatch,
                       erfFlops: erfFlops / Double(erfBatch), erfGemmSeconds: erfGemmSeconds / Double(erfBatch),
                       forwardFlops: forwardFlops, peakTensorBytes: peak, erfPeakRSSBytes: erfRSS,
                       gemmShapes: shapeRates)
}
