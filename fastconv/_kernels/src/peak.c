/* FMA throughput probe: independent FMA chains on the widest vectors of the ISA path.
 * Used by the benchmarks to report "% of the machine's measured peak". */
#include "cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f")))
static double loop_avx512(fc_int iters)
{
    __m512 a[16], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
    for (fc_int t = 0; t < iters; t++)
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    float s = 0;
    for (int i = 0; i < 16; i++) s += _mm512_reduce_add_ps(a[i]);
    return s;
}

__attribute__((target("avx2,fma")))
static double loop_avx2(fc_int iters)
{
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (fc_int t = 0; t < iters; t++)
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
    float tmp[8], s = 0;
    for (int i = 0; i < 12; i++) {
        _mm256_storeu_ps(tmp, a[i]);
        for (int j = 0; j < 8; j++) s += tmp[j];
    }
    return s;
}
#endif

/* Runs `iters` rounds; returns the float FLOPs performed (2 per FMA lane). */
double fc_fma_probe(fc_int iters, double *sink)
{
#if defined(__x86_64__)
    if (fc_cpu_has(FC_PATH_AVX512)) { *sink += loop_avx512(iters); return 2.0 * 16 * 16 * iters; }
    if (fc_cpu_has(FC_PATH_AVX2)) { *sink += loop_avx2(iters); return 2.0 * 12 * 8 * iters; }
#endif
    float a[8] = {0}, m = 0.999999f, c = 1e-7f;
    for (fc_int t = 0; t < iters; t++)
        for (int i = 0; i < 8; i++) a[i] = a[i] * m + c;
    for (int i = 0; i < 8; i++) *sink += a[i];
    return 2.0 * 8 * iters;
}
