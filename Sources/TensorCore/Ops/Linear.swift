// TensorCore op: the linear layer (and 1x1 convolution, which is the same thing in channels-last).
// Forward and backward side by side. Only the input gradient is computed; weights are constants.
//
// Shape key: M rows (all leading dimensions flattened), K input features, O output features.

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
