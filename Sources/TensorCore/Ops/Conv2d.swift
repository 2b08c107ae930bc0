// TensorCore ops: dense 2-D convolution (im2col + GEMM) and depth-wise convolution (direct), in
// channels-last layout, each with its input-gradient rule beside it. Dense convolution covers the
// stem and transitions (3x3, stride 2, pad 1) and PVT's spatial reduction (kernel = stride = r).
// Groups other than 1 and C (depth-wise) are not needed by the models and not provided.
//
// Shape key: N batch, H/W input height/width, Ho/Wo output height/width, C input channels,
// O output channels, KH/KW kernel height/width.

import CGemm

/// Output extent of a convolution along one axis.
@inlinable public func convOutputSize(_ size: Int, kernel: Int, stride: Int, pad: Int) -> Int {
    (size + 2 * pad - kernel) / stride + 1
}

/// Dense convolution. x [N,H,W,C]; weight [O, KH*KW*C] in (O, KH, KW, C) order (see
/// `convWeightOHWI`); bias [O] or nil -> [N,Ho,Wo,O].
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil,
                   kernel: (Int, Int), stride: Int, pad: Int) -> Tensor {
    precondition(x.rank == 4, "conv2d: input must be [N,H,W,C], got \(x.shape)")
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (kh, kw) = kernel
    let kdim = kh * kw * c
    precondition(weight.rank == 2 && weight.shape[1] == kdim, "conv2d: weight \(weight.shape) does not fit \(kh)x\(kw)x\(c)")
    let o = weight.shape[0]
    let ho = convOutputSize(h, kernel: kh, stride: stride, pad: pad)
    let wo = convOutputSize(w, kernel: kw, stride: stride, pad: pad)
    precondition(ho > 0 && wo > 0, "conv2d: input \(h)x\(w) is too small for kernel \(kh)x\(kw)")
    let rows = n * ho * wo
    let col = Tensor(uninitializedShape: [rows, kdim])
    im2col(x.data, n: n, h: h, w: w, c: c, kh: kh, kw: kw, stride: stride, pad: pad, ho: ho, wo: wo, col: col.data)
    let out = Tensor(uninitializedShape: [n, ho, wo, o])
    let wt = weight.gemmOperand(transposed: true)
    gemm(transB: true, m: rows, n: o, k: kdim, a: col.data, lda: kdim, b: wt.b, ldb: kdim,
         c: out.data, ldc: o, packedB: wt.packed, bias: bias.map { UnsafePointer($0.data) })
    let xShape = x.shape  // not x: the input gradient needs only the weight
    return Tape.record(out, inputs: [x]) { dOut in
        // dcol [rows, kdim] = dOut [rows, O] · weight [O, kdim]; then fold back onto the input.
        let dcol = Tensor(uninitializedShape: [rows, kdim])
        let wb = weight.gemmOperand(transposed: false)
        gemm(m: rows, n: kdim, k: o, a: dOut.data, lda: o, b: wb.b, ldb: kdim, c: dcol.data, ldc: kdim, packedB: wb.packed)
        let dx = Tensor(uninitializedShape: xShape)
        col2im(dcol.data, n: n, h: h, w: w, c: c, kh: kh, kw: kw, stride: stride, pad: pad, ho: ho, wo: wo, dx: dx.data)
        return [dx]
    }
}

/// Unfolds x [N,H,W,C] into col [N*Ho*Wo, KH*KW*C]; taps outside the image are zero.
func im2col(_ x: UnsafePointer<Float>, n: Int, h: Int, w: Int, c: Int, kh: Int, kw: Int,
            stride: Int, pad: Int, ho: Int, wo: Int, col: UnsafeMutablePointer<Float>) {
    let kdim = kh * kw * c
    parallelFor(n * ho, grain: grainFor(n * ho, cost: wo * kdim)) { r in
        for row in r {
            let b = row / ho, oy = row % ho
            for ox in 0..<wo {
                var dst = col + (row * wo + ox) * kdim
                let ix0 = ox * stride - pad
                for ky in 0..<kh {
                    let iy = oy * stride + ky - pad
                    if iy >= 0 && iy < h && ix0 >= 0 && ix0 + kw <= w {
                        // The whole row of taps inside: KW*C contiguous values (the stem's C = 3 made
                        // twelve-byte copies of one tap each).
                        dst.update(from: x + ((b * h + iy) * w + ix0) * c, count: kw * c)
                        dst += kw * c
                        continue
                    }
                    for kx in 0..<kw {
                        let ix = ox * stride + kx - pad
                        if iy >= 0 && iy < h && ix >= 0 && ix < w {
                            dst.update(from: x + ((b * h + iy) * w + ix) * c, count: c)
                        } else {
                            dst.update(repeating: 0, count: c)
                        }
                        dst += c
                    }
                }
            }
        }
    }
}

/// The adjoint of `im2col`: dx[N,H,W,C] = sum of every col entry that copied that input element.
/// Written as a gather over input rows, so each output element is summed by one thread in a fixed order:
/// from +0, the taps (ky, kx) in row-major order that reach it. Which taps reach a column depends only
/// on its x, and which reach a row only on its y, so both lists are made once per call (the
/// divisions by the stride left the loops).
func col2im(_ dcol: UnsafePointer<Float>, n: Int, h: Int, w: Int, c: Int, kh: Int, kw: Int,
            stride: Int, pad: Int, ho: Int, wo: Int, dx: UnsafeMutablePointer<Float>) {
    let kdim = kh * kw * c
    // Made once per call: the stem's input has C = 3, where the per-pixel work is a few adds and any
    // bookkeeping per pixel or row dominated.
    let columns = foldTaps(size: w, kernel: kw, stride: stride, pad: pad, outSize: wo, outStep: kdim, tapStep: c)
    let rows = foldTaps(size: h, kernel: kh, stride: stride, pad: pad, outSize: ho, outStep: wo * kdim, tapStep: kw * c)
    parallelFor(n * h, grain: grainFor(n * h, cost: w * kh * kw * c)) { r in
        for row in r {
            let b = row / h, iy = row % h
            let image = dcol + b * ho * wo * kdim
            let taps = rows.start[iy]..<rows.start[iy + 1]
            for ix in 0..<w {
                let dst = dx + ((b * h + iy) * w + ix) * c
                let across = columns.start[ix]..<columns.start[ix + 1]
                // From +0, the taps (ky, kx) in row-major order: ky outer, kx inner. Sixteen channels
                // at a time in a register, then one by one (a sum in dst itself stayed scalar: dst
                // might overlap the columns).
                var ch = 0
                while ch + 16 <= c {
                    var acc = Float16x()
                    for t in taps {
                        let base = image + rows.offsets[t] + ch
                        for u in across { acc += UnsafeRawPointer(base + columns.offsets[u]).loadUnaligned(as: Float16x.self) }
                    }
                    UnsafeMutableRawPointer(dst + ch).storeBytes(of: acc, as: Float16x.self)
                    ch += 16
                }
                while ch < c {
                    var acc: Float = 0
                    for t in taps {
                        let base = image + rows.offsets[t] + ch
                        for u in across { acc += base[columns.offsets[u]] }
                    }
                    dst[ch] = acc
                    ch += 1
                }
            }
        }
    }
}

/// Along one axis of a convolution (input `size`, `kernel` taps, `stride`, `pad`, output `outSize`):
/// for each input position i, the taps k whose window reaches it, k ascending, each as the offset
/// `outStep * o + tapStep * k` (o the output position it feeds). One flat list: position i's taps are
/// offsets[start[i] ..< start[i + 1]].
func foldTaps(size: Int, kernel: Int, stride: Int, pad: Int, outSize: Int, outStep: Int, tapStep: Int) -> (offsets: [Int], start: [Int]) {
    var offsets: [Int] = [], start = [0]
    for i in 0..<size {
        for k in 0..<kernel {
            let t = i + pad - k
            if t < 0 || t % stride != 0 { continue }
            let o = t / stride
            if o < outSize { offsets.append(o * outStep + k * tapStep) }
        }
        start.append(offsets.count)
    }
    return (offsets, start)
}

/// `col2im` as first written (tap tests inside the loops), kept as the definition for tests.
func referenceCol2im(_ dcol: UnsafePointer<Float>, n: Int, h: Int, w: Int, c: Int, kh: Int, kw: Int,
                     stride: Int, pad: Int, ho: Int, wo: Int, dx: UnsafeMutablePointer<Float>) {
    let kdim = kh * kw * c
    for b in 0..<n {
        for iy in 0..<h {
            for ix in 0..<w {
                let dst = dx + ((b * h + iy) * w + ix) * c
                dst.update(repeating: 0, count: c)
                for ky in 0..<kh {
                    let ty = iy + pad - ky
                    if ty < 0 || ty % stride != 0 { continue }
                    let oy = ty / stride
                    if oy >= ho { continue }
                    for kx in 0..<kw {
                        let tx = ix + pad - kx
                        if tx < 0 || tx % stride != 0 { continue }
                        let ox = tx / stride
                        if ox >= wo { continue }
                        let src = dcol + ((b * ho + oy) * wo + ox) * kdim + (ky * kw + kx) * c
                        for ch in 0..<c { dst[ch] += src[ch] }
                    }
                }
            }
        }
    }
}

/// Depth-wise convolution, stride 1. x [N,H,W,C]; weight [KH,KW,C] (see `depthwiseWeightHWC`);
/// bias [C] or nil; zero padding `pad` on every side -> [N,H+2p-KH+1,W+2p-KW+1,C].
public func depthwiseConv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, pad: Int) -> Tensor {
    precondition(x.rank == 4 && weight.rank == 3 && weight.shape[2] == x.shape[3],
                 "depthwiseConv2d: input \(x.shape) and weight \(weight.shape) do not fit")
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (kh, kw) = (weight.shape[0], weight.shape[1])
    let ho = h + 2 * pad - kh + 1, wo = w + 2 * pad - kw + 1
    let out = Tensor(uninitializedShape: [n, ho, wo, c])
    let xp = x.data, wp = weight.data, op = out.data
    let bp: UnsafeMutablePointer<Float>? = bias?.data
    parallelFor(n * ho, grain: grainFor(n * ho, cost: wo * kh * kw * c)) { r in
        let list = TapList(capacity: kh * kw)
        defer { list.release() }
        // Columns pad...w-kw+pad read every tap inside the row: they run four at a time.
        let lo = pad, hi = min(wo, w - kw + pad + 1)
        for row in r {
            let b = row / ho, oy = row % ho
            var ox = 0
            while ox < wo {
                let run = tapRun(ox, lo, hi)
                depthwiseTaps(into: op + ((b * ho + oy) * wo + ox) * c, bias: bp, c: c, kh: kh, kw: kw, weights: wp, list: list,
                              pixels: run) { ky, kx in
                    let iy = oy + ky - pad, ix = ox + kx - pad
                    return iy >= 0 && iy < h && ix >= 0 && ix < w ? xp + ((b * h + iy) * w + ix) * c : nil
                }
                ox += run
            }
        }
    }
    let xShape = x.shape  // not x: the input gradient needs only the weight
    return Tape.record(out, inputs: [x]) { dOut in
        // dx[y,x] = sum over taps of weight[ky,kx] * dOut[y - ky + pad, x - kx + pad]
        let dx = Tensor(uninitializedShape: xShape)
        let dp = dOut.data, dxp = dx.data, wp = weight.data
        parallelFor(n * h, grain: grainFor(n * h, cost: w * kh * kw * c)) { r in
            let list = TapList(capacity: kh * kw)
            defer { list.release() }
            // Columns kw-1-pad...wo-1-pad take every tap from inside dOut's row.
            let lo = kw - 1 - pad, hi = min(w, wo - pad)
            for row in r {
                let b = row / h, iy = row % h
                var ix = 0
                while ix < w {
                    let run = tapRun(ix, lo, hi)
                    depthwiseTaps(into: dxp + ((b * h + iy) * w + ix) * c, bias: nil, c: c, kh: kh, kw: kw, weights: wp, list: list,
                                  pixels: run) { ky, kx in
                        let oy = iy - ky + pad, ox = ix - kx + pad
                        return oy >= 0 && oy < ho && ox >= 0 && ox < wo ? dp + ((b * ho + oy) * wo + ox) * c : nil
                    }
                    ix += run
                }
            }
        }
        return [dx]
    }
}

/// Scratch for `depthwiseTaps`: the taps of one output vector (source rows and tap numbers). One per
/// task; `release()` frees it.
struct TapList {
    let sources: UnsafeMutablePointer<UnsafePointer<Float>?>
    let taps: UnsafeMutablePointer<Int32>

    init(capacity: Int) {
        sources = .allocate(capacity: max(capacity, 1))
        taps = .allocate(capacity: max(capacity, 1))
    }

    func release() {
        sources.deallocate()
        taps.deallocate()
    }
}

/// One output vector of a depth-wise convolution: dst[0..<C] = bias + sum over taps (ky, kx) in order
/// of weights[(ky * KW + kx) * C ..< +C] * source(ky, kx), skipping taps whose source is nil. The
/// arithmetic runs in CGemm's `stm_depthwise_taps` (several channel blocks side by side, at the
/// host's vector width), which performs `referenceDepthwiseTaps`' operations, bit for bit.
/// With `pixels` > 1, also the next pixels - 1 output vectors (dst + p * C), whose taps are the same
/// with every source moved on by p vectors (`stm_depthwise_taps_run`; the caller checks that).
/// weights [KH, KW, C]; source rows [C].
@inline(__always)
func depthwiseTaps(into dst: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>?, c: Int, kh: Int, kw: Int,
                   weights: UnsafeMutablePointer<Float>, list: TapList, pixels: Int = 1,
                   source: (Int, Int) -> UnsafeMutablePointer<Float>?) {
    var n = 0
    for ky in 0..<kh {
        for kx in 0..<kw {
            guard let src = source(ky, kx) else { continue }
            list.sources[n] = UnsafePointer(src)
            list.taps[n] = Int32(ky * kw + kx)
            n += 1
        }
    }
    if pixels > 1 {
        stm_depthwise_taps_run(dst, bias, c, Int32(n), list.sources, weights, list.taps, Int32(pixels))
    } else {
        stm_depthwise_taps(dst, bias, c, Int32(n), list.sources, weights, list.taps)
    }
}

/// The run of output columns starting at `col` that `depthwiseTaps(pixels:)` may take at once: the
/// columns in lo..<hi (those whose taps all lie inside the map, so every one has the same tap list),
/// else 1.
@inline(__always)
func tapRun(_ col: Int, _ lo: Int, _ hi: Int) -> Int { col >= lo && col < hi ? hi - col : 1 }

/// The definition `stm_depthwise_taps` must meet: per channel, acc = bias (or +0), then for each tap
/// in order acc = acc + w * x (the product rounded, then the sum). weights [T, C] by tap number;
/// sources[t] a row of C values.
public func referenceDepthwiseTaps(into dst: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?, c: Int,
                                   sources: [UnsafePointer<Float>], taps: [Int], weights: UnsafePointer<Float>) {
    for ch in 0..<c {
        var acc: Float = bias?[ch] ?? 0
        for (src, t) in zip(sources, taps) {
            let product = weights[t * c + ch] * src[ch]
            acc = acc + product
        }
        dst[ch] = acc
    }
}

/// Reorders a PyTorch convolution weight [O, C, KH, KW] to the [O, KH*KW*C] layout `conv2d` takes.
public func convWeightOHWI(_ values: [Float], o: Int, c: Int, kh: Int, kw: Int) -> Tensor {
    let t = Tensor(uninitializedShape: [o, kh * kw * c])
    let d = t.data
    for oo in 0..<o { for cc in 0..<c { for y in 0..<kh { for x in 0..<kw {
        d[oo * kh * kw * c + (y * kw + x) * c + cc] = values[((oo * c + cc) * kh + y) * kw + x]
    } } } }
    return t
}

/// The inverse of `convWeightOHWI`: a [O, KH*KW*C] matrix back to PyTorch's [O, C, KH, KW] order.
public func convWeightOIHW(_ ohwi: UnsafePointer<Float>, o: Int, c: Int, kh: Int, kw: Int, into d: UnsafeMutablePointer<Float>) {
    for oo in 0..<o { for cc in 0..<c { for y in 0..<kh { for x in 0..<kw {
        d[((oo * c + cc) * kh + y) * kw + x] = ohwi[oo * kh * kw * c + (y * kw + x) * c + cc]
    } } } }
}

/// Reorders a PyTorch depth-wise weight [C, 1, KH, KW] to the [KH, KW, C] layout `depthwiseConv2d` takes.
public func depthwiseWeightHWC(_ values: [Float], c: Int, kh: Int, kw: Int) -> Tensor {
    let t = Tensor(uninitializedShape: [kh, kw, c])
    let d = t.data
    for cc in 0..<c { for y in 0..<kh { for x in 0..<kw {
        d[(y * kw + x) * c + cc] = values[(cc * kh + y) * kw + x]
    } } }
    return t
}
