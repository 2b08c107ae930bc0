// CGemm, private: square transposes in vector registers, shared by the packings (gemm.c, memory to
// memory) and the kernels that sum rows one per lane (elementwise.c). Data movement only.
// x[c], lane r <- x[r], lane c: pairs of rows interleaved, then 4 x 4 blocks completed within each
// 128-bit lane, then the lanes gathered across vectors (AVX-512: two rounds of 128-bit shuffles, 64
// shuffles for 256 values, where four 8 x 8 blocks take 96; AVX2: one 128-bit lane permute).
#ifndef STM_TRANSPOSE_REGS_H
#define STM_TRANSPOSE_REGS_H
#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f"))) static inline void stm_transpose16_regs(__m512 x[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(x[i], x[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(x[i], x[i + 1]);
    }
    // u[4g + e], lane L: column 4L + e of rows 4g ..< 4g + 4.
    for (int g = 0; g < 16; g += 4) {
        u[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
        u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xEE);
        u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    // Column 4L + e: lane L of u[e], u[4 + e], u[8 + e], u[12 + e].
    for (int e = 0; e < 4; e++) {
        __m512 w0 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x44);   // u[e].L0 L1, u[4+e].L0 L1
        __m512 w1 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xEE);   // u[e].L2 L3, u[4+e].L2 L3
        __m512 w2 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x44);
        __m512 w3 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xEE);
        x[0 + e] = _mm512_shuffle_f32x4(w0, w2, 0x88);
        x[4 + e] = _mm512_shuffle_f32x4(w0, w2, 0xDD);
        x[8 + e] = _mm512_shuffle_f32x4(w1, w3, 0x88);
        x[12 + e] = _mm512_shuffle_f32x4(w1, w3, 0xDD);
    }
}

__attribute__((target("avx2"))) static inline void stm_transpose8_regs(__m256 x[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(x[i], x[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(x[i], x[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        x[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        x[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

#endif
#endif
