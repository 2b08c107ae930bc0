// CGemm, element-wise part: the hot element-wise and row kernels of TensorCore (GELU forward and
// backward, LayerNorm rows forward and backward), in C with AVX-512, AVX2 and portable paths chosen
// like the GEMM's micro-kernel (stm_gemm_kernel()).
//
// Why C: Swift's 16-lane SIMD values cross closure and function boundaries as four 128-bit halves,
// so these kernels ran four lanes at a time even on AVX-512. Contract: every path performs, for each
// element, exactly the operation sequence of the Swift reference in TensorCore (`referenceGelu...`,
// `referenceLayerNorm...`), separately rounded multiplies and adds (no contraction: compiled with
// -ffp-contract=off), and LayerNorm's row sums keep sixteen partial sums (lane j takes elements
// j, j+16, ...) added up in lane order, then the tail in order. So every ISA gives the Swift bits.
//
// Shape key: N elements; M rows of C channels. Leaves out: NaN payloads (a NaN input gives a NaN).
#ifndef STM_ELEMENTWISE_H
#define STM_ELEMENTWISE_H

#ifdef __cplusplus
extern "C" {
#endif

/// y[i] = x/2 * (1 + erf(x / sqrt 2)) for i < n (the project's erf polynomial).
void stm_gelu_forward(const float *x, float *y, long n);
/// stm_gelu_forward's y, and GELU's slope: slope[i] = Phi(x) + x * phi(x) for i < n, which its rule
/// multiplies the gradient by (dx = dy * slope is the rule's bits). slope may equal x (not y).
void stm_gelu_forward_slope(const float *x, float *y, float *slope, long n);
/// out[i] = a[i] * b[i] for i < n. out may equal a or b.
void stm_multiply(const float *a, const float *b, float *out, long n);

/// Asks for the cache line holding p ahead of its use (a hint: never faults, changes no value).
static inline void stm_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

/// Softmax of one row of l values: o = exp(x - max) / sum, the sum over sixteen lanes (lane j takes
/// elements j, j+16, ...) added in lane order, then the tail in order; o = x * (1 / sum), and a
/// weight below FLT_MIN is stored as +0 (no denormal weights: see weight_s). o may equal x.
void stm_softmax_row(const float *x, float *o, long l);
/// stm_softmax_row of each of rows [0, m) of x [M, L], with each row's bits (a NaN result's sign
/// aside, as between any two builds: which NaN operand a product passes on follows the order the
/// compiler gives its operands). Rows shorter than 16 run several at a time across the vector lanes
/// (one row per lane), and so do the tails (the last L % 16 logits) of longer rows. o may equal x.
void stm_softmax_rows(const float *x, float *o, long m, long l);
/// The softmax backward's row sums dots[r] = sum over j < l of d[r, j] * p[r, j], each row's
/// products (rounded) added in order from +0, for the first rows of p, d [M, L] that the kernel in
/// use takes 16 (AVX-512) or 8 (AVX2) at a time, one row per lane; returns how many (0 on the
/// portable kernel). The caller sums the rest itself, in the same order.
long stm_softmax_backward_dots(const float *p, const float *d, long m, long l, float *dots);

/// LayerNorm of rows [0, m) of x [M, C]: xhat = (x - mean) * rstd, out = xhat * w + b, rstd per row.
/// xhat may equal out (then out holds the affine result only).
void stm_layernorm_forward(const float *x, const float *w, const float *b, float eps, long m, long c,
                           float *xhat, float *out, float *rstd);
/// dx = rstd * (dy * w - mean(dy * w) - xhat * mean(dy * w * xhat)) for rows [0, m).
void stm_layernorm_backward(const float *xhat, const float *dy, const float *w, const float *rstd,
                            long m, long c, float *dx);

/// One output vector of a depth-wise convolution: dst[ch] = bias[ch] (or +0), then for t < ntaps in
/// order dst[ch] += w[tap[t] * c + ch] * src[t][ch], product and sum each rounded, for ch < c.
/// src holds only the taps that exist (a caller skips taps outside the map).
void stm_depthwise_taps(float *dst, const float *bias, long c, int ntaps, const float *const *src,
                        const float *w, const int *tap);
/// `stm_depthwise_taps` for npix neighbouring output vectors that share one tap list: vector p
/// (p < npix) is written at dst + p * c from the sources src[t] + p * c. Same bits as npix calls;
/// four vectors at a time load each weight once for all four.
void stm_depthwise_taps_run(float *dst, const float *bias, long c, int ntaps, const float *const *src,
                            const float *w, const int *tap, int npix);

/// Deformable sampling's point gradients (sampling.c): for each point l < n of one output pixel
/// (group l / p), the dots of dOut's D channels `go + (l / p) * d` with the point's four taps
/// `image + (l / p) * d + i..[l] * c` into e00[l] ... e11[l] (0 where valid[l] is 0), in the order of
/// TensorCore's definition: four partial sums per tap (lane r takes channels r, r + 4, ... from +0),
/// added in lane order, then the last d % 4 channels one by one; no contraction.
void stm_point_dots(const float *go, const float *image, long c, long d, long p, long n,
                    const int *i00, const int *i01, const int *i10, const int *i11, const float *valid,
                    float *e00, float *e01, float *e10, float *e11);
/// Deformable sampling's forward at one output pixel (sampling.c): dst [G*D] gets, per group g and
/// channel j, from +0 over the group's valid points (l in [g*p, (g+1)*p)) in order,
/// acc + (a00*v00 + a01*v01), then + (a10*v10 + a11*v11), for j below the last multiple of 4, and
/// acc + (((a00*v00 + a01*v01) + a10*v10) + a11*v11) past it; v.. = image + g*d + i..[l]*c.
void stm_sample_pixel(float *dst, const float *image, long c, long d, long p, long groups,
                      const int *i00, const int *i01, const int *i10, const int *i11, const float *valid,
                      const float *a00, const float *a01, const float *a10, const float *a11);
/// Deformable sampling's value gradient for one output pixel's points, `groups` groups of p: group
/// by group, for each of its valid points l in order and tap t = 00, 01, 10, 11 in order,
/// dst[g*d + i_t[l]*c + j] += a_t[l] * go[g*d + j] for j < d (dst: the first group's channel slice of
/// one image's gradient; the point arrays hold the groups' points one group after the other).
void stm_sample_scatter(float *dst, const float *go, long c, long d, long p, long groups,
                        const int *i00, const int *i01, const int *i10, const int *i11, const float *valid,
                        const float *a00, const float *a01, const float *a10, const float *a11);
/// Both: stm_point_dots and stm_sample_scatter for one output pixel's n = groups * p points (dst,
/// go and image at the first group's channel slice), point by point. The bits of the two calls.
void stm_point_dots_scatter(const float *go, const float *image, float *dst, long c, long d, long p, long n,
                            const int *i00, const int *i01, const int *i10, const int *i11, const float *valid,
                            const float *a00, const float *a01, const float *a10, const float *a11,
                            float *e00, float *e01, float *e10, float *e11);

#ifdef __cplusplus
}
#endif
#endif
