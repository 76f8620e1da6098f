/* Winograd convolution, 3x3 stride 1, dilation 1, groups 1, float32: the forward by
 * F(2x2, 3x3) or F(4x4, 3x3) (one driver, below), the weight gradient by F(2x2, 3x3).
 *
 * Tiles (image, tile row, tile column) are processed in blocks fixed by the shapes
 * (never by the thread count): per block, the input transform writes V[P][C][TB], P
 * GEMMs (M x C) @ (C x TB) give Mx[P][M][TB], and the output transform writes the
 * output tiles with bias and ReLU fused.  V and Mx are sized to stay near L2. */
#define _POSIX_C_SOURCE 200112L
#include <stdlib.h>
#include <string.h>
#include "gemm.h"

/* The transforms copy 16-lane rows in loops: keep them as vector moves, not memcpy calls */
#pragma GCC optimize("no-tree-loop-distribute-patterns")

/* Row ih of an input patch whose `width` columns start at iw0: a pointer into the plane
 * when they all lie inside it, else buf holding them, zero outside the plane and past
 * the `used` columns the tiles read. */
static inline const float *w_patch_row(const float *plane, fc_int H, fc_int W, fc_int ih,
                                       fc_int iw0, int width, fc_int used, float *buf)
{
    int row_in = ih >= 0 && ih < H;
    if (row_in && iw0 >= 0 && iw0 + width <= W) return plane + ih * W + iw0;
    for (int q = 0; q < width; q++) buf[q] = 0;
    if (row_in) {
        fc_int lo = iw0 < 0 ? -iw0 : 0, hi = W - iw0;
        if (hi > used) hi = used;
        for (fc_int q = lo; q < hi; q++) buf[q] = plane[ih * W + iw0 + q];
    }
    return buf;
}

/* The run of tiles from tile t: its image n, tile row th and column tw; the run stays in
 * one tile row, is at most 16 tiles (one transform call) and ends by t1. */
static inline fc_int w_run(fc_int t, fc_int t1, fc_int TH, fc_int TW, fc_int *n, fc_int *th,
                           fc_int *tw)
{
    fc_int r = t % (TH * TW), run;
    *n = t / (TH * TW);
    *th = r / TW;
    *tw = r % TW;
    run = TW - *tw < 16 ? TW - *tw : 16;
    return run < t1 - t ? run : t1 - t;
}

#define W_NAME(x) w_##x##_generic
#include "winograd_impl.h"
#undef W_NAME
#define W43_WL 16
#define W_NAME(x) w_##x##_16_generic
#include "winograd43_impl.h"
#undef W_NAME
#undef W43_WL
#define W43_WL 8
#define W_NAME(x) w_##x##_8_generic
#include "winograd43_impl.h"
#undef W_NAME
#undef W43_WL
#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define W_NAME(x) w_##x##_avx2
#include "winograd_impl.h"
#undef W_NAME
#define W43_WL 16
#define W_NAME(x) w_##x##_16_avx2
#include "winograd43_impl.h"
#undef W_NAME
#undef W43_WL
#define W43_WL 8
#define W_NAME(x) w_##x##_8_avx2
#include "winograd43_impl.h"
#undef W_NAME
#undef W43_WL
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl")
#include <immintrin.h>
/* AVX-512: the even/odd column split and the output interleave are two-source permutes
 * (GCC leaves them scalar); everything else is the template's arithmetic. */
static void w_input_tiles_avx512(const float *restrict plane, fc_int H, fc_int W, fc_int ih0,
                                 fc_int iw0, int n, float *restrict V, fc_int vs)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    /* patch columns q in [lo, hi) lie inside the plane; the four loads cover q = base +
     * lane for base 0, 16, 2, 18 and mask the rest (masked lanes never fault) */
    fc_int lo = iw0 < 0 ? -iw0 : 0, hi = W - iw0;
    if (hi > 2 * n + 2) hi = 2 * n + 2;
    __mmask16 lm[4];
    const int base[4] = {0, 16, 2, 18};
    for (int i = 0; i < 4; i++) {
        fc_int a0 = lo - base[i], a1 = hi - base[i];
        a0 = a0 < 0 ? 0 : a0 > 16 ? 16 : a0;
        a1 = a1 < 0 ? 0 : a1 > 16 ? 16 : a1;
        unsigned int keep = a1 > a0 ? (((1u << a1) - 1) & ~((1u << a0) - 1)) : 0u;
        lm[i] = (__mmask16)keep;
    }
    __m512 h[4][4];
    for (int r = 0; r < 4; r++) {
        fc_int ih = ih0 + r;
        int valid = ih >= 0 && ih < H;
        const float *row = plane + (valid ? ih : 0) * W + iw0;
        __mmask16 z = valid ? (__mmask16)0xFFFF : 0;
        __m512 a = _mm512_maskz_loadu_ps(lm[0] & z, row), b = _mm512_maskz_loadu_ps(lm[1] & z, row + 16);
        __m512 c = _mm512_maskz_loadu_ps(lm[2] & z, row + 2), d = _mm512_maskz_loadu_ps(lm[3] & z, row + 18);
        __m512 e = _mm512_permutex2var_ps(a, ev, b), o = _mm512_permutex2var_ps(a, od, b);
        __m512 en = _mm512_permutex2var_ps(c, ev, d), on = _mm512_permutex2var_ps(c, od, d);
        h[r][0] = _mm512_sub_ps(e, en);
        h[r][1] = _mm512_add_ps(o, en);
        h[r][2] = _mm512_sub_ps(en, o);
        h[r][3] = _mm512_sub_ps(o, on);
    }
    __mmask16 km = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    for (int k = 0; k < 4; k++) {
        _mm512_mask_storeu_ps(V + (0 * 4 + k) * vs, km, _mm512_sub_ps(h[0][k], h[2][k]));
        _mm512_mask_storeu_ps(V + (1 * 4 + k) * vs, km, _mm512_add_ps(h[1][k], h[2][k]));
        _mm512_mask_storeu_ps(V + (2 * 4 + k) * vs, km, _mm512_sub_ps(h[2][k], h[1][k]));
        _mm512_mask_storeu_ps(V + (3 * 4 + k) * vs, km, _mm512_sub_ps(h[1][k], h[3][k]));
    }
}

static void w_output_tiles_avx512(const float *restrict Mx, fc_int ms, int n, float *restrict y,
                                  fc_int OH, fc_int OW, fc_int oh0, fc_int ow0, float bias,
                                  int relu)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    __mmask16 km = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    __m512 m[16];
    for (int xi = 0; xi < 16; xi++) m[xi] = _mm512_maskz_loadu_ps(km, Mx + xi * ms);
    __m512 t[2][4];
    for (int k = 0; k < 4; k++) {
        t[0][k] = _mm512_add_ps(_mm512_add_ps(m[k], m[4 + k]), m[8 + k]);
        t[1][k] = _mm512_sub_ps(_mm512_sub_ps(m[4 + k], m[8 + k]), m[12 + k]);
    }
    fc_int cols = 2 * (fc_int)n;
    if (ow0 + cols > OW) cols = OW - ow0;
    __mmask16 k0 = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
    __mmask16 k1 = cols >= 32 ? (__mmask16)0xFFFF : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;
    __m512 vb = _mm512_set1_ps(bias), zero = _mm512_setzero_ps();
    for (int r = 0; r < 2; r++) {
        if (oh0 + r >= OH) break;
        __m512 a = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(t[r][0], t[r][1]), t[r][2]), vb);
        __m512 b = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(t[r][1], t[r][2]), t[r][3]), vb);
        if (relu) {   /* v <= 0 ? 0 : v (NaN kept, as everywhere else) */
            a = _mm512_mask_mov_ps(a, _mm512_cmp_ps_mask(a, zero, _CMP_LE_OQ), zero);
            b = _mm512_mask_mov_ps(b, _mm512_cmp_ps_mask(b, zero, _CMP_LE_OQ), zero);
        }
        float *dst = y + (oh0 + r) * OW + ow0;
        _mm512_mask_storeu_ps(dst, k0, _mm512_permutex2var_ps(a, lo, b));
        _mm512_mask_storeu_ps(dst + 16, k1, _mm512_permutex2var_ps(a, hi, b));
    }
}
static void w_grad_tiles_avx512(const float *restrict dy, fc_int OH, fc_int OW, fc_int oh0,
                                fc_int ow0, int n, float *restrict Z, fc_int zs)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    fc_int cols = 2 * (fc_int)n;
    if (ow0 + cols > OW) cols = OW - ow0;
    __mmask16 k0 = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
    __mmask16 k1 = cols >= 32 ? (__mmask16)0xFFFF : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;
    __m512 h[2][4], zero = _mm512_setzero_ps();
    for (int r = 0; r < 2; r++) {
        __m512 a = zero, b = zero;
        if (oh0 + r < OH) {
            const float *row = dy + (oh0 + r) * OW + ow0;
            a = _mm512_maskz_loadu_ps(k0, row);
            b = _mm512_maskz_loadu_ps(k1, row + 16);
        }
        __m512 e = _mm512_permutex2var_ps(a, ev, b), o = _mm512_permutex2var_ps(a, od, b);
        h[r][0] = e;
        h[r][1] = _mm512_add_ps(e, o);
        h[r][2] = _mm512_sub_ps(e, o);
        h[r][3] = _mm512_sub_ps(zero, o);
    }
    __mmask16 km = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    for (int k = 0; k < 4; k++) {
        _mm512_mask_storeu_ps(Z + (0 * 4 + k) * zs, km, h[0][k]);
        _mm512_mask_storeu_ps(Z + (1 * 4 + k) * zs, km, _mm512_add_ps(h[0][k], h[1][k]));
        _mm512_mask_storeu_ps(Z + (2 * 4 + k) * zs, km, _mm512_sub_ps(h[0][k], h[1][k]));
        _mm512_mask_storeu_ps(Z + (3 * 4 + k) * zs, km, _mm512_sub_ps(zero, h[1][k]));
    }
}

/* F(4x4, 3x3) input transform by hand: the stride-4 column split of a 66-float row
 * segment is two two-source permutes and a 128-bit shuffle per column phase (GCC's own
 * vectorisation of the template spills); phases 4 and 5 are phases 0 and 1 moved one
 * tile along. */
static void w_input43_avx512(const float *restrict plane, fc_int H, fc_int W, fc_int ih0,
                             fc_int iw0, int n, float *restrict V, fc_int vs)
{
    __m512i ph[4];
    for (int k = 0; k < 4; k++)
        ph[k] = _mm512_setr_epi32(k, 4 + k, 8 + k, 12 + k, 16 + k, 20 + k, 24 + k, 28 + k,
                                  k, 4 + k, 8 + k, 12 + k, 16 + k, 20 + k, 24 + k, 28 + k);
    fc_int lo = iw0 < 0 ? -iw0 : 0, hi = W - iw0;
    if (hi > 4 * (fc_int)n + 2) hi = 4 * (fc_int)n + 2;
    __mmask16 lm[5];
    for (int i = 0; i < 5; i++) {
        fc_int a0 = lo - 16 * i, a1 = hi - 16 * i;
        a0 = a0 < 0 ? 0 : a0 > 16 ? 16 : a0;
        a1 = a1 < 0 ? 0 : a1 > 16 ? 16 : a1;
        lm[i] = (__mmask16)(a1 > a0 ? (((1u << a1) - 1) & ~((1u << a0) - 1)) : 0u);
    }
    const __m512 c4 = _mm512_set1_ps(4.0f), c5 = _mm512_set1_ps(5.0f), c2 = _mm512_set1_ps(2.0f);
    __m512 h[6][6];
    for (int r = 0; r < 6; r++) {
        fc_int ih = ih0 + r;
        __mmask16 z = (ih >= 0 && ih < H) ? (__mmask16)0xFFFF : 0;
        const float *row = plane + (z ? ih : 0) * W + iw0;
        __m512 a = _mm512_maskz_loadu_ps(lm[0] & z, row);
        __m512 b = _mm512_maskz_loadu_ps(lm[1] & z, row + 16);
        __m512 c = _mm512_maskz_loadu_ps(lm[2] & z, row + 32);
        __m512 d = _mm512_maskz_loadu_ps(lm[3] & z, row + 48);
        __m512 e = _mm512_maskz_loadu_ps(lm[4] & z & 0x3, row + 64);
        __m512 col[6];
        for (int k = 0; k < 4; k++)
            col[k] = _mm512_shuffle_f32x4(_mm512_permutex2var_ps(a, ph[k], b),
                                          _mm512_permutex2var_ps(c, ph[k], d), 0x44);
        col[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(e),
                                                         _mm512_castps_si512(col[0]), 1));
        col[5] = _mm512_castsi512_ps(_mm512_alignr_epi32(
            _mm512_castps_si512(_mm512_permutexvar_ps(_mm512_set1_epi32(1), e)),
            _mm512_castps_si512(col[1]), 1));
        /* B^T on the six columns */
        __m512 s12 = _mm512_add_ps(col[1], col[2]), s34 = _mm512_add_ps(col[3], col[4]);
        __m512 d42 = _mm512_sub_ps(col[4], col[2]), d31 = _mm512_sub_ps(col[3], col[1]);
        h[r][0] = _mm512_add_ps(_mm512_fmsub_ps(c4, col[0], _mm512_mul_ps(c5, col[2])), col[4]);
        h[r][1] = _mm512_fnmadd_ps(c4, s12, s34);
        h[r][2] = _mm512_fmadd_ps(c4, _mm512_sub_ps(col[1], col[2]), _mm512_sub_ps(col[4], col[3]));
        h[r][3] = _mm512_fmadd_ps(c2, d31, d42);
        h[r][4] = _mm512_fnmadd_ps(c2, d31, d42);
        h[r][5] = _mm512_add_ps(_mm512_fmsub_ps(c4, col[1], _mm512_mul_ps(c5, col[3])), col[5]);
    }
    __mmask16 km = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    for (int k = 0; k < 6; k++) {   /* B^T down each column */
        __m512 s12 = _mm512_add_ps(h[1][k], h[2][k]), s34 = _mm512_add_ps(h[3][k], h[4][k]);
        __m512 d42 = _mm512_sub_ps(h[4][k], h[2][k]), d31 = _mm512_sub_ps(h[3][k], h[1][k]);
        _mm512_mask_storeu_ps(V + (0 * 6 + k) * vs, km,
            _mm512_add_ps(_mm512_fmsub_ps(c4, h[0][k], _mm512_mul_ps(c5, h[2][k])), h[4][k]));
        _mm512_mask_storeu_ps(V + (1 * 6 + k) * vs, km, _mm512_fnmadd_ps(c4, s12, s34));
        _mm512_mask_storeu_ps(V + (2 * 6 + k) * vs, km,
            _mm512_fmadd_ps(c4, _mm512_sub_ps(h[1][k], h[2][k]), _mm512_sub_ps(h[4][k], h[3][k])));
        _mm512_mask_storeu_ps(V + (3 * 6 + k) * vs, km, _mm512_fmadd_ps(c2, d31, d42));
        _mm512_mask_storeu_ps(V + (4 * 6 + k) * vs, km, _mm512_fnmadd_ps(c2, d31, d42));
        _mm512_mask_storeu_ps(V + (5 * 6 + k) * vs, km,
            _mm512_add_ps(_mm512_fmsub_ps(c4, h[1][k], _mm512_mul_ps(c5, h[3][k])), h[5][k]));
    }
}

/* F(4x4, 3x3) output transform by hand: A^T down and across, then the four outputs of
 * each tile interleaved into the row with a 4x4 transpose of 128-bit blocks. */
static void w_output43_avx512(const float *restrict Mx, fc_int ms, int n, float *restrict y,
                              fc_int OH, fc_int OW, fc_int oh0, fc_int ow0, float bias,
                              int relu)
{
    __mmask16 km = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    const __m512 c2 = _mm512_set1_ps(2.0f), c4 = _mm512_set1_ps(4.0f), c8 = _mm512_set1_ps(8.0f);
    __m512 t[4][6];
    for (int k = 0; k < 6; k++) {   /* t = A^T m down column k */
        __m512 m0 = _mm512_maskz_loadu_ps(km, Mx + (0 * 6 + k) * ms);
        __m512 m1 = _mm512_maskz_loadu_ps(km, Mx + (1 * 6 + k) * ms);
        __m512 m2 = _mm512_maskz_loadu_ps(km, Mx + (2 * 6 + k) * ms);
        __m512 m3 = _mm512_maskz_loadu_ps(km, Mx + (3 * 6 + k) * ms);
        __m512 m4 = _mm512_maskz_loadu_ps(km, Mx + (4 * 6 + k) * ms);
        __m512 m5 = _mm512_maskz_loadu_ps(km, Mx + (5 * 6 + k) * ms);
        __m512 a12 = _mm512_add_ps(m1, m2), d12 = _mm512_sub_ps(m1, m2);
        __m512 a34 = _mm512_add_ps(m3, m4), d34 = _mm512_sub_ps(m3, m4);
        t[0][k] = _mm512_add_ps(_mm512_add_ps(m0, a12), a34);
        t[1][k] = _mm512_fmadd_ps(c2, d34, d12);
        t[2][k] = _mm512_fmadd_ps(c4, a34, a12);
        t[3][k] = _mm512_add_ps(_mm512_fmadd_ps(c8, d34, d12), m5);
    }
    fc_int cols = 4 * (fc_int)n;
    if (ow0 + cols > OW) cols = OW - ow0;
    __mmask16 sm[4];
    for (int v = 0; v < 4; v++) {
        fc_int left = cols - 16 * v;
        sm[v] = left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
    }
    const __m512 vb = _mm512_set1_ps(bias), zero = _mm512_setzero_ps();
    for (int r = 0; r < 4; r++) {
        if (oh0 + r >= OH) break;
        __m512 a12 = _mm512_add_ps(t[r][1], t[r][2]), d12 = _mm512_sub_ps(t[r][1], t[r][2]);
        __m512 a34 = _mm512_add_ps(t[r][3], t[r][4]), d34 = _mm512_sub_ps(t[r][3], t[r][4]);
        __m512 o[4];
        o[0] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(t[r][0], a12), a34), vb);
        o[1] = _mm512_add_ps(_mm512_fmadd_ps(c2, d34, d12), vb);
        o[2] = _mm512_add_ps(_mm512_fmadd_ps(c4, a34, a12), vb);
        o[3] = _mm512_add_ps(_mm512_add_ps(_mm512_fmadd_ps(c8, d34, d12), t[r][5]), vb);
        if (relu)   /* v <= 0 ? 0 : v (NaN kept, as everywhere else) */
            for (int s = 0; s < 4; s++)
                o[s] = _mm512_mask_mov_ps(o[s], _mm512_cmp_ps_mask(o[s], zero, _CMP_LE_OQ), zero);
        __m512 t0 = _mm512_unpacklo_ps(o[0], o[1]), t1 = _mm512_unpackhi_ps(o[0], o[1]);
        __m512 t2 = _mm512_unpacklo_ps(o[2], o[3]), t3 = _mm512_unpackhi_ps(o[2], o[3]);
        __m512 u0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
        __m512 u1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
        __m512 u2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
        __m512 u3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
        __m512 x0 = _mm512_shuffle_f32x4(u0, u1, 0x44), x1 = _mm512_shuffle_f32x4(u0, u1, 0xEE);
        __m512 x2 = _mm512_shuffle_f32x4(u2, u3, 0x44), x3 = _mm512_shuffle_f32x4(u2, u3, 0xEE);
        float *dst = y + (oh0 + r) * OW + ow0;
        _mm512_mask_storeu_ps(dst, sm[0], _mm512_shuffle_f32x4(x0, x2, 0x88));
        _mm512_mask_storeu_ps(dst + 16, sm[1], _mm512_shuffle_f32x4(x0, x2, 0xDD));
        _mm512_mask_storeu_ps(dst + 32, sm[2], _mm512_shuffle_f32x4(x1, x3, 0x88));
        _mm512_mask_storeu_ps(dst + 48, sm[3], _mm512_shuffle_f32x4(x1, x3, 0xDD));
    }
}
#pragma GCC pop_options
#define WPICK(fn) (fc_isa() == FC_ISA_AVX512 ? w_##fn##_avx512 : \
                   fc_isa() == FC_ISA_AVX2 ? w_##fn##_avx2 : w_##fn##_generic)
/* F(4x4, 3x3) transforms: hand-written for AVX-512; otherwise the template, in
 * half-width vectors when tile rows are short (32-wide planes) */
#define W43PICK(fn, short_rows) (fc_isa() == FC_ISA_AVX512 ? w_##fn##_avx512 : \
    fc_isa() == FC_ISA_AVX2 ? (short_rows ? w_##fn##_8_avx2 : w_##fn##_16_avx2) : \
    (short_rows ? w_##fn##_8_generic : w_##fn##_16_generic))
#else
#define WPICK(fn) w_##fn##_generic
#define W43PICK(fn, short_rows) (short_rows ? w_##fn##_8_generic : w_##fn##_16_generic)
#endif

/* U[xi][m][c] = (G g[m][c] G^T)[xi] */
static fc_int w_wgrad_block(fc_int C, fc_int M)
{
    fc_int tb = (fc_int)(1536 * 1024 / (64 * (C + M))) / 48 * 48;
    return tb < 48 ? 48 : tb > 480 ? 480 : tb;
}

static _Thread_local float *tl_wbuf = NULL;
static _Thread_local size_t tl_wcap = 0;

static float *w_scratch(size_t floats)
{
    if (floats > tl_wcap) {
        void *p = NULL;
        free(tl_wbuf);
        tl_wbuf = NULL;
        tl_wcap = 0;
        if (posix_memalign(&p, 64, floats * sizeof(float)) != 0) return NULL;
        tl_wbuf = p;
        tl_wcap = floats;
    }
    return tl_wbuf;
}

fc_int fc_winograd_wgrad_chunks(fc_int N, fc_int C, fc_int M, fc_int OH, fc_int OW)
{
    fc_int T = N * ((OH + 1) / 2) * ((OW + 1) / 2), TB = w_wgrad_block(C, M);
    fc_int nblocks = (T + TB - 1) / TB;
    return nblocks < FC_WGRAD_CHUNKS ? nblocks : FC_WGRAD_CHUNKS;
}

/* dw (M, C, 3, 3) = the weight gradient of a 3x3 stride-1 convolution by F(2x2, 3x3):
 * dL/dg = G^T S G with S[xi][m][c] = sum over tiles of (A dY A^T)[xi] (B^T d B)[xi].
 * Tiles go in blocks; the blocks are dealt in fc_winograd_wgrad_chunks() contiguous
 * chunks (a count fixed by the shapes), each summed by one thread into its own S slice,
 * and the slices are added in chunk order: the bits never depend on the thread count.
 * S: scratch of chunks * 16 * M * C floats.  Returns 0, or -1 if scratch failed. */
int fc_winograd_f23_wgrad(const float *x, fc_int N, fc_int C, fc_int H, fc_int W,
                          const float *dy, fc_int M, fc_int OH, fc_int OW, fc_int pt, fc_int pl,
                          float *S, float *dw, int nthreads)
{
    fc_int TH = (OH + 1) / 2, TW = (OW + 1) / 2, T = N * TH * TW;
    fc_int TB = w_wgrad_block(C, M), nblocks = (T + TB - 1) / TB;
    fc_int nchunk = fc_winograd_wgrad_chunks(N, C, M, OH, OW), MC = M * C;
    enum { EB = 64 };
    int failed = 0;
    if (T == 0) {
        memset(dw, 0, (size_t)MC * 9 * sizeof(float));
        return 0;
    }
    if (nthreads < 1) nthreads = 1;
    if (nchunk < nthreads) nthreads = (int)nchunk;
    #pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(|:failed)
    {
        float *V = w_scratch((size_t)16 * (C + M) * TB);
        float *Z = V ? V + (size_t)16 * C * TB : NULL;
        if (!V) failed = 1;
        #pragma omp for schedule(static)
        for (fc_int ch = 0; ch < nchunk; ch++) {
            if (!V) continue;
            float *Sc = S + ch * 16 * MC;
            fc_int b0 = ch * nblocks / nchunk, b1 = (ch + 1) * nblocks / nchunk;
            for (fc_int blk = b0; blk < b1; blk++) {
                fc_int t0 = blk * TB, t1 = t0 + TB < T ? t0 + TB : T, nt = t1 - t0;
                for (fc_int t = t0; t < t1;) {
                    fc_int n, th, tw;
                    int run = (int)w_run(t, t1, TH, TW, &n, &th, &tw);
                    for (fc_int c = 0; c < C; c++)
                        WPICK(input_tiles)(x + (n * C + c) * H * W, H, W, 2 * th - pt,
                                           2 * tw - pl, run, V + c * TB + (t - t0), C * TB);
                    for (fc_int m = 0; m < M; m++)
                        WPICK(grad_tiles)(dy + (n * M + m) * OH * OW, OH, OW, 2 * th, 2 * tw,
                                          run, Z + m * TB + (t - t0), M * TB);
                    t += run;
                }
                /* S[xi] (M x C) += Z[xi] (M x nt) @ V[xi]^T (nt x C) */
                for (int xi = 0; xi < 16; xi++)
                    fc_sgemm(M, C, nt, 1.0f, Z + (fc_int)xi * M * TB, TB, 1,
                             V + (fc_int)xi * C * TB, 1, TB, blk == b0 ? 0.0f : 1.0f,
                             Sc + xi * MC, C, 1);
            }
        }
        #pragma omp for schedule(static)
        for (fc_int e0 = 0; e0 < MC; e0 += EB) {
            /* chunk sums in runs of EB elements (one stream at a time rather than
             * 16 * chunks interleaved), in chunk order for every element */
            float acc[16][EB];
            int eb = (int)(MC - e0 < EB ? MC - e0 : EB);
            for (int xi = 0; xi < 16; xi++) {
                memcpy(acc[xi], S + xi * MC + e0, (size_t)eb * sizeof(float));
                for (fc_int ch = 1; ch < nchunk; ch++) {
                    const float *src = S + (ch * 16 + xi) * MC + e0;
                    for (int i = 0; i < eb; i++) acc[xi][i] += src[i];
                }
            }
            for (int i = 0; i < eb; i++) {
                float r[3][4];
                for (int j = 0; j < 4; j++) {    /* G^T S */
                    float p = acc[4 + j][i] + acc[8 + j][i], q = acc[4 + j][i] - acc[8 + j][i];
                    r[0][j] = acc[j][i] + 0.5f * p;
                    r[1][j] = 0.5f * q;
                    r[2][j] = 0.5f * p + acc[12 + j][i];
                }
                float *o = dw + (e0 + i) * 9;
                for (int a = 0; a < 3; a++) {    /* (G^T S) G */
                    float p = r[a][1] + r[a][2], q = r[a][1] - r[a][2];
                    o[a * 3 + 0] = r[a][0] + 0.5f * p;
                    o[a * 3 + 1] = 0.5f * q;
                    o[a * 3 + 2] = 0.5f * p + r[a][3];
                }
            }
        }
    }
    return failed ? -1 : 0;
}

/* ---------------------------------------------------------------- forward
 * Both variants, F(2x2, 3x3) (tile 2, P = 16 transformed planes) and F(4x4, 3x3)
 * (tile 4, P = 36), without GEMM packing: the weight transform writes U straight into
 * the micro-kernel's A panels (once per call), the input transform writes V straight
 * into its B panels, and the driver calls the micro-kernel itself.  Tiles are processed
 * in blocks fixed by the shapes; a block is owned by one thread from start to end, so
 * the bits never depend on the thread count. */

static int w_planes(int tile) { return (tile + 2) * (tile + 2); }

static fc_int w_panels(fc_int M, int mr) { return (M + mr - 1) / mr; }

size_t fc_winograd_weights_size(fc_int M, fc_int C, int tile)
{
    const fc_skernel_t *kd = fc_skernel();
    return (size_t)w_planes(tile) * w_panels(M, kd->mr) * kd->mr * (size_t)C;
}

/* G x for the three taps x0, x1, x2 (one column or row of a kernel): 4 values for
 * F(2x2, 3x3), 6 for F(4x4, 3x3). */
static inline void w_g2(float x0, float x1, float x2, float *o)
{
    o[0] = x0;
    o[1] = 0.5f * (x0 + x1 + x2);
    o[2] = 0.5f * (x0 - x1 + x2);
    o[3] = x2;
}

static inline void w_g4(float x0, float x1, float x2, float *o)
{
    const float s6 = 1.0f / 6.0f, s12 = 1.0f / 12.0f, s24 = 1.0f / 24.0f;
    float e = x0 + x2;
    o[0] = 0.25f * x0;
    o[1] = -s6 * (e + x1);
    o[2] = -s6 * (e - x1);
    o[3] = s24 * x0 + s12 * x1 + s6 * x2;
    o[4] = s24 * x0 - s12 * x1 + s6 * x2;
    o[5] = x2;
}

/* Up[((xi * panels + ip) * C + c) * mr + i] = (G g[ip*mr + i][c] G^T)[xi], zero rows
 * past M.  The P planes lie a power of two apart, and scattering each filter's values
 * across them thrashes the cache sets: filters are transformed 16 channels at a time
 * into a small buffer, then copied out plane by plane. */
void fc_winograd_weights(const float *g, fc_int M, fc_int C, int tile, float *Up, int nthreads)
{
    enum { CB = 16, MRMAX = 16 };
    const int mr = fc_skernel()->mr, a = tile + 2, P = a * a;
    const fc_int np = w_panels(M, mr);
    void (*gt)(float, float, float, float *) = tile == 2 ? w_g2 : w_g4;
    if (nthreads < 1 || (double)M * C < 4096) nthreads = 1;
    #pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
    for (fc_int ip = 0; ip < np; ip++)
        for (fc_int c0 = 0; c0 < C; c0 += CB) {
            float buf[36][CB * MRMAX];
            int cb = (int)(C - c0 < CB ? C - c0 : CB);
            for (int cc = 0; cc < cb; cc++)
                for (int i = 0; i < mr; i++) {
                    fc_int m = ip * mr + i;
                    float u[6][6] = {{0}};
                    if (m < M) {
                        const float *k = g + (m * C + c0 + cc) * 9;
                        float t[3][6];                   /* t[j] = G (column j of g) */
                        for (int j = 0; j < 3; j++) gt(k[j], k[3 + j], k[6 + j], t[j]);
                        for (int r = 0; r < a; r++) gt(t[0][r], t[1][r], t[2][r], u[r]);
                    }
                    for (int xi = 0; xi < P; xi++) buf[xi][cc * mr + i] = u[xi / a][xi % a];
                }
            for (int xi = 0; xi < P; xi++)
                memcpy(Up + ((xi * np + ip) * C + c0) * mr, buf[xi],
                       (size_t)cb * mr * sizeof(float));
        }
}

/* Tiles per block: a multiple of the micro-kernel's NR, V and Mx near the L2 size. */
static fc_int w_block(fc_int C, fc_int M, int nr, int tile)
{
    fc_int budget = tile == 2 ? 1536 * 1024 : 2048 * 1024;
    fc_int tb = budget / (4 * w_planes(tile) * (C + M)) / nr * nr;
    fc_int lo = nr * ((48 + nr - 1) / nr), hi = nr * (480 / nr);
    return tb < lo ? lo : tb > hi ? hi : tb;
}

typedef void (*w_input_fn)(const float *, fc_int, fc_int, fc_int, fc_int, int, float *, fc_int);
typedef void (*w_output_fn)(const float *, fc_int, int, float *, fc_int, fc_int, fc_int, fc_int,
                            float, int);

int fc_winograd_conv(const float *x, fc_int N, fc_int C, fc_int H, fc_int W, const float *Up,
                     fc_int M, int tile, float *y, fc_int OH, fc_int OW, fc_int pt, fc_int pl,
                     const float *bias, int relu, int nthreads)
{
    const fc_skernel_t *kd = fc_skernel();
    const int mr = kd->mr, nr = kd->nr, P = w_planes(tile);
    fc_int TH = (OH + tile - 1) / tile, TW = (OW + tile - 1) / tile, T = N * TH * TW;
    fc_int TB = w_block(C, M, nr, tile), nblocks = (T + TB - 1) / TB;
    fc_int njp = TB / nr, nip = w_panels(M, mr);
    fc_int vs = njp * C * nr;                       /* between transformed planes of V */
    w_input_fn input = tile == 2 ? WPICK(input_tiles) : W43PICK(input43, TW <= 8);
    w_output_fn output = tile == 2 ? WPICK(output_tiles) : W43PICK(output43, TW <= 8);
    int failed = 0;
    if (T == 0) return 0;
    if (nthreads < 1) nthreads = 1;
    if (nblocks < nthreads) nthreads = (int)nblocks;
    #pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(|:failed)
    {
        float *V = w_scratch((size_t)P * (C + M) * TB);
        float *Mx = V ? V + (size_t)P * C * TB : NULL;
        if (!V) failed = 1;
        #pragma omp for schedule(static)
        for (fc_int blk = 0; blk < nblocks; blk++) {
            if (!V) continue;
            fc_int t0 = blk * TB, t1 = t0 + TB < T ? t0 + TB : T, nt = t1 - t0;
            /* input transform into B panels: runs of tiles along a tile row that stay
             * inside one 16-lane group and one panel */
            for (fc_int t = t0; t < t1;) {
                fc_int n, th, tw, tt = t - t0, run = w_run(t, t1, TH, TW, &n, &th, &tw);
                if (run > 16 - tt % 16) run = 16 - tt % 16;
                if (run > nr - tt % nr) run = nr - tt % nr;
                float *dst = V + (tt / nr) * C * nr + tt % nr;
                for (fc_int c = 0; c < C; c++)
                    input(x + (n * C + c) * H * W, H, W, tile * th - pt, tile * tw - pl,
                          (int)run, dst + c * nr, vs);
                t += run;
            }
            /* Mx[xi] (M x nt) = U[xi] (M x C) @ V[xi] (C x nt), panel by panel */
            for (int xi = 0; xi < P; xi++)
                for (fc_int jp = 0; jp * nr < nt; jp++) {
                    int n = (int)(nt - jp * nr < nr ? nt - jp * nr : nr);
                    const float *b = V + (fc_int)xi * vs + jp * C * nr;
                    for (fc_int ip = 0; ip < nip; ip++) {
                        int m = (int)(M - ip * mr < mr ? M - ip * mr : mr);
                        kd->ukr(C, Up + ((xi * nip + ip) * C) * mr, b,
                                Mx + ((fc_int)xi * M + ip * mr) * TB + jp * nr, TB, m, n,
                                1.0f, 0.0f);
                    }
                }
            /* output transform, bias and ReLU */
            for (fc_int t = t0; t < t1;) {
                fc_int n, th, tw;
                int run = (int)w_run(t, t1, TH, TW, &n, &th, &tw);
                for (fc_int m = 0; m < M; m++)
                    output(Mx + m * TB + (t - t0), M * TB, run, y + (n * M + m) * OH * OW, OH,
                           OW, tile * th, tile * tw, bias ? bias[m] : 0.0f, relu);
                t += run;
            }
        }
    }
    return failed ? -1 : 0;
}
