/* 2x2 / stride-2 pooling planes (float32, no padding, no dilation): the shape of nearly
 * every downsampling pool; the separable steps of any max pool with its argmax.  Instantiated per ISA in pool.c from pool_impl.h. */
#ifndef FASTCONV_POOL_H
#define FASTCONV_POOL_H
#include "base.h"

/* One ISA's kernels, one (image, channel) plane per call. */
typedef struct {
    unsigned requires;         /* FC_CPU_* flags */
    void (*max2x2_fwd)(const float *x, fc_int H, fc_int W, float *y, unsigned char *idx,
                       fc_int OH, fc_int OW);
    void (*max2x2_bwd)(const float *dy, const unsigned char *idx, fc_int OH, fc_int OW,
                       float *dx, fc_int H, fc_int W);
    void (*avg2x2_fwd)(const float *x, fc_int H, fc_int W, float *y, fc_int OH, fc_int OW,
                       float div);
    void (*avg2x2_bwd)(const float *dy, fc_int OH, fc_int OW, float *dx, fc_int H, fc_int W,
                       float div);
    void (*max_rows)(const float *row, fc_int W, float *hr, int32_t *hc, fc_int OW, fc_int KW,
                     fc_int sw, fc_int pw, fc_int dw);
    void (*max_cols)(const float *hr, const int32_t *hc, int32_t base, fc_int OW, float *y,
                     int32_t *idx, int first);
    const char *name;          /* "generic", "avx2", "avx512", "neon" (show_config) */
} fc_pool_kernels_t;

extern const fc_pool_kernels_t fc_pool_generic, fc_pool_avx2, fc_pool_avx512, fc_pool_neon;

#endif
