// CGemm, element-wise part: GELU and LayerNorm kernels with the exact operation sequence of the
// Swift references in TensorCore (see include/stm_elementwise.h), at 16, 8 or 1 lanes.
#include "stm_elementwise.h"
#include "transpose_regs.h"
#include "stm_gemm.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define STM_X86 1
#else
#define STM_X86 0
#endif

// ---------------------------------------------------------------------------------------------
// Scalar definitions (the portable path and every vector path's tail).

// Swift's min(x, y) is `y < x ? y : x`, max(x, y) is `y >= x ? y : x`.
static inline float smin(float x, float y) { return y < x ? y : x; }
static inline float smax(float x, float y) { return y >= x ? y : x; }

static inline float exp_s(float x) {
    float xc = smax(smin(x, 88.72283f), -87.33654f);
    float shifted = xc * 1.44269504088896341f + 12582912.0f;
    float n = shifted - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits;
    memcpy(&bits, &shifted, 4);
    bits = (int32_t)(((uint32_t)bits - 0x4B400000u + 127u) << 23);
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

static inline float erf_s(float x) {
    float xc = smax(smin(x, 4.0f), -4.0f);
    float x2 = xc * xc;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * xc;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return p / q;
}

/// Sixteen lane sums added in lane order from -0, as Swift's SIMD sum() does.
static inline float lanes_total(const float acc[16]) {
    float s = -0.0f;
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

/// A softmax weight as stored: a product below the smallest normal float (FLT_MIN) becomes +0, so no
/// weight is denormal (x86 cores without DAZ take a slow assist on every product with a denormal
/// operand; Intel's cost many cycles each). A NaN stays NaN.
#define STM_FLT_MIN 1.17549435e-38f
static inline float weight_s(float v) { return v < STM_FLT_MIN ? 0.0f : v; }

#define SQRT_HALF 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

static inline float gelu_s(float v) { return 0.5f * v * (1.0f + erf_s(v * SQRT_HALF)); }
/// GELU's slope Phi(v) + v phi(v), in the order its rule multiplies the gradient by it.
static inline float gelu_slope_s(float v) {
    return 0.5f * (1.0f + erf_s(v * SQRT_HALF)) + v * INV_SQRT_2PI * exp_s(-0.5f * v * v);
}

// ---------------------------------------------------------------------------------------------
// Vector paths. V_* macros spell the same sequence at the vector's width.

#if STM_X86
// Each sequence is written once, on n <= 4 vectors side by side, every step applied to all n before
// the next (the chains are long and latency-bound: four independent ones keep the FP pipes busy;
// GELU's backward ran 1.70 -> 1.16 ns per element on Zen 2). Always inlined, so a constant n unrolls
// fully; the one-vector functions are n = 1. Lane for lane the scalar definitions above.
#define FORN for (int u = 0; u < n; u++)
#define DEFINE_MATH(ATTR, VT, IT, W, SET1, ADD, SUB, MUL, DIV, MIN, MAX, CASTI, CASTF, ISUB, IADD, ISHL, ISET1) \
    ATTR __attribute__((always_inline)) static inline void expN_v##W(VT *out, const VT *x, int n) { \
        VT xc[4], sh[4], k[4], r[4], p[4];                                                         \
        FORN xc[u] = MAX(SET1(-87.33654f), MIN(SET1(88.72283f), x[u]));                            \
        FORN sh[u] = ADD(MUL(xc[u], SET1(1.44269504088896341f)), SET1(12582912.0f));               \
        FORN k[u] = SUB(sh[u], SET1(12582912.0f));                                                 \
        FORN r[u] = SUB(xc[u], MUL(k[u], SET1(0.693359375f)));                                     \
        FORN r[u] = SUB(r[u], MUL(k[u], SET1(-2.12194440e-4f)));                                   \
        FORN p[u] = SET1(1.9875691500e-4f);                                                        \
        FORN p[u] = ADD(MUL(p[u], r[u]), SET1(1.3981999507e-3f));                                  \
        FORN p[u] = ADD(MUL(p[u], r[u]), SET1(8.3334519073e-3f));                                  \
        FORN p[u] = ADD(MUL(p[u], r[u]), SET1(4.1665795894e-2f));                                  \
        FORN p[u] = ADD(MUL(p[u], r[u]), SET1(1.6666665459e-1f));                                  \
        FORN p[u] = ADD(MUL(p[u], r[u]), SET1(5.0000001201e-1f));                                  \
        FORN p[u] = ADD(ADD(MUL(MUL(p[u], r[u]), r[u]), r[u]), SET1(1.0f));                        \
        FORN out[u] = MUL(p[u], CASTF(ISHL(IADD(ISUB(CASTI(sh[u]), ISET1(0x4B400000)), ISET1(127)), 23))); \
    }                                                                                              \
    ATTR __attribute__((always_inline)) static inline void erfN_v##W(VT *out, const VT *x, int n) { \
        VT xc[4], x2[4], p[4], q[4];                                                               \
        FORN xc[u] = MAX(SET1(-4.0f), MIN(SET1(4.0f), x[u]));                                      \
        FORN x2[u] = MUL(xc[u], xc[u]);                                                            \
        FORN p[u] = SET1(-2.72614225801306e-10f);                                                  \
        FORN q[u] = SET1(-1.45660718464996e-05f);                                                  \
        FORN p[u] = ADD(MUL(p[u], x2[u]), SET1(2.77068142495902e-08f));                            \
        FORN q[u] = ADD(MUL(q[u], x2[u]), SET1(-2.13374055278905e-04f));                           \
        FORN p[u] = ADD(MUL(p[u], x2[u]), SET1(-2.10102402082508e-06f));                           \
        FORN q[u] = ADD(MUL(q[u], x2[u]), SET1(-1.68282697438203e-03f));                           \
        FORN p[u] = ADD(MUL(p[u], x2[u]), SET1(-5.69250639462346e-05f));                           \
        FORN q[u] = ADD(MUL(q[u], x2[u]), SET1(-7.37332916720468e-03f));                           \
        FORN p[u] = ADD(MUL(p[u], x2[u]), SET1(-7.34990630326855e-04f));                           \
        FORN q[u] = ADD(MUL(q[u], x2[u]), SET1(-1.42647390514189e-02f));                           \
        FORN p[u] = ADD(MUL(p[u], x2[u]), SET1(-2.95459980854025e-03f));                           \
        FORN p[u] = ADD(MUL(p[u], x2[u]), SET1(-1.60960333262415e-02f));                           \
        FORN p[u] = MUL(p[u], xc[u]);                                                              \
        FORN out[u] = DIV(p[u], q[u]);                                                             \
    }                                                                                              \
    ATTR __attribute__((always_inline)) static inline void geluN_v##W(VT *y, const VT *v, int n) { \
        VT t[4], e[4];                                                                             \
        FORN t[u] = MUL(v[u], SET1(SQRT_HALF));                                                    \
        erfN_v##W(e, t, n);                                                                        \
        FORN y[u] = MUL(MUL(SET1(0.5f), v[u]), ADD(SET1(1.0f), e[u]));                             \
    }                                                                                              \
    ATTR __attribute__((always_inline)) static inline void geluSlopeN_v##W(VT *y, VT *s, const VT *v, int n) { \
        VT t[4], e[4], x[4];                                                                       \
        FORN t[u] = MUL(v[u], SET1(SQRT_HALF));                                                    \
        erfN_v##W(e, t, n);                                                                        \
        FORN y[u] = MUL(MUL(SET1(0.5f), v[u]), ADD(SET1(1.0f), e[u]));                             \
        FORN t[u] = MUL(MUL(SET1(-0.5f), v[u]), v[u]);                                             \
        expN_v##W(x, t, n);                                                                        \
        FORN s[u] = ADD(MUL(SET1(0.5f), ADD(SET1(1.0f), e[u])), MUL(MUL(v[u], SET1(INV_SQRT_2PI)), x[u])); \
    }                                                                                              \
    ATTR static inline VT exp_v##W(VT x) { VT o; expN_v##W(&o, &x, 1); return o; }                  \
    ATTR static inline VT gelu_v##W(VT v) { VT o; geluN_v##W(&o, &v, 1); return o; }                \
    ATTR static inline void gelu_slope_v##W(VT *y, VT *s, VT v) { geluSlopeN_v##W(y, s, &v, 1); }
#define FOR4 _Pragma("clang loop unroll(full)") for (int u = 0; u < 4; u++)

// Note the operand order of MIN/MAX: _mm_min_ps(c, x) is `c < x ? c : x`, Swift's min(x, c).
#define ATTR512 __attribute__((target("avx512f")))
#define ATTR256 __attribute__((target("avx2,fma")))
DEFINE_MATH(ATTR512, __m512, __m512i, 16, _mm512_set1_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps, _mm512_div_ps,
            _mm512_min_ps, _mm512_max_ps, _mm512_castps_si512, _mm512_castsi512_ps, _mm512_sub_epi32, _mm512_add_epi32,
            _mm512_slli_epi32, _mm512_set1_epi32)
DEFINE_MATH(ATTR256, __m256, __m256i, 8, _mm256_set1_ps, _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps, _mm256_div_ps,
            _mm256_min_ps, _mm256_max_ps, _mm256_castps_si256, _mm256_castsi256_ps, _mm256_sub_epi32, _mm256_add_epi32,
            _mm256_slli_epi32, _mm256_set1_epi32)

ATTR512 static void gelu_fwd512(const float *x, float *y, long n) {
    long i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 v[4], r[4];
        FOR4 v[u] = _mm512_loadu_ps(x + i + 16 * u);
        geluN_v16(r, v, 4);
        FOR4 _mm512_storeu_ps(y + i + 16 * u, r[u]);
    }
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, gelu_v16(_mm512_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = gelu_s(x[i]);
}
ATTR256 static void gelu_fwd256(const float *x, float *y, long n) {
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 v[4], r[4];
        FOR4 v[u] = _mm256_loadu_ps(x + i + 8 * u);
        geluN_v8(r, v, 4);
        FOR4 _mm256_storeu_ps(y + i + 8 * u, r[u]);
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, gelu_v8(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = gelu_s(x[i]);
}
ATTR512 static void gelu_slope512(const float *x, float *y, float *sl, long n) {
    long i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 v[4], r[4], d[4];
        FOR4 v[u] = _mm512_loadu_ps(x + i + 16 * u);
        geluSlopeN_v16(r, d, v, 4);
        FOR4 _mm512_storeu_ps(y + i + 16 * u, r[u]);
        FOR4 _mm512_storeu_ps(sl + i + 16 * u, d[u]);
    }
    for (; i + 16 <= n; i += 16) {
        __m512 r, d;
        gelu_slope_v16(&r, &d, _mm512_loadu_ps(x + i));
        _mm512_storeu_ps(y + i, r);
        _mm512_storeu_ps(sl + i, d);
    }
    for (; i < n; i++) { float v = x[i]; y[i] = gelu_s(v); sl[i] = gelu_slope_s(v); }
}
ATTR256 static void gelu_slope256(const float *x, float *y, float *sl, long n) {
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 v[4], r[4], d[4];
        FOR4 v[u] = _mm256_loadu_ps(x + i + 8 * u);
        geluSlopeN_v8(r, d, v, 4);
        FOR4 _mm256_storeu_ps(y + i + 8 * u, r[u]);
        FOR4 _mm256_storeu_ps(sl + i + 8 * u, d[u]);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 r, d;
        gelu_slope_v8(&r, &d, _mm256_loadu_ps(x + i));
        _mm256_storeu_ps(y + i, r);
        _mm256_storeu_ps(sl + i, d);
    }
    for (; i < n; i++) { float v = x[i]; y[i] = gelu_s(v); sl[i] = gelu_slope_s(v); }
}
ATTR512 static void multiply512(const float *a, const float *b, float *out, long n) {
    long i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 r[4];
        FOR4 r[u] = _mm512_mul_ps(_mm512_loadu_ps(a + i + 16 * u), _mm512_loadu_ps(b + i + 16 * u));
        FOR4 _mm512_storeu_ps(out + i + 16 * u, r[u]);
    }
    for (; i < n; i++) out[i] = a[i] * b[i];
}
ATTR256 static void multiply256(const float *a, const float *b, float *out, long n) {
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 r[4];
        FOR4 r[u] = _mm256_mul_ps(_mm256_loadu_ps(a + i + 8 * u), _mm256_loadu_ps(b + i + 8 * u));
        FOR4 _mm256_storeu_ps(out + i + 8 * u, r[u]);
    }
    for (; i < n; i++) out[i] = a[i] * b[i];
}

ATTR512 static long softmax_body512(const float *x, float *o, long l, float mx, float acc[16]) {
    __m512 a = _mm512_setzero_ps(), m = _mm512_set1_ps(mx);
    long j = 0;
    for (; j + 64 <= l; j += 64) {  // four groups' exponentials side by side, added in order
        __m512 t[4], e[4];
        FOR4 t[u] = _mm512_sub_ps(_mm512_loadu_ps(x + j + 16 * u), m);
        expN_v16(e, t, 4);
        FOR4 _mm512_storeu_ps(o + j + 16 * u, e[u]);
        FOR4 a = _mm512_add_ps(a, e[u]);
    }
    for (; j + 16 <= l; j += 16) {
        __m512 e = exp_v16(_mm512_sub_ps(_mm512_loadu_ps(x + j), m));
        _mm512_storeu_ps(o + j, e);
        a = _mm512_add_ps(a, e);
    }
    _mm512_storeu_ps(acc, a);
    return j;
}
ATTR256 static long softmax_body256(const float *x, float *o, long l, float mx, float acc[16]) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), m = _mm256_set1_ps(mx);
    long j = 0;
    for (; j + 32 <= l; j += 32) {  // two groups of 16 side by side, each lane's adds in order
        __m256 t[4], e[4];
        FOR4 t[u] = _mm256_sub_ps(_mm256_loadu_ps(x + j + 8 * u), m);
        expN_v8(e, t, 4);
        FOR4 _mm256_storeu_ps(o + j + 8 * u, e[u]);
        a0 = _mm256_add_ps(a0, e[0]);
        a1 = _mm256_add_ps(a1, e[1]);
        a0 = _mm256_add_ps(a0, e[2]);
        a1 = _mm256_add_ps(a1, e[3]);
    }
    for (; j + 16 <= l; j += 16) {
        __m256 e0 = exp_v8(_mm256_sub_ps(_mm256_loadu_ps(x + j), m));
        __m256 e1 = exp_v8(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), m));
        _mm256_storeu_ps(o + j, e0);
        _mm256_storeu_ps(o + j + 8, e1);
        a0 = _mm256_add_ps(a0, e0);
        a1 = _mm256_add_ps(a1, e1);
    }
    _mm256_storeu_ps(acc, a0);
    _mm256_storeu_ps(acc + 8, a1);
    return j;
}
/// The row's maximum, as the scalar loop finds it: a NaN is passed over (max_ps(x, m) keeps m when
/// x is NaN) and of +0 and -0 either may come out, which changes no x - max.
ATTR256 static float row_max256(const float *x, long l) {
    __m256 m0 = _mm256_set1_ps(-3.40282347e+38f), m1 = m0;
    long j = 0;
    for (; j + 16 <= l; j += 16) {
        m0 = _mm256_max_ps(_mm256_loadu_ps(x + j), m0);
        m1 = _mm256_max_ps(_mm256_loadu_ps(x + j + 8), m1);
    }
    float t[16];
    _mm256_storeu_ps(t, m0);
    _mm256_storeu_ps(t + 8, m1);
    float mx = -3.40282347e+38f;
    for (int i = 0; i < 16; i++) mx = smax(mx, t[i]);
    for (; j < l; j++) mx = smax(mx, x[j]);
    return mx;
}
/// o[j] = exp(x[j] - mx) for the n < 16 values of a row's tail, through the vector exp on a padded
/// copy (lane for lane the scalar formula, so the same bits).
ATTR256 static void tail_exp256(const float *x, float *o, long n, float mx) {
    float t[16];
    for (long i = 0; i < 16; i++) t[i] = i < n ? x[i] : mx;
    __m256 m = _mm256_set1_ps(mx);
    _mm256_storeu_ps(t, exp_v8(_mm256_sub_ps(_mm256_loadu_ps(t), m)));
    if (n > 8) _mm256_storeu_ps(t + 8, exp_v8(_mm256_sub_ps(_mm256_loadu_ps(t + 8), m)));  // (lanes past n unused)
    for (long i = 0; i < n; i++) o[i] = t[i];
}

/// weight_s lane by lane: a lane not below FLT_MIN (NLT_UQ: a NaN included) is kept, the others are +0.
ATTR512 static inline __m512 weight_v16(__m512 w) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(w, _mm512_set1_ps(STM_FLT_MIN), _CMP_NLT_UQ), w);
}
ATTR256 static inline __m256 weight_v8(__m256 w) {
    return _mm256_and_ps(w, _mm256_cmp_ps(w, _mm256_set1_ps(STM_FLT_MIN), _CMP_NLT_UQ));
}

/// Softmax of short rows (L < 16, as DCNv3's nine sampling points) across the lanes: t [L][W] holds
/// W rows column by column, and each lane takes its row's steps of stm_softmax_row in the same order
/// (the maximum as smax over the row in order, exp of x - max, the sum from +0 in the row's order,
/// one reciprocal, the products), so each row gets the bits it gets alone. In place in t.
ATTR512 static void softmax_lanes512(float *t, long l) {
    __m512 mx = _mm512_set1_ps(-3.40282347e+38f), s = _mm512_setzero_ps();
    for (long k = 0; k < l; k++) {
        __m512 v = _mm512_loadu_ps(t + k * 16);
        mx = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, mx, _CMP_GE_OQ), mx, v);  // smax(mx, v)
    }
    for (long k = 0; k < l; k++) {
        __m512 e = exp_v16(_mm512_sub_ps(_mm512_loadu_ps(t + k * 16), mx));
        _mm512_storeu_ps(t + k * 16, e);
        s = _mm512_add_ps(s, e);
    }
    __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), s);
    for (long k = 0; k < l; k++) _mm512_storeu_ps(t + k * 16, weight_v16(_mm512_mul_ps(_mm512_loadu_ps(t + k * 16), inv)));
}
ATTR256 static void softmax_lanes256(float *t, long l) {
    __m256 mx = _mm256_set1_ps(-3.40282347e+38f), s = _mm256_setzero_ps();
    for (long k = 0; k < l; k++) {
        __m256 v = _mm256_loadu_ps(t + k * 8);
        mx = _mm256_blendv_ps(mx, v, _mm256_cmp_ps(v, mx, _CMP_GE_OQ));  // smax(mx, v)
    }
    for (long k = 0; k < l; k++) {
        __m256 e = exp_v8(_mm256_sub_ps(_mm256_loadu_ps(t + k * 8), mx));
        _mm256_storeu_ps(t + k * 8, e);
        s = _mm256_add_ps(s, e);
    }
    __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), s);
    for (long k = 0; k < l; k++) _mm256_storeu_ps(t + k * 8, weight_v8(_mm256_mul_ps(_mm256_loadu_ps(t + k * 8), inv)));
}

/// o[j] = weight_s(o[j] * inv) for j < n, 16 or 8 lanes at a time: the same product, then weight_v.
ATTR512 static void scale_weights512(float *o, long n, float inv) {
    __m512 v = _mm512_set1_ps(inv);
    long j = 0;
    for (; j + 16 <= n; j += 16) _mm512_storeu_ps(o + j, weight_v16(_mm512_mul_ps(_mm512_loadu_ps(o + j), v)));
    for (; j < n; j++) o[j] = weight_s(o[j] * inv);
}
ATTR256 static void scale_weights256(float *o, long n, float inv) {
    __m256 v = _mm256_set1_ps(inv);
    long j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(o + j, weight_v8(_mm256_mul_ps(_mm256_loadu_ps(o + j), v)));
    for (; j < n; j++) o[j] = weight_s(o[j] * inv);
}

/// Sixteen (eight) rows' lane sums at once, a row per lane: acc [W][16] holds each row's sixteen lane
/// sums, and lane r adds acc[r][0..15] in order from -0, as lanes_total does for one row. Row by row,
/// each row's chain of adds (and the division after it) held up the next row's work.
ATTR512 static __m512 row_totals512(const float *acc) {
    const __m512i rows = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240);
    __m512 s = _mm512_set1_ps(-0.0f);
    for (int u = 0; u < 16; u++) s = _mm512_add_ps(s, _mm512_i32gather_ps(rows, acc + u, 4));
    return s;
}
ATTR256 static __m256 row_totals256(const float *acc) {
    const __m256i rows = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112);
    __m256 s = _mm256_set1_ps(-0.0f);
    for (int u = 0; u < 16; u++) s = _mm256_add_ps(s, _mm256_i32gather_ps(acc + u, rows, 4));
    return s;
}

/// The reciprocals of W rows' sums at once, a row per lane: the rows' lane totals (row_totals), then
/// each row's tail in order (t [n][W] holds the tails' exponentials column by column), as
/// stm_softmax_row adds them, and 1 divided by the sum.
ATTR512 static void rows_inverse512(const float *acc, const float *t, long n, float inv[16]) {
    __m512 s = row_totals512(acc);
    for (long k = 0; k < n; k++) s = _mm512_add_ps(s, _mm512_loadu_ps(t + k * 16));
    _mm512_storeu_ps(inv, _mm512_div_ps(_mm512_set1_ps(1.0f), s));
}
ATTR256 static void rows_inverse256(const float *acc, const float *t, long n, float inv[8]) {
    __m256 s = row_totals256(acc);
    for (long k = 0; k < n; k++) s = _mm256_add_ps(s, _mm256_loadu_ps(t + k * 8));
    _mm256_storeu_ps(inv, _mm256_div_ps(_mm256_set1_ps(1.0f), s));
}

/// Tails of W rows of 16 or more at once: t [n][W] holds the rows' last n < 16 logits column by
/// column, mx [W] their maxima; each lane gets exp(x - max) of its row, as tail_exp256 makes it.
ATTR512 static void tails_exp512(float *t, const float *mx, long n) {
    __m512 m = _mm512_loadu_ps(mx);
    for (long k = 0; k < n; k++) _mm512_storeu_ps(t + k * 16, exp_v16(_mm512_sub_ps(_mm512_loadu_ps(t + k * 16), m)));
}
ATTR256 static void tails_exp256(float *t, const float *mx, long n) {
    __m256 m = _mm256_loadu_ps(mx);
    for (long k = 0; k < n; k++) _mm256_storeu_ps(t + k * 8, exp_v8(_mm256_sub_ps(_mm256_loadu_ps(t + k * 8), m)));
}
#endif

void stm_softmax_row(const float *x, float *o, long l) {
    float mx = -3.40282347e+38f;
    float acc[16] = {0};
    long j = 0;
    // Every path writes all l exponentials to o: whole groups of 16 into acc's lanes, the tail after.
#if STM_X86
    int k = stm_gemm_kernel();
    if (k >= STM_GEMM_AVX2) {
        mx = row_max256(x, l);
        j = k == STM_GEMM_AVX512 ? softmax_body512(x, o, l, mx, acc) : softmax_body256(x, o, l, mx, acc);
        if (j < l) tail_exp256(x + j, o + j, l - j, mx);
    } else
#endif
    {
        for (long i = 0; i < l; i++) mx = smax(mx, x[i]);
        for (; j + 16 <= l; j += 16)
            for (int t = 0; t < 16; t++) {
                float e = exp_s(x[j + t] - mx);
                o[j + t] = e;
                acc[t] = acc[t] + e;
            }
        for (long i = j; i < l; i++) o[i] = exp_s(x[i] - mx);
    }
    float s = lanes_total(acc);
    for (; j < l; j++) s += o[j];
    float inv = 1.0f / s;
#if STM_X86
    if (k == STM_GEMM_AVX512) { scale_weights512(o, l, inv); return; }
    if (k == STM_GEMM_AVX2) { scale_weights256(o, l, inv); return; }
#endif
    for (j = 0; j < l; j++) o[j] = weight_s(o[j] * inv);
}

void stm_softmax_rows(const float *x, float *o, long m, long l) {
    long i = 0;
#if STM_X86
    // Rows shorter than 16, W at a time (a row per lane): copied into t column by column, then back.
    int kernel = stm_gemm_kernel();
    long w = l >= 16 ? 0 : kernel == STM_GEMM_AVX512 ? 16 : kernel == STM_GEMM_AVX2 ? 8 : 0;
    float t[16 * 16];
    for (; w > 0 && i + w <= m; i += w) {
        const float *xr = x + i * l;
        float *orow = o + i * l;
        for (long r = 0; r < w; r++)
            for (long k = 0; k < l; k++) t[k * w + r] = xr[r * l + k];
        if (w == 16) softmax_lanes512(t, l);
        else softmax_lanes256(t, l);
        for (long r = 0; r < w; r++)
            for (long k = 0; k < l; k++) orow[r * l + k] = t[k * w + r];
    }
    // Rows of 16 or more that leave a tail (Swin's 49 logits, Halo's 169), W at a time: each row's
    // maximum and whole groups of 16 as stm_softmax_row makes them, then the W rows' tails together,
    // a row per lane, through the vector exp once instead of once per row; then each row's sum in
    // stm_softmax_row's order (lanes, then its tail in order) and its scaling.
    long tail = l % 16, j0 = l - tail;
    long wl = (l < 16 || tail == 0) ? 0 : kernel == STM_GEMM_AVX512 ? 16 : kernel == STM_GEMM_AVX2 ? 8 : 0;
    for (; wl > 0 && i + wl <= m; i += wl) {
        float mx[16], acc[16][16];
        for (long r = 0; r < wl; r++) {
            const float *xr = x + (i + r) * l;
            float *orow = o + (i + r) * l;
            mx[r] = row_max256(xr, l);
            for (int u = 0; u < 16; u++) acc[r][u] = 0.0f;
            if (kernel == STM_GEMM_AVX512) softmax_body512(xr, orow, l, mx[r], acc[r]);
            else softmax_body256(xr, orow, l, mx[r], acc[r]);
        }
        // The tails are read after the bodies are written: a body writes only its own row's first j0.
        for (long r = 0; r < wl; r++)
            for (long k = 0; k < tail; k++) t[k * wl + r] = x[(i + r) * l + j0 + k];
        if (wl == 16) tails_exp512(t, mx, tail);
        else tails_exp256(t, mx, tail);
        float inv[16];
        if (wl == 16) rows_inverse512(&acc[0][0], t, tail, inv);
        else rows_inverse256(&acc[0][0], t, tail, inv);
        for (long r = 0; r < wl; r++) {
            float *orow = o + (i + r) * l;
            if (kernel == STM_GEMM_AVX512) scale_weights512(orow, j0, inv[r]);
            else scale_weights256(orow, j0, inv[r]);
            for (long k = 0; k < tail; k++) orow[j0 + k] = weight_s(t[k * wl + r] * inv[r]);
        }
    }
#endif
    for (; i < m; i++) stm_softmax_row(x + i * l, o + i * l, l);
}

// ---------------------------------------------------------------------------------------------
// Softmax backward's row sums, dot = sum over j of d[j] * p[j], each row's products added one by
// one in order from +0 (the Swift definition, `softmaxBackwardRow`). W rows at a time with a row
// per lane: each row's W products of a block of W columns are made in its own vector, the W vectors
// transposed in registers, and the columns added to the W running sums in column order. The same
// products and the same additions as the row alone, so the same bits, on either width.

#if STM_X86
/// The sums of 16 rows of p and d [16, l] (rows l apart) into dots[16].
ATTR512 static void backward_dots512(const float *p, const float *d, long l, float *dots) {
    __m512 s = _mm512_setzero_ps(), x[16];
    long j = 0;
    for (; j + 16 <= l; j += 16) {
        for (int r = 0; r < 16; r++) x[r] = _mm512_mul_ps(_mm512_loadu_ps(d + r * l + j), _mm512_loadu_ps(p + r * l + j));
        stm_transpose16_regs(x);
        for (int c = 0; c < 16; c++) s = _mm512_add_ps(s, x[c]);
    }
    if (j < l) {
        long rest = l - j;
        __mmask16 m = (__mmask16)((1u << rest) - 1);
        for (int r = 0; r < 16; r++)
            x[r] = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, d + r * l + j), _mm512_maskz_loadu_ps(m, p + r * l + j));
        stm_transpose16_regs(x);
        for (long c = 0; c < rest; c++) s = _mm512_add_ps(s, x[c]);
    }
    _mm512_storeu_ps(dots, s);
}

/// The sums of 8 rows of p and d [8, l] (rows l apart) into dots[8].
ATTR256 static void backward_dots256(const float *p, const float *d, long l, float *dots) {
    __m256 s = _mm256_setzero_ps(), x[8];
    long j = 0;
    for (; j + 8 <= l; j += 8) {
        for (int r = 0; r < 8; r++) x[r] = _mm256_mul_ps(_mm256_loadu_ps(d + r * l + j), _mm256_loadu_ps(p + r * l + j));
        stm_transpose8_regs(x);
        for (int c = 0; c < 8; c++) s = _mm256_add_ps(s, x[c]);
    }
    if (j < l) {
        long rest = l - j;
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rest), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        for (int r = 0; r < 8; r++)
            x[r] = _mm256_mul_ps(_mm256_maskload_ps(d + r * l + j, m), _mm256_maskload_ps(p + r * l + j, m));
        stm_transpose8_regs(x);
        for (long c = 0; c < rest; c++) s = _mm256_add_ps(s, x[c]);
    }
    _mm256_storeu_ps(dots, s);
}
#endif

long stm_softmax_backward_dots(const float *p, const float *d, long m, long l, float *dots) {
    long i = 0;
#if STM_X86
    int kernel = stm_gemm_kernel();
    if (kernel == STM_GEMM_AVX512)
        for (; i + 16 <= m; i += 16) backward_dots512(p + i * l, d + i * l, l, dots + i);
    else if (kernel == STM_GEMM_AVX2)
        for (; i + 8 <= m; i += 8) backward_dots256(p + i * l, d + i * l, l, dots + i);
#endif
    return i;
}

void stm_gelu_forward(const float *x, float *y, long n) {
#if STM_X86
    int k = stm_gemm_kernel();
    if (k == STM_GEMM_AVX512) { gelu_fwd512(x, y, n); return; }
    if (k == STM_GEMM_AVX2) { gelu_fwd256(x, y, n); return; }
#endif
    for (long i = 0; i < n; i++) y[i] = gelu_s(x[i]);
}

void stm_gelu_forward_slope(const float *x, float *y, float *slope, long n) {
#if STM_X86
    int k = stm_gemm_kernel();
    if (k == STM_GEMM_AVX512) { gelu_slope512(x, y, slope, n); return; }
    if (k == STM_GEMM_AVX2) { gelu_slope256(x, y, slope, n); return; }
#endif
    for (long i = 0; i < n; i++) { float v = x[i]; y[i] = gelu_s(v); slope[i] = gelu_slope_s(v); }
}

void stm_multiply(const float *a, const float *b, float *out, long n) {
#if STM_X86
    int k = stm_gemm_kernel();
    if (k == STM_GEMM_AVX512) { multiply512(a, b, out, n); return; }
    if (k == STM_GEMM_AVX2) { multiply256(a, b, out, n); return; }
#endif
    for (long i = 0; i < n; i++) out[i] = a[i] * b[i];
}

// ---------------------------------------------------------------------------------------------
// LayerNorm rows. Sixteen partial sums: lane j takes elements j, j+16, ... (in order); then the
// lanes are added in lane order (starting from -0, as Swift's SIMD sum does), then the tail.


#if STM_X86
ATTR512 static void sums512(const float *x, long n, float mean, int squares, float out[16], long *done) {
    __m512 acc = _mm512_setzero_ps(), m = _mm512_set1_ps(mean);
    long j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 v = _mm512_loadu_ps(x + j);
        if (squares) { v = _mm512_sub_ps(v, m); acc = _mm512_add_ps(acc, _mm512_mul_ps(v, v)); }
        else acc = _mm512_add_ps(acc, v);
    }
    _mm512_storeu_ps(out, acc);
    *done = j;
}
ATTR256 static void sums256(const float *x, long n, float mean, int squares, float out[16], long *done) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), m = _mm256_set1_ps(mean);
    long j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256 v0 = _mm256_loadu_ps(x + j), v1 = _mm256_loadu_ps(x + j + 8);
        if (squares) {
            v0 = _mm256_sub_ps(v0, m); v1 = _mm256_sub_ps(v1, m);
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(v0, v0)); a1 = _mm256_add_ps(a1, _mm256_mul_ps(v1, v1));
        } else { a0 = _mm256_add_ps(a0, v0); a1 = _mm256_add_ps(a1, v1); }
    }
    _mm256_storeu_ps(out, a0);
    _mm256_storeu_ps(out + 8, a1);
    *done = j;
}
#endif

/// Sum (squares == 0) or sum of (x - mean)^2 of a row, in the fixed order above.
static float row_sum(int kern, const float *x, long n, float mean, int squares) {
    float acc[16] = {0};
    long j = 0;
#if STM_X86
    if (kern == STM_GEMM_AVX512) sums512(x, n, mean, squares, acc, &j);
    else if (kern == STM_GEMM_AVX2) sums256(x, n, mean, squares, acc, &j);
    else
#endif
    {
        for (; j + 16 <= n; j += 16)
            for (int l = 0; l < 16; l++) {
                float v = x[j + l];
                if (squares) { v = v - mean; acc[l] = acc[l] + v * v; } else acc[l] = acc[l] + v;
            }
    }
    float s = lanes_total(acc);
    for (; j < n; j++) {
        if (squares) { float d = x[j] - mean; s += d * d; } else s += x[j];
    }
    return s;
}

#if STM_X86
// Four rows at once: the same sixteen-lane sums (sums256/sums512's) for each, their chains side by
// side (a row's own chain is short and bound by the add's latency), then the normalisation at the
// vector's width. `mean` NULL: plain sums; else sums of (x - mean[u])^2.
ATTR256 static long sums4_256(const float *const row[4], long c, const float *mean, float acc[4][16]) {
    __m256 a0[4], a1[4], mv[4];
    FOR4 { a0[u] = _mm256_setzero_ps(); a1[u] = _mm256_setzero_ps(); mv[u] = _mm256_set1_ps(mean ? mean[u] : 0.0f); }
    long j = 0;
    for (; j + 16 <= c; j += 16) {
        FOR4 {
            __m256 v0 = _mm256_loadu_ps(row[u] + j), v1 = _mm256_loadu_ps(row[u] + j + 8);
            if (mean) {
                v0 = _mm256_sub_ps(v0, mv[u]); v1 = _mm256_sub_ps(v1, mv[u]);
                a0[u] = _mm256_add_ps(a0[u], _mm256_mul_ps(v0, v0)); a1[u] = _mm256_add_ps(a1[u], _mm256_mul_ps(v1, v1));
            } else { a0[u] = _mm256_add_ps(a0[u], v0); a1[u] = _mm256_add_ps(a1[u], v1); }
        }
    }
    FOR4 { _mm256_storeu_ps(acc[u], a0[u]); _mm256_storeu_ps(acc[u] + 8, a1[u]); }
    return j;
}
ATTR512 static long sums4_512(const float *const row[4], long c, const float *mean, float acc[4][16]) {
    __m512 a[4], mv[4];
    FOR4 { a[u] = _mm512_setzero_ps(); mv[u] = _mm512_set1_ps(mean ? mean[u] : 0.0f); }
    long j = 0;
    for (; j + 16 <= c; j += 16) {
        FOR4 {
            __m512 v = _mm512_loadu_ps(row[u] + j);
            if (mean) { v = _mm512_sub_ps(v, mv[u]); a[u] = _mm512_add_ps(a[u], _mm512_mul_ps(v, v)); }
            else a[u] = _mm512_add_ps(a[u], v);
        }
    }
    FOR4 _mm512_storeu_ps(acc[u], a[u]);
    return j;
}
/// norm_rowW: xhat = (x - mean) * rs, out = xhat * w + b, element by element (xhat may be out, or x).
#define NORM_ROW(ATTR, NAME, VT, LANES, SET1, LOAD, STORE, SUB, MUL, ADD)                          \
    ATTR static void NAME(const float *x, const float *w, const float *b, float mean, float rs, long c, \
                          float *h, float *o) {                                                    \
        VT mv = SET1(mean), rv = SET1(rs);                                                         \
        long j = 0;                                                                                \
        for (; j + LANES <= c; j += LANES) {                                                       \
            VT hv = MUL(SUB(LOAD(x + j), mv), rv);                                                 \
            STORE(h + j, hv);                                                                      \
            STORE(o + j, ADD(MUL(hv, LOAD(w + j)), LOAD(b + j)));                                  \
        }                                                                                          \
        for (; j < c; j++) { float hv = (x[j] - mean) * rs; h[j] = hv; o[j] = hv * w[j] + b[j]; }  \
    }
/// xhat = (x - mean) * rs, out = xhat * w + b, element by element (xhat may be out, or x).
NORM_ROW(ATTR256, norm_row256, __m256, 8, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_sub_ps, _mm256_mul_ps, _mm256_add_ps)
NORM_ROW(ATTR512, norm_row512, __m512, 16, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_sub_ps, _mm512_mul_ps, _mm512_add_ps)
/// Rows [0, 4 * (m / 4)) of stm_layernorm_forward on a vector path; returns the rows done.
static long layernorm_rows4(int kern, const float *x, const float *w, const float *b, float eps, long m, long c,
                            float *xhat, float *out, float *rstd) {
    long i = 0;
    for (; i + 4 <= m; i += 4) {
        const float *row[4];
        float acc[4][16], s[4], mean[4], rs[4];
        FOR4 row[u] = x + (i + u) * c;
        long j = kern == STM_GEMM_AVX512 ? sums4_512(row, c, NULL, acc) : sums4_256(row, c, NULL, acc);
        FOR4 s[u] = -0.0f;
        for (int l = 0; l < 16; l++) FOR4 s[u] += acc[u][l];  // lanes_total's order, four rows side by side
        for (long t = j; t < c; t++) FOR4 s[u] += row[u][t];
        FOR4 mean[u] = s[u] / (float)c;
        j = kern == STM_GEMM_AVX512 ? sums4_512(row, c, mean, acc) : sums4_256(row, c, mean, acc);
        FOR4 s[u] = -0.0f;
        for (int l = 0; l < 16; l++) FOR4 s[u] += acc[u][l];
        for (long t = j; t < c; t++) FOR4 { float d = row[u][t] - mean[u]; s[u] += d * d; }
        FOR4 { rs[u] = 1.0f / sqrtf(s[u] / (float)c + eps); rstd[i + u] = rs[u]; }
        for (int u = 0; u < 4; u++) {
            if (kern == STM_GEMM_AVX512) norm_row512(row[u], w, b, mean[u], rs[u], c, xhat + (i + u) * c, out + (i + u) * c);
            else norm_row256(row[u], w, b, mean[u], rs[u], c, xhat + (i + u) * c, out + (i + u) * c);
        }
    }
    return i;
}
#endif

void stm_layernorm_forward(const float *x, const float *w, const float *b, float eps, long m, long c,
                           float *xhat, float *out, float *rstd) {
    int kern = stm_gemm_kernel();
    long first = 0;
#if STM_X86
    if (kern >= STM_GEMM_AVX2) first = layernorm_rows4(kern, x, w, b, eps, m, c, xhat, out, rstd);
#endif
    for (long i = first; i < m; i++) {
        const float *row = x + i * c;
        float mean = row_sum(kern, row, c, 0, 0) / (float)c;
        float variance = row_sum(kern, row, c, mean, 1) / (float)c;
        float rs = 1.0f / sqrtf(variance + eps);
        rstd[i] = rs;
        float *h = xhat + i * c, *o = out + i * c;
        for (long j = 0; j < c; j++) h[j] = (row[j] - mean) * rs;
        for (long j = 0; j < c; j++) o[j] = h[j] * w[j] + b[j];
    }
}

#if STM_X86
ATTR512 static long dots512(const float *d, const float *w, const float *h, long n, float a1[16], float a2[16]) {
    __m512 s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps();
    long j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 g = _mm512_mul_ps(_mm512_loadu_ps(d + j), _mm512_loadu_ps(w + j));
        s1 = _mm512_add_ps(s1, g);
        s2 = _mm512_add_ps(s2, _mm512_mul_ps(g, _mm512_loadu_ps(h + j)));
    }
    _mm512_storeu_ps(a1, s1);
    _mm512_storeu_ps(a2, s2);
    return j;
}
ATTR256 static long dots256(const float *d, const float *w, const float *h, long n, float a1[16], float a2[16]) {
    __m256 s10 = _mm256_setzero_ps(), s11 = _mm256_setzero_ps(), s20 = _mm256_setzero_ps(), s21 = _mm256_setzero_ps();
    long j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256 g0 = _mm256_mul_ps(_mm256_loadu_ps(d + j), _mm256_loadu_ps(w + j));
        __m256 g1 = _mm256_mul_ps(_mm256_loadu_ps(d + j + 8), _mm256_loadu_ps(w + j + 8));
        s10 = _mm256_add_ps(s10, g0); s11 = _mm256_add_ps(s11, g1);
        s20 = _mm256_add_ps(s20, _mm256_mul_ps(g0, _mm256_loadu_ps(h + j)));
        s21 = _mm256_add_ps(s21, _mm256_mul_ps(g1, _mm256_loadu_ps(h + j + 8)));
    }
    _mm256_storeu_ps(a1, s10); _mm256_storeu_ps(a1 + 8, s11);
    _mm256_storeu_ps(a2, s20); _mm256_storeu_ps(a2 + 8, s21);
    return j;
}
#endif

/// o[j] = rs * (d[j] * w[j] - mean1 - h[j] * mean2) for j < n, eight lanes at a time (the scalar
/// expression's operations in its order, no contraction); returns the j it stopped at.
ATTR256 static long ln_dx256(const float *d, const float *w, const float *h, long n, float rs, float mean1,
                             float mean2, float *o) {
    __m256 vr = _mm256_set1_ps(rs), m1 = _mm256_set1_ps(mean1), m2 = _mm256_set1_ps(mean2);
    long j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 g = _mm256_mul_ps(_mm256_loadu_ps(d + j), _mm256_loadu_ps(w + j));
        __m256 t = _mm256_sub_ps(_mm256_sub_ps(g, m1), _mm256_mul_ps(_mm256_loadu_ps(h + j), m2));
        _mm256_storeu_ps(o + j, _mm256_mul_ps(vr, t));
    }
    return j;
}

#if STM_X86
/// The two means of W rows (c a multiple of 16, so no tail): each row's dots as one row alone makes
/// them, then all W rows' lane totals and divisions across the lanes (mean1[r] = s1 / c, mean2[r] =
/// s2 / c, the scalar path's operations). Row by row, each row's chain of adds and its divisions
/// held up the next row's work.
ATTR512 static void ln_means512(const float *xhat, const float *dy, const float *w, long c,
                                float mean1[16], float mean2[16]) {
    float a1[16][16], a2[16][16];
    for (int r = 0; r < 16; r++) dots512(dy + r * c, w, xhat + r * c, c, a1[r], a2[r]);
    __m512 n = _mm512_set1_ps((float)c);
    _mm512_storeu_ps(mean1, _mm512_div_ps(row_totals512(&a1[0][0]), n));
    _mm512_storeu_ps(mean2, _mm512_div_ps(row_totals512(&a2[0][0]), n));
}
ATTR256 static void ln_means256(const float *xhat, const float *dy, const float *w, long c,
                                float mean1[8], float mean2[8]) {
    float a1[8][16], a2[8][16];
    for (int r = 0; r < 8; r++) dots256(dy + r * c, w, xhat + r * c, c, a1[r], a2[r]);
    __m256 n = _mm256_set1_ps((float)c);
    _mm256_storeu_ps(mean1, _mm256_div_ps(row_totals256(&a1[0][0]), n));
    _mm256_storeu_ps(mean2, _mm256_div_ps(row_totals256(&a2[0][0]), n));
}
#endif

void stm_layernorm_backward(const float *xhat, const float *dy, const float *w, const float *rstd,
                            long m, long c, float *dx) {
    int kern = stm_gemm_kernel();
    long first = 0;
#if STM_X86
    // Groups of W rows where C has no tail (every preset's widths); the rest row by row below.
    long wr = c % 16 != 0 ? 0 : kern == STM_GEMM_AVX512 ? 16 : kern == STM_GEMM_AVX2 ? 8 : 0;
    for (; wr > 0 && first + wr <= m; first += wr) {
        float mean1[16], mean2[16];
        const long at = first * c;
        if (wr == 16) ln_means512(xhat + at, dy + at, w, c, mean1, mean2);
        else ln_means256(xhat + at, dy + at, w, c, mean1, mean2);
        for (long r = 0; r < wr; r++)
            ln_dx256(dy + at + r * c, w, xhat + at + r * c, c, rstd[first + r], mean1[r], mean2[r], dx + at + r * c);
    }
#endif
    for (long i = first; i < m; i++) {
        const float *h = xhat + i * c, *d = dy + i * c;
        float *o = dx + i * c;
        float a1[16] = {0}, a2[16] = {0};
        long j = 0;
#if STM_X86
        if (kern == STM_GEMM_AVX512) j = dots512(d, w, h, c, a1, a2);
        else if (kern == STM_GEMM_AVX2) j = dots256(d, w, h, c, a1, a2);
        else
#endif
        {
            for (; j + 16 <= c; j += 16)
                for (int l = 0; l < 16; l++) {
                    float g = d[j + l] * w[j + l];
                    a1[l] = a1[l] + g;
                    a2[l] = a2[l] + g * h[j + l];
                }
        }
        float s1 = lanes_total(a1), s2 = lanes_total(a2);
        for (; j < c; j++) { float g = d[j] * w[j]; s1 += g; s2 += g * h[j]; }
        float mean1 = s1 / (float)c, mean2 = s2 / (float)c, rs = rstd[i];
        j = 0;
#if STM_X86
        if (kern == STM_GEMM_AVX512 || kern == STM_GEMM_AVX2) j = ln_dx256(d, w, h, c, rs, mean1, mean2, o);
#endif
        for (; j < c; j++) o[j] = rs * (d[j] * w[j] - mean1 - h[j] * mean2);
    }
}
