// CGemm: the packed, blocked single-precision GEMM of TensorCore. See include/stm_gemm.h for the
// contract (one FMA chain per element of C, k in order, the same bits on every kernel and split).
//
// Structure (after BLIS/GotoBLAS): op(B) is packed once per call, or once per model for weights,
// into NR-wide column slivers that run the whole of K; C is cut into blocks of MC rows x a multiple
// of NR columns (boundaries from M, N and K only), one pool chunk each; a chunk packs its rows of
// op(A) into MR-row slivers, KC values of k at a time, and runs the register-tiled micro-kernel on
// every MR x NR tile (sliver by sliver; row by row when K is short), continuing each tile's chains
// through C from one KC block to the next.
// Edge tiles run an edge kernel on their own rows and columns only (masked loads and stores; the
// portable kernel runs its micro-kernel on a zero-padded copy instead). A B that is the transpose
// of a packed weight (a backward product) is repacked whole before the blocks run, or, when C has
// at most SMALL_M_REPACK rows, by blocks of columns that each repack their own slivers into cache.
//
// Shape key: M, N, K as in the header; MR x NR the register tile; KC the k-block; MC the rows of a
// chunk. Leaves out: weight gradients' special forms (callers transpose), complex and double types.
#include "stm_gemm.h"
#include "stm_pool.h"
#include "transpose_regs.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define STM_X86 1
#else
#define STM_X86 0
#endif

/// One k-block of one MR x NR tile at `c` (row stride ldc): load != 0 continues the chains from the
/// values in c, else from +0; last != 0 applies the epilogue (alpha, beta with c's values as C_old,
/// which the driver only asks for when load == 0, and bias [NR]) before storing.
typedef void (*micro_fn)(long kc, const float *ap, const float *bp, float *c, long ldc,
                         int load, int last, float alpha, float beta, const float *bias);

/// The same, reading op(A) straight from row-major A (row i at a + i * lda, k in order) instead of a
/// packed sliver: products whose A is not transposed skip packing it. Same arithmetic, same bits.
typedef void (*micro_direct_fn)(long kc, const float *a, long lda, const float *bp, float *c, long ldc,
                                int load, int last, float alpha, float beta, const float *bias);

/// An edge tile of a fixed number of rows (entry r - 1 of a kernel's `edge` table takes r <= MR rows):
/// the same arithmetic on those rows and `cols` <= NR columns only, op(A)[i, p] at a[i * rs + p * cs]
/// (packed or in place), C's other rows and columns neither read nor written.
typedef void (*edge_fn)(int cols, long kc, const float *a, long rs, long cs, const float *bp, float *c,
                        long ldc, int load, int last, float alpha, float beta, const float *bias);

typedef struct {
    int mr, nr;   // register tile
    long kc, mc;  // k-block and rows of a chunk (a multiple of mr)
    micro_fn micro;
    micro_direct_fn direct;  // NULL: always pack A
    const edge_fn *edge;     // [mr], by rows; NULL: edge tiles run `micro` on a zero-padded copy
} kernel_t;

// ---------------------------------------------------------------------------------------------
// Micro-kernels. Each element's arithmetic is the header's scalar formula, lane for lane.

#define P_MR 4
#define P_NR 8
static void micro_portable(long kc, const float *ap, const float *bp, float *c, long ldc,
                           int load, int last, float alpha, float beta, const float *bias) {
    float acc[P_MR][P_NR];
    for (int i = 0; i < P_MR; i++)
        for (int j = 0; j < P_NR; j++) acc[i][j] = load ? c[i * ldc + j] : 0.0f;
    for (long p = 0; p < kc; p++) {
        const float *a = ap + p * P_MR, *b = bp + p * P_NR;
        for (int i = 0; i < P_MR; i++)
            for (int j = 0; j < P_NR; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    for (int i = 0; i < P_MR; i++)
        for (int j = 0; j < P_NR; j++) {
            float t = acc[i][j];
            if (last) {
                if (alpha != 1.0f) t = alpha * t;
                if (beta != 0.0f) t = fmaf(beta, c[i * ldc + j], t);
                if (bias) t = t + bias[j];
            }
            c[i * ldc + j] = t;
        }
}

#if STM_X86
#define A2_MR 6
#define A2_NR 16
__attribute__((target("avx2,fma")))
/// One tile; op(A)[i, p] is a[i * rs + p * cs] (a packed sliver: rs = 1, cs = MR; A in place:
/// rs = lda, cs = 1). Always inlined into the two entry points below, so each is specialised.
static inline __attribute__((always_inline)) void micro_avx2_body(long kc, const float *a, long rs, long cs, const float *bp,
        float *c, long ldc, int load, int last, float alpha, float beta, const float *bias) {
    __m256 acc[A2_MR][2];
    // A tile that starts from +0 is only written, at the end: ask for its lines now, so the stores
    // do not wait for them (a short K, such as stage 1's 96, left about a sixth of the time there).
#pragma clang loop unroll(full)
    for (int i = 0; i < A2_MR && !load; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + A2_NR - 1), _MM_HINT_T0);
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < A2_MR; i++) {
        acc[i][0] = load ? _mm256_loadu_ps(c + i * ldc) : _mm256_setzero_ps();
        acc[i][1] = load ? _mm256_loadu_ps(c + i * ldc + 8) : _mm256_setzero_ps();
    }
    for (long p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
#pragma clang loop unroll(full)
        for (int i = 0; i < A2_MR; i++) {
            __m256 av = _mm256_broadcast_ss(a + i * rs);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
        a += cs;
        bp += A2_NR;
    }
    if (last) {
        __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
        __m256 bias0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
        __m256 bias1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
#pragma clang loop unroll(full)
        for (int i = 0; i < A2_MR; i++) {
            if (alpha != 1.0f) { acc[i][0] = _mm256_mul_ps(va, acc[i][0]); acc[i][1] = _mm256_mul_ps(va, acc[i][1]); }
            if (beta != 0.0f) {
                acc[i][0] = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + i * ldc), acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + i * ldc + 8), acc[i][1]);
            }
            if (bias) { acc[i][0] = _mm256_add_ps(acc[i][0], bias0); acc[i][1] = _mm256_add_ps(acc[i][1], bias1); }
        }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < A2_MR; i++) {
        _mm256_storeu_ps(c + i * ldc, acc[i][0]);
        _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
    }
}
__attribute__((target("avx2,fma")))
static void micro_avx2(long kc, const float *ap, const float *bp, float *c, long ldc,
                       int load, int last, float alpha, float beta, const float *bias) {
    micro_avx2_body(kc, ap, 1, A2_MR, bp, c, ldc, load, last, alpha, beta, bias);
}
__attribute__((target("avx2,fma")))
static void micro_avx2_direct(long kc, const float *a, long lda, const float *bp, float *c, long ldc,
                       int load, int last, float alpha, float beta, const float *bias) {
    micro_avx2_body(kc, a, lda, 1, bp, c, ldc, load, last, alpha, beta, bias);
}

/// The AVX2 edge tile: `R` rows (a constant in each specialisation) and H 8-column halves, the last
/// one masked to `cols`; lanes past `cols` are computed from the sliver's zero padding and never
/// stored. Each stored value is the full tile's chain, so the same bits.
__attribute__((target("avx2,fma")))
static inline __attribute__((always_inline)) void edge_avx2_body(const int R, const int H, int cols, long kc,
        const float *a, long rs, long cs, const float *bp, float *c, long ldc, int load, int last,
        float alpha, float beta, const float *bias) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i mk[2];
    mk[0] = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
    mk[1] = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
    __m256 acc[A2_MR][2];
#pragma clang loop unroll(full)
    for (int i = 0; i < R; i++)
#pragma clang loop unroll(full)
        for (int h = 0; h < H; h++)
            acc[i][h] = load ? _mm256_maskload_ps(c + i * ldc + 8 * h, mk[h]) : _mm256_setzero_ps();
    for (long p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(bp), b1 = H > 1 ? _mm256_load_ps(bp + 8) : b0;
#pragma clang loop unroll(full)
        for (int i = 0; i < R; i++) {
            __m256 av = _mm256_broadcast_ss(a + i * rs);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            if (H > 1) acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
        a += cs;
        bp += A2_NR;
    }
    if (last) {
        __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
        __m256 bv[2];
#pragma clang loop unroll(full)
        for (int h = 0; h < H; h++) bv[h] = bias ? _mm256_maskload_ps(bias + 8 * h, mk[h]) : _mm256_setzero_ps();
#pragma clang loop unroll(full)
        for (int i = 0; i < R; i++)
#pragma clang loop unroll(full)
            for (int h = 0; h < H; h++) {
                if (alpha != 1.0f) acc[i][h] = _mm256_mul_ps(va, acc[i][h]);
                if (beta != 0.0f) acc[i][h] = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c + i * ldc + 8 * h, mk[h]), acc[i][h]);
                if (bias) acc[i][h] = _mm256_add_ps(acc[i][h], bv[h]);
            }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < R; i++)
#pragma clang loop unroll(full)
        for (int h = 0; h < H; h++) _mm256_maskstore_ps(c + i * ldc + 8 * h, mk[h], acc[i][h]);
}
#define EDGE_AVX2(R)                                                                                      \
    __attribute__((target("avx2,fma"))) static void edge_avx2_##R(int cols, long kc, const float *a,    \
            long rs, long cs, const float *bp, float *c, long ldc, int load, int last, float alpha,     \
            float beta, const float *bias) {                                                            \
        if (cols > 8) edge_avx2_body(R, 2, cols, kc, a, rs, cs, bp, c, ldc, load, last, alpha, beta, bias); \
        else edge_avx2_body(R, 1, cols, kc, a, rs, cs, bp, c, ldc, load, last, alpha, beta, bias);          \
    }
EDGE_AVX2(1) EDGE_AVX2(2) EDGE_AVX2(3) EDGE_AVX2(4) EDGE_AVX2(5) EDGE_AVX2(6)
static const edge_fn edge_avx2[A2_MR] = {edge_avx2_1, edge_avx2_2, edge_avx2_3, edge_avx2_4, edge_avx2_5, edge_avx2_6};

#define A5_MR 8
#define A5_NR 32
__attribute__((target("avx512f")))
/// One tile; op(A)[i, p] is a[i * rs + p * cs] (a packed sliver: rs = 1, cs = MR; A in place:
/// rs = lda, cs = 1). Always inlined into the two entry points below, so each is specialised.
static inline __attribute__((always_inline)) void micro_avx512_body(long kc, const float *a, long rs, long cs, const float *bp,
        float *c, long ldc, int load, int last, float alpha, float beta, const float *bias) {
    __m512 acc[A5_MR][2];
    // As in the AVX2 kernel: a tile that starts from +0 asks for its lines before the k loop.
#pragma clang loop unroll(full)
    for (int i = 0; i < A5_MR && !load; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + A5_NR - 1), _MM_HINT_T0);
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < A5_MR; i++) {
        acc[i][0] = load ? _mm512_loadu_ps(c + i * ldc) : _mm512_setzero_ps();
        acc[i][1] = load ? _mm512_loadu_ps(c + i * ldc + 16) : _mm512_setzero_ps();
    }
    for (long p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma clang loop unroll(full)
        for (int i = 0; i < A5_MR; i++) {
            __m512 av = _mm512_set1_ps(a[i * rs]);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
        a += cs;
        bp += A5_NR;
    }
    if (last) {
        __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
        __m512 bias0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
        __m512 bias1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
        for (int i = 0; i < A5_MR; i++) {
            if (alpha != 1.0f) { acc[i][0] = _mm512_mul_ps(va, acc[i][0]); acc[i][1] = _mm512_mul_ps(va, acc[i][1]); }
            if (beta != 0.0f) {
                acc[i][0] = _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + i * ldc), acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + i * ldc + 16), acc[i][1]);
            }
            if (bias) { acc[i][0] = _mm512_add_ps(acc[i][0], bias0); acc[i][1] = _mm512_add_ps(acc[i][1], bias1); }
        }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < A5_MR; i++) {
        _mm512_storeu_ps(c + i * ldc, acc[i][0]);
        _mm512_storeu_ps(c + i * ldc + 16, acc[i][1]);
    }
}
__attribute__((target("avx512f")))
static void micro_avx512(long kc, const float *ap, const float *bp, float *c, long ldc,
                       int load, int last, float alpha, float beta, const float *bias) {
    micro_avx512_body(kc, ap, 1, A5_MR, bp, c, ldc, load, last, alpha, beta, bias);
}
__attribute__((target("avx512f")))
static void micro_avx512_direct(long kc, const float *a, long lda, const float *bp, float *c, long ldc,
                       int load, int last, float alpha, float beta, const float *bias) {
    micro_avx512_body(kc, a, lda, 1, bp, c, ldc, load, last, alpha, beta, bias);
}


#endif

#if STM_X86
/// The AVX-512 edge tile: `R` rows and H 16-column halves, the last masked to `cols`, as above.
__attribute__((target("avx512f")))
static inline __attribute__((always_inline)) void edge_avx512_body(const int R, const int H, int cols, long kc,
        const float *a, long rs, long cs, const float *bp, float *c, long ldc, int load, int last,
        float alpha, float beta, const float *bias) {
    __mmask16 mk[2];
    mk[0] = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
    mk[1] = cols >= 32 ? (__mmask16)0xFFFF : cols <= 16 ? (__mmask16)0 : (__mmask16)((1u << (cols - 16)) - 1);
    __m512 acc[A5_MR][2];
#pragma clang loop unroll(full)
    for (int i = 0; i < R; i++)
#pragma clang loop unroll(full)
        for (int h = 0; h < H; h++)
            acc[i][h] = load ? _mm512_maskz_loadu_ps(mk[h], c + i * ldc + 16 * h) : _mm512_setzero_ps();
    for (long p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(bp), b1 = H > 1 ? _mm512_load_ps(bp + 16) : b0;
#pragma clang loop unroll(full)
        for (int i = 0; i < R; i++) {
            __m512 av = _mm512_set1_ps(a[i * rs]);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            if (H > 1) acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
        a += cs;
        bp += A5_NR;
    }
    if (last) {
        __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
        __m512 bv[2];
#pragma clang loop unroll(full)
        for (int h = 0; h < H; h++) bv[h] = bias ? _mm512_maskz_loadu_ps(mk[h], bias + 16 * h) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
        for (int i = 0; i < R; i++)
#pragma clang loop unroll(full)
            for (int h = 0; h < H; h++) {
                if (alpha != 1.0f) acc[i][h] = _mm512_mul_ps(va, acc[i][h]);
                if (beta != 0.0f) acc[i][h] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk[h], c + i * ldc + 16 * h), acc[i][h]);
                if (bias) acc[i][h] = _mm512_add_ps(acc[i][h], bv[h]);
            }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < R; i++)
#pragma clang loop unroll(full)
        for (int h = 0; h < H; h++) _mm512_mask_storeu_ps(c + i * ldc + 16 * h, mk[h], acc[i][h]);
}
#define EDGE_AVX512(R)                                                                                    \
    __attribute__((target("avx512f"))) static void edge_avx512_##R(int cols, long kc, const float *a,   \
            long rs, long cs, const float *bp, float *c, long ldc, int load, int last, float alpha,     \
            float beta, const float *bias) {                                                            \
        if (cols > 16) edge_avx512_body(R, 2, cols, kc, a, rs, cs, bp, c, ldc, load, last, alpha, beta, bias); \
        else edge_avx512_body(R, 1, cols, kc, a, rs, cs, bp, c, ldc, load, last, alpha, beta, bias);          \
    }
EDGE_AVX512(1) EDGE_AVX512(2) EDGE_AVX512(3) EDGE_AVX512(4) EDGE_AVX512(5) EDGE_AVX512(6) EDGE_AVX512(7) EDGE_AVX512(8)
static const edge_fn edge_avx512[A5_MR] = {edge_avx512_1, edge_avx512_2, edge_avx512_3, edge_avx512_4,
                                           edge_avx512_5, edge_avx512_6, edge_avx512_7, edge_avx512_8};
#endif

static const kernel_t kernels[3] = {
    {P_MR, P_NR, 256, 64, micro_portable, NULL, NULL},
#if STM_X86
    {A2_MR, A2_NR, 256, 96, micro_avx2, micro_avx2_direct, edge_avx2},
    {A5_MR, A5_NR, 192, 96, micro_avx512, micro_avx512_direct, edge_avx512},
#else
    {P_MR, P_NR, 256, 64, micro_portable, NULL, NULL},
    {P_MR, P_NR, 256, 64, micro_portable, NULL, NULL},
#endif
};
// The largest register tile of the kernels above: the size of run_tile's edge-tile buffer, so a
// kernel with a larger tile must raise it (a 12 x 32 AVX-512 tile tried without doing so overran it).
#define MAX_MR 8
#define MAX_NR 32
_Static_assert(P_MR <= MAX_MR && P_NR <= MAX_NR, "portable tile larger than MAX_MR x MAX_NR");
#if STM_X86
_Static_assert(A2_MR <= MAX_MR && A2_NR <= MAX_NR && A5_MR <= MAX_MR && A5_NR <= MAX_NR,
               "x86 tile larger than MAX_MR x MAX_NR");
#endif
#ifndef SMALL_M_REPACK
#define SMALL_M_REPACK 256
#endif
// Products of K at most this (one k-block) take a block's tiles row by row (run_block).
#define ROW_ORDER_K 96
#define ROW_ORDER_BYTES (256 * 1024)

// ---------------------------------------------------------------------------------------------
// Kernel choice.

int stm_gemm_cpu_best(void) {
#if STM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return STM_GEMM_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return STM_GEMM_AVX2;
#endif
    return STM_GEMM_PORTABLE;
}

static atomic_int chosen = -1;

const char *stm_gemm_kernel_name(int kernel) {
    switch (kernel) {
    case STM_GEMM_AVX512: return "avx512";
    case STM_GEMM_AVX2: return "avx2";
    case STM_GEMM_PORTABLE: return "portable";
    default: return "unknown";
    }
}

int stm_gemm_kernel_named(const char *name) {
    if (!name) return -1;
    for (int k = 0; k < 3; k++)
        if (strcasecmp(name, stm_gemm_kernel_name(k)) == 0) return k;
    return -1;
}

int stm_gemm_kernel(void) {
    int k = atomic_load_explicit(&chosen, memory_order_relaxed);
    if (k >= 0) return k;
    int best = stm_gemm_cpu_best();
    int want = stm_gemm_kernel_named(getenv("STM_GEMM_KERNEL"));
    k = (want >= 0 && want <= best) ? want : best;
    atomic_store(&chosen, k);
    return k;
}

int stm_gemm_set_kernel(int kernel) {
    if (kernel < 0 || kernel > stm_gemm_cpu_best()) return -1;
    atomic_store(&chosen, kernel);
    return kernel;
}

// Blocking overrides (0: the kernel's own), from STM_GEMM_KC / STM_GEMM_MC at first use or from
// stm_gemm_set_blocking. Each value of C is one chain over k in order whatever the blocks, so they
// change no bit; they are for tuning on a new CPU.
static atomic_long kc_set = -1, mc_set = -1;

static long blocking_env(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    long x = strtol(v, &end, 10);
    return (*end == 0 && x >= 8 && x <= 4096) ? x : 0;  // anything else is refused by the callers' check
}

static void blocking(long *kc, long *mc) {
    long k = atomic_load_explicit(&kc_set, memory_order_relaxed), m = atomic_load_explicit(&mc_set, memory_order_relaxed);
    if (k < 0 || m < 0) {
        k = blocking_env("STM_GEMM_KC");
        m = blocking_env("STM_GEMM_MC");
        atomic_store(&kc_set, k);
        atomic_store(&mc_set, m);
    }
    *kc = k;
    *mc = m;
}

int stm_gemm_set_blocking(long kc, long mc) {
    if (kc < 0 || kc > 4096 || mc < 0 || mc > 4096 || (kc > 0 && kc < 8)) return -1;
    atomic_store(&kc_set, kc);
    atomic_store(&mc_set, mc);
    return 0;
}

/// The kernel's blocking with the overrides applied: kc as given, mc rounded up to a multiple of MR.
static kernel_t blocked(int kernel) {
    kernel_t K = kernels[kernel];
    long kc, mc;
    blocking(&kc, &mc);
    if (kc > 0) K.kc = kc;
    if (mc > 0) K.mc = (mc + K.mr - 1) / K.mr * K.mr;
    return K;
}

int stm_gemm_blocking_overridden(void) {
    long kc, mc;
    blocking(&kc, &mc);
    return kc > 0 || mc > 0;
}

void stm_gemm_blocking(int kernel, long *kc, long *mc) {
    kernel_t K = blocked(kernel < 0 || kernel > 2 ? 0 : kernel);
    *kc = K.kc;
    *mc = K.mc;
}

int stm_gemm_mr(int kernel) { return kernels[kernel < 0 || kernel > 2 ? 0 : kernel].mr; }
int stm_gemm_nr(int kernel) { return kernels[kernel < 0 || kernel > 2 ? 0 : kernel].nr; }

// ---------------------------------------------------------------------------------------------
// Packing.

/// dst[c * ds + r] = src[r * ss + c] for r, c < 8 and for r, c < 16: one block through the register
/// networks of transpose_regs.h. Data movement only, so packings that use them keep their bits.
#if STM_X86
__attribute__((target("avx2")))
static void transpose8_avx2(const float *src, long ss, float *dst, long ds) {
    __m256 x[8];
    for (int i = 0; i < 8; i++) x[i] = _mm256_loadu_ps(src + i * ss);
    stm_transpose8_regs(x);
    for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + i * ds, x[i]);
}

__attribute__((target("avx512f")))
static void transpose16_avx512(const float *src, long ss, float *dst, long ds) {
    __m512 x[16];
    for (int i = 0; i < 16; i++) x[i] = _mm512_loadu_ps(src + i * ss);
    stm_transpose16_regs(x);
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ds, x[i]);
}
#endif

/// dst[c * ds + r] = src[r * ss + c] for r < rows, c < cols: whole 16 x 16 blocks through AVX-512
/// where that is the kernel in use, then whole 8 x 8 blocks through AVX2 where the kernel is AVX2 or
/// wider, the rest (and every element on the portable kernel) one by one.
static void transpose_block(const float *src, long ss, long rows, long cols, float *dst, long ds) {
    long r8 = 0, c8 = 0;
#if STM_X86
    const int kern = stm_gemm_kernel();
    long r16 = 0, c16 = 0;
    if (kern >= STM_GEMM_AVX512) {
        r16 = rows / 16 * 16;
        c16 = cols / 16 * 16;
        for (long r = 0; r < r16; r += 16)
            for (long c = 0; c < c16; c += 16) transpose16_avx512(src + r * ss + c, ss, dst + c * ds + r, ds);
    }
    if (kern >= STM_GEMM_AVX2) {
        r8 = rows / 8 * 8;
        c8 = cols / 8 * 8;
        for (long r = 0; r < r8; r += 8)
            for (long c = (r < r16 ? c16 : 0); c < c8; c += 8) transpose8_avx2(src + r * ss + c, ss, dst + c * ds + r, ds);
    }
#endif
    for (long r = 0; r < rows; r++)
        for (long c = (r < r8 ? c8 : 0); c < cols; c++) dst[c * ds + r] = src[r * ss + c];
}

/// Whether `copy_fixed_rows` takes rows of width w: the kernels' MR (4, 6, 8) and NR (8, 16, 32).
static inline int fixed_width(int w) { return w == 4 || w == 6 || w == 8 || w == 16 || w == 32; }

/// dst[p][0..<w] = src[p * ld ..< + w] for p < k, w a `fixed_width`: copies of a constant size, so
/// each row is a few vector moves instead of a loop over its values.
static inline void copy_fixed_rows(float *dst, const float *src, long ld, long k, int w) {
#define COPY_ROWS(W) for (long p = 0; p < k; p++) memcpy(dst + p * (W), src + p * ld, (W) * sizeof(float))
    switch (w) {
    case 4: COPY_ROWS(4); break;
    case 6: COPY_ROWS(6); break;
    case 8: COPY_ROWS(8); break;
    case 16: COPY_ROWS(16); break;
    default: COPY_ROWS(32); break;
    }
#undef COPY_ROWS
}

/// op(B) columns [j0, j0+nr) (zero beyond n), all of k, into dst[k][nr].
static void pack_b_sliver(int transB, const float *b, long ldb, long k, long n, long j0, int nr, float *dst) {
    long cols = n - j0 < nr ? n - j0 : nr;
    if (!transB && cols == nr && fixed_width(nr)) {
        copy_fixed_rows(dst, b + j0, ldb, k, nr);  // a whole sliver: NR contiguous values per k
    } else if (!transB) {
        for (long p = 0; p < k; p++) {
            const float *src = b + p * ldb + j0;
            float *d = dst + p * nr;
            long j = 0;
            for (; j < cols; j++) d[j] = src[j];
            for (; j < nr; j++) d[j] = 0.0f;
        }
    } else {
        // dst[p][j] = b[j0 + j][p]: B's rows become the sliver's columns.
        transpose_block(b + j0 * ldb, ldb, cols, k, dst, nr);
        for (long p = 0; p < k; p++)
            for (long j = cols; j < nr; j++) dst[p * nr + j] = 0.0f;
    }
}

/// op(A) rows [i0, i0+rows) and k in [p0, p0+kc) into MR-row slivers dst[s][kc][mr] (zero rows past `rows`).
static void pack_a_block(int transA, const float *a, long lda, long i0, long rows, long p0, long kc, int mr, float *dst) {
    for (long s = 0; s * mr < rows; s++) {
        float *d = dst + s * kc * mr;
        long r0 = s * mr;
        long valid = rows - r0 < mr ? rows - r0 : mr;
        if (!transA) {
            for (long ii = 0; ii < mr; ii++) {
                if (ii < valid) {
                    const float *src = a + (i0 + r0 + ii) * lda + p0;
                    for (long p = 0; p < kc; p++) d[p * mr + ii] = src[p];
                } else {
                    for (long p = 0; p < kc; p++) d[p * mr + ii] = 0.0f;
                }
            }
        } else if (valid == mr && fixed_width(mr)) {
            copy_fixed_rows(d, a + p0 * lda + i0 + r0, lda, kc, mr);  // a whole sliver: MR contiguous values per k
        } else {
            for (long p = 0; p < kc; p++) {
                const float *src = a + (p0 + p) * lda + i0 + r0;
                long ii = 0;
                for (; ii < valid; ii++) d[p * mr + ii] = src[ii];
                for (; ii < mr; ii++) d[p * mr + ii] = 0.0f;
            }
        }
    }
}

struct stm_gemm_packed {
    int kernel, nr;
    long k, n;
    float *data;                  // NULL for a view
    const stm_gemm_packed *tsrc;  // a view: this matrix is tsrc's transpose, repacked per product
};

static float *aligned_floats(long count) {
    size_t bytes = ((size_t)(count > 0 ? count : 1) * sizeof(float) + 63) & ~(size_t)63;
    return (float *)aligned_alloc(64, bytes);
}

typedef struct {
    int transB;
    const float *b;
    long ldb, k, n;
    int nr;
    float *dst;
} pack_job;

static void pack_b_chunk(void *ctx, long s) {
    pack_job *J = (pack_job *)ctx;
    pack_b_sliver(J->transB, J->b, J->ldb, J->k, J->n, s * J->nr, J->nr, J->dst + s * J->k * J->nr);
}

static void pack_b_all(int transB, const float *b, long ldb, long k, long n, int nr, float *dst, int threads) {
    long slivers = (n + nr - 1) / nr;
    pack_job J = {transB, b, ldb, k, n, nr, dst};
    if (threads > 1 && k * n >= 65536) stm_pool_run(slivers, threads, pack_b_chunk, &J);
    else for (long s = 0; s < slivers; s++) pack_b_chunk(&J, s);
}

stm_gemm_packed *stm_gemm_pack_b(int transB, long k, long n, const float *b, long ldb) {
    int kern = stm_gemm_kernel();
    int nr = kernels[kern].nr;
    long slivers = (n + nr - 1) / nr;
    stm_gemm_packed *p = (stm_gemm_packed *)malloc(sizeof *p);
    if (!p) return NULL;
    p->kernel = kern;
    p->nr = nr;
    p->k = k;
    p->n = n;
    p->tsrc = NULL;
    p->data = aligned_floats(slivers * k * nr);
    if (!p->data) { free(p); return NULL; }
    pack_b_all(transB, b, ldb, k, n, nr, p->data, 1);
    return p;
}

stm_gemm_packed *stm_gemm_pack_transposed_view(const stm_gemm_packed *src) {
    if (!src || src->tsrc) return NULL;
    stm_gemm_packed *p = (stm_gemm_packed *)malloc(sizeof *p);
    if (!p) return NULL;
    p->kernel = src->kernel;
    p->nr = src->nr;
    p->k = src->n;
    p->n = src->k;
    p->data = NULL;
    p->tsrc = src;
    return p;
}

typedef struct {
    const stm_gemm_packed *src;
    float *dst;
} repack_job;

/// One sliver s of the transpose of src (op(B) = src's op(B)ᵀ, K = src->n, N = src->k), from src's
/// slivers, into dst [K][nr]: dst[q][j] = src[q / nr][s * nr + j][q % nr], zero for columns past N.
/// Each NR x NR block is one transposed copy of a contiguous block of src.
static void repack_sliver(const stm_gemm_packed *S, long s, float *dst) {
    const int nr = S->nr;
    const long kt = S->n, nt = S->k;  // the transpose's K and N
    const long c0 = s * nr;
    const long cols = nt - c0 < nr ? nt - c0 : nr;
    for (long t = 0; t * nr < kt; t++) {
        const float *blk = S->data + t * S->k * nr + c0 * nr;  // src sliver t, rows c0..c0+cols
        const long qs = kt - t * nr < nr ? kt - t * nr : nr;
        float *d = dst + t * nr * nr;
        transpose_block(blk, nr, cols, qs, d, nr);  // d[qq][j] = blk[j][qq]
        for (long qq = 0; qq < qs; qq++)
            for (long j = cols; j < nr; j++) d[qq * nr + j] = 0.0f;
    }
}

static void repack_chunk(void *ctx, long s) {
    repack_job *J = (repack_job *)ctx;
    repack_sliver(J->src, s, J->dst + s * J->src->n * J->src->nr);
}

static void repack_transposed(const stm_gemm_packed *src, float *dst, int threads) {
    long slivers = (src->k + src->nr - 1) / src->nr;
    repack_job J = {src, dst};
    if (threads > 1 && src->k * src->n >= 65536) stm_pool_run(slivers, threads, repack_chunk, &J);
    else for (long s = 0; s < slivers; s++) repack_chunk(&J, s);
}

void stm_gemm_unpack_b(const stm_gemm_packed *p, int transB, float *b, long ldb) {
    if (!p || p->tsrc) return;
    const int nr = p->nr;
    for (long col = 0; col < p->n; col++) {
        const float *src = p->data + (col / nr) * p->k * nr + col % nr;
        if (transB) {
            float *d = b + col * ldb;
            for (long q = 0; q < p->k; q++) d[q] = src[q * nr];
        } else {
            for (long q = 0; q < p->k; q++) b[q * ldb + col] = src[q * nr];
        }
    }
}

void stm_gemm_packed_free(stm_gemm_packed *p) {
    if (!p) return;
    free(p->data);
    free(p);
}

long stm_gemm_packed_bytes(const stm_gemm_packed *p) {
    if (!p || p->tsrc) return 0;
    return ((p->n + p->nr - 1) / p->nr) * p->k * p->nr * (long)sizeof(float);
}

// ---------------------------------------------------------------------------------------------
// Per-thread scratch (pool workers persist, so these are allocated once per thread and size).

static _Thread_local float *tl_a = NULL;
static _Thread_local long tl_a_cap = 0;
static _Thread_local float *tl_pa = NULL;
static _Thread_local long tl_pa_cap = 0;
static _Thread_local float *tl_b = NULL;
static _Thread_local long tl_b_cap = 0;
static _Thread_local float *tl_bb = NULL;
static _Thread_local long tl_bb_cap = 0;

static float *scratch(float **buf, long *cap, long count) {
    if (count > *cap) {
        free(*buf);
        *buf = aligned_floats(count);
        *cap = *buf ? count : 0;
    }
    return *buf;
}

typedef struct {
    int transA;
    const float *a;
    long lda, m, k, mpad;
    const kernel_t *kern;
    float *dst;
} pack_a_job;

/// Packs k-block `u` of the whole of op(A): rows [0, m) in MR slivers, at dst + pc * mpad.
static void pack_a_chunk(void *ctx, long u) {
    pack_a_job *J = (pack_a_job *)ctx;
    long pc = u * J->kern->kc;
    long kc = J->k - pc < J->kern->kc ? J->k - pc : J->kern->kc;
    pack_a_block(J->transA, J->a, J->lda, 0, J->m, pc, kc, J->kern->mr, J->dst + pc * J->mpad);
}

static void pack_a_all(int transA, const float *a, long lda, long m, long k, const kernel_t *K, float *dst, int threads) {
    long blocks = (k + K->kc - 1) / K->kc;
    pack_a_job J = {transA, a, lda, m, k, (m + K->mr - 1) / K->mr * K->mr, K, dst};
    if (threads > 1 && blocks > 1 && m * k >= 65536) stm_pool_run(blocks, threads, pack_a_chunk, &J);
    else for (long u = 0; u < blocks; u++) pack_a_chunk(&J, u);
}

// ---------------------------------------------------------------------------------------------
// The driver.

typedef struct {
    const kernel_t *kern;
    int transA;
    long m, n, k;
    float alpha, beta;
    const float *a;
    long lda;
    float *c;
    long ldc;
    const float *bp;  // packed op(B), all of K per sliver, or NULL: each block repacks its slivers from tsrc
    const stm_gemm_packed *tsrc;
    const float *ap;  // packed op(A), all of it (k-block by k-block), or NULL: each block packs its rows
    long mpad;        // rows of the packed A (a multiple of MR)
    const float *bias;
    stm_gemm_post_fn post;
    void *post_ctx;
    long cb;          // column blocks
    long mc, ncols;   // rows and columns of a block
    int failed;
} gemm_job;

/// One block's state for its tiles: where it sits in C, where its A rows and B slivers are, and the
/// k-block being run.
typedef struct {
    const gemm_job *J;
    const kernel_t *K;
    long i0, j0, rows, cols;   // the block in C
    int direct;                // A's rows read in place (a partial last sliver packed into abuf)
    const float *abuf;         // packed rows of A (this block's, or its partial sliver)
    const float *bcols;        // B slivers, all of K each, the first being sliver bs0
    long bs0;
    float *tile, *bpad;        // an edge tile's C, and a padded bias
    long pc, kc;               // the k-block [pc, pc + kc)
    int load, last;
    const float *ablk;         // this k-block's packed rows of A (from J->ap, or abuf)
} block_t;

/// One MR x NR tile of a block: C rows i0 + is..., columns j0 + js..., the block's current k-block.
static inline __attribute__((always_inline)) void run_tile(const block_t *B, long is, long js) {
    const gemm_job *J = B->J;
    const kernel_t *K = B->K;
    const long i0 = B->i0, j0 = B->j0, pc = B->pc, kc = B->kc;
    const int load = B->load, last = B->last, direct = B->direct;
    float *tile = B->tile;
    const int mr = K->mr, nr = K->nr;
    long nrem = B->cols - js < nr ? B->cols - js : nr;
    long mrem = B->rows - is < mr ? B->rows - is : mr;
    const float *bsl = B->bcols + ((j0 + js) / nr - B->bs0) * J->k * nr + pc * nr;
    const float *bias = (J->bias && last) ? J->bias + j0 + js : NULL;
    float *cp = J->c + (i0 + is) * J->ldc + j0 + js;
    const float *ap = (direct && !J->ap) ? B->abuf : B->ablk + (is / mr) * kc * mr;
    const float *arow = J->a + (i0 + is) * J->lda + pc;
    int in_place = direct && !J->ap && mrem == mr;
    if (mrem == mr && nrem == nr) {
        if (in_place) K->direct(kc, arow, J->lda, bsl, cp, J->ldc, load, last, J->alpha, J->beta, bias);
        else K->micro(kc, ap, bsl, cp, J->ldc, load, last, J->alpha, J->beta, bias);
        return;
    }
    if (K->edge) {
        // Only the tile's own rows and columns: A's rows in place when the kernel reads them so (the
        // partial sliver is then not packed), the bias unpadded (masked loads).
        edge_fn edge = K->edge[mrem - 1];
        if (direct && !J->ap) edge((int)nrem, kc, arow, J->lda, 1, bsl, cp, J->ldc, load, last, J->alpha, J->beta, bias);
        else edge((int)nrem, kc, ap, 1, mr, bsl, cp, J->ldc, load, last, J->alpha, J->beta, bias);
        return;
    }
    if (bias && nrem < nr) {
        for (long j = 0; j < nr; j++) B->bpad[j] = j < nrem ? bias[j] : 0.0f;
        bias = B->bpad;
    }
    // An edge tile runs in `tile`: C's values are copied in only where the kernel reads them (a
    // continued chain, or beta's C_old); a tile that starts from +0 only writes it.
    int need = load || (last && J->beta != 0.0f);
    if (need)
        for (long i = 0; i < mr; i++)
            for (long j = 0; j < nr; j++)
                tile[i * nr + j] = (i < mrem && j < nrem) ? cp[i * J->ldc + j] : 0.0f;
    if (in_place) K->direct(kc, arow, J->lda, bsl, tile, nr, load, last, J->alpha, J->beta, bias);
    else K->micro(kc, ap, bsl, tile, nr, load, last, J->alpha, J->beta, bias);
    for (long i = 0; i < mrem; i++) memcpy(cp + i * J->ldc, tile + i * nr, (size_t)nrem * sizeof(float));
}

static void run_block(void *ctx, long u) {
    gemm_job *J = (gemm_job *)ctx;
    const kernel_t *K = J->kern;
    const int mr = K->mr, nr = K->nr;
    long ri = u / J->cb, ci = u % J->cb;
    long i0 = ri * J->mc, j0 = ci * J->ncols;
    long rows = J->m - i0 < J->mc ? J->m - i0 : J->mc;
    long cols = J->n - j0 < J->ncols ? J->n - j0 : J->ncols;
    long kcmax = J->k < K->kc ? J->k : K->kc;
    long srows = (rows + mr - 1) / mr * mr;
    // A not transposed: the micro-kernel reads A's rows in place; a last, partial sliver of rows is
    // read in place too by an edge kernel, or else packed (zero-padded). Otherwise A is packed here,
    // or was packed once for all blocks.
    int direct = !J->transA && K->direct != NULL;
    float *abuf = NULL;
    if (!J->ap) {
        abuf = scratch(&tl_a, &tl_a_cap, (direct ? mr : srows) * kcmax);
        if (!abuf) { J->failed = 1; return; }
    }
    float tile[MAX_MR * MAX_NR] __attribute__((aligned(64)));
    float bpad[MAX_NR] __attribute__((aligned(64)));
    // B from a transposed view, block by block: this block's slivers, repacked here (the block has
    // all rows, so each sliver is repacked once per product) while they fit in this core's cache.
    const float *bcols = J->bp;
    long bs0 = 0;  // first sliver of bcols
    if (!bcols) {
        long ns = (cols + nr - 1) / nr;
        float *bb = scratch(&tl_bb, &tl_bb_cap, ns * J->k * nr);
        if (!bb) { J->failed = 1; return; }
        for (long sl = 0; sl < ns; sl++) repack_sliver(J->tsrc, j0 / nr + sl, bb + sl * J->k * nr);
        bcols = bb;
        bs0 = j0 / nr;
    }
    // Tiles sliver by sliver (each B sliver stays in L1 while the block's rows pass it), or, for a
    // short K, row by row: a tile of K <= ROW_ORDER_K has few multiply-adds per value of C it writes,
    // and taking the tiles along C's rows makes those writes sequential streams and keeps the A tile
    // in L1, while the block's B (at most ROW_ORDER_BYTES) stays in L2. The order changes no value:
    // every tile is computed alone.
    const int by_rows = J->k <= ROW_ORDER_K && cols * J->k * (long)sizeof(float) <= ROW_ORDER_BYTES;
    block_t B = {J, K, i0, j0, rows, cols, direct, abuf, bcols, bs0, tile, bpad, 0, 0, 0, 0, NULL};
    for (long pc = 0; pc < J->k; pc += K->kc) {
        long kc = J->k - pc < K->kc ? J->k - pc : K->kc;
        B.pc = pc;
        B.kc = kc;
        B.load = pc > 0;
        B.last = pc + kc == J->k;
        // This block's rows of op(A) for k in [pc, pc+kc): packed here, or taken from the whole packed A
        // (k-block pc starts at pc * mpad; the block's first sliver at i0 * kc).
        B.ablk = J->ap ? J->ap + pc * J->mpad + i0 * kc : abuf;
        long full = rows / mr * mr;  // rows of whole slivers
        if (!J->ap) {
            if (!direct) pack_a_block(J->transA, J->a, J->lda, i0, rows, pc, kc, mr, abuf);
            else if (full < rows && !K->edge) pack_a_block(0, J->a, J->lda, i0 + full, rows - full, pc, kc, mr, abuf);
        }
        if (by_rows) {
            for (long is = 0; is < rows; is += mr)
                for (long js = 0; js < cols; js += nr) run_tile(&B, is, js);
        } else {
            for (long js = 0; js < cols; js += nr)
                for (long is = 0; is < rows; is += mr) run_tile(&B, is, js);
        }
    }
    if (J->post) J->post(J->post_ctx, J->c, J->ldc, i0, j0, rows, cols);
}

/// The epilogue alone (K = 0, or the second half of a beta != 0 product over several k-blocks,
/// where t holds alpha * acc): C = fmaf(beta, C, t) + bias, element by element.
static void finish_scalar(long m, long n, float alpha, float beta, const float *t, long ldt,
                          float *c, long ldc, const float *bias) {
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            float v = t ? t[i * ldt + j] : (alpha != 1.0f ? alpha * 0.0f : 0.0f);
            if (beta != 0.0f) v = fmaf(beta, c[i * ldc + j], v);
            if (bias) v = v + bias[j];
            c[i * ldc + j] = v;
        }
}

void stm_sgemm(int transA, int transB, long m, long n, long k, float alpha,
               const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc,
               const stm_gemm_packed *packed_b, const float *bias,
               stm_gemm_post_fn post, void *post_ctx, int threads) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        finish_scalar(m, n, alpha, beta, NULL, 0, c, ldc, bias);
        if (post) post(post_ctx, c, ldc, 0, 0, m, n);
        return;
    }
    int kid = stm_gemm_kernel();
    // K in blocks of equal size, at most the kernel's kc plus a quarter where a B sliver of that
    // depth still takes at most 20 KB of the L1 cache (AVX2's 320 x 16; AVX-512's slivers are already
    // 24 KB at 192): 320 runs as one block, not 256 + 64, whose short second block pays a full pass
    // over C. Each value's chain of multiply-adds runs in the same order whatever the blocks, so the
    // split does not change a bit.
    kernel_t Kb = blocked(kid);
    {
        long cap = Kb.kc + Kb.kc / 4;
        if (cap * Kb.nr * (long)sizeof(float) > 20480) cap = Kb.kc;
        long nb = (k + cap - 1) / cap;
        Kb.kc = (k + nb - 1) / nb;
    }
    const kernel_t *K = &Kb;
    if (beta != 0.0f && k > K->kc) {
        // C_old is overwritten by the first k-block's partial sums: run into a scratch matrix first.
        float *t = aligned_floats(m * n);
        if (!t) abort();
        stm_sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, 0.0f, t, n, packed_b, NULL, NULL, NULL, threads);
        finish_scalar(m, n, alpha, beta, t, n, c, ldc, bias);
        free(t);
        if (post) post(post_ctx, c, ldc, 0, 0, m, n);
        return;
    }
    const int nr = K->nr;
    long slivers = (n + nr - 1) / nr;
    // B packed once (a weight) is read in place; a view of a packed transpose, or a B of its own,
    // is packed here into per-thread scratch.
    const int fits = packed_b && packed_b->kernel == kid && packed_b->k == k && packed_b->n == n;
    // A transposed view with few rows of C (a backward product at the ERF's last stages): blocks of
    // columns over all rows, each repacking its own slivers, instead of the whole transpose at once
    // (written out, then read again by every row block).
    const int per_block = fits && packed_b->tsrc && m <= SMALL_M_REPACK;
    const float *bp = NULL;
    if (per_block) {
    } else if (fits && !packed_b->tsrc) {
        bp = packed_b->data;
    } else {
        float *buf = scratch(&tl_b, &tl_b_cap, slivers * k * nr);
        if (!buf) abort();
        if (fits) repack_transposed(packed_b->tsrc, buf, threads);
        else pack_b_all(transB, b, ldb, k, n, nr, buf, threads);
        bp = buf;
    }
    // Blocks, from the sizes alone: balanced row blocks of at most MC rows (196 rows run as 66 + 66 +
    // 64, not 96 + 96 + 4, whose last block would stream its columns of B for one tile of work) by a
    // multiple of NR columns, enough of them to balance a few threads when the product is large.
    long mc = K->mc;
    long rb = (m + mc - 1) / mc;
    mc = ((m + rb - 1) / rb + K->mr - 1) / K->mr * K->mr;
    rb = (m + mc - 1) / mc;
    long cbw = slivers;  // slivers per column block
    double flops = 2.0 * (double)m * (double)n * (double)k;
    if (flops >= 4e6 && rb < 16) {
        long want = (16 + rb - 1) / rb;
        if (want > slivers) want = slivers;
        cbw = (slivers + want - 1) / want;
    }
    if (per_block) {
        // One row block; columns in blocks whose slivers take about 256 KB, at least four blocks.
        mc = (m + K->mr - 1) / K->mr * K->mr;
        rb = 1;
        cbw = 65536 / (nr * k);
        if (cbw > slivers / 4) cbw = slivers / 4;
        if (cbw < 1) cbw = 1;
    }
    long ncols = cbw * nr;
    long cb = (n + ncols - 1) / ncols;
    // When C's columns are split, op(A) would be packed once per column block: pack it once for all.
    const float *apk = NULL;
    long mpad = (m + K->mr - 1) / K->mr * K->mr;
    if (cb > 1 && (transA || K->direct == NULL)) {
        float *abuf = scratch(&tl_pa, &tl_pa_cap, mpad * k);
        if (!abuf) abort();
        pack_a_all(transA, a, lda, m, k, K, abuf, threads);
        apk = abuf;
    }
    gemm_job J = {K, transA, m, n, k, alpha, beta, a, lda, c, ldc, bp, per_block ? packed_b->tsrc : NULL,
                  apk, mpad, bias, post, post_ctx, cb, mc, ncols, 0};
    long blocks = rb * cb;
    if (threads > 1 && blocks > 1 && flops >= 4e6) stm_pool_run(blocks, threads, run_block, &J);
    else for (long u = 0; u < blocks; u++) run_block(&J, u);
    if (J.failed) abort();
}

// ---------------------------------------------------------------------------------------------
// FMA peak.

static volatile float fma_sink;

static double chains_portable(long it) {
    float c[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    for (long i = 0; i < it; i++)
        for (int j = 0; j < 8; j++) c[j] = fmaf(c[j], 0.999999f, 1e-7f);
    fma_sink = c[0] + c[1] + c[2] + c[3] + c[4] + c[5] + c[6] + c[7];
    return (double)it * 8 * 2;
}

#if STM_X86
__attribute__((target("avx2,fma")))
static double chains_avx2(long it) {
    __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
    __m256 c[12];
    for (int j = 0; j < 12; j++) c[j] = _mm256_set1_ps(1.0f);
    for (long i = 0; i < it; i++) {
#pragma clang loop unroll(full)
        for (int j = 0; j < 12; j++) c[j] = _mm256_fmadd_ps(c[j], m, a);
    }
    __m256 s = c[0];
    for (int j = 1; j < 12; j++) s = _mm256_add_ps(s, c[j]);
    float out[8];
    _mm256_storeu_ps(out, s);
    fma_sink = out[0];
    return (double)it * 12 * 8 * 2;
}

__attribute__((target("avx512f")))
static double chains_avx512(long it) {
    __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
    __m512 c[12];
    for (int j = 0; j < 12; j++) c[j] = _mm512_set1_ps(1.0f);
    for (long i = 0; i < it; i++) {
#pragma clang loop unroll(full)
        for (int j = 0; j < 12; j++) c[j] = _mm512_fmadd_ps(c[j], m, a);
    }
    __m512 s = c[0];
    for (int j = 1; j < 12; j++) s = _mm512_add_ps(s, c[j]);
    float out[16];
    _mm512_storeu_ps(out, s);
    fma_sink = out[0];
    return (double)it * 12 * 16 * 2;
}
#endif

double stm_fma_chains(int kernel, long iterations) {
#if STM_X86
    if (kernel == STM_GEMM_AVX512 && stm_gemm_cpu_best() >= STM_GEMM_AVX512) return chains_avx512(iterations);
    if (kernel >= STM_GEMM_AVX2 && stm_gemm_cpu_best() >= STM_GEMM_AVX2) return chains_avx2(iterations);
#endif
    return chains_portable(iterations);
}
