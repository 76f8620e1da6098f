/* bf16 GEMM micro-kernels: AVX512_BF16's vdpbf16ps, and its emulation with float32 FMAs
 * on AVX-512F, AVX2 and plain C.
 *
 * Packed panels hold 32-bit words, each a pair of bf16 values of two consecutive k (the
 * even k in the low half): [ceil(k/2)][MR] for A, [ceil(k/2)][NR] for B (gemm.h).  A
 * product of two bf16 values is exact in float32, and vdpbf16ps adds the odd k's product
 * to the accumulator first, then the even k's, rounding after each; the emulations do the
 * same two fused multiply-adds in the same order, so every path gives the same bits (the
 * packing flushes subnormal inputs to zero, as vdpbf16ps does; only a product below
 * float32's normal range, 1e-38, could differ). */
#include <string.h>
#include "cpu.h"
#include "gemm.h"

/* the even (low) and odd (high) bf16 of a pair word, as float32 */
static inline float bf_lo(uint32_t w)
{
    uint32_t u = w << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float bf_hi(uint32_t w)
{
    uint32_t u = w & 0xFFFF0000u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Epilogue shared by the emulated and native tiles, one row of n values: c = alpha * acc
 * (+ beta * c, fused).  Written once so the paths round alike. */
static inline void store_row(const float *acc, float *c, int n, float alpha, float beta)
{
    for (int j = 0; j < n; j++) {
        float r = alpha == 1 ? acc[j] : alpha * acc[j];
        c[j] = beta == 0 ? r : __builtin_fmaf(beta, c[j], r);
    }
}

/* always inlined, so each target's copy is vectorised for its registers */
static inline __attribute__((always_inline)) void fc_bf16_pairs_body(float *panel, fc_int k,
                                                                     int w)
{
    uint32_t pair[64];
    for (fc_int p = 0; p < k; p += 2) {
        const float *r0 = panel + p * w, *r1 = r0 + w;
        if (p + 1 < k)
            for (int j = 0; j < w; j++)
                pair[j] = (fc_bf16_round(r1[j]) & 0xFFFF0000u) | (fc_bf16_round(r0[j]) >> 16);
        else
            for (int j = 0; j < w; j++) pair[j] = fc_bf16_round(r0[j]) >> 16;
        /* pair row p/2 lies at or below row p: rows p, p + 1 are read before it is written */
        memcpy(panel + (p / 2) * w, pair, (size_t)w * 4);
    }
}

void fc_bf16_pairs(float *panel, fc_int k, int w) { fc_bf16_pairs_body(panel, k, w); }

/* ------------------------------------------------------------------ plain C, 4x8 */
static void bukr_generic_4x8(fc_int k, const uint32_t *restrict a, const uint32_t *restrict b,
                             float *restrict c, fc_int ldc, int m, int n, float alpha, float beta)
{
    float acc[4][8] = {{0}};
    for (fc_int p = 0; p < (k + 1) / 2; p++, a += 4, b += 8)
        for (int i = 0; i < 4; i++) {
            float ah = bf_hi(a[i]), al = bf_lo(a[i]);
            for (int j = 0; j < 8; j++) {
                /* both products are exact: mul + add rounds once, like the fused op */
                acc[i][j] += ah * bf_hi(b[j]);
                acc[i][j] += al * bf_lo(b[j]);
            }
        }
    for (int i = 0; i < m; i++) store_row(acc[i], c + i * ldc, n, alpha, beta);
}

const fc_bkernel_t fc_bkernel_generic = {"bf16_emulated_generic_4x8", 0, 4, 8, 128,
                                         FC_BF16_KC, 2048, bukr_generic_4x8, fc_bf16_pairs};

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include <immintrin.h>

/* the portable pairing, vectorised by the compiler for this target */
static void pairs_avx2(float *panel, fc_int k, int w) { fc_bf16_pairs_body(panel, k, w); }

/* ------------------------------------------------------------------ AVX2, 6x16 */
static void bukr_avx2_6x16(fc_int k, const uint32_t *restrict a, const uint32_t *restrict b,
                           float *restrict c, fc_int ldc, int m, int n, float alpha, float beta)
{
    __m256 acc[6][2];
    const __m256i hi = _mm256_set1_epi32((int)0xFFFF0000u);
    for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (fc_int p = 0; p < (k + 1) / 2; p++, a += 6, b += 16) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)b);
        __m256i w1 = _mm256_loadu_si256((const __m256i *)(b + 8));
        __m256 h0 = _mm256_castsi256_ps(_mm256_and_si256(w0, hi));
        __m256 h1 = _mm256_castsi256_ps(_mm256_and_si256(w1, hi));
        __m256 l0 = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
        __m256 l1 = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            __m256 ah = _mm256_set1_ps(bf_hi(a[i])), al = _mm256_set1_ps(bf_lo(a[i]));
            acc[i][0] = _mm256_fmadd_ps(ah, h0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ah, h1, acc[i][1]);
            acc[i][0] = _mm256_fmadd_ps(al, l0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(al, l1, acc[i][1]);
        }
    }
    float tile[16];
    for (int i = 0; i < m; i++) {
        _mm256_storeu_ps(tile, acc[i][0]);
        _mm256_storeu_ps(tile + 8, acc[i][1]);
        store_row(tile, c + i * ldc, n, alpha, beta);
    }
}
#pragma GCC pop_options

const fc_bkernel_t fc_bkernel_avx2 = {"bf16_emulated_avx2_6x16", FC_PATH_AVX2, 6, 16, 144,
                                      FC_BF16_KC, 4080, bukr_avx2_6x16, pairs_avx2};

/* ------------------------------------------------------------------ AVX-512, 8x48 */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bf16,fma")

/* the tile's epilogue: masked stores, n <= 16 * NV */
static void pairs_avx512(float *panel, fc_int k, int w) { fc_bf16_pairs_body(panel, k, w); }

#define BF16_STORE(MR, NV)                                                                 \
    for (int i = 0; i < MR && i < m; i++) {                                                \
        float *ci = c + i * ldc;                                                           \
        for (int v = 0; v < NV; v++) {                                                     \
            int r = n - 16 * v;                                                            \
            __mmask16 km = r >= 16 ? (__mmask16)0xFFFF                                      \
                         : r > 0 ? (__mmask16)((1u << r) - 1) : 0;                          \
            __m512 x = alpha == 1 ? acc[i][v] : _mm512_mul_ps(_mm512_set1_ps(alpha), acc[i][v]);\
            if (beta != 0)                                                                 \
                x = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(km, ci + 16 * v), x);\
            _mm512_mask_storeu_ps(ci + 16 * v, km, x);                                     \
        }                                                                                  \
    }

/* NV of the panel's 3 column vectors live (edge panels of 16 or 32 columns skip the
 * all-zero rest); each column's arithmetic is the same whatever NV is. */
#define DEFINE_BUKR_EMU(NAME, NV)                                                          \
static void NAME(fc_int k, const uint32_t *restrict a, const uint32_t *restrict b,         \
                 float *restrict c, fc_int ldc, int m, int n, float alpha, float beta)     \
{                                                                                          \
    __m512 acc[8][NV];                                                                     \
    const __m512i hi = _mm512_set1_epi32((int)0xFFFF0000u);                                \
    for (int i = 0; i < 8; i++)                                                            \
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();                      \
    for (fc_int p = 0; p < (k + 1) / 2; p++, a += 8, b += 48) {                            \
        __m512 bh[NV], bl[NV];                                                             \
        for (int v = 0; v < NV; v++) {                                                     \
            __m512i w = _mm512_loadu_si512((const void *)(b + 16 * v));                    \
            bh[v] = _mm512_castsi512_ps(_mm512_and_si512(w, hi));                          \
            bl[v] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));                         \
        }                                                                                  \
        _Pragma("GCC unroll 8")                                                            \
        for (int i = 0; i < 8; i++) {                                                      \
            __m512 ah = _mm512_set1_ps(bf_hi(a[i])), al = _mm512_set1_ps(bf_lo(a[i]));     \
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(ah, bh[v], acc[i][v]);\
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(al, bl[v], acc[i][v]);\
        }                                                                                  \
    }                                                                                      \
    BF16_STORE(8, NV)                                                                      \
}

#define DEFINE_BUKR_NATIVE(NAME, NV)                                                       \
static void NAME(fc_int k, const uint32_t *restrict a, const uint32_t *restrict b,         \
                 float *restrict c, fc_int ldc, int m, int n, float alpha, float beta)     \
{                                                                                          \
    __m512 acc[8][NV];                                                                     \
    for (int i = 0; i < 8; i++)                                                            \
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();                      \
    for (fc_int p = 0; p < (k + 1) / 2; p++, a += 8, b += 48) {                            \
        __m512bh bv[NV];                                                                   \
        for (int v = 0; v < NV; v++)                                                       \
            bv[v] = (__m512bh)_mm512_loadu_si512((const void *)(b + 16 * v));              \
        _mm_prefetch((const char *)(b + 8 * 48), _MM_HINT_T0);                             \
        _Pragma("GCC unroll 8")                                                            \
        for (int i = 0; i < 8; i++) {                                                      \
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i]);                          \
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);\
        }                                                                                  \
    }                                                                                      \
    BF16_STORE(8, NV)                                                                      \
}

DEFINE_BUKR_EMU(bukr_emu_8x16, 1)
DEFINE_BUKR_EMU(bukr_emu_8x32, 2)
DEFINE_BUKR_EMU(bukr_emu_8x48, 3)
DEFINE_BUKR_NATIVE(bukr_bf16_8x16, 1)
DEFINE_BUKR_NATIVE(bukr_bf16_8x32, 2)
DEFINE_BUKR_NATIVE(bukr_bf16_8x48, 3)

static void bukr_avx512_8x48(fc_int k, const uint32_t *restrict a, const uint32_t *restrict b,
                             float *restrict c, fc_int ldc, int m, int n, float alpha, float beta)
{
    if (n <= 16) bukr_emu_8x16(k, a, b, c, ldc, m, n, alpha, beta);
    else if (n <= 32) bukr_emu_8x32(k, a, b, c, ldc, m, n, alpha, beta);
    else bukr_emu_8x48(k, a, b, c, ldc, m, n, alpha, beta);
}

static void bukr_avx512bf16_8x48(fc_int k, const uint32_t *restrict a, const uint32_t *restrict b,
                                 float *restrict c, fc_int ldc, int m, int n, float alpha,
                                 float beta)
{
    if (n <= 16) bukr_bf16_8x16(k, a, b, c, ldc, m, n, alpha, beta);
    else if (n <= 32) bukr_bf16_8x32(k, a, b, c, ldc, m, n, alpha, beta);
    else bukr_bf16_8x48(k, a, b, c, ldc, m, n, alpha, beta);
}
#pragma GCC pop_options

const fc_bkernel_t fc_bkernel_avx512 = {"bf16_emulated_avx512_8x48", FC_PATH_AVX512, 8, 48,
                                        240, FC_BF16_KC, 1536, bukr_avx512_8x48, pairs_avx512};
const fc_bkernel_t fc_bkernel_avx512bf16 = {"bf16_avx512bf16_8x48",
                                            FC_PATH_AVX512 | FC_CPU_AVX512_BF16, 8, 48, 240,
                                            FC_BF16_KC, 1536, bukr_avx512bf16_8x48,
                                            pairs_avx512};
#endif
