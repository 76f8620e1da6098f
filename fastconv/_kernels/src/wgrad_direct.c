/* Direct weight gradients (wgrad_direct.h).  Work splits into tasks (a block of 4 output
 * channels, one input channel), each owned by one thread; the images' rows go in blocks
 * small enough that a task's 4 output-gradient rows stay in L1 across the input
 * channels.  Per task, kernel row and block, 4 x 3 vector accumulators sum in float and
 * are added into double once per block, in a fixed order: the bits do not depend on the
 * thread count. */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "wgrad_direct.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define WG_MB 4                  /* output channels per task */

/* Output rows per block: the task's 4 output-gradient rows and one input row in ~24 KB
 * (L1: they are read again for every input channel and kernel row) */
static fc_int wg_rows(fc_int OH, fc_int OW, fc_int PW)
{
    fc_int r = 24576 / (4 * (WG_MB * OW + PW));
    return r < 1 ? 1 : (r > OH ? OH : r);
}

/* The driver, with the per-(task, kh, row block) sum as `block`:
 * block(d[4] output-gradient rows at the block's first row, xr the input row of tap row
 * kh at that row, rows, OW (dy row stride), PW (x row stride), dw, out) adds the 4 x 3
 * products' sums into out[12][WG_LANES] (double, lane by lane: no reduction per block). */
#define WG_LANES 8
typedef void wg_block_fn(const float *const d[WG_MB], const float *xr, fc_int rows, fc_int OW,
                         fc_int PW, fc_int dw, double *out);

static int wg_run(wg_block_fn *block, const float *dy, const float *x, fc_int N, fc_int M,
                  fc_int C, fc_int OH, fc_int OW, fc_int x_img, fc_int x_ch, fc_int PW,
                  fc_int KH, fc_int dh, fc_int dw, float *dwt, int nthreads)
{
    fc_int nmb = (M + WG_MB - 1) / WG_MB, tasks = nmb * C, K = C * KH * 3;
    fc_int R = wg_rows(OH, OW, PW), OHW = OH * OW;
    double *acc = calloc((size_t)(tasks * KH) * WG_MB * 3 * WG_LANES + 1, sizeof(double));
    if (!acc) return -1;
    if (nthreads < 1) nthreads = 1;
    if (tasks < nthreads) nthreads = (int)tasks;
    #pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
#ifdef _OPENMP
        int t = omp_get_thread_num(), T = omp_get_num_threads();
#else
        int t = 0, T = 1;
#endif
        fc_int t0 = tasks * t / T, t1 = tasks * (t + 1) / T;
        for (fc_int n = 0; n < N; n++)
            for (fc_int r0 = 0; r0 < OH; r0 += R) {
                fc_int rows = OH - r0 < R ? OH - r0 : R;
                for (fc_int k = t0; k < t1; k++) {
                    fc_int mb = k / C, c = k - mb * C, m0 = mb * WG_MB;
                    const float *d[WG_MB];
                    for (int i = 0; i < WG_MB; i++)    /* missing rows read row m0: unused */
                        d[i] = dy + (n * M + (m0 + i < M ? m0 + i : m0)) * OHW + r0 * OW;
                    for (fc_int kh = 0; kh < KH; kh++)
                        block(d, x + n * x_img + c * x_ch + (r0 + kh * dh) * PW, rows, OW, PW, dw,
                              acc + (k * KH + kh) * WG_MB * 3 * WG_LANES);
                }
            }
        for (fc_int k = t0; k < t1; k++) {
            fc_int mb = k / C, c = k - mb * C;
            for (fc_int kh = 0; kh < KH; kh++)
                for (int i = 0; i < WG_MB && mb * WG_MB + i < M; i++)
                    for (int j = 0; j < 3; j++) {
                        const double *a = acc + ((k * KH + kh) * WG_MB * 3 + i * 3 + j) * WG_LANES;
                        double s = 0;
                        for (int l = 0; l < WG_LANES; l++) s += a[l];
                        dwt[(mb * WG_MB + i) * K + (c * KH + kh) * 3 + j] = (float)s;
                    }
        }
    }
    free(acc);
    return 0;
}

/* The reference form: scalar float sums per row, added into double per block. */
static void wg_block_generic(const float *const d[WG_MB], const float *xr, fc_int rows,
                             fc_int OW, fc_int PW, fc_int dw, double *out)
{
    float s[WG_MB * 3] = {0};
    for (fc_int r = 0; r < rows; r++)
        for (fc_int ow = 0; ow < OW; ow++)
            for (int i = 0; i < WG_MB; i++) {
                float g = d[i][r * OW + ow];
                for (int j = 0; j < 3; j++) s[i * 3 + j] += g * xr[r * PW + ow + j * dw];
            }
    for (int i = 0; i < WG_MB * 3; i++) out[i * WG_LANES] += s[i];
}

static int wg_generic(const float *dy, const float *x, fc_int N, fc_int M, fc_int C, fc_int OH,
                      fc_int OW, fc_int x_img, fc_int x_ch, fc_int PW, fc_int KH, fc_int dh,
                      fc_int dw, float *dwt, int nthreads)
{
    return wg_run(wg_block_generic, dy, x, N, M, C, OH, OW, x_img, x_ch, PW, KH, dh, dw, dwt,
                  nthreads);
}

const fc_wgrad_kernels_t fc_wgrad_generic = {0, wg_generic, "generic"};

#if defined(__x86_64__)
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx2,fma")

/* out[0..8) += v, widened to double lane by lane */
static inline void wg_add(double *out, __m256 v)
{
    _mm256_storeu_pd(out, _mm256_add_pd(_mm256_loadu_pd(out),
                                        _mm256_cvtps_pd(_mm256_castps256_ps128(v))));
    _mm256_storeu_pd(out + 4, _mm256_add_pd(_mm256_loadu_pd(out + 4),
                                            _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
}

/* 8 output columns at a time; the last partial group under a lane mask (x too: a row's
 * last values may be the buffer's last), so masked lanes add 0 * 0. */
static void wg_block_avx2(const float *const d[WG_MB], const float *xr, fc_int rows,
                          fc_int OW, fc_int PW, fc_int dw, double *out)
{
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00,
           a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    const fc_int full = OW & ~(fc_int)7;
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(OW - full)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const float *d0 = d[0], *d1 = d[1], *d2 = d[2], *d3 = d[3];
#define WG_FMA(x0, x1, x2, g0, g1, g2, g3)                                                   \
    a00 = _mm256_fmadd_ps(g0, x0, a00); a01 = _mm256_fmadd_ps(g0, x1, a01);                 \
    a02 = _mm256_fmadd_ps(g0, x2, a02); a10 = _mm256_fmadd_ps(g1, x0, a10);                 \
    a11 = _mm256_fmadd_ps(g1, x1, a11); a12 = _mm256_fmadd_ps(g1, x2, a12);                 \
    a20 = _mm256_fmadd_ps(g2, x0, a20); a21 = _mm256_fmadd_ps(g2, x1, a21);                 \
    a22 = _mm256_fmadd_ps(g2, x2, a22); a30 = _mm256_fmadd_ps(g3, x0, a30);                 \
    a31 = _mm256_fmadd_ps(g3, x1, a31); a32 = _mm256_fmadd_ps(g3, x2, a32);
    for (fc_int r = 0; r < rows; r++, d0 += OW, d1 += OW, d2 += OW, d3 += OW, xr += PW) {
        fc_int ow = 0;
        for (; ow < full; ow += 8) {
            __m256 x0 = _mm256_loadu_ps(xr + ow), x1 = _mm256_loadu_ps(xr + ow + dw),
                   x2 = _mm256_loadu_ps(xr + ow + 2 * dw);
            WG_FMA(x0, x1, x2, _mm256_loadu_ps(d0 + ow), _mm256_loadu_ps(d1 + ow),
                   _mm256_loadu_ps(d2 + ow), _mm256_loadu_ps(d3 + ow))
        }
        if (ow < OW) {
            __m256 x0 = _mm256_maskload_ps(xr + ow, tail),
                   x1 = _mm256_maskload_ps(xr + ow + dw, tail),
                   x2 = _mm256_maskload_ps(xr + ow + 2 * dw, tail);
            WG_FMA(x0, x1, x2, _mm256_maskload_ps(d0 + ow, tail),
                   _mm256_maskload_ps(d1 + ow, tail), _mm256_maskload_ps(d2 + ow, tail),
                   _mm256_maskload_ps(d3 + ow, tail))
        }
    }
#undef WG_FMA
    wg_add(out, a00); wg_add(out + 8, a01); wg_add(out + 16, a02);
    wg_add(out + 24, a10); wg_add(out + 32, a11); wg_add(out + 40, a12);
    wg_add(out + 48, a20); wg_add(out + 56, a21); wg_add(out + 64, a22);
    wg_add(out + 72, a30); wg_add(out + 80, a31); wg_add(out + 88, a32);
}

static int wg_avx2(const float *dy, const float *x, fc_int N, fc_int M, fc_int C, fc_int OH,
                   fc_int OW, fc_int x_img, fc_int x_ch, fc_int PW, fc_int KH, fc_int dh,
                   fc_int dw, float *dwt, int nthreads)
{
    return wg_run(wg_block_avx2, dy, x, N, M, C, OH, OW, x_img, x_ch, PW, KH, dh, dw, dwt,
                  nthreads);
}
#pragma GCC pop_options

const fc_wgrad_kernels_t fc_wgrad_avx2 = {FC_PATH_AVX2, wg_avx2, "avx2"};
#endif
