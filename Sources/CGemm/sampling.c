// CGemm, deformable-sampling part: the point gradients' dot products, <dOut, tap> for the four
// bilinear taps of each sampling point of one output pixel, with the operation sequence of
// TensorCore's Swift definition (see `deformableSamplingPointGradients` and its test): per tap, four
// partial sums, lane r taking channels r, r + 4, ... in channel order from +0, each product and sum
// rounded on its own (no contraction: -ffp-contract=off); then the four lanes added in lane order;
// then the last D % 4 channels one by one. Any ISA gives the same bits.
//
// Why C: the Swift version reduced each tap's sixteen products to four lanes with a chain of
// quarter extractions and made each sum with shuffles, point by point. Here the sixteen-channel
// chunks of a point's four taps are regrouped so that one vector holds all four taps' partial sums
// (lanes 4t + r), and a chunk costs a block transpose and four adds.
//
// Below them: the forward at one pixel, the value gradient's scatter, and the dots and the scatter
// together point by point (the backward's usual call), each with its own order written beside it.
// The last has a version for the study's D = 16 (every preset): a group's dOut is one vector (two
// at 8 lanes) loaded once for its points' dots, four groups' points are interleaved (their scatters are
// independent chains), and four points' dots are reduced together.
//
// Shape key: C channels per pixel, D channels per group, P points per group, N = G * P points.
// Leaves out: NaN payloads (a NaN product gives a NaN sum, not necessarily the same NaN).
#include "stm_elementwise.h"
#include "stm_gemm.h"
#include "transpose_regs.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define STM_X86 1
#else
#define STM_X86 0
#endif

/// The rest of one point's dots after `j` channels went into the partial sums c[4t + r]: the
/// four-channel steps, the lane sums in order, the scalar tail. The whole definition when j = 0.
static void dots_finish(const float *g, const float *const v[4], long d, long j, float c[16], float e[4]) {
    for (; j + 4 <= d; j += 4)
        for (int t = 0; t < 4; t++)
            for (int r = 0; r < 4; r++) c[4 * t + r] = c[4 * t + r] + g[j + r] * v[t][j + r];
    for (int t = 0; t < 4; t++) {
        float s = ((c[4 * t] + c[4 * t + 1]) + c[4 * t + 2]) + c[4 * t + 3];
        for (long k = j; k < d; k++) s = s + g[k] * v[t][k];
        e[t] = s;
    }
}

#if STM_X86
#define ATTR512 __attribute__((target("avx512f")))
#define ATTR256 __attribute__((target("avx2,fma")))

/// One point's four dots. Each 16-channel chunk's products p_t = [q0 q1 q2 q3] (four-channel
/// quarters) are regrouped into z_q = [p_0.q, p_1.q, p_2.q, p_3.q] and added q by q: lane 4t + r
/// takes the same values in the same order as tap t's lane r of four-channel steps.
/// acc plus channels [j, j + 16) of one point's four dots, dOut's chunk being gj: the products
/// p_t = gj * v[t] regrouped into z_q and added q by q (lanes 4t + r).
ATTR512 static inline __m512 chunk512(__m512 acc, __m512 gj, const float *const v[4], long j) {
    __m512 p0 = _mm512_mul_ps(gj, _mm512_loadu_ps(v[0] + j));
    __m512 p1 = _mm512_mul_ps(gj, _mm512_loadu_ps(v[1] + j));
    __m512 p2 = _mm512_mul_ps(gj, _mm512_loadu_ps(v[2] + j));
    __m512 p3 = _mm512_mul_ps(gj, _mm512_loadu_ps(v[3] + j));
    __m512 lo01 = _mm512_shuffle_f32x4(p0, p1, 0x44);  // p0.q0 p0.q1 p1.q0 p1.q1
    __m512 hi01 = _mm512_shuffle_f32x4(p0, p1, 0xEE);  // p0.q2 p0.q3 p1.q2 p1.q3
    __m512 lo23 = _mm512_shuffle_f32x4(p2, p3, 0x44);
    __m512 hi23 = _mm512_shuffle_f32x4(p2, p3, 0xEE);
    acc = _mm512_add_ps(acc, _mm512_shuffle_f32x4(lo01, lo23, 0x88));  // q0 of taps 0..3
    acc = _mm512_add_ps(acc, _mm512_shuffle_f32x4(lo01, lo23, 0xDD));  // q1
    acc = _mm512_add_ps(acc, _mm512_shuffle_f32x4(hi01, hi23, 0x88));  // q2
    return _mm512_add_ps(acc, _mm512_shuffle_f32x4(hi01, hi23, 0xDD));  // q3
}

ATTR512 static inline void point512(const float *g, const float *const v[4], long d, float e[4]) {
    __m512 acc = _mm512_setzero_ps();
    long j = 0;
    for (; j + 16 <= d; j += 16) acc = chunk512(acc, _mm512_loadu_ps(g + j), v, j);
    if (j == d) {
        // Lane sums in order, ((c0 + c1) + c2) + c3, in every 128-bit block at once.
        __m512 s = _mm512_add_ps(acc, _mm512_permute_ps(acc, 0x01));
        s = _mm512_add_ps(s, _mm512_permute_ps(acc, 0x02));
        s = _mm512_add_ps(s, _mm512_permute_ps(acc, 0x03));
        __m128 four = _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), s));
        _mm_storeu_ps(e, four);
        return;
    }
    float c[16];
    _mm512_storeu_ps(c, acc);
    dots_finish(g, v, d, j, c, e);
}

/// The same with two 8-lane halves: acc01 holds taps 0 and 1 (lanes 4t + r), acc23 taps 2 and 3.
/// chunk512 with two 8-lane halves of dOut's chunk (ga, gb): taps 0 and 1 into *acc01, 2 and 3 into *acc23.
ATTR256 static inline void chunk256(__m256 *acc01, __m256 *acc23, __m256 ga, __m256 gb, const float *const v[4], long j) {
    __m256 p0a = _mm256_mul_ps(ga, _mm256_loadu_ps(v[0] + j)), p0b = _mm256_mul_ps(gb, _mm256_loadu_ps(v[0] + j + 8));
    __m256 p1a = _mm256_mul_ps(ga, _mm256_loadu_ps(v[1] + j)), p1b = _mm256_mul_ps(gb, _mm256_loadu_ps(v[1] + j + 8));
    __m256 p2a = _mm256_mul_ps(ga, _mm256_loadu_ps(v[2] + j)), p2b = _mm256_mul_ps(gb, _mm256_loadu_ps(v[2] + j + 8));
    __m256 p3a = _mm256_mul_ps(ga, _mm256_loadu_ps(v[3] + j)), p3b = _mm256_mul_ps(gb, _mm256_loadu_ps(v[3] + j + 8));
    __m256 a01 = *acc01, a23 = *acc23;
    a01 = _mm256_add_ps(a01, _mm256_permute2f128_ps(p0a, p1a, 0x20));  // q0 of taps 0, 1
    a23 = _mm256_add_ps(a23, _mm256_permute2f128_ps(p2a, p3a, 0x20));
    a01 = _mm256_add_ps(a01, _mm256_permute2f128_ps(p0a, p1a, 0x31));  // q1
    a23 = _mm256_add_ps(a23, _mm256_permute2f128_ps(p2a, p3a, 0x31));
    a01 = _mm256_add_ps(a01, _mm256_permute2f128_ps(p0b, p1b, 0x20));  // q2
    a23 = _mm256_add_ps(a23, _mm256_permute2f128_ps(p2b, p3b, 0x20));
    *acc01 = _mm256_add_ps(a01, _mm256_permute2f128_ps(p0b, p1b, 0x31));  // q3
    *acc23 = _mm256_add_ps(a23, _mm256_permute2f128_ps(p2b, p3b, 0x31));
}

ATTR256 static inline void point256(const float *g, const float *const v[4], long d, float e[4]) {
    __m256 acc01 = _mm256_setzero_ps(), acc23 = _mm256_setzero_ps();
    long j = 0;
    for (; j + 16 <= d; j += 16) chunk256(&acc01, &acc23, _mm256_loadu_ps(g + j), _mm256_loadu_ps(g + j + 8), v, j);
    float c[16];
    _mm256_storeu_ps(c, acc01);
    _mm256_storeu_ps(c + 8, acc23);
    dots_finish(g, v, d, j, c, e);
}
#endif

/// One pixel's points: what `stm_point_dots` was given.
typedef struct {
    const float *go, *image;
    long c, d, p, n;
    const int *idx[4];
    const float *valid;
    float *e[4];
} pixel_points;

/// Point l's dOut channels, and its four taps in v (l valid). Inlines into every ISA's loop.
static inline const float *point_taps(const pixel_points *P, long l, const float *v[4]) {
    long gd = (l / P->p) * P->d;
    for (int t = 0; t < 4; t++) v[t] = P->image + gd + (long)P->idx[t][l] * P->c;
    return P->go + gd;
}

static inline void point_store(const pixel_points *P, long l, const float e[4]) {
    for (int t = 0; t < 4; t++) P->e[t][l] = e[t];
}

#if STM_X86
ATTR512 static void points512(const pixel_points *P) {
    for (long l = 0; l < P->n; l++) {
        float e[4] = {0, 0, 0, 0};
        const float *v[4];
        if (P->valid[l] != 0) point512(point_taps(P, l, v), v, P->d, e);
        point_store(P, l, e);
    }
}

ATTR256 static void points256(const pixel_points *P) {
    for (long l = 0; l < P->n; l++) {
        float e[4] = {0, 0, 0, 0};
        const float *v[4];
        if (P->valid[l] != 0) point256(point_taps(P, l, v), v, P->d, e);
        point_store(P, l, e);
    }
}
#endif

void stm_point_dots(const float *go, const float *image, long c, long d, long p, long n,
                    const int *i00, const int *i01, const int *i10, const int *i11, const float *valid,
                    float *e00, float *e01, float *e10, float *e11) {
    const pixel_points P = {go, image, c, d, p, n, {i00, i01, i10, i11}, valid, {e00, e01, e10, e11}};
#if STM_X86
    int kern = stm_gemm_kernel();
    if (kern == STM_GEMM_AVX512) { points512(&P); return; }
    if (kern == STM_GEMM_AVX2) { points256(&P); return; }
#endif
    for (long l = 0; l < n; l++) {
        float e[4] = {0, 0, 0, 0}, cs[16] = {0};
        const float *v[4];
        if (valid[l] != 0) dots_finish(point_taps(&P, l, v), v, d, 0, cs, e);
        point_store(&P, l, e);
    }
}

// ---------------------------------------------------------------------------------------------
// The forward and the value gradient at one output pixel, with the Swift definition's operations:
// forward, per channel j of a group, from +0 over its valid points in order,
//   acc = acc + (a00 * v00[j] + a01 * v01[j]); acc = acc + (a10 * v10[j] + a11 * v11[j])
// for j below the last multiple of 4 (any vector width: each lane does just this), and
//   acc = acc + (((a00 * v00[j] + a01 * v01[j]) + a10 * v10[j]) + a11 * v11[j])
// for the channels past it; the value gradient, per valid point in order and tap in order,
// d_t[j] = d_t[j] + a_t * g[j] (a tap outside the map has weight 0 and points at pixel 0).

/// One pixel's points and their tap weights (a_t = the point's weight times tap t's).
typedef struct {
    const float *image;
    long c, d, p;
    const int *idx[4];
    const float *valid;
    const float *a[4];
} pixel_samples;

static inline void sample_taps(const pixel_samples *S, long l, const float *base, const float *v[4]) {
    for (int t = 0; t < 4; t++) v[t] = base + (long)S->idx[t][l] * S->c;
}

/// Channels [j0, d) of group g's output, one at a time (the portable path and every path's tail).
static void sample_scalar(const pixel_samples *S, long g, long j0, float *dst) {
    long d4 = S->d / 4 * 4;
    const float *base = S->image + g * S->d;
    for (long j = j0; j < S->d; j++) {
        float acc = 0.0f;
        for (long l = g * S->p; l < (g + 1) * S->p; l++) {
            if (S->valid[l] == 0) continue;
            const float *v[4];
            sample_taps(S, l, base, v);
            float a0 = S->a[0][l], a1 = S->a[1][l], a2 = S->a[2][l], a3 = S->a[3][l];
            if (j < d4) {
                acc = acc + (a0 * v[0][j] + a1 * v[1][j]);
                acc = acc + (a2 * v[2][j] + a3 * v[3][j]);
            } else {
                acc = acc + (((a0 * v[0][j] + a1 * v[1][j]) + a2 * v[2][j]) + a3 * v[3][j]);
            }
        }
        dst[j] = acc;
    }
}

/// Tap t of point l scattered into the value gradient's channels [j0, d) one at a time.
static void scatter_scalar(const pixel_samples *S, long l, const float *g, float *const dv[4], long j0) {
    for (long j = j0; j < S->d; j++)
        for (int t = 0; t < 4; t++) dv[t][j] = dv[t][j] + S->a[t][l] * g[j];
}

#if STM_X86
ATTR512 static void sample512(const pixel_samples *S, long groups, float *dst) {
    long d16 = S->d / 16 * 16, d4 = S->d / 4 * 4;
    for (long g = 0; g < groups; g++) {
        const float *base = S->image + g * S->d;
        float *out = dst + g * S->d;
        for (long j = 0; j < d16; j += 16) {
            __m512 acc = _mm512_setzero_ps();
            for (long l = g * S->p; l < (g + 1) * S->p; l++) {
                if (S->valid[l] == 0) continue;
                const float *v[4];
                sample_taps(S, l, base + j, v);
                __m512 s01 = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(S->a[0][l]), _mm512_loadu_ps(v[0])),
                                           _mm512_mul_ps(_mm512_set1_ps(S->a[1][l]), _mm512_loadu_ps(v[1])));
                acc = _mm512_add_ps(acc, s01);
                __m512 s23 = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(S->a[2][l]), _mm512_loadu_ps(v[2])),
                                           _mm512_mul_ps(_mm512_set1_ps(S->a[3][l]), _mm512_loadu_ps(v[3])));
                acc = _mm512_add_ps(acc, s23);
            }
            _mm512_storeu_ps(out + j, acc);
        }
        for (long j = d16; j < d4; j += 4) {
            __m128 acc = _mm_setzero_ps();
            for (long l = g * S->p; l < (g + 1) * S->p; l++) {
                if (S->valid[l] == 0) continue;
                const float *v[4];
                sample_taps(S, l, base + j, v);
                acc = _mm_add_ps(acc, _mm_add_ps(_mm_mul_ps(_mm_set1_ps(S->a[0][l]), _mm_loadu_ps(v[0])),
                                                 _mm_mul_ps(_mm_set1_ps(S->a[1][l]), _mm_loadu_ps(v[1]))));
                acc = _mm_add_ps(acc, _mm_add_ps(_mm_mul_ps(_mm_set1_ps(S->a[2][l]), _mm_loadu_ps(v[2])),
                                                 _mm_mul_ps(_mm_set1_ps(S->a[3][l]), _mm_loadu_ps(v[3]))));
            }
            _mm_storeu_ps(out + j, acc);
        }
        if (d4 < S->d) sample_scalar(S, g, d4, out);
    }
}

ATTR256 static void sample256(const pixel_samples *S, long groups, float *dst) {
    long d8 = S->d / 8 * 8, d4 = S->d / 4 * 4;
    for (long g = 0; g < groups; g++) {
        const float *base = S->image + g * S->d;
        float *out = dst + g * S->d;
        for (long j = 0; j < d8; j += 8) {
            __m256 acc = _mm256_setzero_ps();
            for (long l = g * S->p; l < (g + 1) * S->p; l++) {
                if (S->valid[l] == 0) continue;
                const float *v[4];
                sample_taps(S, l, base + j, v);
                acc = _mm256_add_ps(acc, _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(S->a[0][l]), _mm256_loadu_ps(v[0])),
                                                       _mm256_mul_ps(_mm256_set1_ps(S->a[1][l]), _mm256_loadu_ps(v[1]))));
                acc = _mm256_add_ps(acc, _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(S->a[2][l]), _mm256_loadu_ps(v[2])),
                                                       _mm256_mul_ps(_mm256_set1_ps(S->a[3][l]), _mm256_loadu_ps(v[3]))));
            }
            _mm256_storeu_ps(out + j, acc);
        }
        for (long j = d8; j < d4; j += 4) {
            __m128 acc = _mm_setzero_ps();
            for (long l = g * S->p; l < (g + 1) * S->p; l++) {
                if (S->valid[l] == 0) continue;
                const float *v[4];
                sample_taps(S, l, base + j, v);
                acc = _mm_add_ps(acc, _mm_add_ps(_mm_mul_ps(_mm_set1_ps(S->a[0][l]), _mm_loadu_ps(v[0])),
                                                 _mm_mul_ps(_mm_set1_ps(S->a[1][l]), _mm_loadu_ps(v[1]))));
                acc = _mm_add_ps(acc, _mm_add_ps(_mm_mul_ps(_mm_set1_ps(S->a[2][l]), _mm_loadu_ps(v[2])),
                                                 _mm_mul_ps(_mm_set1_ps(S->a[3][l]), _mm_loadu_ps(v[3]))));
            }
            _mm_storeu_ps(out + j, acc);
        }
        if (d4 < S->d) sample_scalar(S, g, d4, out);
    }
}

/// Point l's four taps dv[t][j, j + 16) += a_t[l] * gj, taps in order.
ATTR512 static inline void scatter_chunk512(const pixel_samples *S, long l, __m512 gj, float *const dv[4], long j) {
    // The four weights first: a vector store may alias anything, so a load after one is not hoisted.
    __m512 at[4];
    for (int t = 0; t < 4; t++) at[t] = _mm512_set1_ps(S->a[t][l]);
    for (int t = 0; t < 4; t++) _mm512_storeu_ps(dv[t] + j, _mm512_add_ps(_mm512_loadu_ps(dv[t] + j), _mm512_mul_ps(at[t], gj)));
}

/// Point l's four taps dv[t] += a_t[l] * g over the d channels: 16 at a time, then one by one.
ATTR512 static inline void scatter_point512(const pixel_samples *S, long l, const float *g, float *const dv[4]) {
    long d16 = S->d / 16 * 16;
    for (long j = 0; j < d16; j += 16) scatter_chunk512(S, l, _mm512_loadu_ps(g + j), dv, j);
    if (d16 < S->d) scatter_scalar(S, l, g, dv, d16);
}

ATTR512 static void scatter512(const pixel_samples *S, const float *g, float *dst) {
    for (long l = 0; l < S->p; l++) {
        if (S->valid[l] == 0) continue;
        float *dv[4];
        for (int t = 0; t < 4; t++) dv[t] = dst + (long)S->idx[t][l] * S->c;
        scatter_point512(S, l, g, dv);
    }
}

/// scatter_chunk512 for eight channels.
ATTR256 static inline void scatter_chunk256(const pixel_samples *S, long l, __m256 gj, float *const dv[4], long j) {
    __m256 at[4];
    for (int t = 0; t < 4; t++) at[t] = _mm256_set1_ps(S->a[t][l]);
    for (int t = 0; t < 4; t++) _mm256_storeu_ps(dv[t] + j, _mm256_add_ps(_mm256_loadu_ps(dv[t] + j), _mm256_mul_ps(at[t], gj)));
}

/// scatter_point512 eight channels at a time.
ATTR256 static inline void scatter_point256(const pixel_samples *S, long l, const float *g, float *const dv[4]) {
    long d8 = S->d / 8 * 8;
    for (long j = 0; j < d8; j += 8) scatter_chunk256(S, l, _mm256_loadu_ps(g + j), dv, j);
    if (d8 < S->d) scatter_scalar(S, l, g, dv, d8);
}

ATTR256 static void scatter256(const pixel_samples *S, const float *g, float *dst) {
    for (long l = 0; l < S->p; l++) {
        if (S->valid[l] == 0) continue;
        float *dv[4];
        for (int t = 0; t < 4; t++) dv[t] = dst + (long)S->idx[t][l] * S->c;
        scatter_point256(S, l, g, dv);
    }
}
#endif

void stm_sample_pixel(float *dst, const float *image, long c, long d, long p, long groups,
                      const int *i00, const int *i01, const int *i10, const int *i11, const float *valid,
                      const float *a00, const float *a01, const float *a10, const float *a11) {
    const pixel_samples S = {image, c, d, p, {i00, i01, i10, i11}, valid, {a00, a01, a10, a11}};
#if STM_X86
    int kern = stm_gemm_kernel();
    if (kern == STM_GEMM_AVX512) { sample512(&S, groups, dst); return; }
    if (kern == STM_GEMM_AVX2) { sample256(&S, groups, dst); return; }
#endif
    for (long g = 0; g < groups; g++) sample_scalar(&S, g, 0, dst + g * d);
}

void stm_sample_scatter(float *dst, const float *go, long c, long d, long p, long groups,
                        const int *i00, const int *i01, const int *i10, const int *i11, const float *valid,
                        const float *a00, const float *a01, const float *a10, const float *a11) {
    int kern = stm_gemm_kernel();
    // Group by group (a group's scatter meets no other group's channels), its points in order.
    for (long k = 0; k < groups; k++) {
        long l = k * p;
        const pixel_samples S = {NULL, c, d, p, {i00 + l, i01 + l, i10 + l, i11 + l}, valid + l,
                                 {a00 + l, a01 + l, a10 + l, a11 + l}};
        float *dk = dst + k * d;
        const float *gk = go + k * d;
#if STM_X86
        if (kern == STM_GEMM_AVX512) { scatter512(&S, gk, dk); continue; }
        if (kern == STM_GEMM_AVX2) { scatter256(&S, gk, dk); continue; }
#endif
        (void)kern;
        for (long q = 0; q < p; q++) {
            if (S.valid[q] == 0) continue;
            float *dv[4];
            for (int t = 0; t < 4; t++) dv[t] = dk + (long)S.idx[t][q] * c;
            scatter_scalar(&S, q, gk, dv, 0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Both kinds of the backward at one output pixel, point by point: each valid point's four dots
// (stm_point_dots), then its scatter (stm_sample_scatter), while its taps' lines are in cache and its
// indices in registers. The scatter still runs group by group, points and taps in order, and no
// point's dots read what a scatter writes (the value gradient is another tensor): the bits of the
// two calls.

/// One pixel's points, n = groups * p of them, for both kinds at once.
typedef struct {
    pixel_points P;    // dots: go, image, e
    pixel_samples S;   // scatter: idx, valid, a (image unused)
    float *dst;
} pixel_both;

#define BOTH_LOOP(POINT, SCATTER)                                                           \
    for (long l = 0; l < B->P.n; l++) {                                                    \
        float e[4] = {0, 0, 0, 0};                                                          \
        if (B->P.valid[l] != 0) {                                                           \
            const float *v[4];                                                              \
            const float *g = point_taps(&B->P, l, v);                                       \
            POINT(g, v, B->P.d, e);                                                         \
            long gd = (l / B->P.p) * B->P.d;                                                \
            float *dv[4];                                                                   \
            for (int t = 0; t < 4; t++) dv[t] = B->dst + gd + (long)B->S.idx[t][l] * B->P.c; \
            SCATTER(&B->S, l, g, dv);                                                       \
        }                                                                                   \
        point_store(&B->P, l, e);                                                           \
    }

#if STM_X86
/// Four points' partial sums acc[k] (lanes 4t + r) to their dots: the 4 x 4 transpose in each
/// 128-bit block puts lane r of every point in vector r (block t, lane k = point k's tap t), then
/// ((r0 + r1) + r2) + r3, the lane order of point512's sums; block t holds e_t of the four points.
ATTR512 static inline void dots4_store512(const __m512 acc[4], float *const e[4], long l, int m) {
    __m512 r[4] = {acc[0], acc[1], acc[2], acc[3]};
    stm_transpose4_lanes512(r);
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r[0], r[1]), r[2]), r[3]);
    if (m == 4) {
        _mm_storeu_ps(e[0] + l, _mm512_extractf32x4_ps(s, 0));
        _mm_storeu_ps(e[1] + l, _mm512_extractf32x4_ps(s, 1));
        _mm_storeu_ps(e[2] + l, _mm512_extractf32x4_ps(s, 2));
        _mm_storeu_ps(e[3] + l, _mm512_extractf32x4_ps(s, 3));
        return;
    }
    float f[16];
    _mm512_storeu_ps(f, s);
    for (int t = 0; t < 4; t++)
        for (int k = 0; k < m; k++) e[t][l + k] = f[4 * t + k];
}

/// The most points per pixel the D = 16 kernels take: their partial sums wait on the stack (64 bytes
/// a point; the presets have at most 56 groups x 9 points). They also need whole groups (n = G * p,
/// p > 0); anything else takes the general kernels.
#define D16_MAX_POINTS 1024

/// Tap pointers of point l in group slices vg (values) and dg (their gradient).
static inline void taps_d16(const pixel_samples *S, long l, const float *vg, float *dg, const float *v[4], float *dv[4]) {
    for (int t = 0; t < 4; t++) {
        long o = (long)S->idx[t][l] * S->c;
        v[t] = vg + o;
        dv[t] = dg + o;
    }
}

/// both512 for groups of D = 16 channels (every preset's DCNv3). A group's dOut is one vector,
/// loaded once for its points' dots. Four groups' points are interleaved (point q of groups g0..g0+3, then
/// q + 1), four independent scatters side by side instead of one chain after another (a point's taps
/// are mostly the last point's): 8-13 % less time per point in a harness, for reasons not pinned down
/// (see the README, session 25). Each element still gets its adds in the same order (one group per
/// element; its points in order). The points' partial sums wait in accs, and four points' dots are
/// then reduced together.
ATTR512 static void both512_d16(const pixel_both *B) {
    const long n = B->P.n, p = B->P.p, groups = n / p;
    __m512 accs[n + 3];
    for (long g0 = 0; g0 < groups; g0 += 4) {
        const long gs = groups - g0 < 4 ? groups - g0 : 4;
        __m512 gj[4];
        for (long k = 0; k < gs; k++) gj[k] = _mm512_loadu_ps(B->P.go + (g0 + k) * 16);
        for (long q = 0; q < p; q++) {
            for (long k = 0; k < gs; k++) {
                long l = (g0 + k) * p + q;
                accs[l] = _mm512_setzero_ps();
                if (B->P.valid[l] == 0) continue;
                const float *v[4];
                float *dv[4];
                taps_d16(&B->S, l, B->P.image + (g0 + k) * 16, B->dst + (g0 + k) * 16, v, dv);
                accs[l] = chunk512(accs[l], gj[k], v, 0);
                scatter_chunk512(&B->S, l, gj[k], dv, 0);
            }
        }
    }
    for (long l = n; l < n + 3; l++) accs[l] = _mm512_setzero_ps();
    for (long l0 = 0; l0 < n; l0 += 4) dots4_store512(accs + l0, B->P.e, l0, n - l0 < 4 ? (int)(n - l0) : 4);
}

ATTR512 static void both512(const pixel_both *B) { BOTH_LOOP(point512, scatter_point512) }

/// dots4_store512 at 8 lanes: a01[k] holds point k's taps 0 and 1 (lanes 4t + r), a23[k] taps 2 and 3.
ATTR256 static inline void dots4_store256(const __m256 a01[4], const __m256 a23[4], float *const e[4], long l, int m) {
    __m256 s[2];
    for (int h = 0; h < 2; h++) {
        const __m256 *acc = h ? a23 : a01;
        __m256 r[4] = {acc[0], acc[1], acc[2], acc[3]};
        stm_transpose4_lanes256(r);
        s[h] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(r[0], r[1]), r[2]), r[3]);
    }
    if (m == 4) {
        _mm_storeu_ps(e[0] + l, _mm256_castps256_ps128(s[0]));
        _mm_storeu_ps(e[1] + l, _mm256_extractf128_ps(s[0], 1));
        _mm_storeu_ps(e[2] + l, _mm256_castps256_ps128(s[1]));
        _mm_storeu_ps(e[3] + l, _mm256_extractf128_ps(s[1], 1));
        return;
    }
    float f[16];
    _mm256_storeu_ps(f, s[0]);
    _mm256_storeu_ps(f + 8, s[1]);
    for (int t = 0; t < 4; t++)
        for (int k = 0; k < m; k++) e[t][l + k] = f[4 * t + k];
}

/// both512_d16 at 8 lanes: the same interleaving of four groups, the same order of every sum.
ATTR256 static void both256_d16(const pixel_both *B) {
    const long n = B->P.n, p = B->P.p, groups = n / p;
    __m256 a01[n + 3], a23[n + 3];
    for (long g0 = 0; g0 < groups; g0 += 4) {
        const long gs = groups - g0 < 4 ? groups - g0 : 4;
        __m256 gl[4], gh[4];
        for (long k = 0; k < gs; k++) {
            gl[k] = _mm256_loadu_ps(B->P.go + (g0 + k) * 16);
            gh[k] = _mm256_loadu_ps(B->P.go + (g0 + k) * 16 + 8);
        }
        for (long q = 0; q < p; q++) {
            for (long k = 0; k < gs; k++) {
                long l = (g0 + k) * p + q;
                a01[l] = a23[l] = _mm256_setzero_ps();
                if (B->P.valid[l] == 0) continue;
                const float *v[4];
                float *dv[4];
                taps_d16(&B->S, l, B->P.image + (g0 + k) * 16, B->dst + (g0 + k) * 16, v, dv);
                chunk256(&a01[l], &a23[l], gl[k], gh[k], v, 0);
                // scatter_chunk256's adds, but a tap's 16 channels before the next tap's (the
                // chunk-major order of scatter_point256 was 12-14 % slower here; same bits).
                for (int t = 0; t < 4; t++) {
                    __m256 at = _mm256_set1_ps(B->S.a[t][l]);
                    _mm256_storeu_ps(dv[t], _mm256_add_ps(_mm256_loadu_ps(dv[t]), _mm256_mul_ps(at, gl[k])));
                    _mm256_storeu_ps(dv[t] + 8, _mm256_add_ps(_mm256_loadu_ps(dv[t] + 8), _mm256_mul_ps(at, gh[k])));
                }
            }
        }
    }
    for (long l = n; l < n + 3; l++) a01[l] = a23[l] = _mm256_setzero_ps();
    for (long l0 = 0; l0 < n; l0 += 4) dots4_store256(a01 + l0, a23 + l0, B->P.e, l0, n - l0 < 4 ? (int)(n - l0) : 4);
}

ATTR256 static void both256(const pixel_both *B) { BOTH_LOOP(point256, scatter_point256) }
#endif

static inline void point_portable(const float *g, const float *const v[4], long d, float e[4]) {
    float cs[16] = {0};
    dots_finish(g, v, d, 0, cs, e);
}
static inline void scatter_point_portable(const pixel_samples *S, long l, const float *g, float *const dv[4]) {
    scatter_scalar(S, l, g, dv, 0);
}
static void both_portable(const pixel_both *B) { BOTH_LOOP(point_portable, scatter_point_portable) }

void stm_point_dots_scatter(const float *go, const float *image, float *dst, long c, long d, long p, long n,
                            const int *i00, const int *i01, const int *i10, const int *i11, const float *valid,
                            const float *a00, const float *a01, const float *a10, const float *a11,
                            float *e00, float *e01, float *e10, float *e11) {
    const pixel_both B = {{go, image, c, d, p, n, {i00, i01, i10, i11}, valid, {e00, e01, e10, e11}},
                          {NULL, c, d, p, {i00, i01, i10, i11}, valid, {a00, a01, a10, a11}}, dst};
#if STM_X86
    int kern = stm_gemm_kernel();
    if (kern == STM_GEMM_AVX512) {
        if (d == 16 && p > 0 && n % p == 0 && n <= D16_MAX_POINTS) both512_d16(&B); else both512(&B);
        return;
    }
    if (kern == STM_GEMM_AVX2) {
        if (d == 16 && p > 0 && n % p == 0 && n <= D16_MAX_POINTS) both256_d16(&B); else both256(&B);
        return;
    }
#endif
    both_portable(&B);
}
