/* int8 micro-kernel for AVX2: each u8 x s8 quad split into even and odd bytes widened
 * to int16 and multiplied with two vpmaddwd (exact; vpmaddubsw's int16 pair sums would
 * saturate at 255 * 127 * 2).  4 rows x 16 columns, 8 ymm accumulators; the epilogue
 * (qgemm.h) with the same operations in the same order as fc_qepi_value. */
#include <string.h>
#include "cpu.h"
#include "qgemm.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#define MR 4
#define NR 16

/* Columns c..c+n-1 (n <= 8, may be <= 0) of one output row. */
static inline void epi8(__m256i acc, const fc_qepi_t *e, fc_int row, fc_int c, int n)
{
    if (n <= 0) return;
    if (n > 8) n = 8;
    int32_t ci[8] = {0};
    float mu[8] = {0}, bi[8] = {0};
    memcpy(ci, e->comp + c, (size_t)n * 4);
    memcpy(mu, e->mult + c, (size_t)n * 4);
    memcpy(bi, e->bias + c, (size_t)n * 4);
    __m256 v = _mm256_cvtepi32_ps(_mm256_add_epi32(acc, _mm256_loadu_si256((void *)ci)));
    v = _mm256_mul_ps(v, _mm256_loadu_ps(mu));
    v = _mm256_add_ps(v, _mm256_loadu_ps(bi));
    v = _mm256_max_ps(v, _mm256_set1_ps(e->lo));
    v = _mm256_min_ps(v, _mm256_set1_ps(e->hi));
    if (e->y8) {
        int32_t q[8];
        _mm256_storeu_si256((void *)q, _mm256_cvtps_epi32(v));
        uint8_t *y = e->y8 + row * e->ldy + c;
        for (int j = 0; j < n; j++) y[j] = (uint8_t)q[j];
    } else {
        float f[8];
        _mm256_storeu_ps(f, v);
        memcpy(e->yf + row * e->ldy + c, f, (size_t)n * 4);
    }
}

#define REP4(X) X(0) X(1) X(2) X(3)
#define DECL(i)                                                                          \
    __m256i c##i##0 = _mm256_setzero_si256(), c##i##1 = _mm256_setzero_si256();           \
    const uint8_t *a##i = a + (i < mr ? i : mr - 1) * lda;
#define STORE(i)                                                                         \
    if (i < mr) {                                                                        \
        epi8(c##i##0, e, row0 + i, col0, nr);                                            \
        epi8(c##i##1, e, row0 + i, col0 + 8, nr - 8);                                    \
    }
#define DPW(i)                                                                           \
    {                                                                                    \
        int32_t v;                                                                       \
        memcpy(&v, a##i + 4 * q, 4);                                                     \
        const __m256i av = _mm256_set1_epi32(v);                                         \
        const __m256i ae = _mm256_and_si256(av, lowbyte);                                \
        const __m256i ao = _mm256_srli_epi16(av, 8);                                     \
        c##i##0 = _mm256_add_epi32(c##i##0, _mm256_add_epi32(_mm256_madd_epi16(ae, b0e), \
                                                             _mm256_madd_epi16(ao, b0o))); \
        c##i##1 = _mm256_add_epi32(c##i##1, _mm256_add_epi32(_mm256_madd_epi16(ae, b1e), \
                                                             _mm256_madd_epi16(ao, b1o))); \
    }

#define ZERO(i) __m256i c##i##0 = _mm256_setzero_si256(), c##i##1 = _mm256_setzero_si256();
#define TAP(i) const uint8_t *a##i = ptrs[i * ntaps + t];
#define STEP                                                                             \
    const __m256i b0 = _mm256_loadu_si256((const void *)b);                              \
    const __m256i b1 = _mm256_loadu_si256((const void *)(b + 32));                       \
    const __m256i b0e = _mm256_srai_epi16(_mm256_slli_epi16(b0, 8), 8);                  \
    const __m256i b0o = _mm256_srai_epi16(b0, 8);                                        \
    const __m256i b1e = _mm256_srai_epi16(_mm256_slli_epi16(b1, 8), 8);                  \
    const __m256i b1o = _mm256_srai_epi16(b1, 8);                                        \
    REP4(DPW)

static void itile_avx2(fc_int ntaps, fc_int cq, const uint8_t *const *ptrs, const int8_t *b,
                       int mr, int nr, const fc_qepi_t *e, fc_int row0, fc_int col0)
{
    const __m256i lowbyte = _mm256_set1_epi16(0xFF);
    REP4(ZERO)
    for (fc_int t = 0; t < ntaps; t++) {
        REP4(TAP)
        for (fc_int q = 0; q < cq; q++, b += 4 * NR) {
            STEP
        }
    }
    REP4(STORE)
}

static void tile_avx2(fc_int kq, const uint8_t *a, fc_int lda, const int8_t *b, int mr, int nr,
                      const fc_qepi_t *e, fc_int row0, fc_int col0)
{
    const __m256i lowbyte = _mm256_set1_epi16(0xFF);
    REP4(DECL)
    for (fc_int q = 0; q < kq; q++, b += 4 * NR) {
        const __m256i b0 = _mm256_loadu_si256((const void *)b);
        const __m256i b1 = _mm256_loadu_si256((const void *)(b + 32));
        /* weights of k0, k2 and of k1, k3 as sign-extended int16 */
        const __m256i b0e = _mm256_srai_epi16(_mm256_slli_epi16(b0, 8), 8);
        const __m256i b0o = _mm256_srai_epi16(b0, 8);
        const __m256i b1e = _mm256_srai_epi16(_mm256_slli_epi16(b1, 8), 8);
        const __m256i b1o = _mm256_srai_epi16(b1, 8);
        REP4(DPW)
    }
    REP4(STORE)
}

const fc_qkernel_t fc_qkernel_avx2 = {FC_CPU_AVX2, MR, NR, "avx2", tile_avx2, itile_avx2};

#pragma GCC pop_options
#endif
