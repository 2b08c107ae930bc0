// TensorCore op: HaloNet's query-related relative-position logits (timm's `rel_logits_1d`, applied
// along width and along height, as `PosEmbedRel` sums them). For a query at (y, x) of an S x S block
// and a key at (ky, kx) of the Wn x Wn window around that block, the logit of head h is
//     q_h(y, x) · heightTable[Wn - 1 + ky - y] + q_h(y, x) · widthTable[Wn - 1 + kx - x],
// which is exactly what timm's pad-flatten-reshape trick selects (the tables have 2*Wn - 1 rows and
// are shared by all heads). The queries enter unscaled. An optional constant per-group key bias (the
// padded-pixel mask of the halo) is added to every query row of its group. The gradient flows to the
// queries only; the tables and the bias are constants. The forward keeps nothing but its inputs: the
// backward reduces dOut to per-row table coefficients and multiplies them back through the tables.
// `referenceHaloRelativeLogits` below, for tests, follows timm's pad-and-reshape trick literally
// instead of the closed-form index. The model does not store these logits: it passes the table
// coefficients (`haloRelativeCoefficients`) to the attention as a `HaloRelativeTerm`, which adds the
// same values block by block; `haloRelativeLogits` is the stored form the tests compare it with.
//
// Shape key: B blocks (images x blocks), S block side, L = S*S queries per block, Wn window side,
// K = Wn*Wn keys per window, Hd heads, Dk query width per head, R = 2*Wn - 1 table rows, G groups.

import CGemm

/// Relative logits of HaloNet's `PosEmbedRel` (query-related relative position).
/// - Parameters:
///   - q: [B, L, Hd*Dk], the queries of each block in row-major block order, heads side by side.
///   - heightTable: [R, Dk], indexed by `Wn - 1 + ky - y`.
///   - widthTable: [R, Dk], indexed by `Wn - 1 + kx - x`.
///   - heads: Hd.
///   - block: S, the block side (L = S*S).
///   - window: Wn, the window side (at least S).
///   - keyBias: optional constant [G, K]; block b gets row b % G added to all of its query rows.
/// - Returns: [B, Hd, L, K], differentiable with respect to `q`.
public func haloRelativeLogits(_ q: Tensor, heightTable: Tensor, widthTable: Tensor, heads: Int,
                               block: Int, window: Int, keyBias: Tensor? = nil) -> Tensor {
    let s = block, wn = window, l = s * s, k = wn * wn, r = 2 * wn - 1
    precondition(q.rank == 3 && q.shape[1] == l, "haloRelativeLogits: q must be [B, \(l), Hd*Dk], got \(q.shape)")
    precondition(wn >= s && heads > 0 && q.shape[2] % heads == 0, "haloRelativeLogits: window \(wn) < block \(s) or heads do not divide \(q.shape[2])")
    let dk = q.shape[2] / heads
    precondition(heightTable.shape == [r, dk] && widthTable.shape == [r, dk],
                 "haloRelativeLogits: tables must be [\(r), \(dk)], got \(heightTable.shape) and \(widthTable.shape)")
    let groups = keyBias.map { $0.count / k } ?? 1
    if let kb = keyBias { precondition(groups > 0 && kb.count == groups * k, "haloRelativeLogits: keyBias must be [G, \(k)]") }
    let b = q.shape[0]
    let rows = b * l * heads  // one row per (block, query, head); q viewed as [rows, Dk]

    // Table coefficients: th[row] = q_row · heightTable[·], tw[row] = q_row · widthTable[·]. [rows, R] each.
    let th = Tensor(uninitializedShape: [rows, r]), tw = Tensor(uninitializedShape: [rows, r])
    gemm(transB: true, m: rows, n: r, k: dk, a: q.data, lda: dk, b: heightTable.data, ldb: dk, c: th.data, ldc: r)
    gemm(transB: true, m: rows, n: r, k: dk, a: q.data, lda: dk, b: widthTable.data, ldb: dk, c: tw.data, ldc: r)

    let out = Tensor(uninitializedShape: [b, heads, l, k])
    let op = out.data, thp = th.data, twp = tw.data
    let bias: UnsafeMutablePointer<Float>? = keyBias?.data
    let outRows = b * heads * l
    parallelFor(outRows, grain: grainFor(outRows, cost: k)) { range in
        for o in range {
            // o = (blk * Hd + h) * L + i; the coefficient row is (blk * L + i) * Hd + h.
            let i = o % l, h = (o / l) % heads, blk = o / (l * heads)
            let y = i / s, x = i % s
            let src = (blk * l + i) * heads + h
            let hrow = thp + src * r + (wn - 1 - y), wrow = twp + src * r + (wn - 1 - x)
            let dst = op + o * k
            for ky in 0..<wn {
                let hv = hrow[ky]
                let line = dst + ky * wn
                for kx in 0..<wn { line[kx] = hv + wrow[kx] }
            }
            if let bias {
                let add = bias + (blk % groups) * k
                for j in 0..<k { dst[j] += add[j] }
            }
        }
    }

    let inShape = q.shape
    return Tape.record(out, inputs: [q]) { dOut in
        // d th[row, Wn-1+ky-y] = sum_kx dOut[.., ky, kx]; d tw[row, Wn-1+kx-x] = sum_ky dOut[.., ky, kx];
        // other table rows get nothing. Then dq = dth · heightTable + dtw · widthTable.
        let dth = Tensor(uninitializedShape: [rows, r]), dtw = Tensor(uninitializedShape: [rows, r])
        let dp = dOut.data, dthp = dth.data, dtwp = dtw.data
        parallelFor(outRows, grain: grainFor(outRows, cost: k)) { range in
            for o in range {
                let i = o % l, h = (o / l) % heads, blk = o / (l * heads)
                let y = i / s, x = i % s
                let dst = (blk * l + i) * heads + h
                let hrow = dthp + dst * r, wrow = dtwp + dst * r
                hrow.update(repeating: 0, count: r)
                wrow.update(repeating: 0, count: r)
                let src = dp + o * k
                let hAt = hrow + (wn - 1 - y), wAt = wrow + (wn - 1 - x)
                for ky in 0..<wn {
                    let line = src + ky * wn
                    var acc: Float = 0
                    for kx in 0..<wn { acc += line[kx]; wAt[kx] += line[kx] }
                    hAt[ky] = acc
                }
            }
        }
        let dq = Tensor(uninitializedShape: inShape)
        gemm(m: rows, n: dk, k: r, a: dthp, lda: r, b: heightTable.data, ldb: dk, c: dq.data, ldc: dk)
        gemm(m: rows, n: dk, k: r, a: dtwp, lda: r, b: widthTable.data, ldb: dk, beta: 1, c: dq.data, ldc: dk)
        return [dq]
    }
}

/// The table coefficients of HaloNet's relative logits, for `HaloRelativeTerm`: row (block, query,
/// head) holds q · heightTable[t] for the R table rows t, then q · widthTable[t]. Differentiable with
/// respect to q (the tables are constants): dq = dT[:, ..<R] · heightTable + dT[:, R...] · widthTable.
/// - Parameters: q [B, L, Hd*Dk]; heightTable, widthTable [R, Dk].
/// - Returns: [B*L*Hd, 2R].
public func haloRelativeCoefficients(_ q: Tensor, heightTable: Tensor, widthTable: Tensor, heads: Int) -> Tensor {
    precondition(q.rank == 3 && heads > 0 && q.shape[2] % heads == 0, "haloRelativeCoefficients: q must be [B, L, Hd*Dk], got \(q.shape)")
    let dk = q.shape[2] / heads, r = heightTable.shape[0]
    precondition(heightTable.shape == [r, dk] && widthTable.shape == [r, dk],
                 "haloRelativeCoefficients: tables must be [R, \(dk)], got \(heightTable.shape) and \(widthTable.shape)")
    let rows = q.count / dk  // q viewed as [rows, Dk]
    let out = Tensor(uninitializedShape: [rows, 2 * r])
    // One product with the tables stacked, [2R, Dk]: each coefficient is its own chain over Dk, so
    // this gives the two products' bits, reading q once (two products of 25 columns ran at a fifth
    // of the FMA peak).
    var stacked = [Float](repeating: 0, count: 2 * r * dk)
    stacked.withUnsafeMutableBufferPointer { t in
        t.baseAddress!.update(from: heightTable.data, count: r * dk)
        (t.baseAddress! + r * dk).update(from: widthTable.data, count: r * dk)
        gemm(transB: true, m: rows, n: 2 * r, k: dk, a: q.data, lda: dk, b: t.baseAddress!, ldb: dk, c: out.data, ldc: 2 * r)
    }
    let inShape = q.shape
    return Tape.record(out, inputs: [q]) { dOut in
        let dq = Tensor(uninitializedShape: inShape)
        gemm(m: rows, n: dk, k: r, a: dOut.data, lda: 2 * r, b: heightTable.data, ldb: dk, c: dq.data, ldc: dk)
        gemm(m: rows, n: dk, k: r, a: dOut.data + r, lda: 2 * r, b: widthTable.data, ldb: dk, beta: 1, c: dq.data, ldc: dk)
        return [dq]
    }
}

/// HaloNet's relative logits as a factored attention term: `haloRelativeLogits`' values (and, for
/// softmax, the key bias added to them), made block by block inside the attention from the
/// coefficients [B*L*Hd, 2R] of `haloRelativeCoefficients`, so the [B, Hd, L, K] logits and their
/// gradient are never stored. Same operations in the same order as `haloRelativeLogits` followed by
/// the attention's addition of stored logits: the same bits.
public struct HaloRelativeTerm: AttentionLogitTerm {
    /// [B*L*Hd, 2R]
    public let coefficients: Tensor
    public let heads: Int, block: Int, window: Int
    /// Optional constant [G, K]; block b gets row b % G.
    public let keyBias: Tensor?

    public init(coefficients: Tensor, heads: Int, block: Int, window: Int, keyBias: Tensor? = nil) {
        let r = 2 * window - 1
        precondition(coefficients.rank == 2 && coefficients.shape[1] == 2 * r && coefficients.shape[0] % (block * block * heads) == 0,
                     "HaloRelativeTerm: coefficients must be [B*\(block * block)*\(heads), \(2 * r)], got \(coefficients.shape)")
        if let keyBias { precondition(keyBias.count % (window * window) == 0 && keyBias.count > 0, "HaloRelativeTerm: keyBias must be [G, \(window * window)]") }
        self.coefficients = coefficients
        self.heads = heads
        self.block = block
        self.window = window
        self.keyBias = keyBias
    }

    public var inputs: [Tensor] { [coefficients] }

    public func add(bh: Int, i0: Int, rows: Int, into sp: UnsafeMutablePointer<Float>) {
        let s = block, wn = window, l = s * s, k = wn * wn, r = 2 * wn - 1
        let blk = bh / heads, h = bh % heads
        let cp = coefficients.data
        let bias: UnsafeMutablePointer<Float>? = keyBias.map { $0.data + (blk % ($0.count / k)) * k }
        for i in i0..<(i0 + rows) {
            let y = i / s, x = i % s
            let src = cp + ((blk * l + i) * heads + h) * 2 * r
            // The coefficient rows of one (block, head) lie Hd rows apart: ask for the row two
            // queries ahead (its 2R floats) while this one is added.
            if i + 2 < l {
                let ahead = src + 2 * heads * 2 * r
                var f = 0
                while f < 2 * r { stm_prefetch(ahead + f); f += 16 }
                stm_prefetch(ahead + 2 * r - 1)
            }
            let hrow = src + (wn - 1 - y), wrow = src + r + (wn - 1 - x)
            let dst = sp + (i - i0) * k
            for ky in 0..<wn {
                let hv = hrow[ky]
                let line = dst + ky * wn
                // line[kx] += (hv + wrow[kx]) + add[kx], eight and four at a time, then one by one
                // (as plain loops these stayed scalar: line might overlap the coefficients).
                var kx = 0
                if let bias {
                    let add = bias + ky * wn
                    while kx + 8 <= wn {
                        store8(load8(line + kx) + ((SIMD8(repeating: hv) + load8(wrow + kx)) + load8(add + kx)), line + kx)
                        kx += 8
                    }
                    while kx + 4 <= wn {
                        store4(load4(line + kx) + ((SIMD4(repeating: hv) + load4(wrow + kx)) + load4(add + kx)), line + kx)
                        kx += 4
                    }
                    while kx < wn { line[kx] += (hv + wrow[kx]) + add[kx]; kx += 1 }
                } else {
                    while kx + 8 <= wn { store8(load8(line + kx) + (SIMD8(repeating: hv) + load8(wrow + kx)), line + kx); kx += 8 }
                    while kx + 4 <= wn { store4(load4(line + kx) + (SIMD4(repeating: hv) + load4(wrow + kx)), line + kx); kx += 4 }
                    while kx < wn { line[kx] += hv + wrow[kx]; kx += 1 }
                }
            }
        }
    }

    public func accumulate(bh: Int, dS: UnsafePointer<Float>, into gradients: [UnsafeMutablePointer<Float>]) {
        let s = block, wn = window, l = s * s, k = wn * wn, r = 2 * wn - 1
        let blk = bh / heads, h = bh % heads
        // d heightCoef[Wn-1+ky-y] = sum over kx of dS[ky, kx]; d widthCoef[Wn-1+kx-x] = sum over ky.
        for i in 0..<l {
            let y = i / s, x = i % s
            let row = gradients[0] + ((blk * l + i) * heads + h) * 2 * r
            row.update(repeating: 0, count: 2 * r)
            let hAt = row + (wn - 1 - y), wAt = row + r + (wn - 1 - x)
            let src = dS + i * k
            for ky in 0..<wn {
                let line = src + ky * wn
                var acc: Float = 0
                for kx in 0..<wn { acc += line[kx] }
                hAt[ky] = acc
            }
            // wAt[kx] = the sum over ky in order, from the zeroed row: eight and four columns at a
            // time in registers, then one by one (a sum kept in wAt itself went through memory).
            var kx = 0
            while kx + 8 <= wn {
                var acc = SIMD8<Float>()
                for ky in 0..<wn { acc += load8(src + ky * wn + kx) }
                store8(acc, wAt + kx)
                kx += 8
            }
            while kx + 4 <= wn {
                var acc = SIMD4<Float>()
                for ky in 0..<wn { acc += load4(src + ky * wn + kx) }
                store4(acc, wAt + kx)
                kx += 4
            }
            while kx < wn {
                var acc: Float = 0
                for ky in 0..<wn { acc += src[ky * wn + kx] }
                wAt[kx] = acc
                kx += 1
            }
        }
    }
}

/// Slow reference for tests: timm's `rel_logits_1d` done literally (product with the table, pad one
/// column, flatten, pad to (W+1)*R, reshape, keep the last Wn columns of the first W rows, tile), once
/// along width and once along the transposed block for height. Same arguments and layout as
/// `haloRelativeLogits` without the key bias; returns the [B, Hd, L, K] values.
func referenceHaloRelativeLogits(_ q: Tensor, heightTable: Tensor, widthTable: Tensor, heads: Int,
                                 block s: Int, window wn: Int) -> [Float] {
    let l = s * s, k = wn * wn, r = 2 * wn - 1
    let dk = q.shape[2] / heads, b = q.shape[0]
    // One axis: rows of W queries (each of Dk values) -> [W, Wn] absolute-position logits.
    func oneAxis(_ row: [[Float]], _ table: Tensor) -> [[Float]] {
        let w = row.count
        var flat: [Float] = []
        for qv in row {
            for t in 0..<r {
                var acc: Float = 0
                for d in 0..<dk { acc += qv[d] * table.data[t * dk + d] }
                flat.append(acc)
            }
            flat.append(0)  // pad one column
        }
        flat += [Float](repeating: 0, count: r - w)  // pad to (W + 1) * R
        return (0..<w).map { i in (0..<wn).map { j in flat[i * r + (wn - 1) + j] } }
    }
    var out = [Float](repeating: 0, count: b * heads * l * k)
    for blk in 0..<b {
        for h in 0..<heads {
            func query(_ y: Int, _ x: Int) -> [Float] {
                (0..<dk).map { q.data[(blk * l + y * s + x) * heads * dk + h * dk + $0] }
            }
            let widthLogits = (0..<s).map { y in oneAxis((0..<s).map { x in query(y, x) }, widthTable) }   // [y][x][kx]
            let heightLogits = (0..<s).map { x in oneAxis((0..<s).map { y in query(y, x) }, heightTable) }  // [x][y][ky]
            for y in 0..<s { for x in 0..<s { for ky in 0..<wn { for kx in 0..<wn {
                out[((blk * heads + h) * l + y * s + x) * k + ky * wn + kx] = widthLogits[y][x][kx] + heightLogits[x][y][ky]
            } } } }
        }
    }
    return out
}

@inline(__always) private func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
@inline(__always) private func load4(_ p: UnsafePointer<Float>) -> SIMD4<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self) }
@inline(__always) private func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self) }
@inline(__always) private func store4(_ v: SIMD4<Float>, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Float>.self) }
