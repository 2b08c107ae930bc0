// TensorCore op: depth-wise attention (Eq. 5 of "Interpret Vision Transformers as ConvNets with
// Dynamic Convolutions"): no value bank; the keys a query sees are averaged into one kernel k-bar,
// multiplied element-wise with the query, and a relative-position term is applied to the keys:
//     o_i = q_i (.) mean_{j in J_i} k_j + sum_{j in J_i} p^h_ij k_j
// where channel c of head h uses p^h, and J_i is every key unless a presence mask removes some
// (entries < 0 mark absent keys, as for the non-softmax activations of `attention`).
// Its own kernel: per sequence one L x L by L x C product gives every query's k-bar (the averaging
// matrix A_ij = [j in J_i] / |J_i|, shared by all heads), and one L x L by L x Dh product per head
// gives the position term; nothing is formed per channel.
//
// Shape key: B sequences (images x windows), L tokens per sequence (queries = keys), C channels,
// Hd heads, Dh = C / Hd channels per head, G mask groups (sequence b uses group b % G).

import Foundation

/// Depth-wise attention: q (.) (A k) + P_h k per head, with A the (masked) averaging matrix.
/// - Parameters:
///   - q: [B, L, ≥ offset + C]; k: [B, L, ≥ offset + C] (may share q's tensor).
///   - position: [Hd, L, L], p^h_ij (constant).
///   - mask: optional [G, L, L] presence mask (entries < 0: key j absent for query i).
/// - Returns: [B, L, C].
public func depthwiseAttention(q: AttentionOperand, k: AttentionOperand, channels c: Int, heads: Int,
                               position: Tensor, mask: Tensor? = nil) -> Tensor {
    let qt = q.tensor, kt = k.tensor
    precondition(qt.rank == 3 && kt.rank == 3, "depthwiseAttention: q, k must be [B, L, width]")
    let b = qt.shape[0], l = qt.shape[1]
    precondition(kt.shape[0] == b && kt.shape[1] == l, "depthwiseAttention: q and k differ in batch or tokens")
    let ldq = qt.shape[2], ldk = kt.shape[2]
    precondition(q.offset + c <= ldq && k.offset + c <= ldk && c % heads == 0, "depthwiseAttention: channels do not fit")
    precondition(position.count == heads * l * l, "depthwiseAttention: position must be [\(heads),\(l),\(l)]")
    let groups = mask.map { $0.count / (l * l) } ?? 1
    if let mask { precondition(groups > 0 && mask.count == groups * l * l, "depthwiseAttention: mask must be [G,\(l),\(l)]") }
    let dh = c / heads, block = l * l

    // Per group: the averaging matrix [L, L] and the masked position weights [Hd, L, L].
    let average = Tensor(uninitializedShape: [groups, l, l])
    let weights = Tensor(uninitializedShape: [groups, heads, l, l])
    do {
        let ap = average.data, wp = weights.data, pp = position.data
        let mp: UnsafeMutablePointer<Float>? = mask?.data
        for g in 0..<groups {
            for i in 0..<l {
                var count = 0
                for j in 0..<l where mp.map({ $0[g * block + i * l + j] >= 0 }) ?? true { count += 1 }
                let inv = count > 0 ? 1 / Float(count) : 0
                for j in 0..<l {
                    let here = mp.map { $0[g * block + i * l + j] >= 0 } ?? true
                    ap[g * block + i * l + j] = here ? inv : 0
                    for h in 0..<heads { wp[(g * heads + h) * block + i * l + j] = here ? pp[h * block + i * l + j] : 0 }
                }
            }
        }
    }

    let out = Tensor(uninitializedShape: [b, l, c])
    let kbar = Tensor(uninitializedShape: [b, l, c])  // A k, kept for the backward
    let qp = qt.data + q.offset, kp = kt.data + k.offset, op = out.data, kbp = kbar.data
    let ap = average.data, wp = weights.data
    parallelFor(b, grain: grainFor(b, cost: block * c * 4)) { r in
        for s in r {
            let g = s % groups
            let ks = kp + s * l * ldk, qs = qp + s * l * ldq, os = op + s * l * c, kb = kbp + s * l * c
            // k-bar = A k
            gemm(m: l, n: c, k: l, a: ap + g * block, lda: l, b: ks, ldb: ldk, c: kb, ldc: c)
            for i in 0..<l { for ch in 0..<c { os[i * c + ch] = qs[i * ldq + ch] * kb[i * c + ch] } }
            // + P_h k_h per head
            for h in 0..<heads {
                gemm(m: l, n: dh, k: l, a: wp + (g * heads + h) * block, lda: l, b: ks + h * dh, ldb: ldk,
                     beta: 1, c: os + h * dh, ldc: c)
            }
        }
    }

    let (qOff, kOff) = (q.offset, k.offset)
    return Tape.record(out, inputs: [qt, kt]) { dOut in
        let same = qt.storage === kt.storage
        let dq = Tensor(shape: qt.shape, repeating: 0)
        let dk = same ? dq : Tensor(shape: kt.shape, repeating: 0)
        let dqp = dq.data + qOff, dkp = dk.data + kOff
        let qp = qt.data + qOff, kbp = kbar.data, dop = dOut.data
        let ap = average.data, wp = weights.data
        let scratch = Tensor(uninitializedShape: [b, l, c])
        let tp = scratch.data
        parallelFor(b, grain: grainFor(b, cost: block * c * 4)) { r in
            for s in r {
                let g = s % groups
                let dO = dop + s * l * c, qs = qp + s * l * ldq, kb = kbp + s * l * c, t = tp + s * l * c
                let dqs = dqp + s * l * ldq, dks = dkp + s * l * ldk
                // dq = dO (.) k-bar; dk-bar = dO (.) q
                for i in 0..<l {
                    for ch in 0..<c {
                        dqs[i * ldq + ch] = dO[i * c + ch] * kb[i * c + ch]
                        t[i * c + ch] = dO[i * c + ch] * qs[i * ldq + ch]
                    }
                }
                // dk = Aᵀ dk-bar + P_hᵀ dO_h
                gemm(transA: true, m: l, n: c, k: l, a: ap + g * block, lda: l, b: t, ldb: c, c: dks, ldc: ldk)
                for h in 0..<heads {
                    gemm(transA: true, m: l, n: dh, k: l, a: wp + (g * heads + h) * block, lda: l, b: dO + h * dh, ldb: c,
                         beta: 1, c: dks + h * dh, ldc: ldk)
                }
            }
        }
        return [dq, same ? nil : dk]
    }
}
