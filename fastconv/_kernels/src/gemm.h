/* fastconv GEMM framework: public interface.
 *
 * C[M x N] = alpha * A[M x K] * B[K x N] + beta * C, single or double precision.
 * A and B are addressed through (row stride, column stride) pairs, so transposed
 * and strided operands need no copies (BLIS-style "general stride"); C is row-major
 * with leading dimension ldc.  beta == 0 overwrites C (it may hold NaN garbage).
 *
 * The framework (packing, cache blocking, threading, edges) is one template,
 * gemm_impl.h, instantiated per operand types in gemm.c; only the register-tile
 * micro-kernels are ISA specific (gemm_generic.c, gemm_avx2.c, gemm_avx512.c), chosen
 * once by their required CPU flags when the dispatch table is filled.
 *
 * Determinism: every C element is produced by one micro-kernel call per KC block,
 * in a fixed K order, whatever nthreads is, so results are bitwise independent of
 * the thread count.
 */
#ifndef FASTCONV_GEMM_H
#define FASTCONV_GEMM_H
#include "base.h"

/* Micro-kernel: acc[MR x NR] = sum_p a[p*MR + i] * b[p*NR + j] over p < k (a, b: packed
 * panels), then C[i, j] = alpha * acc + beta * C[i, j] for i < m, j < n (beta == 0:
 * overwrite).  One descriptor type per operand-type set: the micro-kernel with the
 * register tile and cache blocks it was tuned for, and the CPU flags it needs. */
typedef void (*fc_sukr_t)(fc_int k, const float *a, const float *b, float *c, fc_int ldc,
                          int m, int n, float alpha, float beta);
typedef void (*fc_dukr_t)(fc_int k, const double *a, const double *b, double *c, fc_int ldc,
                          int m, int n, double alpha, double beta);

/* The same with B read in place (row p at b + p*ldb, columns contiguous) instead of
 * from a packed panel: a GEMM with few rows (A) reuses each B element only M times, so
 * its packing pass cost half as much as the multiplies (a 1x1 convolution to 64
 * channels).  Same arithmetic in the same order, so the same bits. */
typedef void (*fc_sukr_b_t)(fc_int k, const float *a, const float *b, fc_int ldb, float *c,
                            fc_int ldc, int m, int n, float alpha, float beta);

/* The same two with the GEMM's epilogue applied to the tile in registers before its
 * store (the tile's rows' factors and bias, either NULL; relu 0, 1 ReLU, 2 ReLU6): a
 * separate pass re-read the tile from L2 or memory (a fifth of a 1x1 convolution's time
 * at inference).  The same operations in the same order as that pass: the same bits. */
typedef struct {
    const float *scale, *bias;
    int relu;
} fc_tile_ep_t;
typedef void (*fc_sukr_ep_t)(fc_int k, const float *a, const float *b, float *c, fc_int ldc,
                             int m, int n, float alpha, float beta, const fc_tile_ep_t *ep);
typedef void (*fc_sukr_b_ep_t)(fc_int k, const float *a, const float *b, fc_int ldb, float *c,
                               fc_int ldc, int m, int n, float alpha, float beta,
                               const fc_tile_ep_t *ep);

typedef struct {
    const char *name;          /* e.g. "avx512_8x48" */
    unsigned requires;         /* FC_CPU_* flags */
    int mr, nr;                /* register tile */
    fc_int mc, kc, nc;         /* cache blocks (multiples of mr / nr) */
    fc_sukr_t ukr;
    fc_sukr_b_t ukr_b;         /* B in place, or NULL (always packed) */
    fc_sukr_ep_t ukr_ep;       /* ukr with the epilogue fused, or NULL (a pass after) */
    fc_sukr_b_ep_t ukr_b_ep;   /* ukr_b with it, or NULL */
} fc_skernel_t;

typedef struct {
    const char *name;
    unsigned requires;
    int mr, nr;
    fc_int mc, kc, nc;
    fc_dukr_t ukr;
} fc_dkernel_t;

/* bf16 GEMM (float in and out, bf16 products): the packing rounds A and B to bf16
 * (nearest-even, subnormals to zero, NaN kept) and interleaves pairs of consecutive k,
 * so a packed panel is [ceil(k/2)][MR or NR] 32-bit words, the even k in the low half;
 * the micro-kernel accumulates in float32 (gemm_bf16.c).  Every bf16 kernel has the same
 * KC (even, so no pair straddles two blocks): all paths give the same bits. */
#define FC_BF16_KC 256
typedef void (*fc_bukr_t)(fc_int k, const uint32_t *a, const uint32_t *b, float *c, fc_int ldc,
                          int m, int n, float alpha, float beta);
typedef struct {
    const char *name;
    unsigned requires;
    int mr, nr;
    fc_int mc, kc, nc;
    fc_bukr_t ukr;
    /* fc_bf16_pairs on this ISA's vectors (same bits) */
    void (*pairs)(float *panel, fc_int k, int w);
} fc_bkernel_t;
extern const fc_bkernel_t fc_bkernel_generic, fc_bkernel_avx2, fc_bkernel_avx512,
    fc_bkernel_avx512bf16;

/* float -> bf16 bits in the high half (the low half is junk): nearest-even, subnormals to
 * signed zero (as vdpbf16ps reads them), NaN kept quiet (rounding could carry it to Inf). */
static inline uint32_t fc_bf16_round(float x)
{
    uint32_t u;
    __builtin_memcpy(&u, &x, 4);
    uint32_t r = u + 0x7FFFu + ((u >> 16) & 1u);
    if ((u & 0x7F800000u) == 0) r = u & 0x80000000u;
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) r = u | 0x00400000u;
    return r;
}

/* A packed float panel [k][w] (w <= 64) turned, in place, into bf16 pair words
 * [ceil(k/2)][w] (an odd k's last pair has a zero high half): the portable version; each
 * bf16 kernel carries its ISA's (the same bits). */
void fc_bf16_pairs(float *panel, fc_int k, int w);

/* Per-ISA descriptors (gemm_<isa>.c). */
extern const fc_skernel_t fc_skernel_generic, fc_skernel_avx2, fc_skernel_avx512,
    fc_skernel_neon;
extern const fc_dkernel_t fc_dkernel_generic, fc_dkernel_avx2, fc_dkernel_avx512;

/* Where the B operand comes from.  FC_B_MATRIX: a strided matrix.  FC_B_IM2COL: the
 * im2col matrix of one image group, rows (c, kh, kw), columns output pixels (oh, ow),
 * gathered straight into the packed panels (implicit GEMM: no column buffer).
 * FC_B_IM2COL_T: its transpose (rows pixels, columns (c, kh, kw)), for weight grads. */
enum { FC_B_MATRIX = 0, FC_B_IM2COL = 1, FC_B_IM2COL_T = 2, FC_B_OFFSETS = 3, FC_B_OFFSETS_T = 4,
       FC_B_TAPS = 5 };
/* FC_B_TAPS (conv_taps only): the im2col rows in tap-major order (p = tap * C + c) for
 * one class of output pixels, columns (image, pixel of the class): B[p, j] =
 * ptr[img * istride + c * H * W + tab[tap * npix + k]], j = img * npix + k.
 * FC_B_OFFSETS: B[p, j] = ptr[off[p] + j] - a stride-1 convolution over a zero-padded
 * image whose output is computed on the padded width, so every im2col row is one
 * contiguous slice (packing is a copy).  FC_B_OFFSETS_T: B[p, j] = ptr[off[j] + p]. */

typedef struct {
    fc_int C, H, W;            /* channels of this group, input plane */
    fc_int OH, OW;             /* output plane */
    fc_int KH, KW, sh, sw, ph, pw, dh, dw;
    /* nimg images (istride elements apart) stacked along the pixels: FC_B_IM2COL's
     * columns (small planes make one wide GEMM, not one narrow GEMM per image that
     * re-reads the whole weight), FC_B_IM2COL_T's rows (one long K) */
    fc_int nimg, istride;
} fc_conv_geom_t;

typedef struct {
    int kind;
    const void *ptr;           /* matrix base, or the group's first input channel */
    fc_int rs, cs;             /* FC_B_MATRIX strides */
    fc_conv_geom_t g;          /* FC_B_IM2COL(_T) geometry */
    const fc_int *off;         /* FC_B_OFFSETS(_T) row / column offsets */
    /* set by the GEMM itself, never by callers: FC_B_IM2COL(_T) on small output planes
     * reads through a table of each tap's source offset per output pixel (-1: padding),
     * built once per call */
    const int32_t *tab;
    fc_int npix;               /* FC_B_TAPS: pixels in the class */
} fc_bsrc_t;

/* Applied to each C element once its K sum is complete:
 * c = relu?(c * row_scale[i] + row_bias[i]) where given (either may be NULL): the scale
 * is an inference BatchNorm folded into the epilogue instead of into the weights. */
typedef struct {
    const void *row_bias;
    const void *row_scale;
    int relu;               /* 0 none, 1 ReLU, 2 ReLU6 (clamped to [0, 6]); NaN kept */
} fc_epilogue_t;

/* The general entry point: C = alpha * A @ B(src) + beta * C, then the epilogue.  A GEMM
 * that cannot get its packing workspace computes nothing and flags it (workspace.h). */
typedef void fc_sgemm_ex_fn(fc_int M, fc_int N, fc_int K, float alpha,
                            const float *A, fc_int rsa, fc_int csa, const fc_bsrc_t *B,
                            float beta, float *C, fc_int ldc, const fc_epilogue_t *ep,
                            int nthreads);
typedef void fc_dgemm_ex_fn(fc_int M, fc_int N, fc_int K, double alpha,
                            const double *A, fc_int rsa, fc_int csa, const fc_bsrc_t *B,
                            double beta, double *C, fc_int ldc, const fc_epilogue_t *ep,
                            int nthreads);
/* B a strided matrix, no epilogue. */
typedef void fc_sgemm_fn(fc_int M, fc_int N, fc_int K, float alpha,
                         const float *A, fc_int rsa, fc_int csa,
                         const float *B, fc_int rsb, fc_int csb,
                         float beta, float *C, fc_int ldc, int nthreads);
typedef void fc_dgemm_fn(fc_int M, fc_int N, fc_int K, double alpha,
                         const double *A, fc_int rsa, fc_int csa,
                         const double *B, fc_int rsb, fc_int csb,
                         double beta, double *C, fc_int ldc, int nthreads);
fc_sgemm_ex_fn fc_sgemm_ex;
fc_sgemm_ex_fn fc_bgemm_ex;        /* float operands, bf16 products, float32 sums */
fc_dgemm_ex_fn fc_dgemm_ex;
fc_sgemm_fn fc_sgemm;
fc_sgemm_fn fc_bgemm;
fc_dgemm_fn fc_dgemm;

/* A convolution (groups 1) on small output planes with the padding's taps skipped: the
 * output pixels fall into classes by the taps that land inside the input (at most 3x3
 * classes for a 3x3 kernel: borders, corners, interior), and each class runs as one GEMM
 * over its own taps, the batch's images side by side.  The weights are packed once, in
 * tap-major order, so a class's taps are whole slices of the packed panels.  On a 4x4
 * plane (3x3, padding 1) that is 100 of 144 multiply-adds per channel pair, on 2x2 64
 * of 144.  x (N, C, H, W); w (M, C*KH*KW); scale, bias (M) or NULL (y = conv * scale +
 * bias); y (N, M, OH, OW).
 * Returns 0, or -1 (and flags the workspace error) without the memory it needs. */
typedef int fc_sconv_taps_fn(fc_int N, fc_int C, fc_int H, fc_int W, fc_int M, fc_int OH,
                             fc_int OW, fc_int KH, fc_int KW, fc_int sh, fc_int sw, fc_int ph,
                             fc_int pw, fc_int dh, fc_int dw, const float *x, const float *w,
                             const float *scale, const float *bias, int relu, float *y,
                             int nthreads);
typedef int fc_dconv_taps_fn(fc_int N, fc_int C, fc_int H, fc_int W, fc_int M, fc_int OH,
                             fc_int OW, fc_int KH, fc_int KW, fc_int sh, fc_int sw, fc_int ph,
                             fc_int pw, fc_int dh, fc_int dw, const double *x, const double *w,
                             const double *scale, const double *bias, int relu, double *y,
                             int nthreads);
fc_sconv_taps_fn fc_sconv_taps;
fc_dconv_taps_fn fc_dconv_taps;
/* Its weight gradient by the same classes (the padding never multiplied): dw (M x
 * C*KH*KW) overwritten from x (N, C, H, W) and dy (N, M, OH, OW).  0, or -1 (flagged). */
typedef int fc_sconv_taps_wgrad_fn(fc_int N, fc_int C, fc_int H, fc_int W, fc_int M,
                                   fc_int OH, fc_int OW, fc_int KH, fc_int KW, fc_int sh,
                                   fc_int sw, fc_int ph, fc_int pw, fc_int dh, fc_int dw,
                                   const float *x, const float *dy, float *dwt, int nthreads);
typedef int fc_dconv_taps_wgrad_fn(fc_int N, fc_int C, fc_int H, fc_int W, fc_int M,
                                   fc_int OH, fc_int OW, fc_int KH, fc_int KW, fc_int sh,
                                   fc_int sw, fc_int ph, fc_int pw, fc_int dh, fc_int dw,
                                   const double *x, const double *dy, double *dwt,
                                   int nthreads);
fc_sconv_taps_wgrad_fn fc_sconv_taps_wgrad;
fc_dconv_taps_wgrad_fn fc_dconv_taps_wgrad;

/* The family's entries in the dispatch table. */
typedef struct {
    const fc_skernel_t *s;     /* the micro-kernels in use */
    const fc_dkernel_t *d;
    const fc_bkernel_t *b;     /* bf16 (native, or emulated with float32 FMAs) */
    fc_sgemm_ex_fn *sgemm_ex;
    fc_dgemm_ex_fn *dgemm_ex;
    fc_sgemm_fn *sgemm;
    fc_dgemm_fn *dgemm;
    fc_sconv_taps_fn *sconv_taps;
    fc_dconv_taps_fn *dconv_taps;
    fc_sconv_taps_wgrad_fn *sconv_taps_wgrad;
    fc_dconv_taps_wgrad_fn *dconv_taps_wgrad;
} fc_gemm_ops_t;

#endif
