/* int8 micro-kernels for AVX-512: with AVX512_VNNI (vpdpbusd: four u8 x s8 products
 * into each int32 lane, one instruction), and without it (AVX512BW: the quads split
 * into even and odd bytes widened to int16, two vpmaddwd - exact, where vpmaddubsw
 * would saturate its int16 pair sums).  8 rows x 32 columns, 16 zmm accumulators; the
 * epilogue (qgemm.h) in vector form, the same operations in the same order as
 * fc_qepi_value, so the bits match the portable kernel. */
#include <string.h>
#include "cpu.h"
#include "qgemm.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni")
#include <immintrin.h>

#define MR 8
#define NR 32

/* One 16-column slice of the epilogue: its per-column values loaded once per tile (the
 * u8 stores may alias anything, so the compiler would reload them for every row). */
typedef struct {
    __mmask16 m;
    __m512i comp;
    __m512 mult, bias;
} cols16;

static inline cols16 cols_load(const fc_qepi_t *e, fc_int c, int n)
{
    cols16 v;
    v.m = n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
    v.comp = _mm512_maskz_loadu_epi32(v.m, e->comp + c);
    v.mult = _mm512_maskz_loadu_ps(v.m, e->mult + c);
    v.bias = _mm512_maskz_loadu_ps(v.m, e->bias + c);
    return v;
}

/* Columns c.. of one output row (the slice's mask says which), qgemm.h's epilogue. */
static inline void epi16(__m512i acc, const cols16 *k, __m512 lo, __m512 hi, uint8_t *y8,
                         float *yf, fc_int off)
{
    __m512 v = _mm512_cvtepi32_ps(_mm512_add_epi32(acc, k->comp));
    v = _mm512_mul_ps(v, k->mult);
    v = _mm512_add_ps(v, k->bias);
    v = _mm512_max_ps(v, lo);
    v = _mm512_min_ps(v, hi);
    if (y8)
        _mm512_mask_cvtusepi32_storeu_epi8(y8 + off, k->m, _mm512_cvtps_epi32(v));
    else
        _mm512_mask_storeu_ps(yf + off, k->m, v);
}

static inline __m512i quad(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* The 16 accumulators as named variables (an array of vectors makes GCC shuffle them
 * through the stack on every step). */
#define REP8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define DECL(i)                                                                          \
    __m512i c##i##0 = _mm512_setzero_si512(), c##i##1 = _mm512_setzero_si512();           \
    const uint8_t *a##i = a + (i < mr ? i : mr - 1) * lda;
#define ZERO(i) __m512i c##i##0 = _mm512_setzero_si512(), c##i##1 = _mm512_setzero_si512();
#define TAP(i) const uint8_t *a##i = ptrs[i * ntaps + t];
#define STORE(i)                                                                         \
    if (i < mr) {                                                                        \
        const fc_int off = (row0 + i) * ldy + col0;                                      \
        epi16(c##i##0, &k0, lo, hi, y8, yf, off);                                        \
        if (k1.m) epi16(c##i##1, &k1, lo, hi, y8, yf, off + 16);                         \
    }
#define EPILOGUE                                                                         \
    const cols16 k0 = cols_load(e, col0, nr), k1 = cols_load(e, col0 + 16, nr - 16);     \
    const __m512 lo = _mm512_set1_ps(e->lo), hi = _mm512_set1_ps(e->hi);                 \
    uint8_t *const y8 = e->y8;                                                           \
    float *const yf = e->yf;                                                             \
    const fc_int ldy = e->ldy;                                                           \
    REP8(STORE)
#define DP(i)                                                                            \
    {                                                                                    \
        const __m512i av = quad(a##i + 4 * q);                                           \
        c##i##0 = _mm512_dpbusd_epi32(c##i##0, av, b0);                                  \
        c##i##1 = _mm512_dpbusd_epi32(c##i##1, av, b1);                                  \
    }
/* vpdpbusd without VNNI: weights of k0, k2 and of k1, k3 as sign-extended int16
 * (b0e, b0o...), the activations' even and odd bytes zero-extended, two vpmaddwd */
#define DPW(i)                                                                           \
    {                                                                                    \
        const __m512i av = quad(a##i + 4 * q);                                           \
        const __m512i ae = _mm512_and_si512(av, lowbyte);                                \
        const __m512i ao = _mm512_srli_epi16(av, 8);                                     \
        c##i##0 = _mm512_add_epi32(c##i##0, _mm512_add_epi32(_mm512_madd_epi16(ae, b0e), \
                                                             _mm512_madd_epi16(ao, b0o))); \
        c##i##1 = _mm512_add_epi32(c##i##1, _mm512_add_epi32(_mm512_madd_epi16(ae, b1e), \
                                                             _mm512_madd_epi16(ao, b1o))); \
    }

static void tile_vnni(fc_int kq, const uint8_t *a, fc_int lda, const int8_t *b, int mr,
                      int nr, const fc_qepi_t *e, fc_int row0, fc_int col0)
{
    REP8(DECL)
    for (fc_int q = 0; q < kq; q++, b += 4 * NR) {
        const __m512i b0 = _mm512_loadu_si512(b);
        const __m512i b1 = _mm512_loadu_si512(b + 64);
        REP8(DP)
    }
    EPILOGUE
}

static void itile_vnni(fc_int ntaps, fc_int cq, const uint8_t *const *ptrs, const int8_t *b,
                       int mr, int nr, const fc_qepi_t *e, fc_int row0, fc_int col0)
{
    REP8(ZERO)
    for (fc_int t = 0; t < ntaps; t++) {
        REP8(TAP)
        for (fc_int q = 0; q < cq; q++, b += 4 * NR) {
            const __m512i b0 = _mm512_loadu_si512(b);
            const __m512i b1 = _mm512_loadu_si512(b + 64);
            REP8(DP)
        }
    }
    EPILOGUE
}

#define BW_STEP                                                                          \
    const __m512i b0 = _mm512_loadu_si512(b);                                            \
    const __m512i b1 = _mm512_loadu_si512(b + 64);                                       \
    const __m512i b0e = _mm512_srai_epi16(_mm512_slli_epi16(b0, 8), 8);                  \
    const __m512i b0o = _mm512_srai_epi16(b0, 8);                                        \
    const __m512i b1e = _mm512_srai_epi16(_mm512_slli_epi16(b1, 8), 8);                  \
    const __m512i b1o = _mm512_srai_epi16(b1, 8);                                        \
    REP8(DPW)

static void itile_avx512bw(fc_int ntaps, fc_int cq, const uint8_t *const *ptrs,
                           const int8_t *b, int mr, int nr, const fc_qepi_t *e, fc_int row0,
                           fc_int col0)
{
    const __m512i lowbyte = _mm512_set1_epi16(0xFF);
    REP8(ZERO)
    for (fc_int t = 0; t < ntaps; t++) {
        REP8(TAP)
        for (fc_int q = 0; q < cq; q++, b += 4 * NR) {
            BW_STEP
        }
    }
    EPILOGUE
}

static void tile_avx512bw(fc_int kq, const uint8_t *a, fc_int lda, const int8_t *b, int mr,
                          int nr, const fc_qepi_t *e, fc_int row0, fc_int col0)
{
    const __m512i lowbyte = _mm512_set1_epi16(0xFF);
    REP8(DECL)
    for (fc_int q = 0; q < kq; q++, b += 4 * NR) {
        BW_STEP
    }
    EPILOGUE
}

const fc_qkernel_t fc_qkernel_vnni = {
    FC_CPU_AVX512F | FC_CPU_AVX512BW | FC_CPU_AVX512VL | FC_CPU_AVX512_VNNI, MR, NR,
    "avx512_vnni", tile_vnni, itile_vnni};
const fc_qkernel_t fc_qkernel_avx512bw = {
    FC_CPU_AVX512F | FC_CPU_AVX512BW | FC_CPU_AVX512VL, MR, NR, "avx512bw", tile_avx512bw,
    itile_avx512bw};

#pragma GCC pop_options
#endif
