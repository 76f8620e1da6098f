/* BatchNorm plane kernels (float32), instantiated per ISA in norm.c from norm_impl.h. */
#ifndef FASTCONV_NORM_H
#define FASTCONV_NORM_H
#include "base.h"

/* The *_planes sums add their float lanes into double every FC_NORM_FLUSH values or so. */
#define FC_NORM_FLUSH 2048

/* One ISA's kernels: sum, affine and bwd_apply one (image, channel) plane of n values per
 * call; the *_planes sums a channel's np planes of n values in one call, x (and y) planes
 * xs apart, dy planes gs apart (norm_impl.h: the order of the sums).  bwd_sums_planes:
 * *s1 += sum g, *s2 += sum g * (x - mean), g = dy masked where a fused activation (relu 1
 * ReLU, 2 ReLU6) passed nothing (ReLU: y > 0; ReLU6: 0 < y < 6), y read from the
 * forward's output when given, else recomputed from x as the forward's float32
 * (x - mean) * ma + mb (the same bits, without keeping y). */
typedef struct {
    unsigned requires;         /* FC_CPU_* flags */
    double (*sum)(const float *x, fc_int n);
    double (*sum_planes)(const float *x, fc_int np, fc_int n, fc_int xs);
    double (*sqdev_planes)(const float *x, fc_int np, fc_int n, fc_int xs, float mean);
    void (*bwd_sums_planes)(const float *x, const float *dy, const float *y, int relu,
                            float ma, float mb, fc_int np, fc_int n, fc_int xs, fc_int gs,
                            float mean, double *s1, double *s2);
    void (*affine)(const float *x, float *y, fc_int n, float m, float a, float b, int relu);
    void (*bwd_apply)(const float *x, const float *dy, const float *y, int relu, float ma,
                      float mb, float *dx, fc_int n, double m, double a, double b, double ik,
                      int exact);
    const char *name;          /* "generic", "avx2", "avx512", "neon" (show_config) */
} fc_norm_kernels_t;

extern const fc_norm_kernels_t fc_norm_generic, fc_norm_avx2, fc_norm_avx512, fc_norm_neon;

#endif
