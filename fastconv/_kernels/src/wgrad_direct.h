/* The weight gradient of a stride-1 convolution with 3-wide kernels, computed directly
 * from the zero-padded input and the output gradient, without packing im2col: few
 * channels on large planes, where a GEMM over im2col spends its time packing (each
 * packed value feeds only M multiply-adds).  See wgrad_direct.c. */
#ifndef FASTCONV_WGRAD_DIRECT_H
#define FASTCONV_WGRAD_DIRECT_H
#include "base.h"

/* dw[m, (c*KH + kh)*3 + kw] = sum_n sum_(oh, ow) dy[n, m, oh, ow] *
 *     x[n*x_img + c*x_ch + (oh + kh*dh)*PW + ow + kw*dw]
 * dy (N, M, OH, OW) contiguous; x the padded input (rows PW wide, channels x_ch apart,
 * images x_img apart); dw (M, C*KH*3).  Returns 0, or -1 when it cannot allocate its
 * double accumulators (dw untouched).  The bits do not depend on nthreads. */
typedef int fc_swgrad3_fn(const float *dy, const float *x, fc_int N, fc_int M, fc_int C,
                          fc_int OH, fc_int OW, fc_int x_img, fc_int x_ch, fc_int PW,
                          fc_int KH, fc_int dh, fc_int dw, float *dwt, int nthreads);

typedef struct {
    unsigned requires;         /* FC_CPU_* flags */
    fc_swgrad3_fn *swgrad3;
    const char *name;
} fc_wgrad_kernels_t;

extern const fc_wgrad_kernels_t fc_wgrad_generic, fc_wgrad_avx2;

#endif
