// TensorCore: the matrix product. Everything that is a matrix product in the models (linear layers,
// 1x1 and im2col convolutions, attention) comes here, and runs on CGemm, the project's own packed
// GEMM with a fixed summation order: every element of C is one fused multiply-add chain over k in
// order, so its bits depend neither on the thread count, nor on the batch (M), nor on the CPU's
// vector width (see Sources/CGemm/include/stm_gemm.h). Weights can be packed once (`Storage.freeze`).
// Beside it: `fmaChainGemm`, the scalar definition the tests compare every kernel with; `openblasGemm`,
// an independent oracle for tests and for `bench`'s per-shape comparison; the flop counter and profile.
//
// Shape key: M rows of C, N columns of C, K the reduction length; row-major with leading dimensions.

import CBLAS
import CGemm
import Dispatch
import Foundation
import Synchronization

/// `C[M,N] = alpha * op(A) * op(B) + beta * C (+ bias[N])`, row-major, with leading dimensions.
/// `op(A)` is `[M,K]` (A stored `[K,M]` when `transA`), `op(B)` is `[K,N]` (B stored `[N,K]` when
/// `transB`). Exactly: `acc = fma(a[i,k], b[k,j], acc)` for k = 0..<K from +0, then `alpha * acc`
/// (when alpha != 1), `fma(beta, C, ·)` (when beta != 0), `+ bias[j]` (when given), each rounded to
/// float. `packedB` is `op(B)` packed by `PackedMatrix` (for weights; ignored when it does not fit).
@inlinable
public func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                 alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                 b: UnsafePointer<Float>, ldb: Int,
                 beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
                 packedB: PackedMatrix? = nil, bias: UnsafePointer<Float>? = nil) {
    if m == 0 || n == 0 { return }
    withGemmAccounting(transA: transA, transB: transB, m: m, n: n, k: k) {
        gemmUncounted(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, packedB, bias)
    }
}

/// Runs a product, adding its flops (and, outside parallel regions, its wall time and shape) to
/// `FlopCounter` and `GemmProfile` while counting is on. Inside a region a product's time is the
/// region's, not its own.
@inlinable
func withGemmAccounting(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, _ run: () -> Void) {
    guard FlopCounter.enabled else { run(); return }
    withGemmAccounting(products: [GemmShape(transA: transA, transB: transB, m: m, n: n, k: k)], run)
}

/// `withGemmAccounting` for a node that runs several products (`run` does them all): their flops,
/// and the node's wall time shared between their shapes by flops.
@usableFromInline
func withGemmAccounting(products: [GemmShape], _ run: () -> Void) {
    guard FlopCounter.enabled else { run(); return }
    let flops = products.map { 2 * Double($0.m) * Double($0.n) * Double($0.k) }
    let total = flops.reduce(0, +)
    if Threads.insideParallelRegion {
        FlopCounter.add(total, seconds: 0)
        run()
        return
    }
    let t0 = DispatchTime.now().uptimeNanoseconds
    run()
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    FlopCounter.add(total, seconds: seconds)
    for (s, f) in zip(products, flops) {
        let share = total > 0 ? f / total : 1 / Double(products.count)
        GemmProfile.add(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, seconds: seconds * share)
    }
}

/// `gemm` without the flop and time accounting. Inside a `parallelFor` chunk it runs on that thread
/// alone; elsewhere CGemm splits C into blocks (from the sizes alone) over `Threads.count` threads.
@inlinable
func gemmUncounted(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                   _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                   _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
                   _ packedB: PackedMatrix?, _ bias: UnsafePointer<Float>?) {
    let threads = Threads.insideParallelRegion ? 1 : Int32(Threads.count)
    stm_sgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
              packedB?.handle, bias, nil, nil, threads)
}

/// Element-wise work fused into a product: called once for each finished block of C (rows
/// `i0..<i0+rows`, columns `j0..<j0+cols`, already through alpha, beta and bias) while it is in cache,
/// with C's base pointer and leading dimension. Blocks never overlap and together cover C once;
/// which thread calls it is not fixed, so it must only touch its block (of C or of buffers of C's shape).
public typealias GemmEpilogue = (_ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ i0: Int, _ j0: Int, _ rows: Int, _ cols: Int) -> Void

/// `gemm` with an `epilogue` run on each finished block of C (see `GemmEpilogue`). The values of C
/// are those `gemm` gives; the epilogue then changes them (or writes elsewhere) block by block.
public func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                 alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                 b: UnsafePointer<Float>, ldb: Int,
                 beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
                 packedB: PackedMatrix? = nil, bias: UnsafePointer<Float>? = nil, epilogue: GemmEpilogue) {
    if m == 0 || n == 0 { return }
    // Counted as `gemm` counts (its time includes the epilogue's, which is the point of fusing it).
    withGemmAccounting(transA: transA, transB: transB, m: m, n: n, k: k) {
        gemmUncounted(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, packedB, bias, epilogue: epilogue)
    }
}

/// `gemm(..., epilogue:)` without the accounting, for ops that count their products themselves.
func gemmUncounted(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                   _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                   _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
                   _ packedB: PackedMatrix?, _ bias: UnsafePointer<Float>?, epilogue: GemmEpilogue) {
    if m == 0 || n == 0 { return }
    let threads = Threads.insideParallelRegion ? 1 : Int32(Threads.count)
    withoutActuallyEscaping(epilogue) { epilogue in
        var box = EpilogueBox(body: epilogue)
        withUnsafeMutablePointer(to: &box) { ctx in
            stm_sgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                      packedB?.handle, bias, runEpilogue, ctx, threads)
        }
    }
}

/// What `gemm(..., epilogue:)` hands to CGemm as the post hook's context.
struct EpilogueBox {
    let body: GemmEpilogue
}

/// CGemm's post hook: calls the Swift epilogue in the context.
let runEpilogue: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<Float>?, Int, Int, Int, Int, Int) -> Void = {
    ctx, c, ldc, i0, j0, rows, cols in
    ctx!.assumingMemoryBound(to: EpilogueBox.self).pointee.body(c!, ldc, i0, j0, rows, cols)
}

/// `op(B)` of a product packed once for the micro-kernel in use (CGemm's NR-wide column slivers).
/// Made for weights, which never change after loading: see `Storage.freeze()` and
/// `Tensor.packedForGemm(transposed:)`. A packed matrix made for another kernel is ignored by `gemm`.
public final class PackedMatrix: @unchecked Sendable {
    @usableFromInline let handle: OpaquePointer
    /// The micro-kernel it was packed for (see `GemmKernel`).
    public let kernel: GemmKernel
    /// For a view: the packed matrix whose transpose this is (kept alive with the view).
    public let transposeOf: PackedMatrix?

    /// Packs `op(B)` [K,N] (stored [N,K] when `transposed`) with leading dimension `ld`.
    public init(transposed: Bool, k: Int, n: Int, b: UnsafePointer<Float>, ld: Int) {
        kernel = GemmKernel.current
        transposeOf = nil
        guard let h = stm_gemm_pack_b(transposed ? 1 : 0, k, n, b, ld) else {
            fatalError("TensorCore: out of memory packing a \(k)x\(n) matrix")
        }
        handle = h
    }

    /// A view of `source`'s transpose that holds no values: a product given it packs its B per call
    /// from `source` (NR x NR block transposes; the same values as packing the unpacked matrix).
    public init(transposeOf source: PackedMatrix) {
        precondition(source.transposeOf == nil, "PackedMatrix: a view of a view")
        kernel = source.kernel
        transposeOf = source
        guard let h = stm_gemm_pack_transposed_view(source.handle) else {
            fatalError("TensorCore: out of memory making a packed view")
        }
        handle = h
    }

    /// Writes the values back in their stored layout (`op(B)`, or its transpose when `transposed`)
    /// at leading dimension `ld`. Not for a view.
    func unpack(transposed: Bool, into b: UnsafeMutablePointer<Float>, ld: Int) {
        precondition(transposeOf == nil)
        stm_gemm_unpack_b(handle, transposed ? 1 : 0, b, ld)
    }

    deinit { stm_gemm_packed_free(handle) }

    /// Bytes held.
    public var bytes: Int { stm_gemm_packed_bytes(handle) }
}

/// CGemm's micro-kernels, narrowest first. All give the same bits; they differ only in speed.
public enum GemmKernel: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case portable = 0, avx2 = 1, avx512 = 2

    /// The kernel in use: the widest this CPU runs, or the narrower one named by `STM_GEMM_KERNEL`
    /// (`portable`, `avx2`, `avx512`) when the process started, or set with `use(_:)`.
    public static var current: GemmKernel { GemmKernel(rawValue: stm_gemm_kernel()) ?? .portable }
    /// The widest kernel this CPU can run.
    public static var best: GemmKernel { GemmKernel(rawValue: stm_gemm_cpu_best()) ?? .portable }
    /// Every kernel this CPU can run.
    public static var runnable: [GemmKernel] { allCases.filter { $0.rawValue <= best.rawValue } }

    /// Switches to `kernel`; false (and no change) when this CPU cannot run it.
    @discardableResult
    public static func use(_ kernel: GemmKernel) -> Bool { stm_gemm_set_kernel(kernel.rawValue) >= 0 }

    /// The kernel of a name (`portable`, `avx2`, `avx512`), or nil.
    public init?(name: String) {
        let k = stm_gemm_kernel_named(name)
        guard k >= 0, let v = GemmKernel(rawValue: k) else { return nil }
        self = v
    }

    public var description: String { String(cString: stm_gemm_kernel_name(rawValue)) }
    /// Register tile rows and columns.
    public var tile: (rows: Int, columns: Int) { (Int(stm_gemm_mr(rawValue)), Int(stm_gemm_nr(rawValue))) }
    /// Float32 lanes of one vector of this kernel.
    public var lanes: Int { self == .avx512 ? 16 : (self == .avx2 ? 8 : 1) }

    /// The k-block and the rows of a block this kernel uses: its own, or the overrides of
    /// `STM_GEMM_KC` / `STM_GEMM_MC` or `setBlocking`. They change no bit, only the speed.
    public var blocking: (kc: Int, mc: Int) {
        var kc = 0, mc = 0
        stm_gemm_blocking(rawValue, &kc, &mc)
        return (kc, mc)
    }

    /// Whether `STM_GEMM_KC` or `STM_GEMM_MC` (or `setBlocking`) overrides the kernels' own blocking.
    public static var blockingOverridden: Bool { stm_gemm_blocking_overridden() != 0 }

    /// The current kernel's blocking when an override is in force, else nil (how `bench` labels its runs).
    public static var blockingOverride: (kc: Int, mc: Int)? { blockingOverridden ? current.blocking : nil }

    /// The current kernel's name, with its blocking when overridden ("avx512 kc 128 mc 48"): the
    /// `gemm_kernel` that bench's JSON records.
    public static var label: String { current.description + (blockingOverride.map { " kc \($0.kc) mc \($0.mc)" } ?? "") }

    /// Overrides every kernel's k-block (at least 8) and block rows (rounded up to a multiple of the
    /// tile's rows); 0 keeps a kernel's own. For tuning on a new CPU: no bit depends on them.
    /// False (and no change) for values outside 0...4096.
    @discardableResult
    public static func setBlocking(kc: Int, mc: Int) -> Bool { stm_gemm_set_blocking(kc, mc) == 0 }

    /// Checks `STM_GEMM_KERNEL`, `STM_GEMM_KC` and `STM_GEMM_MC` as flags would be checked: nil when
    /// unset or valid, else the problem.
    public static func environmentProblem() -> String? {
        for name in ["STM_GEMM_KC", "STM_GEMM_MC"] {
            guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { continue }
            guard let n = Int(value), (8...4096).contains(n) else {
                return "\(name)=\(value) is not a block size (a whole number from 8 to 4096)"
            }
        }
        guard let value = ProcessInfo.processInfo.environment["STM_GEMM_KERNEL"] else { return nil }
        guard let k = GemmKernel(name: value) else {
            return "STM_GEMM_KERNEL=\(value) is not a kernel (portable, avx2, avx512)"
        }
        if k.rawValue > best.rawValue {
            return "STM_GEMM_KERNEL=\(value): this CPU cannot run it (best: \(best))"
        }
        return nil
    }
}

extension Storage {
    /// `op(B)` packed for the current kernel, made on first use and kept with the storage, for
    /// storage that was frozen (weights); nil for any other storage. The transpose of a packing
    /// already made is a view of it (the backward's product repacks from it per call, as it would
    /// from the unpacked values). Once a packing is made, the unpacked values' pages of a large
    /// weight are handed back: the packed copy is then the only one (`releaseUnpackedLocked`).
    func packed(transposed: Bool, k: Int, n: Int, ld: Int) -> PackedMatrix? {
        guard isFrozen else { return nil }
        let kernel = GemmKernel.current
        let key = PackKey(transposed: transposed, k: k, n: n, ld: ld, kernel: kernel)
        packLock.lock()
        defer { packLock.unlock() }
        if let p = packs[key] { return p }
        let mirror = PackKey(transposed: !transposed, k: n, n: k, ld: ld, kernel: kernel)
        if let source = packs[mirror], source.transposeOf == nil {
            let view = PackedMatrix(transposeOf: source)
            packs[key] = view
            return view
        }
        if unpackedReleased { restoreUnpackedLocked() }
        let p = PackedMatrix(transposed: transposed, k: k, n: n, b: base, ld: ld)
        packs[key] = p
        releaseUnpackedLocked()
        return p
    }

    /// True while only the packed forms hold the values (for tests and memory reports).
    public var isUnpackedReleased: Bool { packLock.lock(); defer { packLock.unlock() }; return unpackedReleased }

    /// Writes the values back from a packed form and makes the pages accessible again; called by
    /// `pointer` when something other than a product reads a weight whose unpacked pages were released.
    @usableFromInline func restoreUnpacked() {
        packLock.lock()
        defer { packLock.unlock() }
        if unpackedReleased { restoreUnpackedLocked() }
    }

    private func restoreUnpackedLocked() {
        let raw = UnsafeMutableRawPointer(base)
        guard mprotect(raw, capacityBytes, PROT_READ | PROT_WRITE) == 0 else {
            fatalError("TensorCore: cannot make a weight's pages writable again (mprotect)")
        }
        if let rewrite {
            rewrite(base)
        } else if let (key, source) = packs.first(where: { $0.value.transposeOf == nil }) {
            source.unpack(transposed: key.transposed, into: base, ld: key.ld)
        } else {
            fatalError("TensorCore: a released weight has no packed form")
        }
        unpackedReleased = false
    }

    /// For a frozen weight that the model only reads through a copy in another layout (a convolution's
    /// [O, KH*KW*C] matrix made from PyTorch's [O, C, KH, KW]): hands these values' pages back, when
    /// they are a mapping of their own, and keeps `rewrite`, which writes them again from that copy
    /// if anything reads them. Nothing happens to storage that is not frozen or not mapped.
    public func releaseDerived(rewrite: @escaping (UnsafeMutablePointer<Float>) -> Void) {
        guard isFrozen else { return }
        packLock.lock()
        defer { packLock.unlock() }
        self.rewrite = rewrite
        releaseUnpackedLocked()
    }

    /// Hands the pages of the unpacked values back to the system, when they are a mapping of their
    /// own (`BufferPool.mappedSize` or more) and a packed form (or a rewrite) holds the values. The
    /// pages are then inaccessible, so a read that bypassed `pointer` traps instead of seeing zeros.
    private func releaseUnpackedLocked() {
        guard !unpackedReleased, capacityBytes >= BufferPool.mappedSize,
              rewrite != nil || packs.values.contains(where: { $0.transposeOf == nil }) else { return }
        let raw = UnsafeMutableRawPointer(base)
        guard madvise(raw, capacityBytes, MADV_DONTNEED) == 0 else { return }
        if mprotect(raw, capacityBytes, PROT_NONE) != 0 {
            // Still readable, but the pages are zero now: write the values back.
            unpackedReleased = true
            restoreUnpackedLocked()
            return
        }
        unpackedReleased = true
    }
}

/// Which packing of a frozen storage.
struct PackKey: Hashable {
    let transposed: Bool
    let k: Int, n: Int, ld: Int
    let kernel: GemmKernel
}

extension Tensor {
    /// `op(B)` packed for `gemm`, when this tensor's storage is frozen (see `Storage.freeze`): this
    /// tensor as B [K,N] (`transposed == false`) or as Bᵀ with B stored [N,K].
    public func packedForGemm(transposed: Bool) -> PackedMatrix? {
        precondition(rank >= 2)
        let rows = count / lastDim
        return transposed ? storage.packed(transposed: true, k: lastDim, n: rows, ld: lastDim)
                          : storage.packed(transposed: false, k: rows, n: lastDim, ld: lastDim)
    }

    /// This tensor as a product's B: its packed form for the current kernel when it is frozen (the
    /// product then never reads the pointer, whose pages may have been released), else its values.
    public func gemmOperand(transposed: Bool) -> (b: UnsafePointer<Float>, packed: PackedMatrix?) {
        if let p = packedForGemm(transposed: transposed) { return (UnsafePointer(storage.base), p) }
        return (UnsafePointer(data), nil)
    }

    /// Marks this tensor's storage as never changing again (a weight), so products may keep it packed.
    @discardableResult
    public func frozen() -> Tensor {
        storage.freeze()
        return self
    }
}

/// The definition every kernel must meet, element by element, in scalar code: one `fma` chain over
/// k in order from +0, then the epilogue. Slow; for tests.
public func fmaChainGemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                         alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                         b: UnsafePointer<Float>, ldb: Int,
                         beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
                         bias: UnsafePointer<Float>? = nil) {
    for i in 0..<m {
        for j in 0..<n {
            var acc: Float = 0
            for p in 0..<k {
                let av = transA ? a[p * lda + i] : a[i * lda + p]
                let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                acc = acc.addingProduct(av, bv)   // fma(av, bv, acc)
            }
            var t = acc
            if alpha != 1 { t = alpha * t }
            if beta != 0 { t = t.addingProduct(beta, c[i * ldc + j]) }
            if let bias { t = t + bias[j] }
            c[i * ldc + j] = t
        }
    }
}

/// The straightforward triple loop (accumulating in Double), for testing `gemm` to a tolerance.
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

/// OpenBLAS's `cblas_sgemm` (single-threaded, its own summation order): an independent oracle for
/// the GEMM tests and the yardstick `bench` prints beside our rate. Nothing in the models uses it.
public func openblasGemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                         alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                         b: UnsafePointer<Float>, ldb: Int,
                         beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Facts about the linked OpenBLAS (used only as an oracle and a yardstick).
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

extension BLASInfo {
    /// True when OpenBLAS runs AVX-512 kernels.
    public static var usesAVX512Kernels: Bool {
        ["skylakex", "cooperlake", "sapphirerapids"].contains(coreName.lowercased())
    }

    /// OpenBLAS reads `OPENBLAS_CORETYPE` only when it loads. For `bench`, whose yardstick is OpenBLAS
    /// at its best: when it picked AVX2 kernels on a CPU with AVX-512 (as 0.3.21 does on some AMD
    /// processors) and the user set no core type, restart once with `OPENBLAS_CORETYPE=SkylakeX`.
    /// Returns only when no restart was needed or it failed.
    public static func restartWithFastKernelsIfNeeded() {
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, env["STM_NO_REEXEC"] == nil, !usesAVX512Kernels,
              GemmKernel.best == .avx512 else { return }
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
        setenv("STM_NO_REEXEC", "1", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        unsetenv("OPENBLAS_CORETYPE")  // exec failed: carry on with what we have
    }
}

/// Counts GEMM flops, and the wall time spent in GEMM calls, while enabled (for `bench`'s
/// achieved-rate figures). Off by default; calls made inside parallel regions add flops
/// but no time (their time is the region's, not a product's).
public enum FlopCounter {
    private static let on = Atomic<Bool>(false)
    /// Whether products are counted (process-wide). An atomic flag, not the counter's lock: every
    /// product reads it, and two threads taking one lock per product (Halo's attention makes six
    /// products per window and head) passed its cache line back and forth.
    public static var enabled: Bool {
        get { on.load(ordering: .acquiring) }
        set { on.store(newValue, ordering: .releasing) }
    }
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

/// The machine's sgemm rate in GFLOP/s through OpenBLAS: square float32 products of side `n` with
/// its own threading over `Threads.count` threads, the best of `repeats`.
public func measureSgemmRate(n: Int = 1024, repeats: Int = 9) -> Double {
    let a = Tensor(shape: [n, n], repeating: 0.5), b = Tensor(shape: [n, n], repeating: 0.25), c = Tensor.zeros([n, n])
    openblas_set_num_threads(Int32(Threads.count))
    defer { openblas_set_num_threads(1) }
    var times: [Double] = []
    for i in 0...repeats {
        let t0 = DispatchTime.now().uptimeNanoseconds
        openblasGemm(m: n, n: n, k: n, a: a.data, lda: n, b: b.data, ldb: n, c: c.data, ldc: n)
        if i > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
    }
    return 2 * Double(n * n * n) / times.min()! / 1e9
}

/// Our GEMM's rate in GFLOP/s on one shape (the best of `repeats`), with B packed once as a model's
/// weights are, and OpenBLAS's on the same shape in the same call: single-threaded OpenBLAS split as
/// our products were before (rows or columns over the threads), so both use the same cores.
public func measureGemmShape(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, repeats: Int = 5) -> (ours: Double, openblas: Double) {
    let a = Tensor(shape: [transA ? k : m, transA ? m : k], repeating: 0.5)
    let b = Tensor(shape: [transB ? n : k, transB ? k : n], repeating: 0.25)
    let c = Tensor.zeros([m, n])
    let lda = transA ? m : k, ldb = transB ? k : n
    func best(_ body: () -> Void) -> Double {
        var t = Double.infinity
        for i in 0...repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            if i > 0 { t = min(t, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
        }
        return 2 * Double(m) * Double(n) * Double(k) / t / 1e9
    }
    let packed = PackedMatrix(transposed: transB, k: k, n: n, b: b.data, ld: ldb)
    let ours = best {
        gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a.data, lda: lda, b: b.data, ldb: ldb, c: c.data, ldc: n, packedB: packed)
    }
    let theirs = best {
        let parts = Threads.count
        if parts > 1 && m >= parts * 8 {
            let rows = (m + parts - 1) / parts
            parallelFor(m, grain: rows) { r in
                openblasGemm(transA: transA, transB: transB, m: r.count, n: n, k: k,
                             a: transA ? a.data + r.lowerBound : a.data + r.lowerBound * lda, lda: lda,
                             b: b.data, ldb: ldb, c: c.data + r.lowerBound * n, ldc: n)
            }
        } else if parts > 1 && n >= parts * 16 {
            let cols = ((n + parts - 1) / parts + 15) / 16 * 16
            parallelFor(n, grain: cols) { r in
                openblasGemm(transA: transA, transB: transB, m: m, n: r.count, k: k, a: a.data, lda: lda,
                             b: transB ? b.data + r.lowerBound * ldb : b.data + r.lowerBound, ldb: ldb,
                             c: c.data + r.lowerBound, ldc: n)
            }
        } else {
            openblasGemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a.data, lda: lda, b: b.data, ldb: ldb, c: c.data, ldc: n)
        }
    }
    return (ours, theirs)
}

/// The machine's float32 peak in GFLOP/s at the width of the GEMM kernel in use: every thread runs
/// independent fused multiply-add chains (CGemm's `stm_fma_chains`, twelve vectors of the kernel's
/// width, enough to hide their latency), the best of at least `trials` runs spread over at least
/// `minSeconds`. No matrix product can beat it. The span matters: OpenBLAS's threads spin for about
/// a tenth of a second after it loads or runs, and on a 2-core host a spinning thread halves the
/// rate of every run it overlaps (a 36 ms measurement read 85 GFLOP/s on a host whose peak is 190).
public func measureFMAPeak(iterations: Int = 4_000_000, trials: Int = 9, minSeconds: Double = 0.5) -> Double {
    let threads = Threads.count
    let kernel = GemmKernel.current.rawValue
    var best = 0.0
    let start = DispatchTime.now().uptimeNanoseconds
    var done = 0
    while done < trials || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < minSeconds {
        let t0 = DispatchTime.now().uptimeNanoseconds
        var flops = [Double](repeating: 0, count: threads)
        flops.withUnsafeMutableBufferPointer { out in
            let outp = out.baseAddress!
            parallelFor(threads, grain: 1) { r in
                for t in r { outp[t] = stm_fma_chains(kernel, iterations) }
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        best = max(best, flops.reduce(0, +) / seconds / 1e9)
        done += 1
    }
    return best
}

/// Time and rate per GEMM shape, gathered with `FlopCounter` (calls outside parallel regions):
/// `bench` prints it to stderr when `STM_GEMM_PROFILE` is set, to see which products run slowly.
public enum GemmProfile {
    nonisolated(unsafe) private static var table: [String: (flops: Double, seconds: Double, calls: Int, shape: GemmShape)] = [:]
    private static let lock = NSLock()

    @usableFromInline static func add(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, seconds: Double) {
        let key = "\(transA ? "T" : "N")\(transB ? "T" : "N") m=\(m) n=\(n) k=\(k)"
        lock.lock()
        var e = table[key] ?? (0, 0, 0, GemmShape(transA: transA, transB: transB, m: m, n: n, k: k))
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

    /// The shapes counted, longest total time first, with their share of the counted flops.
    public static func shapes(limit: Int = 12) -> [(shape: GemmShape, calls: Int, flopShare: Double)] {
        lock.lock()
        defer { lock.unlock() }
        let total = table.values.reduce(0) { $0 + $1.flops }
        return table.values.sorted { $0.seconds > $1.seconds }.prefix(limit).map { ($0.shape, $0.calls, total > 0 ? $0.flops / total : 0) }
    }

    public static func reset() { lock.lock(); table = [:]; lock.unlock() }
}

/// One product's shape: transposes and M, N, K.
public struct GemmShape: Hashable, Sendable, Codable {
    public let transA: Bool, transB: Bool
    public let m: Int, n: Int, k: Int

    @usableFromInline init(transA: Bool, transB: Bool, m: Int, n: Int, k: Int) {
        (self.transA, self.transB, self.m, self.n, self.k) = (transA, transB, m, n, k)
    }
}
