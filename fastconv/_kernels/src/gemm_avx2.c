/* AVX2 + FMA micro-kernels: float 6x16 (12 ymm accumulators, as BLIS haswell). */
#include "cpu.h"
#include "gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include <immintrin.h>

static void sukr_avx2_6x16(fc_int k, const float *restrict a, const float *restrict b,
                           float *restrict c, fc_int ldc, int m, int n, float alpha, float beta)
{
    __m256 acc[6][2];
    for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (fc_int p = 0; p < k; p++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += 6;
        b += 16;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (m == 6 && n == 16) {
        for (int i = 0; i < 6; i++) {
            float *ci = c + i * ldc;
            __m256 r0 = _mm256_mul_ps(va, acc[i][0]), r1 = _mm256_mul_ps(va, acc[i][1]);
            if (beta != 0) {
                r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r0);
                r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), r1);
            }
            _mm256_storeu_ps(ci, r0);
            _mm256_storeu_ps(ci + 8, r1);
        }
        return;
    }
    float tile[6][16];
    for (int i = 0; i < 6; i++) {
        _mm256_storeu_ps(tile[i], _mm256_mul_ps(va, acc[i][0]));
        _mm256_storeu_ps(tile[i] + 8, _mm256_mul_ps(va, acc[i][1]));
    }
    for (int i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (beta == 0)
            for (int j = 0; j < n; j++) ci[j] = tile[i][j];
        else
            for (int j = 0; j < n; j++) ci[j] = __builtin_fmaf(beta, ci[j], tile[i][j]);
    }
}

#define UKR_T double
#define UKR_MR 6
#define UKR_NR 8
#define UKR_NAME dukr_avx2_6x8
#include "ukr_template.h"

#pragma GCC pop_options

const fc_skernel_t fc_skernel_avx2 = {"avx2_6x16", FC_PATH_AVX2, 6, 16, 144, 256, 4080,
                                      sukr_avx2_6x16};
const fc_dkernel_t fc_dkernel_avx2 = {"avx2_6x8", FC_PATH_AVX2, 6, 8, 144, 256, 4080,
                                      dukr_avx2_6x8};
#endif
