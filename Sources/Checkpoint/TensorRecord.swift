// Checkpoint: the common currency of the readers. A `TensorRecord` is one named array as stored in a
// file (its dtype and shape kept for reporting), with its values widened to float32 for the models.
// This file also holds the error type every reader throws. It does not know about any model.

@_exported import Diagnostics
import Foundation

/// Element types that the readers understand. Integer and bool tensors are widened to Float too
/// (buffers such as `relative_position_index` hold small integers that fit exactly).
public enum DType: String, Sendable, CaseIterable {
    case float32 = "F32", float16 = "F16", bfloat16 = "BF16", float64 = "F64"
    case int64 = "I64", int32 = "I32", int16 = "I16", int8 = "I8", uint8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// True for the float types (float32, float16, bfloat16, float64).
    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16, .float64: return true
        default: return false
        }
    }
}

/// One tensor read from a checkpoint: shape as stored (row-major, PyTorch order), values as float32.
public struct TensorRecord: Sendable {
    /// The element type in the file (the values are float32 whatever it is).
    public var dtype: DType
    /// Dimensions, outermost first (PyTorch order); `[]` for a 0-d scalar.
    public var shape: [Int]
    /// Row-major values, `shape.reduce(1, *)` of them.
    public var values: [Float]

    /// Makes a record; `values` must hold exactly `shape.reduce(1, *)` elements (a programming error otherwise).
    public init(dtype: DType = .float32, shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "TensorRecord: shape \(shape) does not hold \(values.count) values")
        self.dtype = dtype
        self.shape = shape
        self.values = values
    }

    /// Number of elements.
    public var count: Int { values.count }
}

/// Errors of this module: one line naming the subject and the problem (see Diagnostics).
public typealias CheckpointError = ToolError

// MARK: - little-endian decoding helpers shared by the readers

@inline(__always) func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = Int((h >> 10) & 0x1f)
    let mant = UInt32(h & 0x3ff)
    if exp == 0 {
        if mant == 0 { return Float(bitPattern: sign) }
        // subnormal
        let v = Float(mant) * Float(sign: .plus, exponent: -24, significand: 1)
        return sign != 0 ? -v : v
    }
    if exp == 31 {
        return Float(bitPattern: sign | 0x7f80_0000 | (mant << 13))
    }
    return Float(bitPattern: sign | (UInt32(exp + 112) << 23) | (mant << 13))
}

/// Decodes `count` little-endian elements of `dtype` starting at `base` into float32.
/// float32 data is copied as is on little-endian machines; other types convert element by element.
func decodeElements(_ base: UnsafeRawPointer, dtype: DType, count: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { o, initialized in
        guard count > 0, let out = o.baseAddress else {
            initialized = 0
            return
        }
        switch dtype {
        case .float32:
            #if _endian(little)
            UnsafeMutableRawPointer(out).copyMemory(from: base, byteCount: 4 * count)
            #else
            for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            #endif
        case .float16:
            for i in 0..<count { out[i] = halfToFloat(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bfloat16:
            for i in 0..<count { out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
        case .float64:
            for i in 0..<count { out[i] = Float(Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
        case .int64:
            for i in 0..<count { out[i] = Float(Int64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
        case .int32:
            for i in 0..<count { out[i] = Float(Int32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
        case .int16:
            for i in 0..<count { out[i] = Float(Int16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
        case .int8:
            for i in 0..<count { out[i] = Float(base.load(fromByteOffset: i, as: Int8.self)) }
        case .uint8, .bool:
            for i in 0..<count { out[i] = Float(base.load(fromByteOffset: i, as: UInt8.self)) }
        }
        initialized = count
    }
}
