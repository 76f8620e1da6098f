/* Depthwise plane kernels: one template (depthwise_impl.h), compiled for AVX-512, AVX2
 * and the baseline; the dispatch table takes the best set the CPU flags allow.  The
 * float dot products vectorise across lanes, so -ffast-math-free GCC needs the reduction
 * written as is: the order is fixed per ISA, hence thread-count invariant. */
#include "cpu.h"
#include "depthwise.h"

#define FC_ACC double

#define FC_T float
#define DW_NAME(x) dw_##x##_f32_generic
#include "depthwise_impl.h"
#undef DW_NAME
#undef FC_T
#define FC_T double
#define DW_NAME(x) dw_##x##_f64_generic
#include "depthwise_impl.h"
#undef DW_NAME
#undef FC_T

const fc_dw_kernels_t fc_dw_generic = {
    0, dw_fwd_plane_f32_generic, dw_bwd_plane_f32_generic, dw_fwd_plane_f64_generic,
    dw_bwd_plane_f64_generic, dw_fwd_plane_padded_f32_generic, dw_bwd_plane_padded_f32_generic,
    dw_fwd_lanes_f32_generic, dw_bwd_lanes_f32_generic,
};

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define FC_T float
#define DW_NAME(x) dw_##x##_f32_avx2
#include "depthwise_impl.h"
#undef DW_NAME
#undef FC_T
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,fma")
#define FC_T float
#define DW_NAME(x) dw_##x##_f32_avx512
#include "depthwise_impl.h"
#undef DW_NAME
#undef FC_T
#pragma GCC pop_options

const fc_dw_kernels_t fc_dw_avx2 = {
    FC_PATH_AVX2, dw_fwd_plane_f32_avx2, dw_bwd_plane_f32_avx2, dw_fwd_plane_f64_generic,
    dw_bwd_plane_f64_generic, dw_fwd_plane_padded_f32_avx2, dw_bwd_plane_padded_f32_avx2,
    dw_fwd_lanes_f32_avx2, dw_bwd_lanes_f32_avx2,
};

const fc_dw_kernels_t fc_dw_avx512 = {
    FC_CPU_AVX512F | FC_CPU_AVX512VL | FC_CPU_FMA, dw_fwd_plane_f32_avx512,
    dw_bwd_plane_f32_avx512, dw_fwd_plane_f64_generic, dw_bwd_plane_f64_generic,
    dw_fwd_plane_padded_f32_avx512, dw_bwd_plane_padded_f32_avx512, dw_fwd_lanes_f32_avx512,
    dw_bwd_lanes_f32_avx512,
};
#endif
