/* Winograd drivers: the forward by F(2x2, 3x3) or F(4x4, 3x3) (one driver, below), the
 * weight gradient by F(2x2, 3x3), over the transforms and the GEMM micro-kernel in the
 * dispatch table.
 *
 * Tiles (image, tile row, tile column) are processed in blocks fixed by the shapes
 * (never by the thread count): per block, the input transform writes V[P][C][TB], P
 * GEMMs (M x C) @ (C x TB) give Mx[P][M][TB], and the output transform writes the
 * output tiles with bias and ReLU fused.  V and Mx are sized to stay near L2. */
#include <string.h>
#include "dispatch.h"

/* The transforms copy 16-lane rows in loops: keep them as vector moves, not memcpy calls */
#pragma GCC optimize("no-tree-loop-distribute-patterns")

/* Filters (M * C of them, each 9 values to up to 36) below which one thread transforms
 * the weights. */
#define W_WEIGHTS_GRAIN (FC_PARALLEL_GRAIN / 8)

/* The run of tiles from tile t: its image n, tile row th and column tw; the run stays in
 * one tile row, is at most 16 tiles (one transform call) and ends by t1. */
static inline fc_int w_run(fc_int t, fc_int t1, fc_int TH, fc_int TW, fc_int *n, fc_int *th,
                           fc_int *tw)
{
    fc_int r = t % (TH * TW), run;
    *n = t / (TH * TW);
    *th = r / TW;
    *tw = r % TW;
    run = TW - *tw < 16 ? TW - *tw : 16;
    return run < t1 - t ? run : t1 - t;
}

/* The tiles a transform call writes for a run of `run` tiles with `room` slots free
 * after it: the run rounded up to whole 8-lane vectors where they fit.  Partial vectors
 * go out through masked stores, which Zen 2-3 run microcoded (a third of an F(4x4)
 * forward on 28x28 planes, whose tile rows are 7 long); the extra lanes transform the
 * tiles that follow (or the plane's zero border: every read is bounds-checked) into
 * slots that a later run overwrites or the GEMM's store leaves unread. */
static inline int w_wide(fc_int run, fc_int room)
{
    fc_int wide = (run + 7) / 8 * 8;
    return (int)(wide < room ? wide : room > run ? room : run);
}

/* Tiles per weight-gradient block: a multiple of 48, V and Z near the L2 size. */
static fc_int w_wgrad_block(fc_int C, fc_int M)
{
    fc_int tb = (fc_int)(1536 * 1024 / (64 * (C + M))) / 48 * 48;
    return tb < 48 ? 48 : tb > 480 ? 480 : tb;
}

/* The calling thread's transformed tiles (the workspace's scratch slot: the GEMMs of the
 * weight gradient take its packing slot). */
static float *w_scratch(size_t floats)
{
    return fc_workspace(FC_WS_SCRATCH, floats * sizeof(float));
}

fc_int fc_winograd_wgrad_chunks(fc_int N, fc_int C, fc_int M, fc_int OH, fc_int OW)
{
    fc_int T = N * ((OH + 1) / 2) * ((OW + 1) / 2), TB = w_wgrad_block(C, M);
    fc_int nblocks = (T + TB - 1) / TB;
    return nblocks < FC_WGRAD_CHUNKS ? nblocks : FC_WGRAD_CHUNKS;
}

/* dw (M, C, 3, 3) = the weight gradient of a 3x3 stride-1 convolution by F(2x2, 3x3):
 * dL/dg = G^T S G with S[xi][m][c] = sum over tiles of (A dY A^T)[xi] (B^T d B)[xi].
 * Tiles go in blocks; the blocks are dealt in fc_winograd_wgrad_chunks() contiguous
 * chunks (a count fixed by the shapes), each summed by one thread into its own S slice,
 * and the slices are added in chunk order: the bits never depend on the thread count.
 * S: scratch of chunks * 16 * M * C floats.  Returns 0, or -1 if scratch failed. */
int fc_winograd_f23_wgrad(const float *x, fc_int N, fc_int C, fc_int H, fc_int W,
                          const float *dy, fc_int M, fc_int OH, fc_int OW, fc_int pt, fc_int pl,
                          float *S, float *dw, int bf16, int nthreads)
{
    fc_sgemm_fn *gemm = bf16 ? fc_bgemm : fc_sgemm;
    fc_int TH = (OH + 1) / 2, TW = (OW + 1) / 2, T = N * TH * TW;
    fc_int TB = w_wgrad_block(C, M), nblocks = (T + TB - 1) / TB;
    fc_int nchunk = fc_winograd_wgrad_chunks(N, C, M, OH, OW), MC = M * C;
    const fc_winograd_kernels_t *wk = fc_dispatch.winograd.kernels;
    enum { EB = 64 };
    int failed = 0;
    if (T == 0) {
        memset(dw, 0, (size_t)MC * 9 * sizeof(float));
        return 0;
    }
    if (nthreads < 1) nthreads = 1;
    if (nchunk < nthreads) nthreads = (int)nchunk;
    #pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(|:failed)
    {
        float *V = w_scratch((size_t)16 * (C + M) * TB);
        float *Z = V ? V + (size_t)16 * C * TB : NULL;
        if (!V) failed = 1;
        #pragma omp for schedule(static)
        for (fc_int ch = 0; ch < nchunk; ch++) {
            if (!V) continue;
            float *Sc = S + ch * 16 * MC;
            fc_int b0 = ch * nblocks / nchunk, b1 = (ch + 1) * nblocks / nchunk;
            for (fc_int blk = b0; blk < b1; blk++) {
                fc_int t0 = blk * TB, t1 = t0 + TB < T ? t0 + TB : T, nt = t1 - t0;
                for (fc_int t = t0; t < t1;) {
                    fc_int n, th, tw;
                    int run = (int)w_run(t, t1, TH, TW, &n, &th, &tw);
                    int wide = w_wide(run, TB - (t - t0));
                    for (fc_int c = 0; c < C; c++)
                        wk->input23(x + (n * C + c) * H * W, H, W, 2 * th - pt, 2 * tw - pl,
                                    wide, V + c * TB + (t - t0), C * TB);
                    for (fc_int m = 0; m < M; m++)
                        wk->grad23(dy + (n * M + m) * OH * OW, OH, OW, 2 * th, 2 * tw, wide,
                                   Z + m * TB + (t - t0), M * TB);
                    t += run;
                }
                /* S[xi] (M x C) += Z[xi] (M x nt) @ V[xi]^T (nt x C) */
                for (int xi = 0; xi < 16; xi++)
                    gemm(M, C, nt, 1.0f, Z + (fc_int)xi * M * TB, TB, 1,
                             V + (fc_int)xi * C * TB, 1, TB, blk == b0 ? 0.0f : 1.0f,
                             Sc + xi * MC, C, 1);
            }
        }
        #pragma omp for schedule(static)
        for (fc_int e0 = 0; e0 < MC; e0 += EB) {
            /* chunk sums in runs of EB elements (one stream at a time rather than
             * 16 * chunks interleaved), in chunk order for every element */
            float acc[16][EB];
            int eb = (int)(MC - e0 < EB ? MC - e0 : EB);
            for (int xi = 0; xi < 16; xi++) {
                memcpy(acc[xi], S + xi * MC + e0, (size_t)eb * sizeof(float));
                for (fc_int ch = 1; ch < nchunk; ch++) {
                    const float *src = S + (ch * 16 + xi) * MC + e0;
                    for (int i = 0; i < eb; i++) acc[xi][i] += src[i];
                }
            }
            for (int i = 0; i < eb; i++) {
                float r[3][4];
                for (int j = 0; j < 4; j++) {    /* G^T S */
                    float p = acc[4 + j][i] + acc[8 + j][i], q = acc[4 + j][i] - acc[8 + j][i];
                    r[0][j] = acc[j][i] + 0.5f * p;
                    r[1][j] = 0.5f * q;
                    r[2][j] = 0.5f * p + acc[12 + j][i];
                }
                float *o = dw + (e0 + i) * 9;
                for (int a = 0; a < 3; a++) {    /* (G^T S) G */
                    float p = r[a][1] + r[a][2], q = r[a][1] - r[a][2];
                    o[a * 3 + 0] = r[a][0] + 0.5f * p;
                    o[a * 3 + 1] = 0.5f * q;
                    o[a * 3 + 2] = 0.5f * p + r[a][3];
                }
            }
        }
    }
    return failed ? -1 : 0;
}

/* ---------------------------------------------------------------- forward
 * Both variants, F(2x2, 3x3) (tile 2, P = 16 transformed planes) and F(4x4, 3x3)
 * (tile 4, P = 36), without GEMM packing: the weight transform writes U straight into
 * the micro-kernel's A panels (once per call), the input transform writes V straight
 * into its B panels, and the driver calls the micro-kernel itself.  Tiles are processed
 * in blocks fixed by the shapes; a block is owned by one thread from start to end, so
 * the bits never depend on the thread count. */

static int w_planes(int tile) { return (tile + 2) * (tile + 2); }

static fc_int w_panels(fc_int M, int mr) { return (M + mr - 1) / mr; }

/* the register tile of the micro-kernel the precision runs on */
static int w_mr(int bf16) { return bf16 ? fc_dispatch.gemm.b->mr : fc_dispatch.gemm.s->mr; }
static int w_nr(int bf16) { return bf16 ? fc_dispatch.gemm.b->nr : fc_dispatch.gemm.s->nr; }

size_t fc_winograd_weights_size(fc_int M, fc_int C, int tile, int bf16)
{
    int mr = w_mr(bf16);
    return (size_t)w_planes(tile) * w_panels(M, mr) * mr * (size_t)C;
}

/* G x for the three taps x0, x1, x2 (one column or row of a kernel): 4 values for
 * F(2x2, 3x3), 6 for F(4x4, 3x3); WL filters at once, one per lane (plain loops over the
 * lanes, which the compiler vectorises: the same operations per lane as a scalar
 * transform, so the same bits). */
enum { WL = 16 };

static inline void w_g2(const float *x0, const float *x1, const float *x2, float (*o)[WL])
{
    for (int l = 0; l < WL; l++) {
        o[0][l] = x0[l];
        o[1][l] = 0.5f * (x0[l] + x1[l] + x2[l]);
        o[2][l] = 0.5f * (x0[l] - x1[l] + x2[l]);
        o[3][l] = x2[l];
    }
}

static inline void w_g4(const float *x0, const float *x1, const float *x2, float (*o)[WL])
{
    const float s6 = 1.0f / 6.0f, s12 = 1.0f / 12.0f, s24 = 1.0f / 24.0f;
    for (int l = 0; l < WL; l++) {
        float e = x0[l] + x2[l];
        o[0][l] = 0.25f * x0[l];
        o[1][l] = -s6 * (e + x1[l]);
        o[2][l] = -s6 * (e - x1[l]);
        o[3][l] = s24 * x0[l] + s12 * x1[l] + s6 * x2[l];
        o[4][l] = s24 * x0[l] - s12 * x1[l] + s6 * x2[l];
        o[5][l] = x2[l];
    }
}

/* Up[((xi * panels + ip) * C + c) * mr + i] = (G g[ip*mr + i][c] G^T)[xi], zero rows
 * past M.  The P planes lie a power of two apart, and scattering each filter's values
 * across them thrashes the cache sets: filters are transformed WL channels at a time
 * (one per lane) into a small buffer, then copied out plane by plane.  At one frame this
 * transform costs as much as the convolution, hence the lanes. */
void fc_winograd_weights(const float *g, fc_int M, fc_int C, int tile, float *Up, int bf16,
                         int nthreads)
{
    enum { MRMAX = 16 };
    const int mr = w_mr(bf16), a = tile + 2, P = a * a;
    const fc_int np = w_panels(M, mr);
    void (*gt)(const float *, const float *, const float *, float (*)[WL]) =
        tile == 2 ? w_g2 : w_g4;
    if (nthreads < 1 || (double)M * C < W_WEIGHTS_GRAIN) nthreads = 1;
    #pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
    for (fc_int ip = 0; ip < np; ip++)
        for (fc_int c0 = 0; c0 < C; c0 += WL) {
            float buf[36][WL * MRMAX];
            int cb = (int)(C - c0 < WL ? C - c0 : WL);
            for (int i = 0; i < mr; i++) {
                fc_int m = ip * mr + i;
                float k[9][WL], t[3][6][WL], u[6][6][WL];
                for (int q = 0; q < 9; q++)              /* k[tap][lane], zero past M, C */
                    for (int l = 0; l < WL; l++)
                        k[q][l] = m < M && l < cb ? g[(m * C + c0 + l) * 9 + q] : 0.0f;
                for (int j = 0; j < 3; j++)              /* t[j] = G (column j of g) */
                    gt(k[j], k[3 + j], k[6 + j], t[j]);
                for (int r = 0; r < a; r++)              /* u[r] = G (row r of t)^T */
                    gt(t[0][r], t[1][r], t[2][r], u[r]);
                for (int xi = 0; xi < P; xi++)
                    for (int cc = 0; cc < cb; cc++)
                        buf[xi][cc * mr + i] = u[xi / a][xi % a][cc];
            }
            for (int xi = 0; xi < P; xi++)
                memcpy(Up + ((xi * np + ip) * C + c0) * mr, buf[xi],
                       (size_t)cb * mr * sizeof(float));
            if (bf16 && c0 + WL >= C)          /* this panel row is complete: pair it */
                for (int xi = 0; xi < P; xi++)
                    fc_dispatch.gemm.b->pairs(Up + (xi * np + ip) * C * mr, C, mr);
        }
}

/* Tiles per block: a multiple of the micro-kernel's NR, V and Mx near the L2 size.  On
 * AVX2 (Zen 3's 512 KiB L2) F(4x4) blocks of a quarter the AVX-512 size: 1.2-1.4x for
 * 16-32 channels on 64x64-128x128 planes, where the transforms dominate (from 64
 * channels the block is at its 48-tile floor either way); F(2x2) gains nothing. */
static fc_int w_block(fc_int C, fc_int M, int nr, int tile)
{
    fc_int budget = tile == 2 ? 1536 * 1024
                  : fc_dispatch.winograd.kernels == &fc_winograd_avx2 ? 512 * 1024 : 2048 * 1024;
    fc_int tb = budget / (4 * w_planes(tile) * (C + M)) / nr * nr;
    fc_int lo = nr * ((48 + nr - 1) / nr), hi = nr * (480 / nr);
    return tb < lo ? lo : tb > hi ? hi : tb;
}

int fc_winograd_conv(const float *x, fc_int N, fc_int C, fc_int H, fc_int W, const float *Up,
                     fc_int M, int tile, float *y, fc_int OH, fc_int OW, fc_int pt, fc_int pl,
                     const float *bias, int relu, int bf16, int nthreads)
{
    const fc_skernel_t *kd = fc_dispatch.gemm.s;
    const fc_bkernel_t *kb = fc_dispatch.gemm.b;
    const fc_winograd_kernels_t *wk = fc_dispatch.winograd.kernels;
    const int mr = w_mr(bf16), nr = w_nr(bf16), P = w_planes(tile);
    fc_int TH = (OH + tile - 1) / tile, TW = (OW + tile - 1) / tile, T = N * TH * TW;
    fc_int TB = w_block(C, M, nr, tile), nblocks = (T + TB - 1) / TB;
    if (nthreads > 1 && nblocks < 4 * (fc_int)nthreads) {
        TB = nr;                /* few tiles (a single frame): blocks of one panel */
        nblocks = (T + TB - 1) / TB;
    }
    fc_int njp = TB / nr, nip = w_panels(M, mr);
    fc_int vs = njp * C * nr;                       /* between transformed planes of V */
    fc_wino_input_fn *input = tile == 2 ? wk->input23 : wk->input43[TW <= 8];
    fc_wino_output_fn *output = tile == 2 ? wk->output23 : wk->output43[TW <= 8];
    int failed = 0;
    if (T == 0) return 0;
    if (nthreads < 1) nthreads = 1;
    /* Few tiles for the threads (a single frame): blocks of one panel, and if still too
     * few, each block split by output-channel panels too, every part transforming the
     * block's input itself (a few percent of its GEMM).  An output value's arithmetic
     * depends on neither, so the bits stay those of one thread; the items go
     * dynamically (the last block is smaller). */
    fc_int parts = 1;
    if (nthreads > 1 && nblocks < 4 * (fc_int)nthreads) {
        parts = (2 * (fc_int)nthreads + nblocks - 1) / nblocks;
        if (parts > nthreads) parts = nthreads;
        if (parts > nip) parts = nip;
    }
    fc_int items = nblocks * parts;
    if (items < nthreads) nthreads = (int)items;
    #pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(|:failed)
    {
        float *V = w_scratch((size_t)P * (C + M) * TB);
        float *Mx = V ? V + (size_t)P * C * TB : NULL;
        if (!V) failed = 1;
        #pragma omp for schedule(dynamic, 1)
        for (fc_int item = 0; item < items; item++) {
            if (!V) continue;
            fc_int blk = item / parts, part = item % parts;
            fc_int ip0 = nip * part / parts, ip1 = nip * (part + 1) / parts;
            fc_int m0 = ip0 * mr, m1 = ip1 * mr < M ? ip1 * mr : M;
            fc_int t0 = blk * TB, t1 = t0 + TB < T ? t0 + TB : T, nt = t1 - t0;
            /* input transform into B panels: runs of tiles along a tile row that stay
             * inside one 16-lane group and one panel */
            for (fc_int t = t0; t < t1;) {
                fc_int n, th, tw, tt = t - t0, run = w_run(t, t1, TH, TW, &n, &th, &tw);
                fc_int room = nr - tt % nr < 16 - tt % 16 ? nr - tt % nr : 16 - tt % 16;
                if (run > room) run = room;
                float *dst = V + (tt / nr) * C * nr + tt % nr;
                int wide = w_wide(run, room);
                for (fc_int c = 0; c < C; c++)
                    input(x + (n * C + c) * H * W, H, W, tile * th - pt, tile * tw - pl,
                          wide, dst + c * nr, vs);
                t += run;
            }
            /* Mx[xi] (M x nt) = U[xi] (M x C) @ V[xi] (C x nt), panel by panel */
            for (int xi = 0; xi < P; xi++)
                for (fc_int jp = 0; jp * nr < nt; jp++) {
                    int n = (int)(nt - jp * nr < nr ? nt - jp * nr : nr);
                    float *b = V + (fc_int)xi * vs + jp * C * nr;
                    if (bf16) kb->pairs(b, C, nr);
                    for (fc_int ip = ip0; ip < ip1; ip++) {
                        int m = (int)(M - ip * mr < mr ? M - ip * mr : mr);
                        const float *u = Up + ((xi * nip + ip) * C) * mr;
                        float *mx = Mx + ((fc_int)xi * M + ip * mr) * TB + jp * nr;
                        if (bf16)
                            kb->ukr(C, (const uint32_t *)u, (const uint32_t *)b, mx, TB, m, n,
                                    1.0f, 0.0f);
                        else
                            kd->ukr(C, u, b, mx, TB, m, n, 1.0f, 0.0f);
                    }
                }
            /* output transform, bias and ReLU */
            for (fc_int t = t0; t < t1;) {
                fc_int n, th, tw;
                int run = (int)w_run(t, t1, TH, TW, &n, &th, &tw);
                for (fc_int m = m0; m < m1; m++)
                    output(Mx + m * TB + (t - t0), M * TB, run, y + (n * M + m) * OH * OW, OH,
                           OW, tile * th, tile * tw, bias ? bias[m] : 0.0f, relu);
                t += run;
            }
        }
    }
    return failed ? -1 : 0;
}
