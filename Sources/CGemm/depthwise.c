// CGemm, depth-wise part: one output vector of a depth-wise convolution (forward or input gradient)
// from a list of taps, with the operation sequence of TensorCore's Swift definition
// (`referenceDepthwiseTaps`): per channel, acc = bias (or +0), then for each tap in list order
// acc = acc + w * x, the product and the sum each rounded (no contraction: -ffp-contract=off).
// Several channel blocks are accumulated at once, so their chains run side by side instead of one
// dependent add after another (the Swift version summed one 16-channel block through all taps at
// a time, bound by the add's latency). Any ISA gives the same bits.
//
// Shape key: C channels, T taps.
#include "stm_elementwise.h"
#include "stm_gemm.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define STM_X86 1
#else
#define STM_X86 0
#endif

// `off` shifts every source (and the caller's dst) by a whole number of vectors: pixel p of a run.
static long taps_scalar(float *dst, const float *bias, long c0, long c, int ntaps, const float *const *src,
                        const float *w, const int *tap, long off) {
    for (long ch = c0; ch < c; ch++) {
        float acc = bias ? bias[ch] : 0.0f;
        for (int t = 0; t < ntaps; t++) acc = acc + w[(long)tap[t] * c + ch] * src[t][off + ch];
        dst[ch] = acc;
    }
    return c;
}

#if STM_X86
// One pass through the taps for each block of NV vectors of channels (NV accumulators kept in
// registers: the arrays are unrolled in full), for blocks of eight, four, two and one vectors.
#define DW_BLOCKS(NV, VEC, LANES, LOAD, STORE, SET0, MUL, ADD)                                     \
    for (; ch + NV * LANES <= c; ch += NV * LANES) {                                               \
        VEC a[NV];                                                                                 \
        _Pragma("clang loop unroll(full)")                                                         \
        for (int v = 0; v < NV; v++) a[v] = bias ? LOAD(bias + ch + v * LANES) : SET0();           \
        for (int t = 0; t < ntaps; t++) {                                                          \
            const float *x = src[t] + ch, *wt = w + (long)tap[t] * c + ch;                         \
            _Pragma("clang loop unroll(full)")                                                     \
            for (int v = 0; v < NV; v++) a[v] = ADD(a[v], MUL(LOAD(wt + v * LANES), LOAD(x + v * LANES))); \
        }                                                                                          \
        _Pragma("clang loop unroll(full)")                                                         \
        for (int v = 0; v < NV; v++) STORE(dst + ch + v * LANES, a[v]);                            \
    }
// Four pixels (outputs p = 0..3 at dst + p * c, sources + p * c) for each block of NV vectors of
// channels: 4 * NV accumulators, each weight vector loaded once per tap for all four pixels (the
// single-pixel blocks load a weight and a source for every product, and the loads are the limit).
#define DW_RUN_BLOCKS(NV, VEC, LANES, LOAD, STORE, SET0, MUL, ADD)                                 \
    for (; ch + NV * LANES <= c; ch += NV * LANES) {                                               \
        VEC a[4][NV];                                                                              \
        _Pragma("clang loop unroll(full)")                                                         \
        for (int p = 0; p < 4; p++)                                                                \
            _Pragma("clang loop unroll(full)")                                                     \
            for (int v = 0; v < NV; v++) a[p][v] = bias ? LOAD(bias + ch + v * LANES) : SET0();    \
        for (int t = 0; t < ntaps; t++) {                                                          \
            const float *x = src[t] + ch, *wt = w + (long)tap[t] * c + ch;                         \
            _Pragma("clang loop unroll(full)")                                                     \
            for (int v = 0; v < NV; v++) {                                                         \
                VEC wv = LOAD(wt + v * LANES);                                                     \
                _Pragma("clang loop unroll(full)")                                                 \
                for (int p = 0; p < 4; p++) a[p][v] = ADD(a[p][v], MUL(wv, LOAD(x + p * c + v * LANES))); \
            }                                                                                      \
        }                                                                                          \
        _Pragma("clang loop unroll(full)")                                                         \
        for (int p = 0; p < 4; p++)                                                                \
            _Pragma("clang loop unroll(full)")                                                     \
            for (int v = 0; v < NV; v++) STORE(dst + p * c + ch + v * LANES, a[p][v]);             \
    }
#define DW_RUN_BODY(...)                                                                           \
    long ch = 0;                                                                                   \
    DW_RUN_BLOCKS(2, __VA_ARGS__) DW_RUN_BLOCKS(1, __VA_ARGS__)                                    \
    return ch;

#define DW_BODY(...)                                                                               \
    long ch = 0;                                                                                   \
    DW_BLOCKS(8, __VA_ARGS__) DW_BLOCKS(4, __VA_ARGS__) DW_BLOCKS(2, __VA_ARGS__) DW_BLOCKS(1, __VA_ARGS__) \
    return ch;

__attribute__((target("avx512f")))
static long taps512(float *dst, const float *bias, long c, int ntaps, const float *const *src, const float *w, const int *tap) {
    DW_BODY(__m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_setzero_ps, _mm512_mul_ps, _mm512_add_ps)
}

__attribute__((target("avx512f")))
static long run512(float *dst, const float *bias, long c, int ntaps, const float *const *src, const float *w, const int *tap) {
    DW_RUN_BODY(__m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_setzero_ps, _mm512_mul_ps, _mm512_add_ps)
}

__attribute__((target("avx2")))
static long run256(float *dst, const float *bias, long c, int ntaps, const float *const *src, const float *w, const int *tap) {
    DW_RUN_BODY(__m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_setzero_ps, _mm256_mul_ps, _mm256_add_ps)
}

__attribute__((target("avx2")))
static long taps256(float *dst, const float *bias, long c, int ntaps, const float *const *src, const float *w, const int *tap) {
    DW_BODY(__m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_setzero_ps, _mm256_mul_ps, _mm256_add_ps)
}
#endif

void stm_depthwise_taps(float *dst, const float *bias, long c, int ntaps, const float *const *src,
                        const float *w, const int *tap) {
    long done = 0;
#if STM_X86
    int k = stm_gemm_kernel();
    if (k == STM_GEMM_AVX512) done = taps512(dst, bias, c, ntaps, src, w, tap);
    else if (k == STM_GEMM_AVX2) done = taps256(dst, bias, c, ntaps, src, w, tap);
#endif
    taps_scalar(dst, bias, done, c, ntaps, src, w, tap, 0);
}

void stm_depthwise_taps_run(float *dst, const float *bias, long c, int ntaps, const float *const *src,
                            const float *w, const int *tap, int npix) {
    const float *shifted[ntaps > 0 ? ntaps : 1];
#if STM_X86
    int k = stm_gemm_kernel();
#endif
    for (int p = 0; p < npix;) {
        const float *const *s = src;
        if (p > 0) {
            for (int t = 0; t < ntaps; t++) shifted[t] = src[t] + (long)p * c;
            s = shifted;
        }
        float *d = dst + (long)p * c;
#if STM_X86
        if (npix - p >= 4 && k >= STM_GEMM_AVX2) {
            long done = k == STM_GEMM_AVX512 ? run512(d, bias, c, ntaps, s, w, tap) : run256(d, bias, c, ntaps, s, w, tap);
            for (int q = 0; q < 4; q++) taps_scalar(d + q * c, bias, done, c, ntaps, s, w, tap, q * c);
            p += 4;
            continue;
        }
#endif
        stm_depthwise_taps(d, bias, c, ntaps, s, w, tap);  // fewer than four left, or the portable kernel
        p += 1;
    }
}
