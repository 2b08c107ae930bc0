// TensorCore op: the linear layer (and 1x1 convolution, which is the same thing in channels-last).
// Forward and backward side by side. Only the input gradient is computed; weights are constants.
// Two fused forms for the blocks' channel MLPs: `linearGELU` (GELU applied to each finished block
// of the product while it is in cache) and `linearResidual` (the layer-scaled residual update done
// the same way). They give the bits of the unfused ops, forward and backward, and save a pass over
// memory each (and, without a gradient, a tensor). Leaves out: weight gradients.
//
// Shape key: M rows (all leading dimensions flattened), K input features, O output features.

import CGemm

/// `x · weightᵀ + bias`: x [..., K], weight [O, K] (PyTorch's layout), bias [O] -> [..., O].
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    let k = x.lastDim
    precondition(weight.rank == 2 && weight.shape[1] == k, "linear: weight \(weight.shape) does not take \(k) features")
    let o = weight.shape[0]
    let m = x.count / max(k, 1)
    var outShape = x.shape
    outShape[outShape.count - 1] = o
    let out = Tensor(uninitializedShape: outShape)
    if let bias { precondition(bias.count == o, "linear: bias of \(bias.count) for \(o) outputs") }
    // A frozen weight (a model's) is packed once for the forward product. The backward's product packs
    // it per call (a copy of K x O values against M x K x O multiply-adds): keeping a second packed
    // copy of every weight would add the model's size again to the resident memory.
    gemm(transB: true, m: m, n: o, k: k, a: x.data, lda: k, b: weight.data, ldb: k,
         c: out.data, ldc: o, packedB: weight.packedForGemm(transposed: true), bias: bias.map { UnsafePointer($0.data) })
    // The input gradient needs only the weight: capture x's shape, not x (its buffer is freed as soon
    // as the forward no longer needs it, instead of living until the backward).
    let xShape = x.shape
    return Tape.record(out, inputs: [x]) { dOut in
        // dx [M, K] = dOut [M, O] · weight [O, K]
        let dx = Tensor(uninitializedShape: xShape)
        gemm(m: m, n: k, k: o, a: dOut.data, lda: o, b: weight.data, ldb: k, c: dx.data, ldc: k)
        return [dx]
    }
}

/// Copies a row of `count` values into each of `rows` rows of `into`.
@inlinable
func broadcastRows(_ row: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>, rows: Int) {
    parallelFor(rows, grain: grainFor(rows, cost: count)) { r in
        for i in r { (out + i * count).update(from: row, count: count) }
    }
}

/// `gelu(linear(x, weight, bias))`, the bits of the two ops, in one pass: x [M, K], weight [O, K],
/// bias [O] -> [M, O]. Without a gradient GELU runs in place on the product; with one the product
/// (the pre-activation, which GELU's rule needs) and the output are two buffers.
public func linearGELU(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    let k = x.lastDim
    precondition(weight.rank == 2 && weight.shape[1] == k, "linearGELU: weight \(weight.shape) does not take \(k) features")
    let o = weight.shape[0]
    let m = x.count / max(k, 1)
    if let bias { precondition(bias.count == o, "linearGELU: bias of \(bias.count) for \(o) outputs") }
    var outShape = x.shape
    outShape[outShape.count - 1] = o
    let pre = Tensor(uninitializedShape: outShape)  // [M, O] the product (the output too, without a gradient)
    let keep = x.requiresGrad
    let out = keep ? Tensor(uninitializedShape: outShape) : pre
    let op = out.data
    gemm(transB: true, m: m, n: o, k: k, a: x.data, lda: k, b: weight.data, ldb: k, c: pre.data, ldc: o,
         packedB: weight.packedForGemm(transposed: true), bias: bias.map { UnsafePointer($0.data) }) { c, ldc, i0, j0, rows, cols in
        for i in i0..<(i0 + rows) { stm_gelu_forward(c + i * ldc + j0, op + i * o + j0, cols) }
    }
    guard keep else { return out }
    let xShape = x.shape
    return Tape.record(out, inputs: [x]) { dOut in
        // dpre [M, O] = dOut * gelu'(pre), then dx [M, K] = dpre · weight [O, K]
        let dpre = Tensor(uninitializedShape: outShape)
        let dp = dOut.data, pp = pre.data, gp = dpre.data
        let n = m * o
        parallelFor(n, grain: grainFor(n, minimum: 4096, cost: 30)) { r in
            stm_gelu_backward(pp + r.lowerBound, dp + r.lowerBound, gp + r.lowerBound, r.count)
        }
        let dx = Tensor(uninitializedShape: xShape)
        gemm(m: m, n: k, k: o, a: dpre.data, lda: o, b: weight.data, ldb: k, c: dx.data, ldc: k)
        return [dx]
    }
}

/// `addScaled(base, linear(x, weight, bias), scale: gamma)`, the bits of the two ops, in one pass:
/// base [M, O] + gamma [O] * (x [M, K] · weightᵀ + bias [O]) -> [M, O], written over the product.
public func linearResidual(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, onto base: Tensor, scale gamma: Tensor) -> Tensor {
    let k = x.lastDim
    precondition(weight.rank == 2 && weight.shape[1] == k, "linearResidual: weight \(weight.shape) does not take \(k) features")
    let o = weight.shape[0]
    let m = x.count / max(k, 1)
    precondition(base.count == m * o && gamma.count == o, "linearResidual: base \(base.shape) and gamma of \(gamma.count) do not fit \(m) x \(o)")
    if let bias { precondition(bias.count == o, "linearResidual: bias of \(bias.count) for \(o) outputs") }
    let out = Tensor(uninitializedShape: base.shape)
    let bp = base.data, gp = gamma.data
    gemm(transB: true, m: m, n: o, k: k, a: x.data, lda: k, b: weight.data, ldb: k, c: out.data, ldc: o,
         packedB: weight.packedForGemm(transposed: true), bias: bias.map { UnsafePointer($0.data) }) { c, ldc, i0, j0, rows, cols in
        for i in i0..<(i0 + rows) {
            let a = bp + i * o, y = c + i * ldc
            for j in j0..<(j0 + cols) { y[j] = a[j] + gp[j] * y[j] }  // addScaled's expression
        }
    }
    let xShape = x.shape, xNeedsGrad = x.requiresGrad
    return Tape.record(out, inputs: [base, x]) { d in
        guard xNeedsGrad else { return [d, nil] }
        // dy [M, O] = d * gamma (addScaled's rule), then dx [M, K] = dy · weight [O, K]
        let dy = Tensor(uninitializedShape: [m, o])
        let dp = d.data, yp = dy.data, gp = gamma.data
        parallelFor(m, grain: grainFor(m, cost: o)) { r in
            for i in r { let s = dp + i * o, t = yp + i * o; for j in 0..<o { t[j] = s[j] * gp[j] } }
        }
        let dx = Tensor(uninitializedShape: xShape)
        gemm(m: m, n: k, k: o, a: dy.data, lda: o, b: weight.data, ldb: k, c: dx.data, ldc: k)
        return [d, dx]
    }
}
