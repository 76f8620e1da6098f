/* Winograd convolution, 3x3 stride 1, dilation 1, groups 1, float32: the forward by
 * F(2x2, 3x3) or F(4x4, 3x3), the weight gradient by F(2x2, 3x3).  The drivers
 * (winograd.c) run the per-ISA tile transforms (winograd_<isa>.c) and the GEMM
 * micro-kernel in use. */
#ifndef FASTCONV_WINOGRAD_H
#define FASTCONV_WINOGRAD_H
#include "base.h"

/* Transforms of up to 16 horizontally consecutive tiles of one row of tiles (n of them):
 * input: the patches at origin (ih0, iw0) of a plane into V[xi*vs + j];
 * output: Mx[xi*ms + j] into the output tiles at (oh0, ow0), plus bias, ReLU if asked;
 * grad (F(2x2) only): the output-gradient tiles into Z[xi*zs + j]. */
typedef void fc_wino_input_fn(const float *plane, fc_int H, fc_int W, fc_int ih0, fc_int iw0,
                              int n, float *V, fc_int vs);
typedef void fc_wino_output_fn(const float *Mx, fc_int ms, int n, float *y, fc_int OH,
                               fc_int OW, fc_int oh0, fc_int ow0, float bias, int relu);
typedef void fc_wino_grad_fn(const float *dy, fc_int OH, fc_int OW, fc_int oh0, fc_int ow0,
                             int n, float *Z, fc_int zs);

/* One ISA's transforms.  F(4x4) comes in two forms, [0] for long tile rows and [1] for
 * rows of at most 8 tiles (32-wide planes: half-width vectors), the same function where
 * the ISA has one form. */
typedef struct {
    unsigned requires;         /* FC_CPU_* flags */
    fc_wino_input_fn *input23;
    fc_wino_output_fn *output23;
    fc_wino_grad_fn *grad23;
    fc_wino_input_fn *input43[2];
    fc_wino_output_fn *output43[2];
} fc_winograd_kernels_t;

extern const fc_winograd_kernels_t fc_winograd_generic, fc_winograd_avx2, fc_winograd_avx512;

/* Weights transformed for F(2x2, 3x3) (tile 2) or F(4x4, 3x3) (tile 4), written into
 * the GEMM micro-kernel's packed A panels; then the convolution (0, or -1 if its
 * scratch could not be allocated).  bf16: the transformed weights and tiles are rounded
 * to bf16 pairs and multiplied by the bf16 micro-kernel (float32 sums); the transforms
 * themselves stay float32. */
typedef size_t fc_winograd_weights_size_fn(fc_int M, fc_int C, int tile, int bf16);
typedef void fc_winograd_weights_fn(const float *g, fc_int M, fc_int C, int tile, float *Up,
                                    int bf16, int nthreads);
typedef int fc_winograd_conv_fn(const float *x, fc_int N, fc_int C, fc_int H, fc_int W,
                                const float *Up, fc_int M, int tile, float *y, fc_int OH,
                                fc_int OW, fc_int pt, fc_int pl, const float *bias, int relu,
                                int bf16, int nthreads);
/* The weight gradient by F(2x2, 3x3) (for either forward; bf16: its GEMMs multiply in
 * bf16); S is scratch of
 * fc_winograd_wgrad_chunks() * 16 * M * C floats.  0, or -1 as above. */
#define FC_WGRAD_CHUNKS 8
typedef fc_int fc_winograd_wgrad_chunks_fn(fc_int N, fc_int C, fc_int M, fc_int OH, fc_int OW);
typedef int fc_winograd_wgrad_fn(const float *x, fc_int N, fc_int C, fc_int H, fc_int W,
                                 const float *dy, fc_int M, fc_int OH, fc_int OW, fc_int pt,
                                 fc_int pl, float *S, float *dw, int bf16, int nthreads);
fc_winograd_weights_size_fn fc_winograd_weights_size;
fc_winograd_weights_fn fc_winograd_weights;
fc_winograd_conv_fn fc_winograd_conv;
fc_winograd_wgrad_chunks_fn fc_winograd_wgrad_chunks;
fc_winograd_wgrad_fn fc_winograd_f23_wgrad;

/* The family's entries in the dispatch table. */
typedef struct {
    const fc_winograd_kernels_t *kernels;   /* the transforms in use */
    fc_winograd_weights_size_fn *weights_size;
    fc_winograd_weights_fn *weights;
    fc_winograd_conv_fn *conv;
    fc_winograd_wgrad_chunks_fn *wgrad_chunks;
    fc_winograd_wgrad_fn *wgrad;
} fc_winograd_ops_t;

#endif
