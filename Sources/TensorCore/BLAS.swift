// TensorCore: the matrix product, through OpenBLAS's cblas_sgemm (row-major). Everything that is a
// matrix product in the models (linear layers, 1x1 and im2col convolutions, attention) comes here.
// Also reports which OpenBLAS kernels were picked. A slow reference product sits beside it for tests.

import CBLAS
import Dispatch
import Foundation

/// `C[M,N] = alpha * op(A) * op(B) + beta * C`, row-major, with leading dimensions (strides of rows).
/// `op(A)` is `[M,K]` (A stored `[K,M]` when `transA`), `op(B)` is `[K,N]` (B stored `[N,K]` when `transB`).
@inlinable
public func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                 alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                 b: UnsafePointer<Float>, ldb: Int,
                 beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    guard FlopCounter.enabled else {
        gemmUncounted(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    }
    let flops = 2 * Double(m) * Double(n) * Double(k)
    if Threads.insideParallelRegion {
        FlopCounter.add(flops, seconds: 0)  // the region's time is not a product's
        gemmUncounted(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    }
    let t0 = DispatchTime.now().uptimeNanoseconds
    gemmUncounted(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    FlopCounter.add(flops, seconds: seconds)
    GemmProfile.add(transA: transA, transB: transB, m: m, n: n, k: k, seconds: seconds)
}

/// `gemm` without the flop and time accounting: the split across threads and the OpenBLAS calls.
@inlinable
func gemmUncounted(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                   _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                   _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
    if k == 0 {
        if beta == 0 { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
        return
    }
    // Large products are split into row blocks of C (or column blocks when C has few rows), one
    // single-threaded OpenBLAS call each. Every element of C is computed the same way whatever the
    // split, so results do not depend on the thread count.
    let threads = Threads.count
    let work = Double(m) * Double(n) * Double(k)
    if threads > 1 && work >= 4_000_000 && !Threads.insideParallelRegion {
        let parts = threads
        // Each part packs its own copy of the operand it does not split: split C's rows when B is the
        // smaller operand to copy (n <= m), its columns otherwise.
        let splitRows = m >= parts * 8 && (n <= m || n < parts * 16)
        if splitRows {
            let rows = (m + parts - 1) / parts
            parallelFor(m, grain: rows) { r in
                sgemmCall(transA, transB, r.count, n, k, alpha,
                          transA ? a + r.lowerBound : a + r.lowerBound * lda, lda, b, ldb, beta, c + r.lowerBound * ldc, ldc)
            }
            return
        } else if n >= parts * 16 {
            let cols = ((n + parts - 1) / parts + 15) / 16 * 16
            parallelFor(n, grain: cols) { r in
                sgemmCall(transA, transB, m, r.count, k, alpha, a, lda,
                          transB ? b + r.lowerBound * ldb : b + r.lowerBound, ldb, beta, c + r.lowerBound, ldc)
            }
            return
        }
    }
    sgemmCall(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

@inlinable @inline(__always)
func sgemmCall(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
               _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
               _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// The straightforward triple loop (accumulating in Double), for testing `gemm`.
public func referenceGemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                          alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                          b: UnsafePointer<Float>, ldb: Int,
                          beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let av = transA ? a[p * lda + i] : a[i * lda + p]
                let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                s += Double(av) * Double(bv)
            }
            let prior = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
            c[i * ldc + j] = Float(Double(alpha) * s + prior)
        }
    }
}

/// Facts about the linked OpenBLAS.
public enum BLASInfo {
    /// The kernel family OpenBLAS chose at load time (e.g. "Haswell", "SkylakeX").
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }
    /// The build configuration string.
    public static var config: String {
        guard let p = openblas_get_config() else { return "unknown" }
        return String(cString: p)
    }
}

/// Counts GEMM flops, and the wall time spent in GEMM calls, while enabled (for `bench`'s
/// achieved-rate figures). Off by default; calls made inside parallel regions add flops
/// but no time (their time is the region's, not a product's).
public enum FlopCounter {
    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) private static var total = 0.0
    nonisolated(unsafe) private static var time = 0.0
    private static let lock = NSLock()
    @usableFromInline static func add(_ f: Double, seconds: Double) {
        lock.lock(); total += f; time += seconds; lock.unlock()
    }
    /// Flops counted since the last reset.
    public static var flops: Double { lock.lock(); defer { lock.unlock() }; return total }
    /// Wall seconds spent inside counted GEMM calls since the last reset.
    public static var seconds: Double { lock.lock(); defer { lock.unlock() }; return time }
    public static func reset() { lock.lock(); total = 0; time = 0; lock.unlock() }
}

extension BLASInfo {
    /// True when OpenBLAS runs AVX-512 kernels.
    public static var usesAVX512Kernels: Bool {
        ["skylakex", "cooperlake", "sapphirerapids"].contains(coreName.lowercased())
    }

    /// True when the CPU has the AVX-512 subsets OpenBLAS's SkylakeX kernels need.
    public static var cpuHasAVX512: Bool {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        return ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
    }

    /// OpenBLAS reads `OPENBLAS_CORETYPE` only when it loads. When the user set no core type,
    /// restart this program once with the kernels whose sums do not depend on a row's position in the
    /// call: `SkylakeX` on a CPU with AVX-512 (when OpenBLAS picked AVX2 kernels there, as 0.3.21 does
    /// on some AMD processors), and `Sandybridge` on a CPU without it (the Haswell/Zen sgemm kernel adds
    /// up K in an order that depends on the register tile, so results would depend on the thread
    /// count and the batch). Returns only when no restart was needed or it failed.
    public static func restartWithFastKernelsIfNeeded() {
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, env["STM_NO_REEXEC"] == nil else { return }
        let wanted: String
        if cpuHasAVX512 {
            if usesAVX512Kernels { return }
            wanted = "SkylakeX"
        } else {
            if coreName.lowercased() == "sandybridge" { return }
            wanted = "Sandybridge"
        }
        setenv("OPENBLAS_CORETYPE", wanted, 1)
        setenv("STM_NO_REEXEC", "1", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        unsetenv("OPENBLAS_CORETYPE")  // exec failed: carry on with what we have
    }
}

/// The machine's sgemm rate in GFLOP/s: square float32 products of side `n` through OpenBLAS with
/// its own threading over `Threads.count` threads (the best OpenBLAS does here), the best of `repeats`
/// (on shared virtual machines the threads may share one physical core for a while, halving it).
public func measureSgemmRate(n: Int = 1024, repeats: Int = 9) -> Double {
    let a = Tensor(shape: [n, n], repeating: 0.5), b = Tensor(shape: [n, n], repeating: 0.25), c = Tensor.zeros([n, n])
    openblas_set_num_threads(Int32(Threads.count))
    defer { Threads.configure() }
    var times: [Double] = []
    for i in 0...repeats {
        let t0 = DispatchTime.now().uptimeNanoseconds
        sgemmCall(false, false, n, n, n, 1, a.data, n, b.data, n, 0, c.data, n)
        if i > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
    }
    return 2 * Double(n * n * n) / times.min()! / 1e9
}

/// The machine's float32 peak in GFLOP/s: every thread runs independent 16-lane fused multiply-adds
/// (twelve chains, enough to hide their latency), `iterations` rounds each; the best of `trials`
/// (on shared virtual machines the two threads may land on one physical core for a while). No
/// matrix product on this machine can beat it, so `bench` uses it to bound what any float32
/// implementation could reach.
public func measureFMAPeak(iterations: Int = 2_000_000, trials: Int = 9) -> Double {
    let threads = Threads.count
    var best = 0.0
    var sink = [Float](repeating: 0, count: threads)
    for _ in 0..<trials {
        let t0 = DispatchTime.now().uptimeNanoseconds
        sink.withUnsafeMutableBufferPointer { out in
            let outp = out.baseAddress!
            parallelFor(threads, grain: 1) { r in
                for t in r { outp[t] = fmaChains(iterations) }
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        best = max(best, Double(threads) * Double(iterations) * 12 * 16 * 2 / seconds / 1e9)
    }
    precondition(sink.allSatisfy { $0.isFinite }, "measureFMAPeak: the chains diverged")
    return best
}

@inline(never)
private func fmaChains(_ iterations: Int) -> Float {
    let m = SIMD16<Float>(repeating: 0.999_999), a = SIMD16<Float>(repeating: 1e-7)
    var c0 = SIMD16<Float>(repeating: 1), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0
    var c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0
    for _ in 0..<iterations {
        c0 = a.addingProduct(c0, m); c1 = a.addingProduct(c1, m); c2 = a.addingProduct(c2, m)
        c3 = a.addingProduct(c3, m); c4 = a.addingProduct(c4, m); c5 = a.addingProduct(c5, m)
        c6 = a.addingProduct(c6, m); c7 = a.addingProduct(c7, m); c8 = a.addingProduct(c8, m)
        c9 = a.addingProduct(c9, m); c10 = a.addingProduct(c10, m); c11 = a.addingProduct(c11, m)
    }
    let s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11
    return s.sum()
}

/// Time and rate per GEMM shape, gathered with `FlopCounter` (calls outside parallel regions):
/// `bench` prints it to stderr when `STM_GEMM_PROFILE` is set, to see which products run below
/// the sgemm rate.
public enum GemmProfile {
    nonisolated(unsafe) private static var table: [String: (flops: Double, seconds: Double, calls: Int)] = [:]
    private static let lock = NSLock()

    @usableFromInline static func add(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, seconds: Double) {
        let key = "\(transA ? "T" : "N")\(transB ? "T" : "N") m=\(m) n=\(n) k=\(k)"
        lock.lock()
        var e = table[key] ?? (0, 0, 0)
        e.flops += 2 * Double(m) * Double(n) * Double(k)
        e.seconds += seconds
        e.calls += 1
        table[key] = e
        lock.unlock()
    }

    /// The `limit` shapes that took longest, one line each (shape, calls, total ms, GFLOP/s).
    public static func report(limit: Int = 30) -> String {
        lock.lock()
        defer { lock.unlock() }
        return table.sorted { $0.value.seconds > $1.value.seconds }.prefix(limit).map { key, v in
            String(format: "%-30@ calls %4d  %8.2f ms  %6.1f GFLOP/s", key as NSString, v.calls, v.seconds * 1000, v.flops / v.seconds / 1e9)
        }.joined(separator: "\n")
    }

    public static func reset() { lock.lock(); table = [:]; lock.unlock() }
}
