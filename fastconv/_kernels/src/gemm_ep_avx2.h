/* The GEMM's epilogue on one AVX2 vector of row i: v * scale[i] (scaled), + bias[i] (or
 * + 0), then ReLU (v <= 0 ? 0 : v, NaN kept: unordered compares true) and the clamp at 6
 * (relu 2).  One definition for the pass over C (gemm.c) and the micro-kernel's fused
 * store (gemm_avx2.c): the same operations in the same order, so the same bits.
 * Include after <immintrin.h>; callers are compiled for AVX2. */
#ifndef FASTCONV_GEMM_EP_AVX2_H
#define FASTCONV_GEMM_EP_AVX2_H

__attribute__((target("avx2"), always_inline))
static inline __m256 fc_ep_avx2(__m256 v, int scaled, __m256 a, __m256 b, int relu)
{
    if (scaled) v = _mm256_mul_ps(v, a);
    v = _mm256_add_ps(v, b);
    if (relu)
        v = _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NLE_UQ));
    if (relu == 2) {
        const __m256 six = _mm256_set1_ps(6.0f);
        v = _mm256_blendv_ps(v, six, _mm256_cmp_ps(v, six, _CMP_GE_OQ));
    }
    return v;
}

#endif
