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

static long taps_scalar(float *dst, const float *bias, long c0, long c, int ntaps, const float *const *src,
                        const float *w, const int *tap) {
    for (long ch = c0; ch < c; ch++) {
        float acc = bias ? bias[ch] : 0.0f;
        for (int t = 0; t < ntaps; t++) acc = acc + w[(long)tap[t] * c + ch] * src[t][ch];
        dst[ch] = acc;
    }
    return c;
}

#if STM_X86
// Blocks of eight, four, two and one vectors of channels, each one pass through the taps.
#define DW_BODY(VEC, LANES, LOAD, STORE, SET0, MUL, ADD)                                            \
    long ch = 0;                                                                                   \
    for (; ch + 8 * LANES <= c; ch += 8 * LANES) {                                                 \
        VEC a0, a1, a2, a3, a4, a5, a6, a7;                                                        \
        if (bias) {                                                                                \
            a0 = LOAD(bias + ch); a1 = LOAD(bias + ch + LANES); a2 = LOAD(bias + ch + 2 * LANES);  \
            a3 = LOAD(bias + ch + 3 * LANES); a4 = LOAD(bias + ch + 4 * LANES);                    \
            a5 = LOAD(bias + ch + 5 * LANES); a6 = LOAD(bias + ch + 6 * LANES);                    \
            a7 = LOAD(bias + ch + 7 * LANES);                                                      \
        } else { a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = SET0(); }                                 \
        for (int t = 0; t < ntaps; t++) {                                                          \
            const float *x = src[t] + ch, *wt = w + (long)tap[t] * c + ch;                         \
            a0 = ADD(a0, MUL(LOAD(wt), LOAD(x)));                                                  \
            a1 = ADD(a1, MUL(LOAD(wt + LANES), LOAD(x + LANES)));                                  \
            a2 = ADD(a2, MUL(LOAD(wt + 2 * LANES), LOAD(x + 2 * LANES)));                          \
            a3 = ADD(a3, MUL(LOAD(wt + 3 * LANES), LOAD(x + 3 * LANES)));                          \
            a4 = ADD(a4, MUL(LOAD(wt + 4 * LANES), LOAD(x + 4 * LANES)));                          \
            a5 = ADD(a5, MUL(LOAD(wt + 5 * LANES), LOAD(x + 5 * LANES)));                          \
            a6 = ADD(a6, MUL(LOAD(wt + 6 * LANES), LOAD(x + 6 * LANES)));                          \
            a7 = ADD(a7, MUL(LOAD(wt + 7 * LANES), LOAD(x + 7 * LANES)));                          \
        }                                                                                          \
        STORE(dst + ch, a0); STORE(dst + ch + LANES, a1); STORE(dst + ch + 2 * LANES, a2);         \
        STORE(dst + ch + 3 * LANES, a3); STORE(dst + ch + 4 * LANES, a4);                          \
        STORE(dst + ch + 5 * LANES, a5); STORE(dst + ch + 6 * LANES, a6);                          \
        STORE(dst + ch + 7 * LANES, a7);                                                           \
    }                                                                                              \
    for (; ch + 4 * LANES <= c; ch += 4 * LANES) {                                                 \
        VEC a0, a1, a2, a3;                                                                        \
        if (bias) {                                                                                \
            a0 = LOAD(bias + ch); a1 = LOAD(bias + ch + LANES);                                    \
            a2 = LOAD(bias + ch + 2 * LANES); a3 = LOAD(bias + ch + 3 * LANES);                    \
        } else { a0 = a1 = a2 = a3 = SET0(); }                                                     \
        for (int t = 0; t < ntaps; t++) {                                                          \
            const float *x = src[t] + ch, *wt = w + (long)tap[t] * c + ch;                         \
            a0 = ADD(a0, MUL(LOAD(wt), LOAD(x)));                                                  \
            a1 = ADD(a1, MUL(LOAD(wt + LANES), LOAD(x + LANES)));                                  \
            a2 = ADD(a2, MUL(LOAD(wt + 2 * LANES), LOAD(x + 2 * LANES)));                          \
            a3 = ADD(a3, MUL(LOAD(wt + 3 * LANES), LOAD(x + 3 * LANES)));                          \
        }                                                                                          \
        STORE(dst + ch, a0); STORE(dst + ch + LANES, a1);                                          \
        STORE(dst + ch + 2 * LANES, a2); STORE(dst + ch + 3 * LANES, a3);                          \
    }                                                                                              \
    for (; ch + 2 * LANES <= c; ch += 2 * LANES) {                                                 \
        VEC a0 = bias ? LOAD(bias + ch) : SET0(), a1 = bias ? LOAD(bias + ch + LANES) : SET0();    \
        for (int t = 0; t < ntaps; t++) {                                                          \
            const float *x = src[t] + ch, *wt = w + (long)tap[t] * c + ch;                         \
            a0 = ADD(a0, MUL(LOAD(wt), LOAD(x)));                                                  \
            a1 = ADD(a1, MUL(LOAD(wt + LANES), LOAD(x + LANES)));                                  \
        }                                                                                          \
        STORE(dst + ch, a0); STORE(dst + ch + LANES, a1);                                          \
    }                                                                                              \
    for (; ch + LANES <= c; ch += LANES) {                                                         \
        VEC a0 = bias ? LOAD(bias + ch) : SET0();                                                  \
        for (int t = 0; t < ntaps; t++)                                                            \
            a0 = ADD(a0, MUL(LOAD(w + (long)tap[t] * c + ch), LOAD(src[t] + ch)));                 \
        STORE(dst + ch, a0);                                                                       \
    }                                                                                              \
    return ch;

__attribute__((target("avx512f")))
static long taps512(float *dst, const float *bias, long c, int ntaps, const float *const *src, const float *w, const int *tap) {
    DW_BODY(__m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_setzero_ps, _mm512_mul_ps, _mm512_add_ps)
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
    taps_scalar(dst, bias, done, c, ntaps, src, w, tap);
}
