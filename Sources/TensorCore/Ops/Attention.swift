// TensorCore op: multi-head scaled dot-product attention, fused. Queries, keys and values are read
// straight from their projection outputs through strided GEMMs (no head split or permute copies);
// the output is written with heads already merged. Constant logit terms (relative-position bias,
// shift or padding masks) are added before the activation; a differentiable logit term may be added
// too and receives a gradient, either stored ([B, Hd, Lq, Lk]) or factored (`AttentionLogitTerm`,
// made block by block: HaloNet's query-dependent relative logits). The activation that turns a row
// of logits into weights is a strategy (`AttentionActivation`, AttentionActivation.swift): softmax by
// default, on its own inlined path; the others read the per-group mask as a presence mask (see
// there). With softmax the backward remakes each block's weights (the forward's operations, so the
// same bits) unless the caller has them kept (`remakeWeights: false`); other activations keep theirs,
// and what they save, for the backward. Dropout and causal masks are not provided. Keys and values
// may be read through a gather plan instead of in place (HaloNet's overlapping windows): each
// (sequence, head)'s are copied into a block of their own just before its products, in the forward
// and again in the backward, and their gradient is summed back through the plan as `gatherRows`'
// backward does, so the bits are those of gathering first.
//
// Shape key: B sequences (images x windows), Lq queries, Lk keys, Hd heads, Dk query/key width
// per head, Dv value width per head.

import Foundation

/// One of q, k, v: a tensor [B, L, width] and the column where this role's heads start
/// (so q, k and v may all live in one fused projection output). Keys and values may instead be read
/// through a gather plan (`rows`): the tensor is then [R, width], and row j of sequence b is its row
/// `rows.index[b * L + j]` (-1: zeros), which `attention` copies, a (sequence, head) at a time, into
/// a block of its own just before the products read it (HaloNet's overlapping windows are never
/// written whole: see `attention`).
public struct AttentionOperand {
    public var tensor: Tensor
    public var offset: Int
    /// The plan the rows are read through (keys and values only), or nil.
    public var rows: GatherPlan?
    public init(_ tensor: Tensor, offset: Int = 0, rows: GatherPlan? = nil) {
        self.tensor = tensor
        self.offset = offset
        self.rows = rows
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

/// A differentiable term added to the attention logits in a factored form, so that its
/// [B, Hd, Lq, Lk] values are never stored: the attention adds it to each block of logits as it
/// makes them (again in the backward, when the weights are recomputed) and reduces each block of
/// dS into the gradients of the term's own inputs (e.g. HaloNet's relative logits,
/// `HaloRelativeTerm`). Rows of different (sequence, head) pairs must touch disjoint gradient rows.
public protocol AttentionLogitTerm {
    /// The tensors the term is made from; they receive the gradients `accumulate` writes.
    var inputs: [Tensor] { get }
    /// Adds the term of pair `bh` (sequence * Hd + head), query rows [i0, i0 + rows), to `s`
    /// ([rows, Lk], row-major), exactly as adding a stored logits tensor would.
    func add(bh: Int, i0: Int, rows: Int, into s: UnsafeMutablePointer<Float>)
    /// Writes the gradient contributions of pair `bh` from its dS ([Lq, Lk]) into `gradients`
    /// (shaped as `inputs`, uninitialized until written; every pair writes its own rows completely).
    func accumulate(bh: Int, dS: UnsafePointer<Float>, into gradients: [UnsafeMutablePointer<Float>])
}

/// act(scale * q kᵀ + bias + logits) v, per head; `act` is softmax unless `activation` says otherwise.
/// - Parameters:
///   - q: [B, Lq, ≥ offset + Hd*Dk]; k: [B, Lk, ≥ offset + Hd*Dk]; v: [B, Lk, ≥ offset + Hd*Dv].
///   - logits: optional differentiable term [B, Hd, Lq, Lk].
///   - term: optional differentiable term in factored form, added after `logits`.
///   - activation: the row activation; for all but softmax, `bias.perGroup` is a presence mask
///     (entries < 0 mark absent keys, which get weight 0) rather than an additive term.
/// - Returns: [B, Lq, Hd*Dv].
///
/// With softmax and no stored `logits`, the backward recomputes each block's weights from q and k
/// (the same operations, so the same bits) instead of keeping [B, Hd, Lq, Lk] of them from the
/// forward: that is the largest tensor of HaloNet's and Swin's blocks, and the product that remakes
/// it is a small share of the block's. `remakeWeights: false` keeps them instead, where the memory is
/// worth the time (HaloNet: its remade logits are 169 keys with the relative term and a mask). Other
/// activations keep their weights.
public func attention(q: AttentionOperand, k: AttentionOperand, v: AttentionOperand,
                      heads: Int, keyWidth dk: Int, valueWidth dv: Int, scale: Float,
                      bias: AttentionBias = AttentionBias(), logits: Tensor? = nil, term: AttentionLogitTerm? = nil,
                      activation: AttentionActivation = .softmax, remakeWeights: Bool = true) -> Tensor {
    let qt = q.tensor, kt = k.tensor, vt = v.tensor
    precondition(q.rows == nil, "attention: queries are read in place")
    let b = qt.shape[0], lq = qt.shape[1]
    // Keys and values read through a plan: both through the same one, from the same tensor.
    let plan = k.rows
    precondition((plan == nil) == (v.rows == nil) && (plan == nil || (kt.storage === vt.storage && v.rows === plan)),
                 "attention: keys and values must be read through the same plan from one tensor")
    let lk: Int
    if let plan {
        precondition(qt.storage !== kt.storage, "attention: queries cannot share the tensor keys are gathered from")
        precondition(qt.rank == 3 && plan.rows % max(b, 1) == 0 && kt.count == plan.sourceRows * kt.lastDim,
                     "attention: the plan's \(plan.rows) rows do not fit \(b) sequences of \(kt.shape)")
        lk = plan.rows / max(b, 1)
    } else {
        precondition(qt.rank == 3 && kt.rank == 3 && vt.rank == 3, "attention: q, k, v must be [B, L, width]")
        lk = kt.shape[1]
        precondition(kt.shape[0] == b && vt.shape[0] == b && vt.shape[1] == lk, "attention: batch or key counts differ")
    }
    let ldq = qt.shape[2], ldk = kt.lastDim, ldv = vt.lastDim
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
    let recorder = AttentionRecorder.current
    let termGrad = term?.inputs.contains(where: \.requiresGrad) ?? false
    let grad = qt.requiresGrad || kt.requiresGrad || vt.requiresGrad || (logits?.requiresGrad ?? false) || termGrad
    // The weights are kept for a backward that cannot (or is asked not to) remake them, and for a
    // recorder; otherwise each chunk works in a scratch block of its own (forward-only runs of large
    // batches stay in cache).
    let recompute = grad && isSoftmax && logits == nil && recorder == nil && remakeWeights
    let keep = (grad && !recompute) || recorder != nil
    let probs: Tensor? = keep ? Tensor(uninitializedShape: [b, heads, lq, lk]) : nil  // [B, Hd, Lq, Lk]
    // What a non-softmax activation keeps per row besides its output. [B*Hd*Lq, savedWidth]
    let saved: Tensor? = keep && savedWidth > 0 ? Tensor(uninitializedShape: [b * heads * lq, savedWidth]) : nil
    let svp: UnsafeMutablePointer<Float>? = saved?.data
    let pp: UnsafeMutablePointer<Float>? = probs?.data
    let op = out.data
    let block = lq * lk
    let fill = LogitFill(q: q, heads: heads, dk: dk, scale: scale, bias: bias, groups: groups,
                         logits: logits, term: term, softmax: isSoftmax)
    let rows = plan.map { RowBlocks(plan: $0, tensor: kt, keys: lk, kOffset: k.offset, vOffset: v.offset, dk: dk, dv: dv) }
    // Runs that keep no weights take the queries in chunks whose logits fit a bounded scratch block:
    // a row's result never depends on the other rows (one FMA chain per element of a product, a
    // softmax per row), so the bits are those of one chunk, and PVT's spatial-reduction attention on
    // a 4000 x 2400 input no longer needs Lq x Lk floats (22 GB) per head.
    let rowsPerChunk = pp == nil ? max(1, min(lq, AttentionLimits.scratchFloats / max(lk, 1))) : lq
    let kp0 = kt.data + k.offset, vp0 = vt.data + v.offset
    // Pair (s, h)'s keys and values with their row strides: in place, or copied into kv through the plan.
    func keysValues(_ s: Int, _ h: Int, _ kv: UnsafeMutablePointer<Float>?)
        -> (k: UnsafePointer<Float>, ldk: Int, v: UnsafePointer<Float>, ldv: Int) {
        guard let rows, let kv else {
            let k = UnsafePointer(kp0 + s * lk * ldk + h * dk), v = UnsafePointer(vp0 + s * lk * ldv + h * dv)
            return (k, ldk, v, ldv)
        }
        rows.copy(sequence: s, head: h, into: kv)
        return (UnsafePointer(kv), dk, UnsafePointer(kv + lk * dk), dv)
    }
    parallelFor(b * heads, grain: grainFor(b * heads, cost: block * (dk + dv) * 2)) { r in
        let scratch: UnsafeMutablePointer<Float>? = pp == nil ? .allocate(capacity: rowsPerChunk * lk) : nil
        let kv = rows?.allocate()  // this pair's keys [Lk, Dk] and values [Lk, Dv], when read through the plan
        defer { scratch?.deallocate(); kv?.deallocate() }
        for bh in r {
            let s = bh / heads, h = bh % heads
            let (kp, kld, vp, vld) = keysValues(s, h, kv)
            for i0 in stride(from: 0, to: lq, by: rowsPerChunk) {
                let qc = min(rowsPerChunk, lq - i0), at = i0 * lk
                let sp = pp.map { $0 + bh * block + at } ?? scratch!
                fill.logits(bh: bh, i0: i0, rows: qc, keys: kp, ldk: kld, lk: lk, into: sp)
                if isSoftmax {
                    softmaxRows(sp, sp, rows: qc, lk)
                } else {
                    let present = fill.groupBias.map { UnsafePointer($0 + (s % groups) * block + at) }
                    for i in 0..<qc {
                        activation.forwardRow(sp + i * lk, present: present.map { $0 + i * lk }, lk,
                                              saved: svp.map { $0 + (bh * lq + i0 + i) * savedWidth })
                    }
                }
                gemm(m: qc, n: dv, k: lk, a: sp, lda: lk, b: vp, ldb: vld,
                     c: op + s * lq * ldo + i0 * ldo + h * dv, ldc: ldo)
            }
        }
    }

    if let recorder, let probs { recorder.weights.append(probs) }
    guard grad else { return out }
    var inputs = [qt, kt, vt]
    if let logits { inputs.append(logits) }
    let termInputs = term?.inputs ?? []
    inputs += termInputs
    let (qOff, kOff, vOff) = (q.offset, k.offset, v.offset)
    // Whether extra logits came in, not the logits themselves: their gradient is dS, so the backward
    // never reads them, and capturing them would keep a [B, Hd, Lq, Lk] tensor alive until then.
    let hasLogits = logits != nil
    let groupMask = bias.perGroup
    let remake: LogitFill? = recompute ? fill : nil  // holds q, the biases and the term until the backward (k and v: below)
    return Tape.record(out, inputs: inputs) { dOut in
        // Gradient buffers, one per distinct operand tensor (q, k, v may share one).
        let same = { (a: Tensor, c: Tensor) in a.storage === c.storage }
        // The products below write every row of each head's columns (beta 0), so a buffer whose width
        // the heads' slices of the operands sharing it cover needs no zeros first; others start at zero.
        func buffer(_ shape: [Int], _ slices: [(offset: Int, width: Int)]) -> Tensor {
            var covered = [Bool](repeating: false, count: shape[shape.count - 1])
            for s in slices { for j in s.offset..<(s.offset + s.width) { covered[j] = true } }
            return covered.allSatisfy { $0 } ? Tensor(uninitializedShape: shape) : Tensor(shape: shape, repeating: 0)
        }
        func buffer(_ t: Tensor, _ slices: [(offset: Int, width: Int)]) -> Tensor { buffer(t.shape, slices) }
        // Keys and values read through a plan get their gradient as if gathered ([B, Lk, width], the
        // plan's rows), then summed into the tensor's rows by the plan's inverse (gatherRows' rule).
        let kShape = plan == nil ? kt.shape : [b, lk, kt.lastDim]
        let dq = buffer(qt, [(qOff, heads * dk)] + (same(kt, qt) ? [(kOff, heads * dk)] : [])
                            + (same(vt, qt) ? [(vOff, heads * dv)] : []))
        let dk_ = same(kt, qt) ? dq : buffer(kShape, [(kOff, heads * dk)] + (same(vt, kt) ? [(vOff, heads * dv)] : []))
        let dv_ = same(vt, qt) ? dq : (same(vt, kt) ? dk_ : buffer(vt, [(vOff, heads * dv)]))
        let dLogits = hasLogits ? Tensor(uninitializedShape: [b, heads, lq, lk]) : nil
        let dTerm = termInputs.map { Tensor(uninitializedShape: $0.shape) }
        let dTermPointers = dTerm.map(\.data)
        let dqp = dq.data + qOff, dkp = dk_.data + kOff, dvp = dv_.data + vOff
        // Read the kept tensors through the closure's own references so they stay alive until now.
        let qp = qt.data + qOff
        let pp: UnsafeMutablePointer<Float>? = probs?.data
        let svp: UnsafeMutablePointer<Float>? = saved?.data
        let presence: UnsafeMutablePointer<Float>? = isSoftmax ? nil : groupMask?.data
        let dop = dOut.data
        let dlp: UnsafeMutablePointer<Float>? = dLogits?.data
        parallelFor(b * heads, grain: grainFor(b * heads, cost: block * (2 * dk + 2 * dv))) { r in
            // dS is written straight into dLogits when there is one; otherwise into one block of scratch
            // per task (not a [B, Hd, Lq, Lk] buffer: this runs when memory is at its peak). Remade
            // weights go to another block of scratch per task.
            let scratch: UnsafeMutablePointer<Float>? = dlp == nil ? .allocate(capacity: block) : nil
            let remade: UnsafeMutablePointer<Float>? = remake != nil ? .allocate(capacity: block) : nil
            let kv = rows?.allocate()
            defer { scratch?.deallocate(); remade?.deallocate(); kv?.deallocate() }
            for bh in r {
                let s = bh / heads, h = bh % heads
                let (kp, kld, vp, vld) = keysValues(s, h, kv)
                let p: UnsafeMutablePointer<Float>
                if let remake, let remade {
                    // The forward's operations on this block, in its order: the same weights, bit for bit.
                    remake.logits(bh: bh, i0: 0, rows: lq, keys: kp, ldk: kld, lk: lk, into: remade)
                    softmaxRows(remade, remade, rows: lq, lk)
                    p = remade
                } else {
                    p = pp! + bh * block
                }
                let ds = dlp.map { $0 + bh * block } ?? scratch!
                let dO = dop + s * lq * ldo + h * dv
                // dP = dO · vᵀ
                gemm(transB: true, m: lq, n: lk, k: dv, a: dO, lda: ldo, b: vp, ldb: vld, c: ds, ldc: lk)
                // dS = P * (dP - rowsum(dP * P)) for softmax; the activation's own row rule otherwise.
                if isSoftmax {
                    softmaxBackwardRows(p, ds, ds, rows: lq, lk)
                } else {
                    for i in 0..<lq {
                        activation.backwardRow(output: p + i * lk, present: presence.map { UnsafePointer($0 + (s % groups) * block + i * lk) },
                                               saved: svp.map { UnsafePointer($0 + (bh * lq + i) * savedWidth) },
                                               gradient: ds + i * lk, lk)
                    }
                }
                if let term, !dTermPointers.isEmpty { term.accumulate(bh: bh, dS: ds, into: dTermPointers) }
                // dq = scale * dS · k ; dk = scale * dSᵀ · q ; dv = Pᵀ · dO
                gemm(m: lq, n: dk, k: lk, alpha: scale, a: ds, lda: lk, b: kp, ldb: kld,
                     c: dqp + s * lq * ldq + h * dk, ldc: ldq)
                gemm(transA: true, m: lk, n: dk, k: lq, alpha: scale, a: ds, lda: lk, b: qp + s * lq * ldq + h * dk, ldb: ldq,
                     c: dkp + s * lk * ldk + h * dk, ldc: ldk)
                gemm(transA: true, m: lk, n: dv, k: lq, a: p, lda: lk, b: dO, ldb: ldo,
                     c: dvp + s * lk * ldv + h * dv, ldc: ldv)
            }
        }
        // Through a plan, k's gradient is dk_ summed into the tensor's rows (q never shares that tensor).
        let dkt = plan.map { gatherRowsGradient(dk_.data, plan: $0, channels: kt.lastDim, shape: kt.shape) }
        var grads: [Tensor?] = [dq, same(kt, qt) ? nil : (dkt ?? dk_), (same(vt, qt) || same(vt, kt)) ? nil : dv_]
        if hasLogits { grads.append(dLogits) }
        grads += dTerm.map { Optional($0) }
        return grads
    }
}

/// The logits of one block of queries, before the activation: scale * q kᵀ, then the per-head bias,
/// the per-group bias (softmax only: other activations read it as a presence mask), the stored
/// logits and the factored term, in that order. One definition for the forward and for the backward
/// that remakes the weights, so both give the same bits. Holds the tensors it reads.
private struct LogitFill {
    let q: AttentionOperand
    let heads: Int, dk: Int, scale: Float
    let bias: AttentionBias
    let groups: Int
    let logits: Tensor?
    let term: AttentionLogitTerm?
    let softmax: Bool

    var groupBias: UnsafeMutablePointer<Float>? { bias.perGroup?.data }

    /// Rows [i0, i0 + rows) of pair bh into sp [rows, Lk], from the pair's keys kp [Lk, ≥ Dk] (rows ldk apart).
    func logits(bh: Int, i0: Int, rows qc: Int, keys kp: UnsafePointer<Float>, ldk: Int, lk: Int,
                into sp: UnsafeMutablePointer<Float>) {
        let qt = q.tensor
        let lq = qt.shape[1], ldq = qt.shape[2]
        let s = bh / heads, h = bh % heads
        let block = lq * lk, count = qc * lk, at = i0 * lk
        gemm(transB: true, m: qc, n: lk, k: dk, alpha: scale, a: qt.data + q.offset + s * lq * ldq + i0 * ldq + h * dk, lda: ldq,
             b: kp, ldb: ldk, c: sp, ldc: lk)
        if let headBias = bias.perHead?.data { let src = headBias + h * block + at; for i in 0..<count { sp[i] += src[i] } }
        if softmax, let groupBias { let src = groupBias + (s % groups) * block + at; for i in 0..<count { sp[i] += src[i] } }
        if let extra = logits?.data { let src = extra + bh * block + at; for i in 0..<count { sp[i] += src[i] } }
        term?.add(bh: bh, i0: i0, rows: qc, into: sp)
    }
}

/// Keys and values read through a plan (`AttentionOperand.rows`): one (sequence, head)'s keys
/// [Lk, Dk] and values [Lk, Dv] copied from the tensor's rows [R, width] into a block of their own,
/// zeros for rows the plan leaves out: the values a gather would have written, so the same bits.
private struct RowBlocks {
    let plan: GatherPlan
    let tensor: Tensor  // [R, width]
    let keys: Int, kOffset: Int, vOffset: Int, dk: Int, dv: Int

    /// A block for one pair: keys [Lk, Dk], then values [Lk, Dv].
    func allocate() -> UnsafeMutablePointer<Float> { .allocate(capacity: keys * (dk + dv)) }

    func copy(sequence s: Int, head h: Int, into kv: UnsafeMutablePointer<Float>) {
        let c = tensor.lastDim, src = UnsafePointer(tensor.data)
        let vb = kv + keys * dk
        plan.index.withUnsafeBufferPointer { idx in
            for j in 0..<keys {
                let r = Int(idx[s * keys + j])
                if r >= 0 {
                    (kv + j * dk).update(from: src + r * c + kOffset + h * dk, count: dk)
                    (vb + j * dv).update(from: src + r * c + vOffset + h * dv, count: dv)
                } else {
                    (kv + j * dk).update(repeating: 0, count: dk)
                    (vb + j * dv).update(repeating: 0, count: dv)
                }
            }
        }
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
