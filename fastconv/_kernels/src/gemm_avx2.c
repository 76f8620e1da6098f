/* AVX2 + FMA micro-kernels: float 6x16 (12 ymm accumulators, as BLIS haswell). */
#include "cpu.h"
#include "gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include "gemm_ep_avx2.h"

/* The 6x16 kernels' shared parts: one k step's rank-1 update from b0, b1 and six values
 * of a, and the store of C = alpha * acc + beta * C (full tiles plain, edge tiles under a
 * lane mask k0 / k1: the same operations either way). */
#define SUKR_AVX2_FMA                                                                      \
        ai = _mm256_broadcast_ss(a + 0);                                                   \
        c00 = _mm256_fmadd_ps(ai, b0, c00); c01 = _mm256_fmadd_ps(ai, b1, c01);            \
        ai = _mm256_broadcast_ss(a + 1);                                                   \
        c10 = _mm256_fmadd_ps(ai, b0, c10); c11 = _mm256_fmadd_ps(ai, b1, c11);            \
        ai = _mm256_broadcast_ss(a + 2);                                                   \
        c20 = _mm256_fmadd_ps(ai, b0, c20); c21 = _mm256_fmadd_ps(ai, b1, c21);            \
        ai = _mm256_broadcast_ss(a + 3);                                                   \
        c30 = _mm256_fmadd_ps(ai, b0, c30); c31 = _mm256_fmadd_ps(ai, b1, c31);            \
        ai = _mm256_broadcast_ss(a + 4);                                                   \
        c40 = _mm256_fmadd_ps(ai, b0, c40); c41 = _mm256_fmadd_ps(ai, b1, c41);            \
        ai = _mm256_broadcast_ss(a + 5);                                                   \
        c50 = _mm256_fmadd_ps(ai, b0, c50); c51 = _mm256_fmadd_ps(ai, b1, c51);

/* The GEMM's epilogue on row I's two vectors (ep: fc_tile_ep_t, or NULL): gemm.c's pass,
 * through the same fc_ep_avx2. */
#define SUKR_AVX2_EP(I, r0, r1)                                                            \
    if (ep) {                                                                              \
        const __m256 sv = _mm256_set1_ps(ep->scale ? ep->scale[I] : 1.0f);                 \
        const __m256 bv = _mm256_set1_ps(ep->bias ? ep->bias[I] : 0.0f);                   \
        r0 = fc_ep_avx2(r0, ep->scale != NULL, sv, bv, ep->relu);                          \
        r1 = fc_ep_avx2(r1, ep->scale != NULL, sv, bv, ep->relu);                          \
    }

#define SUKR_AVX2_ROW(I, R0, R1)                                                           \
    if (I < m) {                                                                           \
        float *ci = c + (I) * ldc;                                                         \
        __m256 r0 = _mm256_mul_ps(va, R0), r1 = _mm256_mul_ps(va, R1);                     \
        if (full) {                                                                        \
            if (beta != 0) {                                                               \
                r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r0);                         \
                r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), r1);                     \
            }                                                                              \
            SUKR_AVX2_EP(I, r0, r1)                                                        \
            _mm256_storeu_ps(ci, r0);                                                      \
            _mm256_storeu_ps(ci + 8, r1);                                                  \
        } else {                                                                           \
            if (beta != 0) {                                                               \
                r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci, k0), r0);                  \
                r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci + 8, k1), r1);              \
            }                                                                              \
            SUKR_AVX2_EP(I, r0, r1)                                                        \
            _mm256_maskstore_ps(ci, k0, r0);                                               \
            _mm256_maskstore_ps(ci + 8, k1, r1);                                           \
        }                                                                                  \
    }

#define SUKR_AVX2_STORE                                                                    \
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);                    \
    SUKR_AVX2_ROW(0, c00, c01)                                                             \
    SUKR_AVX2_ROW(1, c10, c11)                                                             \
    SUKR_AVX2_ROW(2, c20, c21)                                                             \
    SUKR_AVX2_ROW(3, c30, c31)                                                             \
    SUKR_AVX2_ROW(4, c40, c41)                                                             \
    SUKR_AVX2_ROW(5, c50, c51)

/* The accumulators are whole-unrolled named registers and the edge tile is stored
 * under a lane mask: with the partial tile spilled through a stack array GCC kept all
 * twelve accumulators in memory and stored them on every k step (25 GFLOP/s where
 * OpenBLAS runs 72 on one Zen 3 core).  Full and edge tiles do the same arithmetic, so
 * the bits do not depend on where a tile falls. */
static inline __attribute__((always_inline)) void sukr_avx2_6x16_body(
    fc_int k, const float *restrict a, const float *restrict b, float *restrict c, fc_int ldc,
    int m, int n, float alpha, float beta, const fc_tile_ep_t *ep)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
    for (fc_int p = 0; p < k; p++, a += 6, b += 16) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), ai;
        SUKR_AVX2_FMA
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane),
                  k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), lane);
    const int full = n == 16;
    SUKR_AVX2_STORE
}

static void sukr_avx2_6x16(fc_int k, const float *restrict a, const float *restrict b,
                           float *restrict c, fc_int ldc, int m, int n, float alpha, float beta)
{
    sukr_avx2_6x16_body(k, a, b, c, ldc, m, n, alpha, beta, NULL);
}

static void sukr_avx2_6x16_ep(fc_int k, const float *restrict a, const float *restrict b,
                              float *restrict c, fc_int ldc, int m, int n, float alpha,
                              float beta, const fc_tile_ep_t *ep)
{
    sukr_avx2_6x16_body(k, a, b, c, ldc, m, n, alpha, beta, ep);
}

/* B read in place (fc_sukr_b_t): rows ldb apart, the n live columns loaded under a lane
 * mask (zeros past n, as a packed panel's), the row 8 ahead prefetched; the same
 * products in the same order as the packed kernel, so the same bits.  Taken for GEMMs of
 * few rows (1x1 convolutions at one frame), where packing B cost as much as using it. */
static inline __attribute__((always_inline)) void sukr_b_avx2_6x16_body(
    fc_int k, const float *restrict a, const float *restrict b, fc_int ldb, float *restrict c,
    fc_int ldc, int m, int n, float alpha, float beta, const fc_tile_ep_t *ep)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane),
                  k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), lane);
    const int full = n == 16;
    for (fc_int p = 0; p < k; p++, a += 6, b += ldb) {
        __m256 b0, b1, ai;
        if (full) {
            b0 = _mm256_loadu_ps(b);
            b1 = _mm256_loadu_ps(b + 8);
        } else {
            b0 = _mm256_maskload_ps(b, k0);
            b1 = _mm256_maskload_ps(b + 8, k1);
        }
        _mm_prefetch((const char *)(b + 8 * ldb), _MM_HINT_T0);
        SUKR_AVX2_FMA
    }
    SUKR_AVX2_STORE
}

static void sukr_b_avx2_6x16(fc_int k, const float *restrict a, const float *restrict b,
                             fc_int ldb, float *restrict c, fc_int ldc, int m, int n,
                             float alpha, float beta)
{
    sukr_b_avx2_6x16_body(k, a, b, ldb, c, ldc, m, n, alpha, beta, NULL);
}

static void sukr_b_avx2_6x16_ep(fc_int k, const float *restrict a, const float *restrict b,
                                fc_int ldb, float *restrict c, fc_int ldc, int m, int n,
                                float alpha, float beta, const fc_tile_ep_t *ep)
{
    sukr_b_avx2_6x16_body(k, a, b, ldb, c, ldc, m, n, alpha, beta, ep);
}


#define UKR_T double
#define UKR_MR 6
#define UKR_NR 8
#define UKR_NAME dukr_avx2_6x8
#include "ukr_template.h"

#pragma GCC pop_options

const fc_skernel_t fc_skernel_avx2 = {"avx2_6x16", FC_PATH_AVX2, 6, 16, 144, 256, 4080,
                                      sukr_avx2_6x16, sukr_b_avx2_6x16,
                                      sukr_avx2_6x16_ep, sukr_b_avx2_6x16_ep};
const fc_dkernel_t fc_dkernel_avx2 = {"avx2_6x8", FC_PATH_AVX2, 6, 8, 144, 256, 4080,
                                      dukr_avx2_6x8};
#endif
