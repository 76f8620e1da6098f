/* GEMM framework: one source, two precisions (see gemm_impl.h). */
#define _POSIX_C_SOURCE 200112L
#include <stdlib.h>
#include "gemm.h"

#define FC_CAT_(a, b) a##b
#define FC_CAT(a, b) FC_CAT_(a, b)

/* Packing workspace: one buffer per calling thread, grown on demand and kept, so a
 * GEMM call costs no allocation and no page faults after the first (a fresh
 * multi-MiB block is a new mmap, zero-filled page by page on first touch). */
static _Thread_local char *tl_ws = NULL;
static _Thread_local size_t tl_ws_cap = 0;

static void *fc_workspace(size_t bytes)
{
    bytes = (bytes + 4095) & ~(size_t)4095;
    if (bytes > tl_ws_cap) {
        void *p = NULL;
        free(tl_ws);
        tl_ws = NULL;
        tl_ws_cap = 0;
        if (posix_memalign(&p, 64, bytes) != 0) return NULL;
        tl_ws = p;
        tl_ws_cap = bytes;
    }
    return tl_ws;
}

size_t fc_gemm_workspace_bytes(void) { return tl_ws_cap; }

/* A GEMM that cannot get its workspace computes nothing; it raises this flag, which
 * every kernel entry point checks (fc_gemm_take_error) after its parallel section and
 * turns into a MemoryError, so no caller returns a result that was never computed. */
static volatile int g_alloc_failed = 0;

void fc_gemm_flag_error(void) { g_alloc_failed = 1; }

int fc_gemm_take_error(void)
{
    int e = g_alloc_failed;
    g_alloc_failed = 0;
    return e;
}

void fc_gemm_release_workspace(int nthreads)
{
    free(tl_ws);
    tl_ws = NULL;
    tl_ws_cap = 0;
    if (nthreads > 1) {
        #pragma omp parallel num_threads(nthreads)
        {
            free(tl_ws);
            tl_ws = NULL;
            tl_ws_cap = 0;
        }
    }
}

/* The micro-kernel table for the ISA in use (cpu.c). */
const fc_skernel_t *fc_skernel(void)
{
    switch (fc_isa()) {
    case FC_ISA_AVX512: return &fc_skernel_avx512;
    case FC_ISA_AVX2: return &fc_skernel_avx2;
    default: return &fc_skernel_generic;
    }
}

const fc_dkernel_t *fc_dkernel(void)
{
    switch (fc_isa()) {
    case FC_ISA_AVX512: return &fc_dkernel_avx512;
    case FC_ISA_AVX2: return &fc_dkernel_avx2;
    default: return &fc_dkernel_generic;
    }
}

/* Transposing packs (A read along rows, B along columns: weight gradients, Winograd's
 * transformed weights) are strided scalar stores in plain C; with AVX2 they go through
 * 8x8 register transposes: dst[q*ld + r] = src[r*rs + q] for r, q < 8.  Pure copies,
 * so the packed bits are the same either way. */
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2")))
static void fc_transpose8_avx2(const float *src, fc_int rs, float *dst, fc_int ld)
{
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + rs);
    __m256 r2 = _mm256_loadu_ps(src + 2 * rs), r3 = _mm256_loadu_ps(src + 3 * rs);
    __m256 r4 = _mm256_loadu_ps(src + 4 * rs), r5 = _mm256_loadu_ps(src + 5 * rs);
    __m256 r6 = _mm256_loadu_ps(src + 6 * rs), r7 = _mm256_loadu_ps(src + 7 * rs);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + ld, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#define FC_TRANSPOSE8(src, rs, dst, ld) fc_transpose8_avx2(src, rs, dst, ld)
#define FC_HAS_TRANSPOSE8() (fc_isa() >= FC_ISA_AVX2)
#endif

#define FC_T float
#define FC_KT fc_skernel_t
#define FC_GET_KERNEL fc_skernel
#define FC_GEMM fc_sgemm
#define FC_GEMM_EX fc_sgemm_ex
#include "gemm_impl.h"
#undef FC_T
#undef FC_KT
#undef FC_GET_KERNEL
#undef FC_GEMM
#undef FC_GEMM_EX
#undef FC_TRANSPOSE8
#undef FC_HAS_TRANSPOSE8

#define FC_T double
#define FC_KT fc_dkernel_t
#define FC_GET_KERNEL fc_dkernel
#define FC_GEMM fc_dgemm
#define FC_GEMM_EX fc_dgemm_ex
#include "gemm_impl.h"
