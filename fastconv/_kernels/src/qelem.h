/* int8 inference's element-wise and pooling kernels on u8 NHWC: plain C compiled once
 * (into _quant, portable flags), so the same code and the same bits on every ISA path.
 * Written as simple loops over restrict pointers so the compiler vectorises them (a
 * first layer's quantisation and a max pool cost as much as a small convolution when
 * compiled byte by byte). */
#ifndef FASTCONV_QELEM_H
#define FASTCONV_QELEM_H
#include <stdint.h>
#include <string.h>
#include "base.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* clamp(v, 0, 255) rounded half to even, as lrintf: adding 1.5 * 2^23 leaves no fraction
 * bits, so the addition rounds (nearest even, the default mode) - in a form that
 * vectorises, where lrintf's 64-bit result does not.  NaN clamps to 0 (comparisons
 * false), as the float path's max(v, lo). */
static inline uint8_t fc_q_round_u8(float v)
{
    const float magic = 12582912.0f;
    v = v > 0.0f ? v : 0.0f;
    v = v < 255.0f ? v : 255.0f;
    return (uint8_t)(int32_t)((v + magic) - magic);
}

#define FC_Q_CHUNK 256

/* One image row of float32 NCHW -> u8 NHWC: x at (n, 0, h, 0) with channels cs apart,
 * y at (n, h, 0, 0) with cy >= c channels per pixel (channels past c set to z).
 * y = round(clamp(x * inv + zp, 0, 255)), the multiply and add separate (no FMA). */
static void fc_q_quantize_row(const float *restrict x, fc_int c, fc_int cs, fc_int w,
                              float inv, float zp, uint8_t z, uint8_t *restrict y, fc_int cy)
{
    uint8_t tmp[FC_Q_CHUNK];
    for (fc_int w0 = 0; w0 < w; w0 += FC_Q_CHUNK) {
        const fc_int n = w - w0 < FC_Q_CHUNK ? w - w0 : FC_Q_CHUNK;
        for (fc_int ch = 0; ch < c; ch++) {
            const float *restrict src = x + ch * cs + w0;
            fc_int i = 0;
#if defined(__SSE2__)
            /* the compiler keeps the clamps' branches (NaN semantics), so by hand: maxps
             * returns its second operand for NaN, as the scalar rule */
            const __m128 vi = _mm_set1_ps(inv), vz = _mm_set1_ps(zp), lo = _mm_setzero_ps(),
                         hi = _mm_set1_ps(255.0f), magic = _mm_set1_ps(12582912.0f);
            for (; i + 8 <= n; i += 8) {
                __m128 a = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(src + i), vi), vz);
                __m128 b = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(src + i + 4), vi), vz);
                a = _mm_min_ps(_mm_max_ps(a, lo), hi);
                b = _mm_min_ps(_mm_max_ps(b, lo), hi);
                a = _mm_sub_ps(_mm_add_ps(a, magic), magic);
                b = _mm_sub_ps(_mm_add_ps(b, magic), magic);
                __m128i p = _mm_packs_epi32(_mm_cvttps_epi32(a), _mm_cvttps_epi32(b));
                _mm_storel_epi64((__m128i *)(tmp + i), _mm_packus_epi16(p, p));
            }
#endif
            for (; i < n; i++) {
                float v = src[i] * inv;
                v = v + zp;
                tmp[i] = fc_q_round_u8(v);
            }
            uint8_t *restrict dst = y + w0 * cy + ch;
            for (fc_int i = 0; i < n; i++) dst[i * cy] = tmp[i];
        }
        for (fc_int ch = c; ch < cy; ch++)
            for (fc_int i = 0; i < n; i++) y[(w0 + i) * cy + ch] = z;
    }
}

/* One output row oh of max pooling on u8 NHWC (x (H, W, C) of one image, y (OW, C)):
 * the max over the window's taps inside the input (padding never wins, as -inf in
 * float; a window with none gives 0). */
static void fc_q_maxpool_row(const uint8_t *restrict x, fc_int H, fc_int W, fc_int C,
                             fc_int oh, fc_int OW, fc_int kh, fc_int kw, fc_int sh, fc_int sw,
                             fc_int ph, fc_int pw, fc_int dh, fc_int dw, uint8_t *restrict y)
{
    for (fc_int ow = 0; ow < OW; ow++) {
        uint8_t *restrict dst = y + ow * C;
        int first = 1;
        for (fc_int i = 0; i < kh; i++) {
            const fc_int ih = oh * sh - ph + i * dh;
            if (ih < 0 || ih >= H) continue;
            for (fc_int j = 0; j < kw; j++) {
                const fc_int iw = ow * sw - pw + j * dw;
                if (iw < 0 || iw >= W) continue;
                const uint8_t *restrict src = x + (ih * W + iw) * C;
                if (first) {
                    memcpy(dst, src, (size_t)C);
                    first = 0;
                } else {
                    for (fc_int c = 0; c < C; c++) dst[c] = src[c] > dst[c] ? src[c] : dst[c];
                }
            }
        }
        if (first) memset(dst, 0, (size_t)C);
    }
}

#endif
