// TensorCore op: the linear layer (and 1x1 convolution, which is the same thing in channels-last).
// Forward and backward side by side. Only the input gradient is computed; weights are constants.
// Two fused forms for the blocks' channel MLPs: `linearGELU` (GELU applied to each finished block
// of the product while it is in cache) and `linearResidual` (the layer-scaled residual update done
// the same way). They give the bits of the unfused ops, forward and backward, and save a pass over
// memory each (and, without a gradient, a tensor). `mlpResidual` is the whole channel MLP with its
// residual update as one node: its forward is the two fused products (GELU's slope kept in fc1's
// output buffer), and its backward applies GELU's rule to each finished block of the first
// product. Leaves out: weight gradients.
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
/// bias [O] -> [M, O]. Without a gradient GELU runs in place on the product; with one, GELU's slope
/// (which its rule needs) replaces the product in its buffer, and the output is a second buffer.
public func linearGELU(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    let s = LinearShapes(x, weight: weight, bias: bias, op: "linearGELU")
    let pre = Tensor(uninitializedShape: s.outShape)  // [M, O] the product, then GELU's slope (or the output)
    let keep = x.requiresGrad
    let out = keep ? Tensor(uninitializedShape: s.outShape) : pre
    productGELU(x.data, s, weight: weight, bias: bias, pre: pre.data, out: out.data, keepSlope: keep)
    guard keep else { return out }
    // dpre = dOut * slope (GELU's rule), then dx = dpre · weight: the two ops' rules in their order.
    return Tape.record(out, inputs: [x]) { dOut in [s.inputGradient(geluGradient(slope: pre, dOut), weight: weight)] }
}

/// `addScaled(base, linear(x, weight, bias), scale: gamma)`, the bits of the two ops, in one pass:
/// base [M, O] + gamma [O] * (x [M, K] · weightᵀ + bias [O]) -> [M, O], written over the product.
public func linearResidual(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, onto base: Tensor, scale gamma: Tensor) -> Tensor {
    let s = LinearShapes(x, weight: weight, bias: bias, op: "linearResidual")
    let o = s.o
    precondition(base.count == s.m * o && gamma.count == o, "linearResidual: base \(base.shape) and gamma of \(gamma.count) do not fit \(s.m) x \(o)")
    let out = Tensor(uninitializedShape: base.shape)
    productResidual(x.data, s, weight: weight, bias: bias, base: base.data, gamma: gamma.data, out: out.data)
    let xNeedsGrad = x.requiresGrad
    return Tape.record(out, inputs: [base, x]) { d in
        // addScaled's rule (d for the base, d * gamma for the product), then the product's.
        [d, xNeedsGrad ? s.inputGradient(scaledByChannel(d, gamma, shape: s.outShape), weight: weight) : nil]
    }
}

/// linearGELU's forward on raw buffers: pre [M, O] = x [M, K] · weightᵀ + bias, then GELU applied to
/// each finished block of the product while it is in cache: out = gelu(pre). With `keepSlope`, GELU's
/// slope replaces pre in its buffer (out is another buffer); without, out may be pre (GELU in place).
func productGELU(_ x: UnsafePointer<Float>, _ s: LinearShapes, weight: Tensor, bias: Tensor?,
                 pre: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, keepSlope: Bool) {
    let o = s.o
    let w = weight.gemmOperand(transposed: true)
    gemm(transB: true, m: s.m, n: o, k: s.k, a: x, lda: s.k, b: w.b, ldb: s.k, c: pre, ldc: o,
         packedB: w.packed, bias: bias.map { UnsafePointer($0.data) }) { c, ldc, i0, j0, rows, cols in
        for i in i0..<(i0 + rows) {
            let v = c + i * ldc + j0
            if keepSlope { stm_gelu_forward_slope(v, out + i * o + j0, v, cols) } else { stm_gelu_forward(v, out + i * o + j0, cols) }
        }
    }
}

/// linearResidual's forward on raw buffers: out [M, O] = base [M, O] + gamma [O] * (x [M, K] · weightᵀ
/// + bias), the update applied to each finished block of the product while it is in cache.
func productResidual(_ x: UnsafePointer<Float>, _ s: LinearShapes, weight: Tensor, bias: Tensor?,
                     base: UnsafePointer<Float>, gamma: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
    let o = s.o
    let w = weight.gemmOperand(transposed: true)
    gemm(transB: true, m: s.m, n: o, k: s.k, a: x, lda: s.k, b: w.b, ldb: s.k, c: out, ldc: o,
         packedB: w.packed, bias: bias.map { UnsafePointer($0.data) }) { c, ldc, i0, j0, rows, cols in
        for i in i0..<(i0 + rows) {
            let a = base + i * o, y = c + i * ldc
            for j in j0..<(j0 + cols) { y[j] = a[j] + gamma[j] * y[j] }  // addScaled's expression
        }
    }
}

/// The channel MLP with its layer-scaled residual update, as one node:
/// `linearResidual(linearGELU(x, w1, b1), w2, b2, onto: base, scale: gamma)`, the bits of those ops
/// (and so of the unfused ones), forward and backward.
/// x [M, C], w1 [H, C], b1 [H], w2 [O, H], b2 [O], base [M, O], gamma [O] -> [M, O].
///
/// Forward: fc1 with GELU (and, where a gradient follows, its slope) applied to each finished block
/// of the product in cache, then fc2 with the residual update likewise; each product split over the
/// threads. (Blocks of rows running fc1, GELU and fc2 on one thread each, their hidden values never
/// written whole, were 5-15 % slower on Zen 2 than the two whole products: see the README.)
/// Backward (x's gradient only; the base's is the output's): dhidden = ((dOut * gamma) · w2), with
/// GELU's rule (times the slope) applied to each finished block of that product in cache, then
/// dx = dhidden · w1.
public func mlpResidual(_ x: Tensor, fc1 w1: Tensor, bias1 b1: Tensor?, fc2 w2: Tensor, bias2 b2: Tensor?,
                        onto base: Tensor, scale gamma: Tensor) -> Tensor {
    let s1 = LinearShapes(x, weight: w1, bias: b1, op: "mlpResidual (fc1)")
    let hidden = Tensor(uninitializedShape: s1.outShape)  // [M, H]
    let s2 = LinearShapes(hidden, weight: w2, bias: b2, op: "mlpResidual (fc2)")
    let (m, h, o) = (s1.m, s1.o, s2.o)
    precondition(base.count == m * o && gamma.count == o, "mlpResidual: base \(base.shape) and gamma of \(gamma.count) do not fit \(m) x \(o)")
    let keep = x.requiresGrad
    let slope: Tensor? = keep ? Tensor(uninitializedShape: s1.outShape) : nil  // [M, H] fc1's output, then GELU's slope
    let out = Tensor(uninitializedShape: base.shape)
    // fc1 with GELU (its slope into slope's buffer, or GELU in place), then fc2 with the residual
    // update: linearGELU's and linearResidual's forwards.
    productGELU(x.data, s1, weight: w1, bias: b1, pre: slope?.data ?? hidden.data, out: hidden.data, keepSlope: keep)
    productResidual(hidden.data, s2, weight: w2, bias: b2, base: base.data, gamma: gamma.data, out: out.data)
    withExtendedLifetime((x, base, gamma, hidden)) {}

    var dsShape = s1.outShape
    dsShape[dsShape.count - 1] = o
    return Tape.record(out, inputs: [base, x]) { d in
        guard let slope else { return [d, nil] }
        // linearResidual's rule (d for the base, d * gamma into fc2's input gradient), then
        // linearGELU's (GELU's rule on that gradient, then fc1's input gradient), GELU's in cache.
        let ds = scaledByChannel(d, gamma, shape: dsShape)
        let dHidden = Tensor(uninitializedShape: s1.outShape)
        let w = w2.gemmOperand(transposed: false)
        let sp = slope.data
        gemm(m: m, n: h, k: o, a: ds.data, lda: o, b: w.b, ldb: h, c: dHidden.data, ldc: h, packedB: w.packed) { cc, ldc, r0, j0, rr, cols in
            for i in r0..<(r0 + rr) { stm_multiply(cc + i * ldc + j0, sp + i * h + j0, cc + i * ldc + j0, cols) }
        }
        withExtendedLifetime((slope, ds)) {}
        return [d, s1.inputGradient(dHidden, weight: w1)]
    }
}
