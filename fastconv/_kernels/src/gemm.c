/* GEMM framework: one template (gemm_impl.h), instantiated for float, for float with
 * bf16 products and for double. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif
#include "dispatch.h"

/* the tiny unpacked path's operand rounding: bf16 of x, as a float */
static inline float bf16_value(float x)
{
    uint32_t r = fc_bf16_round(x) & 0xFFFF0000u;
    float f;
    memcpy(&f, &r, 4);
    return f;
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
#define FC_HAS_TRANSPOSE8() fc_cpu_has(FC_CPU_AVX2)
#endif

#define FC_TA float
#define FC_TB float
#define FC_TC float
#define FC_TPA float
#define FC_TPB float
#define FC_SFX s
#define FC_KT fc_skernel_t
#define FC_KERNEL() (fc_dispatch.gemm.s)
#define FC_GEMM fc_sgemm
#define FC_GEMM_EX fc_sgemm_ex
#define FC_CONV_TAPS fc_sconv_taps
#include "gemm_impl.h"
#undef FC_TA
#undef FC_TB
#undef FC_TC
#undef FC_TPA
#undef FC_TPB
#undef FC_SFX
#undef FC_KT
#undef FC_KERNEL
#undef FC_GEMM
#undef FC_GEMM_EX
#undef FC_CONV_TAPS

/* bf16: A and B staged as float (the same packing code), then paired; the unpacked path
 * for tiny products rounds each operand the same way. */
#define FC_TA float
#define FC_TB float
#define FC_TC float
#define FC_TPA float
#define FC_TPB float
#define FC_SFX b
#define FC_KT fc_bkernel_t
#define FC_KERNEL() (fc_dispatch.gemm.b)
#define FC_GEMM fc_bgemm
#define FC_GEMM_EX fc_bgemm_ex
#define FC_PAIRS 1
#define FC_UKP const uint32_t *
#define FC_A2C(x) bf16_value(x)
#define FC_B2C(x) bf16_value(x)
#include "gemm_impl.h"
#undef FC_TA
#undef FC_TB
#undef FC_TC
#undef FC_TPA
#undef FC_TPB
#undef FC_SFX
#undef FC_KT
#undef FC_KERNEL
#undef FC_GEMM
#undef FC_GEMM_EX
#undef FC_PAIRS
#undef FC_TRANSPOSE8
#undef FC_HAS_TRANSPOSE8

#define FC_TA double
#define FC_TB double
#define FC_TC double
#define FC_TPA double
#define FC_TPB double
#define FC_SFX d
#define FC_KT fc_dkernel_t
#define FC_KERNEL() (fc_dispatch.gemm.d)
#define FC_GEMM fc_dgemm
#define FC_GEMM_EX fc_dgemm_ex
#define FC_CONV_TAPS fc_dconv_taps
#include "gemm_impl.h"
