// CGemm, private: square transposes in vector registers, shared by the packings (gemm.c, memory to
// memory) and the kernels that sum rows one per lane (elementwise.c). Data movement only.
// x[c], lane r <- x[r], lane c: pairs of rows interleaved, then 4 x 4 blocks completed within each
// 128-bit lane, then the lanes gathered across vectors (AVX-512: two rounds of 128-bit shuffles, 64
// shuffles for 256 values, where four 8 x 8 blocks take 96; AVX2: one 128-bit lane permute).
#ifndef STM_TRANSPOSE_REGS_H
#define STM_TRANSPOSE_REGS_H
#if defined(__x86_64__)
#include <immintrin.h>

/// A 4 x 4 transpose within every 128-bit lane: lane L of x[e], element r <- lane L of x[r], element
/// e (pairs interleaved, then halves gathered). The first step of the square transposes below, and
/// on its own how deformable sampling's dots reduce four points' sums together (sampling.c).
__attribute__((target("avx512f"))) static inline void stm_transpose4_lanes512(__m512 x[4]) {
    __m512 t0 = _mm512_unpacklo_ps(x[0], x[1]), t1 = _mm512_unpackhi_ps(x[0], x[1]);
    __m512 t2 = _mm512_unpacklo_ps(x[2], x[3]), t3 = _mm512_unpackhi_ps(x[2], x[3]);
    x[0] = _mm512_shuffle_ps(t0, t2, 0x44);
    x[1] = _mm512_shuffle_ps(t0, t2, 0xEE);
    x[2] = _mm512_shuffle_ps(t1, t3, 0x44);
    x[3] = _mm512_shuffle_ps(t1, t3, 0xEE);
}

__attribute__((target("avx2"))) static inline void stm_transpose4_lanes256(__m256 x[4]) {
    __m256 t0 = _mm256_unpacklo_ps(x[0], x[1]), t1 = _mm256_unpackhi_ps(x[0], x[1]);
    __m256 t2 = _mm256_unpacklo_ps(x[2], x[3]), t3 = _mm256_unpackhi_ps(x[2], x[3]);
    x[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    x[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    x[2] = _mm256_shuffle_ps(t1, t3, 0x44);
    x[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

__attribute__((target("avx512f"))) static inline void stm_transpose16_regs(__m512 x[16]) {
    // x[4g + e], lane L: column 4L + e of rows 4g ..< 4g + 4.
    for (int g = 0; g < 16; g += 4) stm_transpose4_lanes512(x + g);
    // Column 4L + e: lane L of x[e], x[4 + e], x[8 + e], x[12 + e].
    for (int e = 0; e < 4; e++) {
        __m512 w0 = _mm512_shuffle_f32x4(x[e], x[4 + e], 0x44);   // x[e].L0 L1, x[4+e].L0 L1
        __m512 w1 = _mm512_shuffle_f32x4(x[e], x[4 + e], 0xEE);   // x[e].L2 L3, x[4+e].L2 L3
        __m512 w2 = _mm512_shuffle_f32x4(x[8 + e], x[12 + e], 0x44);
        __m512 w3 = _mm512_shuffle_f32x4(x[8 + e], x[12 + e], 0xEE);
        x[0 + e] = _mm512_shuffle_f32x4(w0, w2, 0x88);
        x[4 + e] = _mm512_shuffle_f32x4(w0, w2, 0xDD);
        x[8 + e] = _mm512_shuffle_f32x4(w1, w3, 0x88);
        x[12 + e] = _mm512_shuffle_f32x4(w1, w3, 0xDD);
    }
}

__attribute__((target("avx2"))) static inline void stm_transpose8_regs(__m256 x[8]) {
    stm_transpose4_lanes256(x);
    stm_transpose4_lanes256(x + 4);
    for (int i = 0; i < 4; i++) {
        __m256 lo = x[i], hi = x[i + 4];
        x[i] = _mm256_permute2f128_ps(lo, hi, 0x20);
        x[i + 4] = _mm256_permute2f128_ps(lo, hi, 0x31);
    }
}

#endif
#endif
