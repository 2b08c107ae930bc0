// TensorCore ops: element-wise sums and scalings with their gradient rules (residual connections,
// position embeddings). Broadcasting is limited to what the models use: equal shapes, and a tensor
// repeated over the leading dimension (`addBroadcast`).
//
// Shape key: any shape; R repeats of a block of S elements for `addBroadcast`.

/// a + b, equal element counts (the result takes a's shape).
public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.count == b.count, "add: \(a.shape) and \(b.shape) differ in size")
    let out = Tensor(uninitializedShape: a.shape)
    let ap = a.data, bp = b.data, op = out.data
    let n = a.count
    parallelFor(n, grain: grainFor(n, minimum: 16384)) { r in
        for i in r { op[i] = ap[i] + bp[i] }
    }
    let bShape = b.shape
    return Tape.record(out, inputs: [a, b]) { d in [d, d.reshaped(bShape)] }
}

/// a + b where b holds one block that repeats over a's leading elements: a [R, S...], b [S...].
public func addBroadcast(_ a: Tensor, _ b: Tensor) -> Tensor {
    let s = b.count
    precondition(s > 0 && a.count % s == 0, "addBroadcast: \(b.shape) does not tile \(a.shape)")
    let out = Tensor(uninitializedShape: a.shape)
    let ap = a.data, bp = b.data, op = out.data
    let reps = a.count / s
    parallelFor(reps, grain: grainFor(reps, cost: s)) { r in
        for k in r {
            let o = op + k * s, x = ap + k * s
            for i in 0..<s { o[i] = x[i] + bp[i] }
        }
    }
    let bShape = b.shape
    return Tape.record(out, inputs: [a, b]) { d in
        // db = sum over repeats, in a fixed order.
        var db: Tensor? = nil
        if b.requiresGrad {
            let t = Tensor(shape: bShape, repeating: 0)
            let tp = t.data, dp = d.data
            parallelFor(s, grain: grainFor(s, minimum: 256, cost: reps)) { r in
                for k in 0..<reps { let src = dp + k * s; for i in r { tp[i] += src[i] } }
            }
            db = t
        }
        return [d, db]
    }
}

/// alpha * x.
public func scale(_ x: Tensor, _ alpha: Float) -> Tensor {
    let out = Tensor(uninitializedShape: x.shape)
    let xp = x.data, op = out.data
    let n = x.count
    parallelFor(n, grain: grainFor(n, minimum: 16384)) { r in for i in r { op[i] = alpha * xp[i] } }
    return Tape.record(out, inputs: [x]) { d in [scale(d, alpha)] }
}

/// The residual update with a layer scale, fused: `x + gamma * y` over the last dimension.
/// x, y [..., C]; gamma [C] (a constant).
public func addScaled(_ x: Tensor, _ y: Tensor, scale gamma: Tensor) -> Tensor {
    let c = x.lastDim
    precondition(x.count == y.count && gamma.count == c, "addScaled: \(x.shape), \(y.shape) and gamma of \(gamma.count) do not fit")
    let m = x.count / max(c, 1)
    let out = Tensor(uninitializedShape: x.shape)
    let xp = x.data, yp = y.data, gp = gamma.data, op = out.data
    parallelFor(m, grain: grainFor(m, cost: c)) { r in
        for i in r {
            let a = xp + i * c, b = yp + i * c, o = op + i * c
            for j in 0..<c { o[j] = a[j] + gp[j] * b[j] }
        }
    }
    let yShape = y.shape, yNeedsGrad = y.requiresGrad  // not y itself: its buffer is not needed later
    return Tape.record(out, inputs: [x, y]) { d in [d, yNeedsGrad ? scaledByChannel(d, gamma, shape: yShape) : nil] }
}

/// d [M, C] * gamma [C], row by row, shaped `shape` (addScaled's rule for its scaled input).
func scaledByChannel(_ d: Tensor, _ gamma: Tensor, shape: [Int]) -> Tensor {
    let c = gamma.count
    let m = d.count / max(c, 1)
    let t = Tensor(uninitializedShape: shape)
    let dp = d.data, tp = t.data, gp = gamma.data
    parallelFor(m, grain: grainFor(m, cost: c)) { r in
        for i in r { let s = dp + i * c, o = tp + i * c; for j in 0..<c { o[j] = s[j] * gp[j] } }
    }
    return t
}
