/* Winograd transforms, AVX2 + FMA: written by hand on 8 tiles at a time (a call's run of
 * up to 16 tiles in chunks of 8).  GCC's vectorisation of the templates left the
 * stride-2 / stride-4 column splits and the output interleaves scalar and spilled the
 * 16-lane arrays: the transforms took a quarter of a camera-classifier training step on
 * one Zen 3 core, as long as half its GEMMs.  The splits here are in-lane shuffles and
 * 4x4 transposes; the arithmetic is the templates' (multiplies by 2, 4 and 8 are exact,
 * so an FMA with them rounds as the separate operations), so every ISA gives the same
 * bits per tile.  Rows that leave the plane are read by w_row4 and w_row8. */
#include "cpu.h"
#include "winograd.h"

/* The transforms copy 16-lane rows in loops: keep them as vector moves, not memcpy calls */
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#include "winograd_tiles.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include <immintrin.h>

/* lanes q < n set (maskload / maskstore) */
static inline __m256i w_lanes(fc_int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 0 ? 0 : n > 8 ? 8 : n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* even and odd values of [a b] */
static inline void w_split2v(__m256 a, __m256 b, __m256 *e, __m256 *o)
{
    /* in-lane: [a0 a2 b0 b2 | a4 a6 b4 b6], then the 64-bit pairs back in order */
    __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    __m256 od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    *e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), _MM_SHUFFLE(3, 1, 2, 0)));
    *o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), _MM_SHUFFLE(3, 1, 2, 0)));
}


static inline __m256 w_relu(__m256 v)   /* v <= 0 ? 0 : v (NaN kept) */
{
    return _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NLE_UQ));
}

/* the first n lanes of v (none if n <= 0): whole and half vectors as plain stores, as
 * Zen 2-3 run masked stores microcoded */
static inline __attribute__((always_inline)) void w_store_n(float *dst, __m256 v, fc_int n)
{
    if (n >= 8) {
        _mm256_storeu_ps(dst, v);
    } else if (n == 4) {
        _mm_storeu_ps(dst, _mm256_castps256_ps128(v));
    } else if (n > 0) {
        _mm256_maskstore_ps(dst, w_lanes(n), v);
    }
}

/* a and b interleaved: dst[2q] = a[q], dst[2q + 1] = b[q], the first `cols` values */
static inline void w_store_interleaved2(float *dst, __m256 a, __m256 b, fc_int cols)
{
    __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);
    __m256 x0 = _mm256_permute2f128_ps(lo, hi, 0x20), x1 = _mm256_permute2f128_ps(lo, hi, 0x31);
    w_store_n(dst, x0, cols);
    w_store_n(dst + 8, x1, cols - 8);
}

static inline __m256 w_load_n(const float *src, int n)
{
    return n >= 8 ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, w_lanes(n));
}

/* An input row: the plane's row (NULL outside the plane), the end of the columns a run
 * reads (the plane's width or the run's `used` columns, whichever comes first) and the
 * plane's extent, inside which whole vectors may be read and masked. */
typedef struct {
    const float *row;
    fc_int at, size, hi;      /* the row's offset in the plane, the plane's size */
} w_row_t;

static inline w_row_t w_row_at(const float *plane, fc_int H, fc_int W, fc_int ih, fc_int iw0,
                               fc_int used)
{
    w_row_t r = {ih >= 0 && ih < H ? plane + ih * W : NULL, ih * W, H * W,
                 iw0 + used < W ? iw0 + used : W};
    return r;
}

/* Lanes c0 + q (q < 8) with 0 <= c0 + q < hi set */
static inline __m256i w_cols_in(fc_int c0, fc_int hi)
{
    __m256i idx = _mm256_add_epi32(_mm256_set1_epi32((int)c0),
                                   _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), idx),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32((int)hi), idx));
}

/* Whether k values from column c0 of row r lie inside its plane */
static inline int w_in_plane(w_row_t r, fc_int c0, int k)
{
    return r.at + c0 >= 0 && r.at + c0 + k <= r.size;
}

/* Columns c0.. of row r, zero outside [0, hi): 4 or 8 of them.  Edge rows read whole
 * vectors and clear the lanes outside where those lie inside the plane, else load through
 * masks (masked-out lanes never touch memory), rather than through a zero-padded copy,
 * whose scalar writes stall the vector reads after them (store-to-load forwarding
 * fails); Zen 3's masked loads are slow too. */
static inline __m128 w_row4(w_row_t r, fc_int c0)
{
    if (!r.row) return _mm_setzero_ps();
    const float *p = r.row + c0;
    if (c0 >= 0 && c0 + 4 <= r.hi) return _mm_loadu_ps(p);
    __m128i in = _mm256_castsi256_si128(w_cols_in(c0, r.hi));
    return w_in_plane(r, c0, 4) ? _mm_and_ps(_mm_loadu_ps(p), _mm_castsi128_ps(in))
                                : _mm_maskload_ps(p, in);
}

static inline __m256 w_row8(w_row_t r, fc_int c0)
{
    if (!r.row) return _mm256_setzero_ps();
    const float *p = r.row + c0;
    if (c0 >= 0 && c0 + 8 <= r.hi) return _mm256_loadu_ps(p);
    __m256i in = w_cols_in(c0, r.hi);
    return w_in_plane(r, c0, 8) ? _mm256_and_ps(_mm256_loadu_ps(p), _mm256_castsi256_ps(in))
                                : _mm256_maskload_ps(p, in);
}

static inline float w_row1(w_row_t r, fc_int c)
{
    return r.row && c >= 0 && c < r.hi ? r.row[c] : 0.0f;
}

/* ---------------------------------------------------------------- F(2x2, 3x3) */

static void w_input8(const float *restrict plane, fc_int H, fc_int W, fc_int ih0, fc_int iw0,
                     int n, float *restrict V, fc_int vs)
{
    __m256 h[4][4];
    for (int r = 0; r < 4; r++) {
        w_row_t row = w_row_at(plane, H, W, ih0 + r, iw0, 2 * (fc_int)n + 2);
        __m256 e, o, en, on;
        w_split2v(w_row8(row, iw0), w_row8(row, iw0 + 8), &e, &o);
        w_split2v(w_row8(row, iw0 + 2), w_row8(row, iw0 + 10), &en, &on);
        h[r][0] = _mm256_sub_ps(e, en);
        h[r][1] = _mm256_add_ps(o, en);
        h[r][2] = _mm256_sub_ps(en, o);
        h[r][3] = _mm256_sub_ps(o, on);
    }
    for (int k = 0; k < 4; k++) {
        w_store_n(V + (0 * 4 + k) * vs, _mm256_sub_ps(h[0][k], h[2][k]), n);
        w_store_n(V + (1 * 4 + k) * vs, _mm256_add_ps(h[1][k], h[2][k]), n);
        w_store_n(V + (2 * 4 + k) * vs, _mm256_sub_ps(h[2][k], h[1][k]), n);
        w_store_n(V + (3 * 4 + k) * vs, _mm256_sub_ps(h[1][k], h[3][k]), n);
    }
}

static void w_input_tiles_avx2(const float *restrict plane, fc_int H, fc_int W, fc_int ih0,
                               fc_int iw0, int n, float *restrict V, fc_int vs)
{
    for (int j = 0; j < n; j += 8)
        w_input8(plane, H, W, ih0, iw0 + 2 * j, n - j < 8 ? n - j : 8, V + j, vs);
}

static void w_output8(const float *restrict Mx, fc_int ms, int n, float *restrict y, fc_int OH,
                      fc_int OW, fc_int oh0, fc_int ow0, float bias, int relu)
{
    __m256 m[16];
    for (int xi = 0; xi < 16; xi++) m[xi] = w_load_n(Mx + xi * ms, n);
    __m256 t[2][4];
    for (int k = 0; k < 4; k++) {
        t[0][k] = _mm256_add_ps(_mm256_add_ps(m[k], m[4 + k]), m[8 + k]);
        t[1][k] = _mm256_sub_ps(_mm256_sub_ps(m[4 + k], m[8 + k]), m[12 + k]);
    }
    fc_int cols = 2 * (fc_int)n;
    if (ow0 + cols > OW) cols = OW - ow0;
    const __m256 vb = _mm256_set1_ps(bias);
    for (int r = 0; r < 2; r++) {
        if (oh0 + r >= OH) break;
        __m256 a = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(t[r][0], t[r][1]), t[r][2]), vb);
        __m256 b = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(t[r][1], t[r][2]), t[r][3]), vb);
        if (relu) {
            a = w_relu(a);
            b = w_relu(b);
        }
        w_store_interleaved2(y + (oh0 + r) * OW + ow0, a, b, cols);
    }
}

static void w_output_tiles_avx2(const float *restrict Mx, fc_int ms, int n, float *restrict y,
                                fc_int OH, fc_int OW, fc_int oh0, fc_int ow0, float bias,
                                int relu)
{
    for (int j = 0; j < n; j += 8)
        w_output8(Mx + j, ms, n - j < 8 ? n - j : 8, y, OH, OW, oh0, ow0 + 2 * j, bias, relu);
}

static void w_grad8(const float *restrict dy, fc_int OH, fc_int OW, fc_int oh0, fc_int ow0,
                    int n, float *restrict Z, fc_int zs)
{
    fc_int cols = 2 * (fc_int)n;
    if (ow0 + cols > OW) cols = OW - ow0;
    const __m256 zero = _mm256_setzero_ps();
    __m256 h[2][4];
    for (int r = 0; r < 2; r++) {
        w_row_t row = w_row_at(dy, OH, OW, oh0 + r, ow0, cols);
        __m256 e, o;
        w_split2v(w_row8(row, ow0), w_row8(row, ow0 + 8), &e, &o);
        h[r][0] = e;
        h[r][1] = _mm256_add_ps(e, o);
        h[r][2] = _mm256_sub_ps(e, o);
        h[r][3] = _mm256_sub_ps(zero, o);
    }
    for (int k = 0; k < 4; k++) {
        w_store_n(Z + (0 * 4 + k) * zs, h[0][k], n);
        w_store_n(Z + (1 * 4 + k) * zs, _mm256_add_ps(h[0][k], h[1][k]), n);
        w_store_n(Z + (2 * 4 + k) * zs, _mm256_sub_ps(h[0][k], h[1][k]), n);
        w_store_n(Z + (3 * 4 + k) * zs, _mm256_sub_ps(zero, h[1][k]), n);
    }
}

static void w_grad_tiles_avx2(const float *restrict dy, fc_int OH, fc_int OW, fc_int oh0,
                              fc_int ow0, int n, float *restrict Z, fc_int zs)
{
    for (int j = 0; j < n; j += 8)
        w_grad8(dy, OH, OW, oh0, ow0 + 2 * j, n - j < 8 ? n - j : 8, Z + j, zs);
}

/* ---------------------------------------------------------------- F(4x4, 3x3) */

/* 128-bit halves a (low) and b (high) */
static inline __m256 w_pair128(__m128 a, __m128 b)
{
    return _mm256_insertf128_ps(_mm256_castps128_ps256(a), b, 1);
}

static void w_input43_8(const float *restrict plane, fc_int H, fc_int W, fc_int ih0, fc_int iw0,
                        int n, float *restrict V, fc_int vs)
{
    const __m256 c4 = _mm256_set1_ps(4.0f), c5 = _mm256_set1_ps(5.0f), c2 = _mm256_set1_ps(2.0f);
    const __m256i next = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7);
    __m256 h[6][6];
    for (int r = 0; r < 6; r++) {
        w_row_t row = w_row_at(plane, H, W, ih0 + r, iw0, 4 * (fc_int)n + 2);
        if (!row.row) {
            for (int k = 0; k < 6; k++) h[r][k] = _mm256_setzero_ps();
            continue;
        }
        /* the next run's columns (this row, C calls later): the driver walks C planes x
         * 6 rows at once, more streams than the hardware prefetchers follow (16-32
         * channels on 64x64-128x128 planes: 1.05-1.15x) */
        _mm_prefetch((const char *)(row.row + iw0 + 48), _MM_HINT_T0);
        _mm_prefetch((const char *)(row.row + iw0 + 64), _MM_HINT_T0);
        /* tiles q and q + 4 in the halves of v[q]: an in-lane 4x4 transpose then gives
         * column k of all 8 tiles, in order */
        __m256 v0 = w_pair128(w_row4(row, iw0), w_row4(row, iw0 + 16));
        __m256 v1 = w_pair128(w_row4(row, iw0 + 4), w_row4(row, iw0 + 20));
        __m256 v2 = w_pair128(w_row4(row, iw0 + 8), w_row4(row, iw0 + 24));
        __m256 v3 = w_pair128(w_row4(row, iw0 + 12), w_row4(row, iw0 + 28));
        __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
        __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
        __m256 col[6];
        col[0] = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
        col[1] = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
        col[2] = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
        col[3] = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
        /* columns 4 and 5 are 0 and 1 one tile along; the last tile's from row[32..33] */
        col[4] = _mm256_blend_ps(_mm256_permutevar8x32_ps(col[0], next),
                                 _mm256_set1_ps(w_row1(row, iw0 + 32)), 0x80);
        col[5] = _mm256_blend_ps(_mm256_permutevar8x32_ps(col[1], next),
                                 _mm256_set1_ps(w_row1(row, iw0 + 33)), 0x80);
        __m256 s12 = _mm256_add_ps(col[1], col[2]), s34 = _mm256_add_ps(col[3], col[4]);
        __m256 d42 = _mm256_sub_ps(col[4], col[2]), d31 = _mm256_sub_ps(col[3], col[1]);
        h[r][0] = _mm256_add_ps(_mm256_fmsub_ps(c4, col[0], _mm256_mul_ps(c5, col[2])), col[4]);
        h[r][1] = _mm256_fnmadd_ps(c4, s12, s34);
        h[r][2] = _mm256_fmadd_ps(c4, _mm256_sub_ps(col[1], col[2]), _mm256_sub_ps(col[4], col[3]));
        h[r][3] = _mm256_fmadd_ps(c2, d31, d42);
        h[r][4] = _mm256_fnmadd_ps(c2, d31, d42);
        h[r][5] = _mm256_add_ps(_mm256_fmsub_ps(c4, col[1], _mm256_mul_ps(c5, col[3])), col[5]);
    }
    for (int k = 0; k < 6; k++) {   /* B^T down each column */
        __m256 s12 = _mm256_add_ps(h[1][k], h[2][k]), s34 = _mm256_add_ps(h[3][k], h[4][k]);
        __m256 d42 = _mm256_sub_ps(h[4][k], h[2][k]), d31 = _mm256_sub_ps(h[3][k], h[1][k]);
        w_store_n(V + (0 * 6 + k) * vs,
                  _mm256_add_ps(_mm256_fmsub_ps(c4, h[0][k], _mm256_mul_ps(c5, h[2][k])), h[4][k]), n);
        w_store_n(V + (1 * 6 + k) * vs, _mm256_fnmadd_ps(c4, s12, s34), n);
        w_store_n(V + (2 * 6 + k) * vs,
                  _mm256_fmadd_ps(c4, _mm256_sub_ps(h[1][k], h[2][k]), _mm256_sub_ps(h[4][k], h[3][k])), n);
        w_store_n(V + (3 * 6 + k) * vs, _mm256_fmadd_ps(c2, d31, d42), n);
        w_store_n(V + (4 * 6 + k) * vs, _mm256_fnmadd_ps(c2, d31, d42), n);
        w_store_n(V + (5 * 6 + k) * vs,
                  _mm256_add_ps(_mm256_fmsub_ps(c4, h[1][k], _mm256_mul_ps(c5, h[3][k])), h[5][k]), n);
    }
}

static void w_input43_avx2(const float *restrict plane, fc_int H, fc_int W, fc_int ih0,
                           fc_int iw0, int n, float *restrict V, fc_int vs)
{
    for (int j = 0; j < n; j += 8)
        w_input43_8(plane, H, W, ih0, iw0 + 4 * j, n - j < 8 ? n - j : 8, V + j, vs);
}

static void w_output43_8(const float *restrict Mx, fc_int ms, int n, float *restrict y,
                         fc_int OH, fc_int OW, fc_int oh0, fc_int ow0, float bias, int relu)
{
    const __m256 c2 = _mm256_set1_ps(2.0f), c4 = _mm256_set1_ps(4.0f), c8 = _mm256_set1_ps(8.0f);
    __m256 t[4][6];
    for (int k = 0; k < 6; k++) {   /* t = A^T m down column k */
        __m256 m0 = w_load_n(Mx + (0 * 6 + k) * ms, n), m1 = w_load_n(Mx + (1 * 6 + k) * ms, n);
        __m256 m2 = w_load_n(Mx + (2 * 6 + k) * ms, n), m3 = w_load_n(Mx + (3 * 6 + k) * ms, n);
        __m256 m4 = w_load_n(Mx + (4 * 6 + k) * ms, n), m5 = w_load_n(Mx + (5 * 6 + k) * ms, n);
        __m256 a12 = _mm256_add_ps(m1, m2), d12 = _mm256_sub_ps(m1, m2);
        __m256 a34 = _mm256_add_ps(m3, m4), d34 = _mm256_sub_ps(m3, m4);
        t[0][k] = _mm256_add_ps(_mm256_add_ps(m0, a12), a34);
        t[1][k] = _mm256_fmadd_ps(c2, d34, d12);
        t[2][k] = _mm256_fmadd_ps(c4, a34, a12);
        t[3][k] = _mm256_add_ps(_mm256_fmadd_ps(c8, d34, d12), m5);
    }
    fc_int cols = 4 * (fc_int)n;
    if (ow0 + cols > OW) cols = OW - ow0;
    const __m256 vb = _mm256_set1_ps(bias);
    for (int r = 0; r < 4; r++) {
        if (oh0 + r >= OH) break;
        __m256 a12 = _mm256_add_ps(t[r][1], t[r][2]), d12 = _mm256_sub_ps(t[r][1], t[r][2]);
        __m256 a34 = _mm256_add_ps(t[r][3], t[r][4]), d34 = _mm256_sub_ps(t[r][3], t[r][4]);
        __m256 o0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(t[r][0], a12), a34), vb);
        __m256 o1 = _mm256_add_ps(_mm256_fmadd_ps(c2, d34, d12), vb);
        __m256 o2 = _mm256_add_ps(_mm256_fmadd_ps(c4, a34, a12), vb);
        __m256 o3 = _mm256_add_ps(_mm256_add_ps(_mm256_fmadd_ps(c8, d34, d12), t[r][5]), vb);
        if (relu) {
            o0 = w_relu(o0);
            o1 = w_relu(o1);
            o2 = w_relu(o2);
            o3 = w_relu(o3);
        }
        /* in-lane 4x4 transpose: r_j holds tile j's four outputs (low half) and tile
         * j + 4's (high half) */
        __m256 u0 = _mm256_unpacklo_ps(o0, o1), u1 = _mm256_unpackhi_ps(o0, o1);
        __m256 u2 = _mm256_unpacklo_ps(o2, o3), u3 = _mm256_unpackhi_ps(o2, o3);
        __m256 r0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(u0), _mm256_castps_pd(u2)));
        __m256 r1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(u0), _mm256_castps_pd(u2)));
        __m256 r2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(u1), _mm256_castps_pd(u3)));
        __m256 r3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(u1), _mm256_castps_pd(u3)));
        __m256 x[4] = {_mm256_permute2f128_ps(r0, r1, 0x20), _mm256_permute2f128_ps(r2, r3, 0x20),
                       _mm256_permute2f128_ps(r0, r1, 0x31), _mm256_permute2f128_ps(r2, r3, 0x31)};
        float *dst = y + (oh0 + r) * OW + ow0;
        for (int v = 0; v < 4; v++) w_store_n(dst + 8 * v, x[v], cols - 8 * v);
    }
}

static void w_output43_avx2(const float *restrict Mx, fc_int ms, int n, float *restrict y,
                            fc_int OH, fc_int OW, fc_int oh0, fc_int ow0, float bias, int relu)
{
    for (int j = 0; j < n; j += 8)
        w_output43_8(Mx + j, ms, n - j < 8 ? n - j : 8, y, OH, OW, oh0, ow0 + 4 * j, bias, relu);
}

/* one hand-written form serves both tile-row lengths */
const fc_winograd_kernels_t fc_winograd_avx2 = {
    FC_PATH_AVX2, w_input_tiles_avx2, w_output_tiles_avx2, w_grad_tiles_avx2,
    {w_input43_avx2, w_input43_avx2}, {w_output43_avx2, w_output43_avx2},
};
#pragma GCC pop_options
#endif
