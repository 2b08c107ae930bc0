// TensorCore: vectorised exp and erf for the element-wise kernels (GELU, softmax). Sixteen lanes at
// a time through Swift's SIMD types, so the compiler emits AVX-512 or two AVX2 halves. exp uses
// Cephes's range reduction and polynomial (about 1 ulp); erf uses the odd/even rational
// approximation on [-4, 4] that Eigen uses (absolute error below 1e-7). Tested against the C library
// in FastMathTests. exp clamps its input to [-87.34, 88.72], so it never returns a denormal:
// below ln(FLT_MIN) it returns FLT_MIN (2^-126), not 0.

public typealias Float16x = SIMD16<Float>

/// e^x, lane-wise, for x in [-87.3, 88.7] (clamped outside).
@inlinable @inline(__always)
public func fastExp(_ x: Float16x) -> Float16x {
    // (pointwiseMin/Max and bit tricks rather than `clamped`, `rounded` and Int conversions, which
    // the standard library does lane by lane.)
    let xc = pointwiseMax(pointwiseMin(x, Float16x(repeating: 88.72283)), Float16x(repeating: -87.33654))
    // Round to nearest by adding 1.5 * 2^23: the integer lands in the low mantissa bits.
    let shifted = xc * 1.44269504088896341 + 12_582_912
    let n = shifted - 12_582_912
    var r = xc - n * 0.693359375
    r = r - n * -2.12194440e-4
    var p = Float16x(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * r * r + r + 1
    // 2^n through the exponent bits; n + 127 stays in 1...254 after the clamp.
    let bits = (unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: Float16x.self)
}

/// erf(x), lane-wise.
@inlinable @inline(__always)
public func fastErf(_ x: Float16x) -> Float16x {
    let xc = pointwiseMax(pointwiseMin(x, Float16x(repeating: 4)), Float16x(repeating: -4))
    let x2 = xc * xc
    var p = Float16x(repeating: -2.72614225801306e-10)
    p = p * x2 + 2.77068142495902e-08
    p = p * x2 + -2.10102402082508e-06
    p = p * x2 + -5.69250639462346e-05
    p = p * x2 + -7.34990630326855e-04
    p = p * x2 + -2.95459980854025e-03
    p = p * x2 + -1.60960333262415e-02
    p = p * xc
    var q = Float16x(repeating: -1.45660718464996e-05)
    q = q * x2 + -2.13374055278905e-04
    q = q * x2 + -1.68282697438203e-03
    q = q * x2 + -7.37332916720468e-03
    q = q * x2 + -1.42647390514189e-02
    return p / q
}

/// Applies a 16-lane function of two inputs to `count` floats from `a` and `b` into `dst` (the tail
/// padded with zeros).
@inlinable @inline(__always)
func mapLanes2(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ count: Int,
               _ f: (Float16x, Float16x) -> Float16x) {
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b), out = UnsafeMutableRawPointer(dst)
    while i + 16 <= count {
        let u = ra.loadUnaligned(fromByteOffset: i * 4, as: Float16x.self)
        let v = rb.loadUnaligned(fromByteOffset: i * 4, as: Float16x.self)
        out.storeBytes(of: f(u, v), toByteOffset: i * 4, as: Float16x.self)
        i += 16
    }
    if i < count {
        var u = Float16x(repeating: 0), v = Float16x(repeating: 0)
        for j in 0..<(count - i) { u[j] = a[i + j]; v[j] = b[i + j] }
        let r = f(u, v)
        for j in 0..<(count - i) { dst[i + j] = r[j] }
    }
}

/// Applies a 16-lane function to `count` floats from `src` into `dst` (the tail padded with zeros).
@inlinable @inline(__always)
func mapLanes(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ count: Int, _ f: (Float16x) -> Float16x) {
    var i = 0
    let raw = UnsafeRawPointer(src), out = UnsafeMutableRawPointer(dst)
    while i + 16 <= count {
        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: Float16x.self)
        out.storeBytes(of: f(v), toByteOffset: i * 4, as: Float16x.self)
        i += 16
    }
    if i < count {
        var v = Float16x(repeating: 0)
        for j in 0..<(count - i) { v[j] = src[i + j] }
        let r = f(v)
        for j in 0..<(count - i) { dst[i + j] = r[j] }
    }
}
