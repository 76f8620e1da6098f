/* BatchNorm plane kernels (norm_impl.h), compiled per ISA; the dispatch table takes the
 * best set the CPU flags allow. */
#include "cpu.h"
#include "norm.h"

/* On AArch64 the baseline has NEON, which the compiler would use here too: the generic
 * set stays scalar there (the reference FASTCONV_ISA=generic selects), the NEON set below
 * is the vectorised one. */
#if defined(__aarch64__)
#pragma GCC push_options
#pragma GCC optimize("no-tree-vectorize", "no-tree-slp-vectorize")
#endif
#define N_NAME(x) n_##x##_generic
#include "norm_impl.h"
#undef N_NAME
#if defined(__aarch64__)
#pragma GCC pop_options
#endif

#define N_SET(isa, flags) \
    const fc_norm_kernels_t fc_norm_##isa = {flags, n_sum_##isa, n_sum_planes_##isa, \
                                             n_sqdev_planes_##isa, n_bwd_sums_planes_##isa, \
                                             n_affine_##isa, n_bwd_apply_##isa, \
                                             #isa}
N_SET(generic, 0);

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define N_NAME(x) n_##x##_avx2
#include "norm_impl.h"
#undef N_NAME
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl")
#define N_NAME(x) n_##x##_avx512
#include "norm_impl.h"
#undef N_NAME
#pragma GCC pop_options
N_SET(avx2, FC_PATH_AVX2);
N_SET(avx512, FC_CPU_AVX512F | FC_CPU_AVX512VL);
#endif

#if defined(__aarch64__)
/* NEON (AArch64's Advanced SIMD): the template vectorised for 128-bit registers */
#define N_NAME(x) n_##x##_neon
#include "norm_impl.h"
#undef N_NAME
N_SET(neon, FC_CPU_NEON);
#endif
