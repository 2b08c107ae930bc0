// TensorCore op: multi-head scaled dot-product attention, fused. Queries, keys and values are read
// straight from their projection outputs through strided GEMMs (no head split or permute copies);
// the output is written with heads already merged. Constant logit terms (relative-position bias,
// shift or padding masks) are added before the activation; a differentiable logit term (HaloNet's
// query-dependent relative logits) may be added too and receives a gradient. The activation that turns
// a row of logits into weights is a strategy (`AttentionActivation`, AttentionActivation.swift):
// softmax by default, on its own inlined path; the others read the per-group mask as a presence mask
// (see there). The forward keeps the weights (and what the activation saves) for the backward, when
// one can follow. Dropout and causal masks are not provided.
//
// Shape key: B sequences (images x windows), Lq queries, Lk keys, Hd heads, Dk query/key width
// per head, Dv value width per head.

import Foundation

/// One of q, k, v: a tensor [B, L, width] and the column where this role's heads start
/// (so q, k and v may all live in one fused projection output).
public struct AttentionOperand {
    public var tensor: Tensor
    public var offset: Int
    public init(_ tensor: Tensor, offset: Int = 0) {
        self.tensor = tensor
        self.offset = offset
    }
}

/// Constant terms added to the attention logits.
public struct AttentionBias {
    /// [Hd, Lq, Lk], the same for every sequence (e.g. Swin's relative position bias).
    public var perHead: Tensor?
    /// [G, Lq, Lk]; sequence b uses group b % G (e.g. Swin's shifted-window mask, HaloNet's padding mask).
    public var perGroup: Tensor?
    public init(perHead: Tensor? = nil, perGroup: Tensor? = nil) {
        self.perHead = perHead
        self.perGroup = perGroup
    }
}

/// act(scale * q kᵀ + bias + logits) v, per head; `act` is softmax unless `activation` says otherwise.
/// - Parameters:
///   - q: [B, Lq, ≥ offset + Hd*Dk]; k: [B, Lk, ≥ offset + Hd*Dk]; v: [B, Lk, ≥ offset + Hd*Dv].
///   - logits: optional differentiable term [B, Hd, Lq, Lk].
///   - activation: the row activation; for all but softmax, `bias.perGroup` is a presence mask
///     (entries < 0 mark absent keys, which get weight 0) rather than an additive term.
/// - Returns: [B, Lq, Hd*Dv].
public func attention(q: AttentionOperand, k: AttentionOperand, v: AttentionOperand,
                      heads: Int, keyWidth dk: Int, valueWidth dv: Int, scale: Float,
                      bias: AttentionBias = AttentionBias(), logits: Tensor? = nil,
                      activation: AttentionActivation = .softmax) -> Tensor {
    let qt = q.tensor, kt = k.tensor, vt = v.tensor
    precondition(qt.rank == 3 && kt.rank == 3 && vt.rank == 3, "attention: q, k, v must be [B, L, width]")
    let b = qt.shape[0], lq = qt.shape[1], lk = kt.shape[1]
    precondition(kt.shape[0] == b && vt.shape[0] == b && vt.shape[1] == lk, "attention: batch or key counts differ")
    let ldq = qt.shape[2], ldk = kt.shape[2], ldv = vt.shape[2]
    precondition(q.offset + heads * dk <= ldq && k.offset + heads * dk <= ldk && v.offset + heads * dv <= ldv,
                 "attention: heads do not fit the operand widths")
    if let p = bias.perHead { precondition(p.count == heads * lq * lk, "attention: perHead bias must be [\(heads),\(lq),\(lk)]") }
    let groups = bias.perGroup.map { $0.count / (lq * lk) } ?? 1
    if let g = bias.perGroup { precondition(g.count == groups * lq * lk && groups > 0, "attention: perGroup bias must be [G,\(lq),\(lk)]") }
    if let l = logits { precondition(l.count == b * heads * lq * lk, "attention: logits must be [\(b),\(heads),\(lq),\(lk)]") }
    activation.check(keys: lk)
    let isSoftmax = activation.kind == .softmax
    let savedWidth = activation.savedPerRow(keys: lk)

    let ldo = heads * dv
    let out = Tensor(uninitializedShape: [b, lq, ldo])
    // The probabilities are kept for the backward when there will be one; otherwise each chunk
    // works in a scratch block of its own (forward-only runs of large batches stay in cache).
    let recorder = AttentionRecorder.current
    let keep = qt.requiresGrad || kt.requiresGrad || vt.requiresGrad || (logits?.requiresGrad ?? false) || recorder != nil
    let probs: Tensor? = keep ? Tensor(uninitializedShape: [b, heads, lq, lk]) : nil  // [B, Hd, Lq, Lk]
    // What a non-softmax activation keeps per row besides its output. [B*Hd*Lq, savedWidth]
    let saved: Tensor? = keep && savedWidth > 0 ? Tensor(uninitializedShape: [b * heads * lq, savedWidth]) : nil
    let svp: UnsafeMutablePointer<Float>? = saved?.data
    let qp = qt.data + q.offset, kp = kt.data + k.offset, vp = vt.data + v.offset
    let pp: UnsafeMutablePointer<Float>? = probs?.data
    let op = out.data
    let headBias: UnsafeMutablePointer<Float>? = bias.perHead?.data
    let groupBias: UnsafeMutablePointer<Float>? = bias.perGroup?.data
    let extra: UnsafeMutablePointer<Float>? = logits?.data
    let block = lq * lk
    // Forward-only runs (no probabilities kept) take the queries in chunks whose logits fit a bounded
    // scratch block: a row's result never depends on the other rows (one FMA chain per element of a
    // product, a softmax per row), so the bits are those of one chunk, and PVT's spatial-reduction
    // attention on a 4000 x 2400 input no longer needs Lq x Lk floats (22 GB) per head.
    let rowsPerChunk = pp == nil ? max(1, min(lq, AttentionLimits.scratchFloats / max(lk, 1))) : lq
    parallelFor(b * heads, grain: grainFor(b * heads, cost: block * (dk + dv) * 2)) { r in
        let scratch: UnsafeMutablePointer<Float>? = pp == nil ? .allocate(capacity: rowsPerChunk * lk) : nil
        defer { scratch?.deallocate() }
        for bh in r {
            let s = bh / heads, h = bh % heads
            for i0 in stride(from: 0, to: lq, by: rowsPerChunk) {
                let qc = min(rowsPerChunk, lq - i0), count = qc * lk, at = i0 * lk
                let sp = pp.map { $0 + bh * block + at } ?? scratch!
                gemm(transB: true, m: qc, n: lk, k: dk, alpha: scale, a: qp + s * lq * ldq + i0 * ldq + h * dk, lda: ldq,
                     b: kp + s * lk * ldk + h * dk, ldb: ldk, c: sp, ldc: lk)
                if let headBias { let src = headBias + h * block + at; for i in 0..<count { sp[i] += src[i] } }
                if isSoftmax {
                    if let groupBias { let src = groupBias + (s % groups) * block + at; for i in 0..<count { sp[i] += src[i] } }
                    if let extra { let src = extra + bh * block + at; for i in 0..<count { sp[i] += src[i] } }
                    for i in 0..<qc { softmaxRow(sp + i * lk, sp + i * lk, lk) }
                } else {
                    if let extra { let src = extra + bh * block + at; for i in 0..<count { sp[i] += src[i] } }
                    let present = groupBias.map { UnsafePointer($0 + (s % groups) * block + at) }
                    for i in 0..<qc {
                        activation.forwardRow(sp + i * lk, present: present.map { $0 + i * lk }, lk,
                                              saved: svp.map { $0 + (bh * lq + i0 + i) * savedWidth })
                    }
                }
                gemm(m: qc, n: dv, k: lk, a: sp, lda: lk, b: vp + s * lk * ldv + h * dv, ldb: ldv,
                     c: op + s * lq * ldo + i0 * ldo + h * dv, ldc: ldo)
            }
        }
    }

    let groupMask = bias.perGroup
    if let recorder, let probs { recorder.weights.append(probs) }
    var inputs = [qt, kt, vt]
    if let logits { inputs.append(logits) }
    let (qOff, kOff, vOff) = (q.offset, k.offset, v.offset)
    // Whether extra logits came in, not the logits themselves: their gradient is dS, so the backward
    // never reads them, and capturing them would keep a [B, Hd, Lq, Lk] tensor alive until then.
    let hasLogits = logits != nil
    return Tape.record(out, inputs: inputs) { dOut in
        // Gradient buffers, one per distinct operand tensor (q, k, v may share one).
        let same = { (a: Tensor, c: Tensor) in a.storage === c.storage }
        let dq = Tensor(shape: qt.shape, repeating: 0)
        let dk_ = same(kt, qt) ? dq : Tensor(shape: kt.shape, repeating: 0)
        let dv_ = same(vt, qt) ? dq : (same(vt, kt) ? dk_ : Tensor(shape: vt.shape, repeating: 0))
        let dLogits = hasLogits ? Tensor(uninitializedShape: [b, heads, lq, lk]) : nil
        let dqp = dq.data + qOff, dkp = dk_.data + kOff, dvp = dv_.data + vOff
        // Read the kept tensors through the closure's own references so they stay alive until now.
        let qp = qt.data + qOff, kp = kt.data + kOff, vp = vt.data + vOff, pp = probs!.data
        let svp: UnsafeMutablePointer<Float>? = saved?.data
        let presence: UnsafeMutablePointer<Float>? = isSoftmax ? nil : groupMask?.data
        let dop = dOut.data
        let dlp: UnsafeMutablePointer<Float>? = dLogits?.data
        parallelFor(b * heads, grain: grainFor(b * heads, cost: block * (2 * dk + 2 * dv))) { r in
            // dS is written straight into dLogits when there is one; otherwise into one block of scratch
            // per task (not a [B, Hd, Lq, Lk] buffer: this runs when memory is at its peak).
            let scratch: UnsafeMutablePointer<Float>? = dlp == nil ? .allocate(capacity: block) : nil
            defer { scratch?.deallocate() }
            for bh in r {
                let s = bh / heads, h = bh % heads
                let p = pp + bh * block
                let ds = dlp.map { $0 + bh * block } ?? scratch!
                let dO = dop + s * lq * ldo + h * dv
                // dP = dO · vᵀ
                gemm(transB: true, m: lq, n: lk, k: dv, a: dO, lda: ldo, b: vp + s * lk * ldv + h * dv, ldb: ldv, c: ds, ldc: lk)
                // dS = P * (dP - rowsum(dP * P)) for softmax; the activation's own row rule otherwise.
                if isSoftmax {
                    for i in 0..<lq { softmaxBackwardRow(p + i * lk, ds + i * lk, ds + i * lk, lk) }
                } else {
                    for i in 0..<lq {
                        activation.backwardRow(output: p + i * lk, present: presence.map { UnsafePointer($0 + (s % groups) * block + i * lk) },
                                               saved: svp.map { UnsafePointer($0 + (bh * lq + i) * savedWidth) },
                                               gradient: ds + i * lk, lk)
                    }
                }
                // dq = scale * dS · k ; dk = scale * dSᵀ · q ; dv = Pᵀ · dO
                gemm(m: lq, n: dk, k: lk, alpha: scale, a: ds, lda: lk, b: kp + s * lk * ldk + h * dk, ldb: ldk,
                     c: dqp + s * lq * ldq + h * dk, ldc: ldq)
                gemm(transA: true, m: lk, n: dk, k: lq, alpha: scale, a: ds, lda: lk, b: qp + s * lq * ldq + h * dk, ldb: ldq,
                     c: dkp + s * lk * ldk + h * dk, ldc: ldk)
                gemm(transA: true, m: lk, n: dv, k: lq, a: p, lda: lk, b: dO, ldb: ldo,
                     c: dvp + s * lk * ldv + h * dv, ldc: ldv)
            }
        }
        var grads: [Tensor?] = [dq, same(kt, qt) ? nil : dk_, (same(vt, qt) || same(vt, kt)) ? nil : dv_]
        if hasLogits { grads.append(dLogits) }
        return grads
    }
}

/// Collects the weights [B, Hd, Lq, Lk] of every fused attention run on this thread inside
/// `recording` (for analysis: the aggregation kernels of attention mixers). Same numbers as without.
public final class AttentionRecorder {
    /// The weights of each attention call, in call order.
    public internal(set) var weights: [Tensor] = []

    private static let key = "stm-analyze.AttentionRecorder"

    static var current: AttentionRecorder? { Thread.current.threadDictionary[key] as? AttentionRecorder }

    /// Runs `body` and returns its result with the weights of the attention calls it made.
    public static func recording<T>(_ body: () throws -> T) rethrows -> (result: T, weights: [Tensor]) {
        let recorder = AttentionRecorder()
        let previous = Thread.current.threadDictionary[key]
        Thread.current.threadDictionary[key] = recorder
        defer { Thread.current.threadDictionary[key] = previous }
        let result = try body()
        return (result, recorder.weights)
    }
}

/// Bounds of the fused attention's working memory.
public enum AttentionLimits {
    /// Floats of logits one forward-only (b, head) pair holds at a time (the queries are taken in
    /// chunks of this many / Lk rows). Results do not depend on it.
    nonisolated(unsafe) public static var scratchFloats = 1 << 18
}
