/* Depthwise convolution plane kernels (groups == channels): one (image, channel) plane
 * per call, instantiated per precision and ISA in depthwise.c from depthwise_impl.h. */
#ifndef FASTCONV_DEPTHWISE_H
#define FASTCONV_DEPTHWISE_H
#include "base.h"

typedef struct { fc_int sh, sw, ph, pw, dh, dw; } fc_dwgeom_t;

/* Output values below which the plane loops run on one thread: half the grain, as each
 * output costs KH*KW multiply-adds. */
#define FC_DW_GRAIN (FC_PARALLEL_GRAIN / 2)
/* Multiply-adds (outputs x taps) above which a forward splits its planes across threads:
 * a frame's late stages are small (960 channels at 2x2: 3840 outputs, 384 at 4x4: 6144)
 * and at FC_DW_GRAIN outputs they ran on one thread; a second one measured 1.3-1.7x on
 * them, 1.1-1.4x down to 512 outputs. */
#define FC_DW_FWD_GRAIN 8192

/* Output rows narrower than this take the channels-in-lanes kernels (float32): the
 * stride-1 forward (padded planes win from 8 columns up), and the strided forward and
 * every backward (their row loops pay a range per tap, which dominates rows under 16). */
#define FC_DW_LANES_BELOW 8
#define FC_DW_LANES_BELOW_S 16

/* One ISA's kernels.  float64 has the baseline build only (every set points to it).
 * The padded forms are stride 1 on zero-padded planes: row is OW rounded up to 16
 * floats of scratch, lanes KH*KW*16 floats. */
typedef struct {
    unsigned requires;         /* FC_CPU_* flags */
    void (*fwd_plane_f32)(const float *x, fc_int H, fc_int W, const float *w, fc_int KH,
                          fc_int KW, float *y, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                          float bias, int relu);
    void (*bwd_plane_f32)(const float *x, const float *dy, fc_int H, fc_int W, const float *w,
                          fc_int KH, fc_int KW, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                          float *dx, int assign, double *dw_acc);
    void (*fwd_plane_f64)(const double *x, fc_int H, fc_int W, const double *w, fc_int KH,
                          fc_int KW, double *y, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                          double bias, int relu);
    void (*bwd_plane_f64)(const double *x, const double *dy, fc_int H, fc_int W,
                          const double *w, fc_int KH, fc_int KW, fc_int OH, fc_int OW,
                          const fc_dwgeom_t *g, double *dx, int assign, double *dw_acc);
    void (*fwd_padded_f32)(const float *xp, fc_int PWD, const float *w, fc_int KH, fc_int KW,
                           float *y, fc_int OH, fc_int OW, fc_int dh, fc_int dw, float bias,
                           int relu, float *row);
    void (*bwd_padded_f32)(const float *xp, float *dxp, fc_int PWD, const float *dy,
                           const float *w, fc_int KH, fc_int KW, fc_int OH, fc_int OW,
                           fc_int dh, fc_int dw, double *dw_acc, float *row, float *lanes);
    /* channels in the vector lanes (16 at a time) for tiny planes, any geometry;
     * scratch (H*W + KH*KW) * 16 floats */
    void (*fwd_lanes_f32)(const float *x, fc_int H, fc_int W, const float *w, fc_int KH,
                          fc_int KW, float *y, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                          const float *bias, int nc, int relu, float *scratch);
    /* its backward for one image: dx written (or NULL), this image's weight-gradient
     * lane sums written (or NULL); scratch (2*H*W + OH*OW + KH*KW) * 16 floats */
    void (*bwd_lanes_f32)(const float *x, const float *dy, fc_int H, fc_int W, const float *w,
                          fc_int KH, fc_int KW, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                          int nc, float *dx, float *dwl, float *scratch);
    /* small stride-1 planes with OW == W as one flat run (depthwise_impl.h, fwd_flat) */
    void (*fwd_flat_f32)(const float *x, fc_int xs, int np, const float *w, int T,
                         const fc_int *off, const float **tmask, fc_int n_out, float *y,
                         const float *bias, int relu);
    /* its weight gradient: dw_acc[t] += this plane's sum (depthwise_impl.h, wgrad_flat) */
    void (*wgrad_flat_f32)(const float *x, const float *dy, int T, const fc_int *off,
                           const float **tmask, const float *ymask, fc_int n_out,
                           double *dw_acc);
    const char *name;          /* "generic", "avx2", "avx512", "neon" (show_config) */
} fc_dw_kernels_t;

extern const fc_dw_kernels_t fc_dw_generic, fc_dw_avx2, fc_dw_avx512, fc_dw_neon;

#endif
