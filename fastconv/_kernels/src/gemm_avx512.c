/* AVX-512 micro-kernels: float 8x48 = 24 zmm accumulators (3 loads + 8 broadcasts per
 * 24 FMAs), on packed B panels or on B read in place.  Edges use masked loads/stores,
 * so partial tiles run the same arithmetic as full ones (bitwise-equal results). */
#include "cpu.h"
#include "gemm.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#include <immintrin.h>

/* The kernels' shared parts: MR x NV zmm accumulators (MR*NV <= 28) zeroed and the n
 * live columns' masks; one k step's rank-1 update from the NV vectors bv; the masked
 * store of C = alpha * acc + beta * C (the same operations in every kernel, so the bits
 * do not depend on which one ran). */
#define SUKR_DECL(MR, NV)                                                                  \
    __m512 acc[MR][NV];                                                                    \
    __mmask16 km[NV];                                                                      \
    for (int v = 0; v < NV; v++) {                                                         \
        int r = n - 16 * v;                                                                \
        km[v] = r >= 16 ? (__mmask16)0xFFFF : r > 0 ? (__mmask16)((1u << r) - 1) : 0;      \
    }                                                                                      \
    _Pragma("GCC unroll 16")                                                               \
    for (int i = 0; i < MR; i++)                                                           \
        _Pragma("GCC unroll 4")                                                            \
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();

#define SUKR_FMA(MR, NV)                                                                   \
    _Pragma("GCC unroll 16")                                                               \
    for (int i = 0; i < MR; i++) {                                                         \
        __m512 ai = _mm512_set1_ps(a[i]);                                                  \
        _Pragma("GCC unroll 4")                                                            \
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);    \
    }

#define SUKR_STORE(MR, NV)                                                                 \
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);                          \
    _Pragma("GCC unroll 16")                                                               \
    for (int i = 0; i < MR; i++) {                                                         \
        if (i >= m) break;                                                                 \
        float *ci = c + i * ldc;                                                           \
        _Pragma("GCC unroll 4")                                                            \
        for (int v = 0; v < NV; v++) {                                                     \
            __m512 r = alpha == 1 ? acc[i][v] : _mm512_mul_ps(va, acc[i][v]);              \
            if (beta != 0)                                                                 \
                r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(km[v], ci + 16 * v), r);     \
            _mm512_mask_storeu_ps(ci + 16 * v, km[v], r);                                  \
        }                                                                                  \
    }

/* Packed B rows BS floats apart (BS >= 16*NV: a narrow kernel can sweep the left part of
 * a wider panel).  Instantiated below. */
#define DEFINE_SUKR_AVX512(NAME, MR, NV, BS)                                               \
static void NAME(fc_int k, const float *restrict a, const float *restrict b,               \
                 float *restrict c, fc_int ldc, int m, int n, float alpha, float beta)     \
{                                                                                          \
    SUKR_DECL(MR, NV)                                                                      \
    for (fc_int p = 0; p < k; p++, a += MR, b += BS) {                                     \
        __m512 bv[NV];                                                                     \
        _Pragma("GCC unroll 4")                                                            \
        for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + 16 * v);                  \
        _mm_prefetch((const char *)(b + 8 * BS), _MM_HINT_T0);                             \
        SUKR_FMA(MR, NV)                                                                   \
    }                                                                                      \
    SUKR_STORE(MR, NV)                                                                     \
}

/* 8x48 measured best here (12x32, 6x64 and 4x96 were tried): it divides the common
 * 64/128/256 channel counts and needs 8 broadcasts per 24 FMAs. */
DEFINE_SUKR_AVX512(sukr_avx512_8x48_full, 8, 3, 48)
DEFINE_SUKR_AVX512(sukr_avx512_8x32_of48, 8, 2, 48)
DEFINE_SUKR_AVX512(sukr_avx512_8x16_of48, 8, 1, 48)

/* An edge panel of 16 or 32 live columns (64- and 128-channel outputs: 48 + 16,
 * 96 + 32) skips the all-zero vectors instead of multiplying them.  Each column's
 * arithmetic is the same in all three, so the bits do not depend on the panel width. */
static void sukr_avx512_8x48(fc_int k, const float *restrict a, const float *restrict b,
                             float *restrict c, fc_int ldc, int m, int n, float alpha, float beta)
{
    if (n <= 16)
        sukr_avx512_8x16_of48(k, a, b, c, ldc, m, n, alpha, beta);
    else if (n <= 32)
        sukr_avx512_8x32_of48(k, a, b, c, ldc, m, n, alpha, beta);
    else
        sukr_avx512_8x48_full(k, a, b, c, ldc, m, n, alpha, beta);
}

/* B in place (fc_sukr_b_t): rows ldb apart, the n live columns loaded under a mask (a
 * row's end may be the array's), the rows 8 ahead prefetched (the hardware prefetcher
 * follows few of the k streams). */
#define DEFINE_SUKR_AVX512_B(NAME, MR, NV)                                                 \
static void NAME(fc_int k, const float *restrict a, const float *restrict b, fc_int ldb,   \
                 float *restrict c, fc_int ldc, int m, int n, float alpha, float beta)     \
{                                                                                          \
    SUKR_DECL(MR, NV)                                                                      \
    for (fc_int p = 0; p < k; p++, a += MR, b += ldb) {                                    \
        __m512 bv[NV];                                                                     \
        _Pragma("GCC unroll 4")                                                            \
        for (int v = 0; v < NV; v++) {                                                     \
            bv[v] = _mm512_maskz_loadu_ps(km[v], b + 16 * v);                              \
            _mm_prefetch((const char *)(b + 8 * ldb + 16 * v), _MM_HINT_T0);               \
        }                                                                                  \
        SUKR_FMA(MR, NV)                                                                   \
    }                                                                                      \
    SUKR_STORE(MR, NV)                                                                     \
}

DEFINE_SUKR_AVX512_B(sukr_b_avx512_8x48, 8, 3)
DEFINE_SUKR_AVX512_B(sukr_b_avx512_8x32, 8, 2)
DEFINE_SUKR_AVX512_B(sukr_b_avx512_8x16, 8, 1)

static void sukr_b_avx512(fc_int k, const float *restrict a, const float *restrict b,
                          fc_int ldb, float *restrict c, fc_int ldc, int m, int n, float alpha,
                          float beta)
{
    if (n <= 16)
        sukr_b_avx512_8x16(k, a, b, ldb, c, ldc, m, n, alpha, beta);
    else if (n <= 32)
        sukr_b_avx512_8x32(k, a, b, ldb, c, ldc, m, n, alpha, beta);
    else
        sukr_b_avx512_8x48(k, a, b, ldb, c, ldc, m, n, alpha, beta);
}

#define UKR_T double
#define UKR_MR 8
#define UKR_NR 16
#define UKR_NAME dukr_avx512_8x16
#include "ukr_template.h"

#pragma GCC pop_options

const fc_skernel_t fc_skernel_avx512 = {"avx512_8x48", FC_PATH_AVX512, 8, 48, 240, 256, 1536,
                                        sukr_avx512_8x48, sukr_b_avx512};
const fc_dkernel_t fc_dkernel_avx512 = {"avx512_8x16", FC_PATH_AVX512, 8, 16, 128, 256, 2048,
                                        dukr_avx512_8x16};
#endif
