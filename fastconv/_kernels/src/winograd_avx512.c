/* Winograd transforms, AVX-512: written by hand with two-source permutes for the
 * column splits and interleaves (GCC leaves them scalar or spills); everything else is
 * the templates' arithmetic, so all ISAs give the same bits per tile. */
#include "cpu.h"
#include "winograd.h"

/* The transforms copy 16-lane rows in loops: keep them as vector moves, not memcpy calls */
#pragma GCC optimize("no-tree-loop-distribute-patterns")

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl")
#include <immintrin.h>

/* F(2x2, 3x3): the even/odd column split and the output interleave are two-source
 * permutes. */
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

/* one hand-written F(4x4) form serves short tile rows too (masked lanes) */
const fc_winograd_kernels_t fc_winograd_avx512 = {
    FC_CPU_AVX512F | FC_CPU_AVX512VL, w_input_tiles_avx512, w_output_tiles_avx512,
    w_grad_tiles_avx512, {w_input43_avx512, w_input43_avx512},
    {w_output43_avx512, w_output43_avx512},
};
#pragma GCC pop_options
#endif
