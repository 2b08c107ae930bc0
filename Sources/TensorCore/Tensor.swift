// TensorCore: the tensor type. A float32, row-major, contiguous array with a shape, and (when it
// depends on a tensor that requires a gradient) the tape node that produced it. Image tensors are
// channels-last. Views other than reshapes do not exist: every op writes a fresh buffer, so a
// tensor's storage is never changed after the op that made it returns.
//
// Shape key used across TensorCore: N batch, H height, W width, C channels, B batch of windows or
// sequences, L tokens, K reduction length, O output channels.

import Foundation

/// Aligned float32 memory owned by one or more tensors (reshapes share it).
public final class Storage: @unchecked Sendable {
    /// First element; 64-byte aligned. Reading it brings a weight's values back when only their
    /// packed form was kept (see `Storage.packed(transposed:k:n:ld:)` in Gemm.swift). Products read
    /// weights through `Tensor.gemmOperand` instead; a thread that reads a weight's values here while
    /// another thread's first product on it is packing it may find the pages gone (and trap): read
    /// weights' values before running a model on several threads, or from one thread.
    @inlinable public var pointer: UnsafeMutablePointer<Float> {
        if unpackedReleased { restoreUnpacked() }
        return base
    }
    /// First element, whether or not its pages hold the values now: only for passing beside a packed
    /// form that the product will read instead.
    @usableFromInline let base: UnsafeMutablePointer<Float>
    /// True while the pages of `base` were handed back and only the packed forms hold the values.
    @usableFromInline var unpackedReleased = false
    /// Number of elements.
    public let count: Int
    /// Bytes of the buffer (the pool may hand out a larger one than `count` needs).
    let capacityBytes: Int
    /// Packed forms of this storage for `gemm`, made on first use once it is frozen.
    var packs: [PackKey: PackedMatrix] = [:]
    /// Writes the values again from a copy in another layout (see `releaseDerived(rewrite:)`).
    var rewrite: ((UnsafeMutablePointer<Float>) -> Void)?
    let packLock = NSLock()
    private var frozenFlag = false

    /// True once `freeze()` was called: the values never change again (weights).
    public var isFrozen: Bool { packLock.lock(); defer { packLock.unlock() }; return frozenFlag }

    /// Promises that the values never change again, so that matrix products may keep packed copies.
    public func freeze() { packLock.lock(); frozenFlag = true; packLock.unlock() }

    /// Allocates `count` floats; their values are undefined until written.
    public init(uninitializedCount count: Int) {
        self.count = count
        let bytes = BufferPool.roundedSize(max(count, 1) * MemoryLayout<Float>.stride)
        let (raw, capacity) = BufferPool.take(bytes: bytes)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        capacityBytes = capacity
        MemoryStats.allocated(bytes)
    }

    deinit {
        MemoryStats.freed(BufferPool.roundedSize(max(count, 1) * MemoryLayout<Float>.stride))
        // Released pages are inaccessible; readable again (as zero pages) before the pool reuses them.
        if unpackedReleased { mprotect(UnsafeMutableRawPointer(base), capacityBytes, PROT_READ | PROT_WRITE) }
        BufferPool.give(UnsafeMutableRawPointer(base), bytes: capacityBytes)
    }
}

/// Recycles freed tensor buffers by size, so the same shapes in the next block or pass reuse
/// memory whose pages are already mapped (fresh large allocations fault in every page). A request
/// that finds no free buffer of its size may take a free one up to `stretch` times larger, so one
/// stage's activations reuse what another stage's temporaries left. Buffers of `mappedSize` or more
/// are mapped pages of their own, so those the pool does not keep go back to the system. Holds at
/// most `limit` bytes of free buffers.
public enum BufferPool {
    nonisolated(unsafe) private static var free: [Int: [UnsafeMutableRawPointer]] = [:]
    nonisolated(unsafe) private static var cached = 0
    private static let lock = NSLock()
    /// Most bytes kept in free buffers.
    nonisolated(unsafe) public static var limit = 1 << 30
    /// Buffers of at least this many bytes are mapped pages of their own.
    static let mappedSize = 1 << 18
    /// How much larger than asked a reused free buffer may be.
    static let stretch = 2

    /// Sizes above 64 KiB are rounded up to whole 4 KiB pages, so near sizes share buffers.
    @inline(__always) static func roundedSize(_ bytes: Int) -> Int {
        bytes <= 65_536 ? (bytes + 63) & ~63 : (bytes + 4095) & ~4095
    }

    /// A buffer of at least `bytes` (rounded) and its actual size: a free one of that size, else (for
    /// mapped sizes) the smallest free one of up to `stretch` times that size, else a new one. Taking a
    /// larger free buffer lets the activations of one stage reuse the memory another stage's
    /// temporaries left in the pool, instead of mapping more while those sit idle.
    static func take(bytes: Int) -> (UnsafeMutableRawPointer, Int) {
        lock.lock()
        var size = free[bytes] != nil ? bytes : 0
        if size == 0 && bytes >= mappedSize {
            for candidate in free.keys where candidate > bytes && candidate <= stretch * bytes && (size == 0 || candidate < size) {
                size = candidate
            }
        }
        if size > 0, let p = pop(size) {
            lock.unlock()
            return (p, size)
        }
        lock.unlock()
        if bytes >= mappedSize {
            // Large buffers come straight from the kernel, so that what the pool does not keep goes
            // back to the system at once (the C heap would keep it, fragmented, for its own reuse).
            let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            if let p, p != MAP_FAILED { return (p, bytes) }
            outOfMemory(bytes)
        }
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else { outOfMemory(bytes) }
        return (raw, bytes)
    }

    /// Takes a free buffer of exactly `size` bytes off its list (the lock held).
    private static func pop(_ size: Int) -> UnsafeMutableRawPointer? {
        guard var list = free[size], let p = list.popLast() else { return nil }
        free[size] = list.isEmpty ? nil : list  // an empty list is removed, so a key means a free buffer
        cached -= size
        return p
    }

    /// A last resort: the command line plans a run's memory before building its model (Models'
    /// MemoryPlan, --max-memory), so that a run too large is refused with a hint instead.
    private static func outOfMemory(_ bytes: Int) -> Never {
        fatalError("TensorCore: out of memory allocating \(bytes) bytes (the run's memory plan did not foresee it; try --batch 1, a smaller --size or a lower --max-memory)")
    }

    static func give(_ p: UnsafeMutableRawPointer, bytes: Int) {
        lock.lock()
        if cached + bytes <= limit {
            free[bytes, default: []].append(p)
            cached += bytes
            lock.unlock()
            return
        }
        lock.unlock()
        release(p, bytes: bytes)
    }

    private static func release(_ p: UnsafeMutableRawPointer, bytes: Int) {
        if bytes >= mappedSize { munmap(p, bytes) } else { Foundation.free(p) }
    }

    /// Returns every cached buffer to the system.
    public static func drain() {
        lock.lock()
        for (bytes, list) in free { for p in list { release(p, bytes: bytes) } }
        free = [:]
        cached = 0
        lock.unlock()
    }

    /// Bytes held in free buffers now.
    public static var cachedBytes: Int { lock.lock(); defer { lock.unlock() }; return cached }
}

/// Live and peak bytes held by tensor storage (for `bench` and memory checks).
public enum MemoryStats {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var live = 0
    nonisolated(unsafe) private static var peak = 0

    static func allocated(_ bytes: Int) {
        lock.lock(); live += bytes; if live > peak { peak = live }; lock.unlock()
    }
    static func freed(_ bytes: Int) {
        lock.lock(); live -= bytes; lock.unlock()
    }
    /// Bytes of tensor storage alive now.
    public static var liveBytes: Int { lock.lock(); defer { lock.unlock() }; return live }
    /// The most bytes of tensor storage alive at once since the last `resetPeak()`.
    public static var peakBytes: Int { lock.lock(); defer { lock.unlock() }; return peak }
    /// Starts a new peak measurement from the current live size.
    public static func resetPeak() { lock.lock(); peak = live; lock.unlock() }
}

/// A float32 tensor: shape, contiguous row-major storage, and the tape node that produced it.
public struct Tensor: @unchecked Sendable {
    /// Extent of each dimension, outermost first.
    public let shape: [Int]
    /// The values, `count` of them, row-major.
    public let storage: Storage
    /// The tape node whose output this is; nil for constants (no gradient flows to them).
    public internal(set) var node: Node?

    /// Wraps existing storage. `shape` must describe exactly `storage.count` elements.
    public init(shape: [Int], storage: Storage, node: Node? = nil) {
        precondition(shape.reduce(1, *) == storage.count, "Tensor: shape \(shape) does not match \(storage.count) elements")
        self.shape = shape
        self.storage = storage
        self.node = node
    }

    /// A tensor with undefined values (for ops that write every element).
    public init(uninitializedShape shape: [Int]) {
        self.init(shape: shape, storage: Storage(uninitializedCount: shape.reduce(1, *)))
    }

    /// A tensor filled with `value`.
    public init(shape: [Int], repeating value: Float) {
        self.init(uninitializedShape: shape)
        storage.pointer.update(repeating: value, count: storage.count)
    }

    /// A tensor holding `values` (row-major).
    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "Tensor: shape \(shape) does not hold \(values.count) values")
        self.init(uninitializedShape: shape)
        values.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    /// A zero tensor.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 0) }

    /// Number of elements.
    @inlinable public var count: Int { storage.count }
    /// Number of dimensions.
    @inlinable public var rank: Int { shape.count }
    /// First element, for kernels. Writing through it is only allowed on a tensor an op just created.
    @inlinable public var data: UnsafeMutablePointer<Float> { storage.pointer }
    /// True when gradients flow through this tensor.
    @inlinable public var requiresGrad: Bool { node != nil }
    /// The extent of the last dimension.
    @inlinable public var lastDim: Int { shape.last ?? 1 }

    /// The values as an array (copies).
    public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// The same values as a constant: no gradient flows back through the result.
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }

    /// This tensor as a leaf that collects a gradient; read it with `Tape.gradient(of:)` after `backward`.
    public func requiringGrad() -> Tensor {
        Tensor(shape: shape, storage: storage, node: Node(leafOf: shape))
    }

    /// The same storage seen with another shape of the same element count (gradients pass through).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            s[i] = known == 0 ? 0 : count / known
        }
        precondition(s.reduce(1, *) == count, "reshape: \(shape) cannot become \(newShape)")
        let out = Tensor(shape: s, storage: storage)
        let original = shape
        return Tape.record(out, inputs: [self]) { d in [d.reshaped(original)] }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = values.prefix(6).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor\(shape)[\(head)\(count > 6 ? ", ..." : "")]"
    }
}

/// Element-count helper for shapes.
@inlinable public func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }
