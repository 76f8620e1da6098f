/* Depthwise plane kernels: one template (depthwise_impl.h), compiled for AVX-512, AVX2
 * and the baseline; the dispatch table takes the best set the CPU flags allow.  The
 * float dot products vectorise across lanes, so -ffast-math-free GCC needs the reduction
 * written as is: the order is fixed per ISA, hence thread-count invariant. */
#include <string.h>

#include "cpu.h"
#include "depthwise.h"

#define FC_ACC double

/* On AArch64 the baseline has NEON, which the compiler would use here too: the generic
 * set stays scalar there (the reference FASTCONV_ISA=generic selects), the NEON set below
 * is the vectorised one. */
#if defined(__aarch64__)
#pragma GCC push_options
#pragma GCC optimize("no-tree-vectorize", "no-tree-slp-vectorize")
#endif
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
#if defined(__aarch64__)
#pragma GCC pop_options
#endif

const fc_dw_kernels_t fc_dw_generic = {
    0, dw_fwd_plane_f32_generic, dw_bwd_plane_f32_generic, dw_fwd_plane_f64_generic,
    dw_bwd_plane_f64_generic, dw_fwd_plane_padded_f32_generic, dw_bwd_plane_padded_f32_generic,
    dw_fwd_lanes_f32_generic, dw_bwd_lanes_f32_generic,
    dw_fwd_flat_f32_generic, dw_wgrad_flat_f32_generic, "generic",
};

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define FC_T float
#define DW_NAME(x) dw_##x##_f32_avx2
#define DW_VW 8                 /* 16-lane vectors as two ymm (depthwise_impl.h) */
#define DW_FVW 8                /* the flat kernel's vectors: one ymm */
#include "depthwise_impl.h"
#undef DW_FVW
#undef DW_VW
#undef DW_NAME
#undef FC_T
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,fma")
#define FC_T float
#define DW_NAME(x) dw_##x##_f32_avx512
#define DW_FVW 16
#include "depthwise_impl.h"
#undef DW_FVW
#undef DW_NAME
#undef FC_T
#pragma GCC pop_options

const fc_dw_kernels_t fc_dw_avx2 = {
    FC_PATH_AVX2, dw_fwd_plane_f32_avx2, dw_bwd_plane_f32_avx2, dw_fwd_plane_f64_generic,
    dw_bwd_plane_f64_generic, dw_fwd_plane_padded_f32_avx2, dw_bwd_plane_padded_f32_avx2,
    dw_fwd_lanes_f32_avx2, dw_bwd_lanes_f32_avx2,
    dw_fwd_flat_f32_avx2, dw_wgrad_flat_f32_avx2, "avx2",
};

const fc_dw_kernels_t fc_dw_avx512 = {
    FC_CPU_AVX512F | FC_CPU_AVX512VL | FC_CPU_FMA, dw_fwd_plane_f32_avx512,
    dw_bwd_plane_f32_avx512, dw_fwd_plane_f64_generic, dw_bwd_plane_f64_generic,
    dw_fwd_plane_padded_f32_avx512, dw_bwd_plane_padded_f32_avx512, dw_fwd_lanes_f32_avx512,
    dw_bwd_lanes_f32_avx512,
    dw_fwd_flat_f32_avx512, dw_wgrad_flat_f32_avx512, "avx512",
};
#endif

#if defined(__aarch64__)
/* NEON (AArch64's Advanced SIMD): the float template vectorised for 128-bit registers
 * (float64 planes keep the generic loops, as on x86) */
#define FC_T float
#define DW_NAME(x) dw_##x##_f32_neon
#include "depthwise_impl.h"
#undef DW_NAME
#undef FC_T

const fc_dw_kernels_t fc_dw_neon = {
    FC_CPU_NEON, dw_fwd_plane_f32_neon, dw_bwd_plane_f32_neon, dw_fwd_plane_f64_generic,
    dw_bwd_plane_f64_generic, dw_fwd_plane_padded_f32_neon, dw_bwd_plane_padded_f32_neon,
    dw_fwd_lanes_f32_neon, dw_bwd_lanes_f32_neon,
    dw_fwd_flat_f32_neon, dw_wgrad_flat_f32_neon, "neon",
};
#endif
