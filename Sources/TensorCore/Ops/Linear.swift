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
    let s = LinearShapes(x, weight: weight, bias: bias, op: "linear")
    let out = Tensor(uninitializedShape: s.outShape)
    // A frozen weight (a model's) is packed once for the forward product, and that packed copy is the
    // only one kept of a large weight. The backward's product repacks it per call (a copy of K x O
    // values against M x K x O multiply-adds): a second packed copy would add the model's size again.
    let w = weight.gemmOperand(transposed: true)
    gemm(transB: true, m: s.m, n: s.o, k: s.k, a: x.data, lda: s.k, b: w.b, ldb: s.k,
         c: out.data, ldc: s.o, packedB: w.packed, bias: bias.map { UnsafePointer($0.data) })
    // The input gradient needs only the weight: capture x's shape, not x (its buffer is freed as soon
    // as the forward no longer needs it, instead of living until the backward).
    return Tape.record(out, inputs: [x]) { dOut in [s.inputGradient(dOut, weight: weight)] }
}

/// The sizes of a product `x · weightᵀ (+ bias)`, checked: x [..., K], weight [O, K], bias [O].
struct LinearShapes {
    /// Rows (x's leading dimensions flattened), input and output features.
    let m: Int, k: Int, o: Int
    let xShape: [Int]
    /// x's shape with its last dimension O.
    let outShape: [Int]

    init(_ x: Tensor, weight: Tensor, bias: Tensor?, op: String) {
        k = x.lastDim
        precondition(weight.rank == 2 && weight.shape[1] == k, "\(op): weight \(weight.shape) does not take \(k) features")
        o = weight.shape[0]
        m = x.count / max(k, 1)
        if let bias { precondition(bias.count == o, "\(op): bias of \(bias.count) for \(o) outputs") }
        xShape = x.shape
        var shape = x.shape
        shape[shape.count - 1] = o
        outShape = shape
    }

    /// The product's input gradient: dx [M, K] = dOut [M, O] · weight [O, K], shaped as x.
    func inputGradient(_ dOut: Tensor, weight: Tensor) -> Tensor {
        let dx = Tensor(uninitializedShape: xShape)
        let w = weight.gemmOperand(transposed: false)  // a frozen weight: a view of the forward's packing
        gemm(m: m, n: k, k: o, a: dOut.data, lda: o, b: w.b, ldb: k, c: dx.data, ldc: k, packedB: w.packed)
        return dx
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
    let s = LinearShapes(x, weight: weight, bias: bias, op: "linearGELU")
    let pre = Tensor(uninitializedShape: s.outShape)  // [M, O] the product (the output too, without a gradient)
    let keep = x.requiresGrad
    let out = keep ? Tensor(uninitializedShape: s.outShape) : pre
    let op = out.data, o = s.o
    let w = weight.gemmOperand(transposed: true)
    gemm(transB: true, m: s.m, n: o, k: s.k, a: x.data, lda: s.k, b: w.b, ldb: s.k, c: pre.data, ldc: o,
         packedB: w.packed, bias: bias.map { UnsafePointer($0.data) }) { c, ldc, i0, j0, rows, cols in
        for i in i0..<(i0 + rows) { stm_gelu_forward(c + i * ldc + j0, op + i * o + j0, cols) }
    }
    guard keep else { return out }
    // dpre = geluGradient(pre, dOut), then dx = dpre · weight: the two ops' rules in their order.
    return Tape.record(out, inputs: [x]) { dOut in [s.inputGradient(geluGradient(pre, dOut), weight: weight)] }
}

/// `addScaled(base, linear(x, weight, bias), scale: gamma)`, the bits of the two ops, in one pass:
/// base [M, O] + gamma [O] * (x [M, K] · weightᵀ + bias [O]) -> [M, O], written over the product.
public func linearResidual(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, onto base: Tensor, scale gamma: Tensor) -> Tensor {
    let s = LinearShapes(x, weight: weight, bias: bias, op: "linearResidual")
    let o = s.o
    precondition(base.count == s.m * o && gamma.count == o, "linearResidual: base \(base.shape) and gamma of \(gamma.count) do not fit \(s.m) x \(o)")
    let out = Tensor(uninitializedShape: base.shape)
    let bp = base.data, gp = gamma.data
    let w = weight.gemmOperand(transposed: true)
    gemm(transB: true, m: s.m, n: o, k: s.k, a: x.data, lda: s.k, b: w.b, ldb: s.k, c: out.data, ldc: o,
         packedB: w.packed, bias: bias.map { UnsafePointer($0.data) }) { c, ldc, i0, j0, rows, cols in
        for i in i0..<(i0 + rows) {
            let a = bp + i * o, y = c + i * ldc
            for j in j0..<(j0 + cols) { y[j] = a[j] + gp[j] * y[j] }  // addScaled's expression
        }
    }
    let xNeedsGrad = x.requiresGrad
    return Tape.record(out, inputs: [base, x]) { d in
        // addScaled's rule (d for the base, d * gamma for the product), then the product's.
        [d, xNeedsGrad ? s.inputGradient(scaledByChannel(d, gamma, shape: s.outShape), weight: weight) : nil]
    }
}
