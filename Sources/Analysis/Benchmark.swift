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
    /// Seconds per image for stage-4 ERF (forward to stage 4 + one input-gradient backward).
    public var erfStage4: Double
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
    /// Peak bytes of tensor storage during the ERF pass.
    public var peakTensorBytes: Int
    /// Peak resident set size of the process after the ERF passes (weights included), before the
    /// forward-throughput runs.
    public var erfPeakRSSBytes: Int
}

/// The process's peak resident set size in bytes (getrusage).
public func peakRSSBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}

/// Median of `repeats` timings of `body` after one warm-up run.
public func medianTime(repeats: Int, _ body: () -> Void) -> Double {
    body()
    var times: [Double] = []
    for _ in 0..<max(repeats, 1) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    times.sort()
    return times[times.count / 2]
}

/// Benchmarks one untrained preset at `size`.
public func benchmarkPreset(_ name: String, size: Int = 224, erfBatch: Int = 4, largeBatch: Int = 32, repeats: Int = 3) throws -> BenchResult {
    let loaded = try ModelLoader.load(model: name, initLayerScale: 1)
    let model = loaded.model
    func input(_ n: Int) -> Tensor {
        var rng = SeededNormal(seed: 7)
        return Tensor(shape: [n, size, size, 3], values: (0..<(n * size * size * 3)).map { _ in Float(rng.normal()) })
    }
    let xErf = input(erfBatch)
    MemoryStats.resetPeak()
    let base = MemoryStats.liveBytes
    let stage4 = medianTime(repeats: repeats) { _ = centreContributions(model: model, input: xErf, stages: [4]) } / Double(erfBatch)
    let peak = MemoryStats.peakBytes - base
    let all = medianTime(repeats: repeats) { _ = centreContributions(model: model, input: xErf, stages: [1, 2, 3, 4]) } / Double(erfBatch)
    let erfRSS = peakRSSBytes()
    let x1 = input(1)
    let f1 = medianTime(repeats: repeats) { _ = model.logits(x1) }
    let xl = input(largeBatch)
    let fl = medianTime(repeats: max(1, repeats - 1)) { _ = model.logits(xl) }
    FlopCounter.reset()
    GemmProfile.reset()
    FlopCounter.enabled = true
    _ = centreContributions(model: model, input: xErf, stages: [4])
    FlopCounter.enabled = false
    if ProcessInfo.processInfo.environment["STM_GEMM_PROFILE"] != nil {
        FileHandle.standardError.write(Data("\(name): matrix products of one stage-4 ERF pass\n\(GemmProfile.report())\n".utf8))
    }
    return BenchResult(preset: name, params: model.parameterCount, erfStage4: stage4, erfAllStages: all,
                       forwardBatch1: 1 / f1, forwardBatchLarge: Double(largeBatch) / fl, largeBatch: largeBatch,
                       erfFlops: FlopCounter.flops / Double(erfBatch), erfGemmSeconds: FlopCounter.seconds / Double(erfBatch), peakTensorBytes: peak, erfPeakRSSBytes: erfRSS)
}
