/* BatchNorm plane kernels (norm_impl.h), compiled per ISA; the dispatch table takes the
 * best set the CPU flags allow. */
#include "cpu.h"
#include "norm.h"

#define N_NAME(x) n_##x##_generic
#include "norm_impl.h"
#undef N_NAME

#define N_SET(isa, flags) \
    const fc_norm_kernels_t fc_norm_##isa = {flags, n_sum_##isa, n_sqdev_##isa, \
                                             n_bwd_sums_##isa, n_affine_##isa, n_bwd_apply_##isa}
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
