/* fastconv GEMM engine: public interface.
 *
 * C[M x N] = alpha * A[M x K] * B[K x N] + beta * C, single or double precision.
 * A and B are addressed through (row stride, column stride) pairs, so transposed
 * and strided operands need no copies (BLIS-style "general stride"); C is row-major
 * with leading dimension ldc.  beta == 0 overwrites C (it may hold NaN garbage).
 *
 * The framework (packing, cache blocking, threading, edges) lives once in gemm.c;
 * only the register-tile micro-kernels are ISA specific (gemm_generic.c,
 * gemm_avx2.c, gemm_avx512.c), chosen once at load time in cpu.c.
 *
 * Determinism: every C element is produced by one micro-kernel call per KC block,
 * in a fixed K order, whatever nthreads is, so results are bitwise independent of
 * the thread count.
 */
#ifndef FASTCONV_GEMM_H
#define FASTCONV_GEMM_H
#include <stddef.h>
#include <stdint.h>

typedef int64_t fc_int;

/* Micro-kernel: acc[MR x NR] = sum_p a[p*MR + i] * b[p*NR + j] over p < k, then
 * C[i, j] = alpha * acc + beta * C[i, j] for i < m, j < n (beta == 0: overwrite). */
typedef void (*fc_sukr_t)(fc_int k, const float *a, const float *b, float *c, fc_int ldc,
                          int m, int n, float alpha, float beta);
typedef void (*fc_dukr_t)(fc_int k, const double *a, const double *b, double *c, fc_int ldc,
                          int m, int n, double alpha, double beta);

typedef struct {
    const char *name;          /* e.g. "avx512_12x32" */
    int mr, nr;                /* register tile */
    fc_int mc, kc, nc;         /* cache blocks (multiples of mr / nr) */
    fc_sukr_t ukr;
} fc_skernel_t;

typedef struct {
    const char *name;
    int mr, nr;
    fc_int mc, kc, nc;
    fc_dukr_t ukr;
} fc_dkernel_t;

/* ISA levels, best last. */
enum { FC_ISA_GENERIC = 0, FC_ISA_AVX2 = 1, FC_ISA_AVX512 = 2 };

/* cpu.c: detect once; FASTCONV_ISA=generic|avx2|avx512 may force a lower path. */
int fc_isa(void);
const char *fc_isa_name(void);
const char *fc_compiler(void);   /* the compiler that built the kernels */
int fc_cpu_supports(int isa);
const fc_skernel_t *fc_skernel(void);
const fc_dkernel_t *fc_dkernel(void);

/* Per-ISA kernel descriptors (defined in gemm_<isa>.c). */
extern const fc_skernel_t fc_skernel_generic, fc_skernel_avx2, fc_skernel_avx512;
extern const fc_dkernel_t fc_dkernel_generic, fc_dkernel_avx2, fc_dkernel_avx512;

/* Where the B operand comes from.  FC_B_MATRIX: a strided matrix.  FC_B_IM2COL: the
 * im2col matrix of one image group, rows (c, kh, kw), columns output pixels (oh, ow),
 * gathered straight into the packed panels (implicit GEMM: no column buffer).
 * FC_B_IM2COL_T: its transpose (rows pixels, columns (c, kh, kw)), for weight grads. */
enum { FC_B_MATRIX = 0, FC_B_IM2COL = 1, FC_B_IM2COL_T = 2, FC_B_OFFSETS = 3, FC_B_OFFSETS_T = 4 };
/* FC_B_OFFSETS: B[p, j] = ptr[off[p] + j] - a stride-1 convolution over a zero-padded
 * image whose output is computed on the padded width, so every im2col row is one
 * contiguous slice (packing is a copy).  FC_B_OFFSETS_T: B[p, j] = ptr[off[j] + p]. */

typedef struct {
    fc_int C, H, W;            /* channels of this group, input plane */
    fc_int OH, OW;             /* output plane */
    fc_int KH, KW, sh, sw, ph, pw, dh, dw;
    /* FC_B_IM2COL_T only: nimg images (istride elements apart) stacked along the pixel
     * rows, so small planes make one long K instead of one short GEMM per image */
    fc_int nimg, istride;
} fc_conv_geom_t;

typedef struct {
    int kind;
    const void *ptr;           /* matrix base, or the group's first input channel */
    fc_int rs, cs;             /* FC_B_MATRIX strides */
    fc_conv_geom_t g;          /* FC_B_IM2COL(_T) geometry */
    const fc_int *off;         /* FC_B_OFFSETS(_T) row / column offsets */
} fc_bsrc_t;

/* Applied to each C element once its K sum is complete:
 * c = relu?(c + row_bias[i]) where given (row_bias may be NULL). */
typedef struct {
    const void *row_bias;
    int relu;
} fc_epilogue_t;

/* The general entry point: C = alpha * A @ B(src) + beta * C, then the epilogue. */
void fc_sgemm_ex(fc_int M, fc_int N, fc_int K, float alpha,
                 const float *A, fc_int rsa, fc_int csa, const fc_bsrc_t *B,
                 float beta, float *C, fc_int ldc, const fc_epilogue_t *ep, int nthreads);
void fc_dgemm_ex(fc_int M, fc_int N, fc_int K, double alpha,
                 const double *A, fc_int rsa, fc_int csa, const fc_bsrc_t *B,
                 double beta, double *C, fc_int ldc, const fc_epilogue_t *ep, int nthreads);

void fc_sgemm(fc_int M, fc_int N, fc_int K, float alpha,
              const float *A, fc_int rsa, fc_int csa,
              const float *B, fc_int rsb, fc_int csb,
              float beta, float *C, fc_int ldc, int nthreads);
void fc_dgemm(fc_int M, fc_int N, fc_int K, double alpha,
              const double *A, fc_int rsa, fc_int csa,
              const double *B, fc_int rsb, fc_int csb,
              double beta, double *C, fc_int ldc, int nthreads);

/* Allocation failures inside a GEMM: flagged, then taken (and cleared) by the caller. */
void fc_gemm_flag_error(void);
int fc_gemm_take_error(void);

/* Per-thread packing workspace (kept between calls).  Release frees the calling
 * thread's and, with nthreads > 1, those of an OpenMP team of that size. */
size_t fc_gemm_workspace_bytes(void);
void fc_gemm_release_workspace(int nthreads);

/* dwconv.c: depthwise convolution, one (image, channel) plane per call. */
typedef struct { fc_int sh, sw, ph, pw, dh, dw; } fc_dwgeom_t;
void fc_dw_fwd_plane_f32(const float *x, fc_int H, fc_int W, const float *w, fc_int KH,
                         fc_int KW, float *y, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                         float bias, int relu);
void fc_dw_bwd_plane_f32(const float *x, const float *dy, fc_int H, fc_int W, const float *w,
                         fc_int KH, fc_int KW, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                         float *dx, double *dw_acc);
void fc_dw_fwd_plane_f64(const double *x, fc_int H, fc_int W, const double *w, fc_int KH,
                         fc_int KW, double *y, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                         double bias, int relu);
void fc_dw_bwd_plane_f64(const double *x, const double *dy, fc_int H, fc_int W, const double *w,
                         fc_int KH, fc_int KW, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                         double *dx, double *dw_acc);

void fc_dw_fwd_padded_f32(const float *xp, fc_int PWD, const float *w, fc_int KH, fc_int KW,
                          float *y, fc_int OH, fc_int OW, fc_int dh, fc_int dw, float bias,
                          int relu, float *row);
void fc_dw_bwd_padded_f32(const float *xp, float *dxp, fc_int PWD, const float *dy,
                          const float *w, fc_int KH, fc_int KW, fc_int OH, fc_int OW, fc_int dh,
                          fc_int dw, double *dw_acc, float *row, float *lanes);

/* winograd.c: F(2x2, 3x3) and F(4x4, 3x3) convolution (stride 1, dilation 1, groups 1,
 * float32). */
/* Weights transformed for F(2x2, 3x3) (tile 2) or F(4x4, 3x3) (tile 4), written into
 * the GEMM micro-kernel's packed A panels; then the convolution (0, or -1 if scratch
 * failed). */
size_t fc_winograd_weights_size(fc_int M, fc_int C, int tile);
void fc_winograd_weights(const float *g, fc_int M, fc_int C, int tile, float *Up, int nthreads);
int fc_winograd_conv(const float *x, fc_int N, fc_int C, fc_int H, fc_int W, const float *Up,
                     fc_int M, int tile, float *y, fc_int OH, fc_int OW, fc_int pt, fc_int pl,
                     const float *bias, int relu, int nthreads);
/* The weight gradient by F(2x2, 3x3) (for either forward); S is scratch of
 * fc_winograd_wgrad_chunks() * 16 * M * C floats. */
#define FC_WGRAD_CHUNKS 8
fc_int fc_winograd_wgrad_chunks(fc_int N, fc_int C, fc_int M, fc_int OH, fc_int OW);
int fc_winograd_f23_wgrad(const float *x, fc_int N, fc_int C, fc_int H, fc_int W,
                          const float *dy, fc_int M, fc_int OH, fc_int OW, fc_int pt, fc_int pl,
                          float *S, float *dw, int nthreads);

/* pool.c: 2x2 / stride-2 pooling planes (float32). */
void fc_max2x2_fwd(const float *x, fc_int H, fc_int W, float *y, unsigned char *idx,
                   fc_int OH, fc_int OW);
void fc_max2x2_bwd(const float *dy, const unsigned char *idx, fc_int OH, fc_int OW, float *dx,
                   fc_int H, fc_int W);
void fc_avg2x2_fwd(const float *x, fc_int H, fc_int W, float *y, fc_int OH, fc_int OW, float div);
void fc_avg2x2_bwd(const float *dy, fc_int OH, fc_int OW, float *dx, fc_int H, fc_int W, float div);

/* norm.c: BatchNorm planes (float32). */
double fc_bn_sum(const float *x, fc_int n);
double fc_bn_sqdev(const float *x, fc_int n, float mean);
void fc_bn_bwd_sums(const float *x, const float *dy, const float *y, fc_int n, float mean,
                    double *s1, double *s2);
void fc_bn_affine(const float *x, float *y, fc_int n, float m, float a, float b, int relu);
void fc_bn_bwd_apply(const float *x, const float *dy, const float *y, float *dx, fc_int n,
                     double m, double a, double b, double ik);

/* peak.c: FMA throughput probe; returns the FLOPs done, accumulates a result into *sink. */
double fc_fma_probe(fc_int iters, double *sink);

#endif
