/* 2x2 pooling fast paths (pool_impl.h), compiled per ISA; the dispatch table takes the
 * best set the CPU flags allow. */
#include <math.h>

#include "cpu.h"
#include "pool.h"

/* On AArch64 the baseline has NEON, which the compiler would use here too: the generic
 * set stays scalar there (the reference FASTCONV_ISA=generic selects), the NEON set below
 * is the vectorised one. */
#if defined(__aarch64__)
#pragma GCC push_options
#pragma GCC optimize("no-tree-vectorize", "no-tree-slp-vectorize")
#endif
#define P_NAME(x) p_##x##_generic
#include "pool_impl.h"
#undef P_NAME
#if defined(__aarch64__)
#pragma GCC pop_options
#endif

#define P_SET(isa, flags) \
    const fc_pool_kernels_t fc_pool_##isa = {flags, p_max2x2_fwd_##isa, p_max2x2_bwd_##isa, \
                                             p_avg2x2_fwd_##isa, p_avg2x2_bwd_##isa, \
                                             p_max_rows_##isa, p_max_cols_##isa, #isa}
P_SET(generic, 0);

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define P_NAME(x) p_##x##_avx2
#include "pool_impl.h"
#undef P_NAME
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
#define P_NAME(x) p_##x##_avx512_auto
#include "pool_impl.h"
#undef P_NAME
#include <immintrin.h>

/* The argmax paths do not auto-vectorise (byte indices beside float selects), so they
 * are written out: deinterleave 32 inputs into even/odd columns, four masked selects in
 * torch's scan order, indices narrowed to bytes.  Tails use the template's loop. */
static void p_max2x2_fwd_avx512(const float *restrict x, fc_int H, fc_int W, float *restrict y,
                                unsigned char *restrict idx, fc_int OH, fc_int OW)
{
    if (!idx) { p_max2x2_fwd_avx512_auto(x, H, W, y, idx, OH, OW); return; }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2), three = _mm512_set1_epi32(3);
    fc_int vec_end = (OW / 16) * 16;
    for (fc_int oh = 0; oh < OH; oh++) {
        const float *r0 = x + (2 * oh) * W, *r1 = r0 + W;
        float *yr = y + oh * OW;
        unsigned char *ir = idx + oh * OW;
        for (fc_int ow = 0; ow < vec_end; ow += 16) {
            __m512 u0 = _mm512_loadu_ps(r0 + 2 * ow), u1 = _mm512_loadu_ps(r0 + 2 * ow + 16);
            __m512 v0 = _mm512_loadu_ps(r1 + 2 * ow), v1 = _mm512_loadu_ps(r1 + 2 * ow + 16);
            __m512 a = _mm512_permutex2var_ps(u0, even, u1), b = _mm512_permutex2var_ps(u0, odd, u1);
            __m512 c = _mm512_permutex2var_ps(v0, even, v1), d = _mm512_permutex2var_ps(v0, odd, v1);
            __m512 m = a;
            __m512i k = _mm512_setzero_si512();
            __mmask16 t = _mm512_cmp_ps_mask(b, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
            m = _mm512_mask_blend_ps(t, m, b); k = _mm512_mask_blend_epi32(t, k, one);
            t = _mm512_cmp_ps_mask(c, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q);
            m = _mm512_mask_blend_ps(t, m, c); k = _mm512_mask_blend_epi32(t, k, two);
            t = _mm512_cmp_ps_mask(d, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q);
            m = _mm512_mask_blend_ps(t, m, d); k = _mm512_mask_blend_epi32(t, k, three);
            _mm512_storeu_ps(yr + ow, m);
            _mm_storeu_si128((__m128i *)(ir + ow), _mm512_cvtepi32_epi8(k));
        }
        if (vec_end < OW) {   /* tail: one row of the generic loop on the remaining columns */
            for (fc_int ow = vec_end; ow < OW; ow++) {
                float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
                float m = a;
                unsigned char k = 0;
                if (b > m || b != b) { m = b; k = 1; }
                if (c > m || c != c) { m = c; k = 2; }
                if (d > m || d != d) { m = d; k = 3; }
                yr[ow] = m;
                ir[ow] = k;
            }
        }
    }
}

static void p_max2x2_bwd_avx512(const float *restrict dy, const unsigned char *restrict idx,
                                fc_int OH, fc_int OW, float *restrict dx, fc_int H, fc_int W)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    fc_int vec_end = (OW / 16) * 16;
    for (fc_int oh = 0; oh < OH; oh++) {
        float *r0 = dx + (2 * oh) * W, *r1 = r0 + W;
        const float *gr = dy + oh * OW;
        const unsigned char *ir = idx + oh * OW;
        for (fc_int ow = 0; ow < vec_end; ow += 16) {
            __m512 g = _mm512_loadu_ps(gr + ow);
            __m512i k = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ir + ow)));
            __m512 g0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(0)), g);
            __m512 g1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(1)), g);
            __m512 g2 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(2)), g);
            __m512 g3 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(3)), g);
            _mm512_storeu_ps(r0 + 2 * ow, _mm512_permutex2var_ps(g0, lo, g1));
            _mm512_storeu_ps(r0 + 2 * ow + 16, _mm512_permutex2var_ps(g0, hi, g1));
            _mm512_storeu_ps(r1 + 2 * ow, _mm512_permutex2var_ps(g2, lo, g3));
            _mm512_storeu_ps(r1 + 2 * ow + 16, _mm512_permutex2var_ps(g2, hi, g3));
        }
        for (fc_int ow = vec_end; ow < OW; ow++) {
            float g = gr[ow];
            unsigned char k = ir[ow];
            r0[2 * ow] = k == 0 ? g : 0.0f;
            r0[2 * ow + 1] = k == 1 ? g : 0.0f;
            r1[2 * ow] = k == 2 ? g : 0.0f;
            r1[2 * ow + 1] = k == 3 ? g : 0.0f;
        }
        for (fc_int w = 2 * OW; w < W; w++) r0[w] = r1[w] = 0;
    }
    for (fc_int h = 2 * OH; h < H; h++)
        for (fc_int w = 0; w < W; w++) dx[h * W + w] = 0;
}
#define p_avg2x2_fwd_avx512 p_avg2x2_fwd_avx512_auto
#define p_avg2x2_bwd_avx512 p_avg2x2_bwd_avx512_auto
#define p_max_rows_avx512 p_max_rows_avx512_auto
#define p_max_cols_avx512 p_max_cols_avx512_auto
#pragma GCC pop_options
P_SET(avx2, FC_PATH_AVX2);
P_SET(avx512, FC_CPU_AVX512F | FC_CPU_AVX512BW | FC_CPU_AVX512VL);
#endif

#if defined(__aarch64__)
/* NEON (AArch64's Advanced SIMD): the template vectorised for 128-bit registers */
#define P_NAME(x) p_##x##_neon
#include "pool_impl.h"
#undef P_NAME
P_SET(neon, FC_CPU_NEON);
#endif
