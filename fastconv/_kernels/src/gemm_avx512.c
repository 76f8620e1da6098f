/* AVX-512 micro-kernels: float 12x32 = 24 zmm accumulators (2 loads + 12 broadcasts
 * per 24 FMAs, the BLIS skx / oneDNN brgemm shape).  Edges use masked loads/stores,
 * so partial tiles run the same arithmetic as full ones (bitwise-equal results). */
#include "gemm.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#include <immintrin.h>

static void sukr_avx512_12x32(fc_int k, const float *restrict a, const float *restrict b,
                              float *restrict c, fc_int ldc, int m, int n, float alpha, float beta)
{
    __m512 acc[12][2];
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (fc_int p = 0; p < k; p++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        _mm_prefetch((const char *)(b + 8 * 32), _MM_HINT_T0);
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += 12;
        b += 32;
    }
    __mmask16 k0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    __mmask16 k1 = n >= 32 ? (__mmask16)0xFFFF : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0;
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) {
        if (i >= m) break;
        float *ci = c + i * ldc;
        __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
        if (beta != 0) {
            r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k0, ci), r0);
            r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k1, ci + 16), r1);
        }
        _mm512_mask_storeu_ps(ci, k0, r0);
        _mm512_mask_storeu_ps(ci + 16, k1, r1);
    }
}

#define UKR_T double
#define UKR_MR 8
#define UKR_NR 16
#define UKR_NAME dukr_avx512_8x16
#include "ukr_template.h"

#pragma GCC pop_options

const fc_skernel_t fc_skernel_avx512 = {"avx512_12x32", 12, 32, 240, 384, 3072, sukr_avx512_12x32};
const fc_dkernel_t fc_dkernel_avx512 = {"avx512_8x16", 8, 16, 128, 256, 2048, dukr_avx512_8x16};
#else
const fc_skernel_t fc_skernel_avx512 = {"generic_4x8", 4, 8, 128, 256, 2048, 0};
const fc_dkernel_t fc_dkernel_avx512 = {"generic_4x4", 4, 4, 128, 256, 2048, 0};
#endif
