// CGemm: TensorCore's single-precision matrix product, with a fixed summation order.
//
// Contract (the reason this exists): every element of C is ONE fused multiply-add chain over
// k = 0, 1, ..., K-1 in order, started from +0:
//     acc = 0; for k in 0..<K: acc = fmaf(op(A)[i,k], op(B)[k,j], acc)
// followed by the epilogue, in this order and each step rounded to float:
//     t = acc; if alpha != 1: t = alpha * t; if beta != 0: t = fmaf(beta, C_old[i,j], t);
//     if bias: t = t + bias[j]
// Blocking over K continues the chain through C; edge tiles run the same chains on their own rows
// and columns (masked, or zero-padded into the micro-kernel on the portable path). So a value's
// bits depend neither on its row's position, nor on M or N, nor on how the work is split across
// threads, nor on which micro-kernel (AVX-512, AVX2+FMA, portable) runs: every host gets the same
// bits.
//
// Shape key: M rows of C, N columns of C, K the reduction length. Row-major storage throughout;
// op(A) is [M,K] (A stored [K,M] when transA), op(B) is [K,N] (B stored [N,K] when transB).
// Leaves out: complex types, double precision, column-major storage (callers swap operands).
#ifndef STM_GEMM_H
#define STM_GEMM_H

#ifdef __cplusplus
extern "C" {
#endif

/// Micro-kernels, narrowest first.
enum { STM_GEMM_PORTABLE = 0, STM_GEMM_AVX2 = 1, STM_GEMM_AVX512 = 2 };

/// The widest micro-kernel this CPU (and OS) can run.
int stm_gemm_cpu_best(void);
/// The micro-kernel in use: the CPU's best, or the narrower one named by the environment variable
/// STM_GEMM_KERNEL (portable, avx2, avx512) or set with stm_gemm_set_kernel.
int stm_gemm_kernel(void);
/// Uses `kernel` from now on; a kernel the CPU cannot run is refused (returns -1). Returns the kernel.
int stm_gemm_set_kernel(int kernel);
/// "portable", "avx2" or "avx512".
const char *stm_gemm_kernel_name(int kernel);
/// Parses a kernel name; -1 when unknown.
int stm_gemm_kernel_named(const char *name);
/// Overrides the k-block (kc, at least 8) and the rows of a block (mc, rounded up to a multiple of
/// MR) of every kernel; 0 keeps a kernel's own. Read from STM_GEMM_KC and STM_GEMM_MC at first use
/// otherwise. No bit depends on them. Returns -1 (and changes nothing) for values outside 0...4096.
int stm_gemm_set_blocking(long kc, long mc);
/// The k-block and block rows a kernel uses (its own, or the overrides).
void stm_gemm_blocking(int kernel, long *kc, long *mc);
/// Whether an override (STM_GEMM_KC, STM_GEMM_MC or stm_gemm_set_blocking) is in force.
int stm_gemm_blocking_overridden(void);
/// Register tile of a kernel (rows MR, columns NR).
int stm_gemm_mr(int kernel);
int stm_gemm_nr(int kernel);

/// B packed once (for weights): K x N in NR-wide column slivers for one kernel.
typedef struct stm_gemm_packed stm_gemm_packed;

/// Packs op(B) [K,N] (stored [N,K] when transB) for the kernel in use. Free with stm_gemm_packed_free.
stm_gemm_packed *stm_gemm_pack_b(int transB, long k, long n, const float *b, long ldb);
void stm_gemm_packed_free(stm_gemm_packed *p);
/// A view of `src`'s transpose (op(B) = src's op(B)ᵀ) that holds no values: a product given it packs
/// its B per call from `src`'s slivers, by NR x NR block transposes (the same values, so the same
/// bits as packing the unpacked matrix). Valid while `src` lives; NULL for a view of a view.
stm_gemm_packed *stm_gemm_pack_transposed_view(const stm_gemm_packed *src);
/// Writes a packed matrix's op(B) back to its stored layout ([K,N], or [N,K] when transB) at `ldb`.
/// Nothing for a view.
void stm_gemm_unpack_b(const stm_gemm_packed *p, int transB, float *b, long ldb);
/// Bytes held by a packed matrix (0 for a view).
long stm_gemm_packed_bytes(const stm_gemm_packed *p);

/// Called once for each finished block of C (rows [i0, i0+rows), columns [j0, j0+cols), already
/// through the epilogue above), while it is still in cache: where callers fuse element-wise work.
/// Blocks never overlap; together they cover C once. Which thread calls it is not fixed.
typedef void (*stm_gemm_post_fn)(void *ctx, float *c, long ldc, long i0, long j0, long rows, long cols);

/// C [M,N] = epilogue(op(A) op(B)), as the contract above says. `packed_b` (or NULL) must hold op(B)
/// packed by stm_gemm_pack_b; when it was packed for another kernel it is ignored. `bias` is [N] or
/// NULL. `threads` > 1 splits C into blocks whose boundaries depend only on M, N and K.
void stm_sgemm(int transA, int transB, long m, long n, long k, float alpha,
               const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc,
               const stm_gemm_packed *packed_b, const float *bias,
               stm_gemm_post_fn post, void *post_ctx, int threads);

/// Runs `iterations` rounds of independent fused multiply-add chains at the width of `kernel` on the
/// calling thread and returns the flops done (for measuring the float32 FMA peak).
double stm_fma_chains(int kernel, long iterations);

#ifdef __cplusplus
}
#endif
#include "stm_elementwise.h"

#endif
