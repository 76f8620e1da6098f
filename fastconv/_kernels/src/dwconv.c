/* Depthwise plane kernels: one template (dwconv_impl.h), compiled for AVX-512, AVX2 and
 * the baseline, selected by fc_isa() like the GEMM micro-kernels.  The float dot
 * products vectorise across lanes, so -ffast-math-free GCC needs the reduction written
 * as is: the order is fixed per ISA, hence thread-count invariant. */
#include "gemm.h"

#define FC_ACC double

#define FC_T float
#define DW_NAME(x) dw_##x##_f32_generic
#include "dwconv_impl.h"
#undef DW_NAME
#undef FC_T
#define FC_T double
#define DW_NAME(x) dw_##x##_f64_generic
#include "dwconv_impl.h"
#undef DW_NAME
#undef FC_T

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define FC_T float
#define DW_NAME(x) dw_##x##_f32_avx2
#include "dwconv_impl.h"
#undef DW_NAME
#undef FC_T
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,fma")
#define FC_T float
#define DW_NAME(x) dw_##x##_f32_avx512
#include "dwconv_impl.h"
#undef DW_NAME
#undef FC_T
#pragma GCC pop_options
#endif

void fc_dw_fwd_plane_f32(const float *x, fc_int H, fc_int W, const float *w, fc_int KH,
                         fc_int KW, float *y, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                         float bias, int relu)
{
#if defined(__x86_64__)
    if (fc_isa() == FC_ISA_AVX512) { dw_fwd_plane_f32_avx512(x, H, W, w, KH, KW, y, OH, OW, g, bias, relu); return; }
    if (fc_isa() == FC_ISA_AVX2) { dw_fwd_plane_f32_avx2(x, H, W, w, KH, KW, y, OH, OW, g, bias, relu); return; }
#endif
    dw_fwd_plane_f32_generic(x, H, W, w, KH, KW, y, OH, OW, g, bias, relu);
}

void fc_dw_bwd_plane_f32(const float *x, const float *dy, fc_int H, fc_int W, const float *w,
                         fc_int KH, fc_int KW, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                         float *dx, double *dw_acc)
{
#if defined(__x86_64__)
    if (fc_isa() == FC_ISA_AVX512) { dw_bwd_plane_f32_avx512(x, dy, H, W, w, KH, KW, OH, OW, g, dx, dw_acc); return; }
    if (fc_isa() == FC_ISA_AVX2) { dw_bwd_plane_f32_avx2(x, dy, H, W, w, KH, KW, OH, OW, g, dx, dw_acc); return; }
#endif
    dw_bwd_plane_f32_generic(x, dy, H, W, w, KH, KW, OH, OW, g, dx, dw_acc);
}

void fc_dw_fwd_plane_f64(const double *x, fc_int H, fc_int W, const double *w, fc_int KH,
                         fc_int KW, double *y, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                         double bias, int relu)
{
    dw_fwd_plane_f64_generic(x, H, W, w, KH, KW, y, OH, OW, g, bias, relu);
}

void fc_dw_bwd_plane_f64(const double *x, const double *dy, fc_int H, fc_int W, const double *w,
                         fc_int KH, fc_int KW, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                         double *dx, double *dw_acc)
{
    dw_bwd_plane_f64_generic(x, dy, H, W, w, KH, KW, OH, OW, g, dx, dw_acc);
}

/* Stride-1 padded-plane variants (see dwconv_impl.h).  row: OW rounded up to 16 floats
 * of scratch; lanes: KH*KW*16 floats. */
void fc_dw_fwd_padded_f32(const float *xp, fc_int PWD, const float *w, fc_int KH, fc_int KW,
                          float *y, fc_int OH, fc_int OW, fc_int dh, fc_int dw, float bias,
                          int relu, float *row)
{
#if defined(__x86_64__)
    if (fc_isa() == FC_ISA_AVX512) { dw_fwd_plane_padded_f32_avx512(xp, PWD, w, KH, KW, y, OH, OW, dh, dw, bias, relu, row); return; }
    if (fc_isa() == FC_ISA_AVX2) { dw_fwd_plane_padded_f32_avx2(xp, PWD, w, KH, KW, y, OH, OW, dh, dw, bias, relu, row); return; }
#endif
    dw_fwd_plane_padded_f32_generic(xp, PWD, w, KH, KW, y, OH, OW, dh, dw, bias, relu, row);
}

void fc_dw_bwd_padded_f32(const float *xp, float *dxp, fc_int PWD, const float *dy,
                          const float *w, fc_int KH, fc_int KW, fc_int OH, fc_int OW, fc_int dh,
                          fc_int dw, double *dw_acc, float *row, float *lanes)
{
#if defined(__x86_64__)
    if (fc_isa() == FC_ISA_AVX512) { dw_bwd_plane_padded_f32_avx512(xp, dxp, PWD, dy, w, KH, KW, OH, OW, dh, dw, dw_acc, row, lanes); return; }
    if (fc_isa() == FC_ISA_AVX2) { dw_bwd_plane_padded_f32_avx2(xp, dxp, PWD, dy, w, KH, KW, OH, OW, dh, dw, dw_acc, row, lanes); return; }
#endif
    dw_bwd_plane_padded_f32_generic(xp, dxp, PWD, dy, w, KH, KW, OH, OW, dh, dw, dw_acc, row, lanes);
}
