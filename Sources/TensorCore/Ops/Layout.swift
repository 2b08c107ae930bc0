// TensorCore ops: moving rows around. In channels-last layout every spatial rearrangement the models
// need (cyclic shift, zero padding, cropping, window partition and reverse, halo unfold) is a gather
// of whole C-vectors, so one primitive, `gatherRows`, with a precomputed `GatherPlan`, serves all of
// them; its backward is the matching scatter-add. Also channel slicing/concatenation, global average
// pooling and conversion to NCHW for comparison with PyTorch.
//
// Shape key: R source rows, Q gathered rows, C channels (row length), N batch, H height, W width.

/// Which source row feeds each output row (-1: a zero row), with the inverse map for the backward.
/// Build one per geometry and reuse it across images and blocks.
public final class GatherPlan: @unchecked Sendable {
    /// Source row of each output row, or -1 for zeros. [Q]
    public let index: [Int32]
    /// Number of source rows the plan reads from.
    public let sourceRows: Int
    /// Inverse map in CSR form: output rows that read source row r are
    /// `inverseRows[inverseStart[r]..<inverseStart[r+1]]`, in increasing order.
    let inverseStart: [Int32]
    let inverseRows: [Int32]

    /// - Parameters:
    ///   - index: for each output row, the source row (0..<sourceRows) or -1.
    ///   - sourceRows: how many rows the source has.
    public init(index: [Int32], sourceRows: Int) {
        self.index = index
        self.sourceRows = sourceRows
        var counts = [Int32](repeating: 0, count: sourceRows + 1)
        for s in index where s >= 0 {
            precondition(Int(s) < sourceRows, "GatherPlan: row \(s) outside \(sourceRows) source rows")
            counts[Int(s) + 1] += 1
        }
        for i in 0..<sourceRows { counts[i + 1] += counts[i] }
        var fill = counts
        var rows = [Int32](repeating: 0, count: Int(counts[sourceRows]))
        for (q, s) in index.enumerated() where s >= 0 {
            rows[Int(fill[Int(s)])] = Int32(q)
            fill[Int(s)] += 1
        }
        inverseStart = counts
        inverseRows = rows
    }

    /// Output rows.
    public var rows: Int { index.count }
}

/// Gathers rows of x (viewed as [R, C] with C = `x.lastDim`) by `plan` -> [Q, C] shaped `outShape`.
public func gatherRows(_ x: Tensor, plan: GatherPlan, outShape: [Int]) -> Tensor {
    let c = x.lastDim
    precondition(x.count == plan.sourceRows * c, "gatherRows: input \(x.shape) is not \(plan.sourceRows) rows of \(c)")
    precondition(elementCount(outShape) == plan.rows * c, "gatherRows: \(outShape) is not \(plan.rows) rows of \(c)")
    let out = Tensor(uninitializedShape: outShape)
    let xp = x.data, op = out.data
    plan.index.withUnsafeBufferPointer { idx in
        parallelFor(plan.rows, grain: grainFor(plan.rows, cost: c)) { r in
            for q in r {
                let s = Int(idx[q])
                if s >= 0 { (op + q * c).update(from: xp + s * c, count: c) } else { (op + q * c).update(repeating: 0, count: c) }
            }
        }
    }
    let inShape = x.shape
    return Tape.record(out, inputs: [x]) { dOut in [gatherRowsGradient(dOut.data, plan: plan, channels: c, shape: inShape)] }
}

/// gatherRows' rule: dx [R, C] (shaped `shape`), dx[r] = the sum of dOut [Q, C]'s rows q that read r,
/// in increasing q from the first (deterministic); zeros for rows no q read.
func gatherRowsGradient(_ dp: UnsafePointer<Float>, plan: GatherPlan, channels c: Int, shape: [Int]) -> Tensor {
    let dx = Tensor(uninitializedShape: shape)
    let dxp = dx.data
    plan.inverseStart.withUnsafeBufferPointer { start in
        plan.inverseRows.withUnsafeBufferPointer { rows in
            parallelFor(plan.sourceRows, grain: grainFor(plan.sourceRows, cost: c)) { r in
                for s in r {
                    let dst = dxp + s * c
                    let lo = Int(start[s]), hi = Int(start[s + 1])
                    if lo == hi { dst.update(repeating: 0, count: c); continue }
                    dst.update(from: dp + Int(rows[lo]) * c, count: c)
                    var k = lo + 1
                    while k < hi { let src = dp + Int(rows[k]) * c; for j in 0..<c { dst[j] += src[j] }; k += 1 }
                }
            }
        }
    }
    return dx
}

/// The centre row (H/2, W/2) of each image: x [N,H,W,C] -> [N,1,1,C]. A gather, so its backward
/// scatters the gradient into zeros.
public func centreToken(_ x: Tensor) -> Tensor {
    precondition(x.rank == 4, "centreToken: x must be [N,H,W,C], got \(x.shape)")
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let plan = GatherPlan(index: (0..<n).map { Int32(($0 * h + h / 2) * w + w / 2) }, sourceRows: n * h * w)
    return gatherRows(x, plan: plan, outShape: [n, 1, 1, c])
}

/// Columns `range` of the last dimension: x [..., C] -> [..., range.count].
public func sliceLastDim(_ x: Tensor, _ range: Range<Int>) -> Tensor {
    let c = x.lastDim, w = range.count
    precondition(range.lowerBound >= 0 && range.upperBound <= c, "sliceLastDim: \(range) outside \(c) channels")
    let m = x.count / max(c, 1)
    var shape = x.shape
    shape[shape.count - 1] = w
    let out = Tensor(uninitializedShape: shape)
    let xp = x.data, op = out.data, lo = range.lowerBound
    parallelFor(m, grain: grainFor(m, cost: w)) { r in
        for i in r { (op + i * w).update(from: xp + i * c + lo, count: w) }
    }
    let inShape = x.shape
    return Tape.record(out, inputs: [x]) { d in
        let dx = Tensor(uninitializedShape: inShape)
        let dp = d.data, dxp = dx.data
        parallelFor(m, grain: grainFor(m, cost: c)) { r in
            for i in r {
                let row = dxp + i * c
                row.update(repeating: 0, count: c)
                (row + lo).update(from: dp + i * w, count: w)
            }
        }
        return [dx]
    }
}

/// Concatenation along the last dimension: [..., C1], [..., C2], ... -> [..., C1 + C2 + ...].
public func concatLastDim(_ parts: [Tensor]) -> Tensor {
    precondition(!parts.isEmpty, "concatLastDim: nothing to concatenate")
    let widths = parts.map { $0.lastDim }
    let m = parts[0].count / max(widths[0], 1)
    precondition(zip(parts, widths).allSatisfy { $0.count == m * $1 }, "concatLastDim: leading sizes differ")
    let total = widths.reduce(0, +)
    var shape = parts[0].shape
    shape[shape.count - 1] = total
    let out = Tensor(uninitializedShape: shape)
    let op = out.data
    var offsets: [Int] = []
    var acc = 0
    for w in widths { offsets.append(acc); acc += w }
    for (p, (w, off)) in zip(parts, zip(widths, offsets)) {
        let pp = p.data
        parallelFor(m, grain: grainFor(m, cost: w)) { r in
            for i in r { (op + i * total + off).update(from: pp + i * w, count: w) }
        }
    }
    return Tape.record(out, inputs: parts) { d in
        zip(widths, offsets).map { w, off in sliceLastDim(d, off..<(off + w)) }
    }
}

/// Mean over H and W: x [N,H,W,C] -> [N,C].
public func globalAveragePool(_ x: Tensor) -> Tensor {
    precondition(x.rank == 4, "globalAveragePool: input must be [N,H,W,C], got \(x.shape)")
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let hw = h * w
    let out = Tensor(shape: [n, c], repeating: 0)
    let xp = x.data, op = out.data
    parallelFor(n) { r in
        for b in r {
            let o = op + b * c
            for p in 0..<hw { let src = xp + (b * hw + p) * c; for j in 0..<c { o[j] += src[j] } }
            let inv = 1 / Float(hw)
            for j in 0..<c { o[j] *= inv }
        }
    }
    let inShape = x.shape
    return Tape.record(out, inputs: [x]) { d in
        let dx = Tensor(uninitializedShape: inShape)
        let dp = d.data, dxp = dx.data
        let inv = 1 / Float(hw)
        parallelFor(n * hw, grain: grainFor(n * hw, cost: c)) { r in
            for q in r {
                let b = q / hw
                let dst = dxp + q * c, src = dp + b * c
                for j in 0..<c { dst[j] = src[j] * inv }
            }
        }
        return [dx]
    }
}

/// Copies x [N,H,W,C] to NCHW order (no gradient; for comparisons and file output).
public func toNCHW(_ x: Tensor) -> [Float] {
    precondition(x.rank == 4, "toNCHW: input must be [N,H,W,C], got \(x.shape)")
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    var out = [Float](repeating: 0, count: x.count)
    let xp = x.data
    out.withUnsafeMutableBufferPointer { o in
        for b in 0..<n { for y in 0..<h { for xx in 0..<w { for ch in 0..<c {
            o[((b * c + ch) * h + y) * w + xx] = xp[((b * h + y) * w + xx) * c + ch]
        } } } }
    }
    return out
}

/// Builds [N,H,W,C] from NCHW-ordered values.
public func fromNCHW(_ values: [Float], n: Int, c: Int, h: Int, w: Int) -> Tensor {
    precondition(values.count == n * c * h * w, "fromNCHW: \(values.count) values for [\(n),\(c),\(h),\(w)]")
    let t = Tensor(uninitializedShape: [n, h, w, c])
    let tp = t.data
    values.withUnsafeBufferPointer { v in
        for b in 0..<n { for ch in 0..<c { for y in 0..<h { for xx in 0..<w {
            tp[((b * h + y) * w + xx) * c + ch] = v[((b * c + ch) * h + y) * w + xx]
        } } } }
    }
    return t
}
