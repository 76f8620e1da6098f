/* int8 inference: u8 activations (NHWC, one zero point per tensor) times s8 weights
 * (symmetric, one scale per output channel), int32 accumulation, and an epilogue that
 * adds the zero-point compensation, scales, adds the bias, clamps (ReLU / ReLU6) and
 * either requantises to u8 for the next int8 layer or writes float32.
 *
 *   acc[m, c]  = sum_k A[m, k] * B[k, c]                    (exact, int32)
 *   v          = (float)(acc + comp[c]) * mult[c] + bias[c]  (float32, this order)
 *   y_u8       = round_half_even(clamp(v, lo, hi))           or  y_f32 = clamp(v, lo, hi)
 *
 * comp[c] = -zp_x * sum_k B[k, c] is precomputed with the weights.  The float steps are
 * a separate multiply and add on every path (no FMA contraction: the kernels build with
 * -std=c11, i.e. -ffp-contract=off), so every ISA path gives the same bits.
 *
 * Weights are packed once per process (the layout depends on the kernel's NR): panels
 * of NR output channels; inside a panel K in groups of 4 ("quads"), each quad NR x 4
 * bytes [c0 k0..k3][c1 k0..k3]... - the operand of vpdpbusd.  K is padded to a
 * multiple of 4 with zero weights and NR-panels with zero columns.  A (im2col rows) is
 * row-major with rows of Kp = round_up(K, 4) bytes, the padding bytes 0. */
#ifndef FASTCONV_QGEMM_H
#define FASTCONV_QGEMM_H
#include <math.h>
#include "base.h"

/* The epilogue of one output tile: per-column arrays indexed by the global column. */
typedef struct {
    const int32_t *comp;     /* Cout: -zp_x * column sum of the weights */
    const float *mult;       /* Cout: s_x * s_w[c] (/ s_y for u8 output) */
    const float *bias;       /* Cout: bias (/ s_y + zp_y for u8 output) */
    float lo, hi;            /* clamp (u8 output: integers in [0, 255]) */
    uint8_t *y8;             /* u8 output (M, ldy), or NULL ... */
    float *yf;               /* ... float32 output (M, ldy) */
    fc_int ldy;
} fc_qepi_t;

/* One ISA's micro-kernel: C[MR x NR] = A rows (mr <= MR valid, row stride lda) times a
 * packed panel of kq quads, epilogue applied, the nr <= NR valid columns from col0 stored
 * at rows row0.. of the output.  itile is the same with the A rows gathered through an
 * indirection table (no im2col copy): row i's K bytes are the ntaps runs of 4*cq bytes
 * at ptrs[i * ntaps + t] (an input pixel's channels, or a row of zero points for a tap in
 * the padding); all MR rows' pointers are valid (rows past mr repeat the last). */
typedef struct {
    unsigned requires;       /* FC_CPU_* flags */
    int mr, nr;
    const char *name;
    void (*tile)(fc_int kq, const uint8_t *a, fc_int lda, const int8_t *b, int mr, int nr,
                 const fc_qepi_t *e, fc_int row0, fc_int col0);
    void (*itile)(fc_int ntaps, fc_int cq, const uint8_t *const *ptrs, const int8_t *b,
                  int mr, int nr, const fc_qepi_t *e, fc_int row0, fc_int col0);
} fc_qkernel_t;

extern const fc_qkernel_t fc_qkernel_generic, fc_qkernel_avx2, fc_qkernel_avx512bw,
    fc_qkernel_vnni;

/* The epilogue of one element, the reference every vector kernel matches bit for bit. */
static inline float fc_qepi_value(int32_t acc, const fc_qepi_t *e, fc_int c)
{
    float v = (float)(acc + e->comp[c]) * e->mult[c];
    v = v + e->bias[c];
    v = v > e->lo ? v : e->lo;          /* maxps(v, lo), minps(v, hi): same operand */
    return v < e->hi ? v : e->hi;       /* order as the vector kernels (signed zeros) */
}

static inline void fc_qepi_store(int32_t acc, const fc_qepi_t *e, fc_int row, fc_int c)
{
    float v = fc_qepi_value(acc, e, c);
    if (e->y8)
        e->y8[row * e->ldy + c] = (uint8_t)lrintf(v);    /* round half to even */
    else
        e->yf[row * e->ldy + c] = v;
}

/* A convolution's geometry on NHWC u8 input. */
typedef struct {
    fc_int n, h, w, c;        /* input */
    fc_int kh, kw, sh, sw, ph, pw, dh, dw;
    fc_int oh, ow;
    int zp;                   /* the input's zero point: the padding value */
} fc_qgeom_t;

/* Packed size in bytes of a K x Cout weight matrix for kernel k. */
fc_int fc_qpack_size(const fc_qkernel_t *k, fc_int K, fc_int cout);
/* Pack w (K x Cout, row-major s8) for kernel k into bp (fc_qpack_size bytes). */
void fc_qpack(const fc_qkernel_t *k, const int8_t *w, fc_int K, fc_int cout, int8_t *bp);
/* Dense convolution (groups 1): x NHWC u8 -> epilogue output (N*OH*OW, Cout) row-major,
 * i.e. NHWC, with bp packed from the (KH*KW*C) x Cout matrix whose rows run (kh, kw, c).
 * Parallel over output tiles; the bits do not depend on nthreads.  Returns 0, or -1 if a
 * thread could not get its workspace (the workspace error flag is raised). */
int fc_qconv(const fc_qkernel_t *k, const uint8_t *x, const fc_qgeom_t *g, const int8_t *bp,
             fc_int cout, const fc_qepi_t *e, int nthreads);
/* Depthwise convolution (one output channel per input channel): w (KH*KW, C) s8 rows
 * per tap, comp[c] = -zp * sum of channel c's taps; output (N*OH*OW, C). */
void fc_qdwconv(const uint8_t *x, const fc_qgeom_t *g, const int8_t *w, const fc_qepi_t *e,
                int nthreads);

typedef struct {
    const fc_qkernel_t *kernel;
    fc_int (*pack_size)(const fc_qkernel_t *k, fc_int K, fc_int cout);
    void (*pack)(const fc_qkernel_t *k, const int8_t *w, fc_int K, fc_int cout, int8_t *bp);
    int (*conv)(const fc_qkernel_t *k, const uint8_t *x, const fc_qgeom_t *g,
                const int8_t *bp, fc_int cout, const fc_qepi_t *e, int nthreads);
    void (*dwconv)(const uint8_t *x, const fc_qgeom_t *g, const int8_t *w,
                   const fc_qepi_t *e, int nthreads);
} fc_qgemm_ops_t;

#endif
