/* GEMM framework, instantiated once per operand-type set by gemm.c.  Expects:
 *   FC_TA, FC_TB        the element types of A and B as callers pass them
 *   FC_TC               the element type of C (and of alpha, beta, the row bias)
 *   FC_TPA, FC_TPB      the element types of the packed A and B panels (what the
 *                       micro-kernels read)
 *   FC_SFX              a suffix naming this instantiation's internal functions
 *   FC_KT, FC_KERNEL()  the micro-kernel descriptor type, and the one in use
 *   FC_GEMM_EX, FC_GEMM the entry points' names
 * FC_PAIRS (bf16): packed panels are staged as float, then turned into bf16 pair words
 * (fc_bf16_pairs) that the micro-kernel, called with FC_UKP-typed panel pointers, reads;
 * and optionally the conversions FC_A2P(x), FC_B2P(x) (an A / B element to its packed
 * type) and FC_A2C(x), FC_B2C(x) (to C's type, for the unpacked path): plain
 * assignments unless given, so float and double compile to plain copies.
 *
 * Loop order (Goto/BLIS): jc over NC columns, pc over KC depth, ic over MC rows; inside,
 * the packed MC x KC block of A and KC x NC panel of B are swept by MR x NR micro-tiles.
 * Threads share the packing work and split the micro-tiles of each (jc, pc, ic) block
 * statically; the K order of every element is fixed, so bits never depend on threads.
 *
 * B may be a strided matrix or an image read through im2col indexing (implicit GEMM):
 * only the packing routine differs, the micro-kernels never know.
 */
#ifndef FC_GEMM_THRESHOLDS
#define FC_GEMM_THRESHOLDS
/* Whether B's rows, read in place (rs_bytes apart), would evict each other from a 32 KB
 * 8-way L1 between the row tiles of A that reuse a panel: rows a multiple of 4 KB apart
 * land in one set (32x32 and 64x64 planes: packing B measured 1.2-1.35x at one frame);
 * on large planes (N >= 1024) a panel of K rows spread over too few sets (56x56, 128
 * channels: 1.1-1.25x).  Small planes keep the in-place read even so (8x8 and 16x16:
 * packing lost 1.5-1.8x). */
#ifndef FC_B_ROWS_ALIAS
#define FC_B_ROWS_ALIAS
static inline int fc_b_rows_alias(fc_int rs_bytes, fc_int K, fc_int N)
{
    fc_int s = 4096;                /* gcd(rs_bytes, 4096): the rows' set spacing */
    while (s > 64 && rs_bytes % s) s >>= 1;
    return (s == 4096 && K >= 16) || (N >= 1024 && 2 * K * s > 4 * 4096);
}
#endif

/* Bytes of packed B a GEMM with a single block of A's rows keeps per column block: half
 * a 512 KB L2 (Zen 3, and Zen 4's 1 MB leaves room for A and C). */
#define FC_GEMM_L2_B (256 * 1024)

/* M*N*K (multiply-adds) up to which a strided-matrix GEMM is plain dot products on one
 * thread: packing would cost more than the maths (a classifier head on one image). */
#define FC_GEMM_UNPACKED_MAX (FC_PARALLEL_GRAIN / 4)
/* M*N*K below which a packed GEMM runs on one thread (64^3 multiply-adds). */
#define FC_GEMM_GRAIN (8 * FC_PARALLEL_GRAIN)
#endif
#ifndef FC_A2P
#define FC_A2P(x) (x)
#endif
#ifndef FC_B2P
#define FC_B2P(x) (x)
#endif
#ifndef FC_A2C
#define FC_A2C(x) (x)
#endif
#ifndef FC_B2C
#define FC_B2C(x) (x)
#endif
#ifndef FC_UKP
#define FC_UKP const FC_TPA *
#endif

static void FC_CAT(pack_a_raw_, FC_SFX)(fc_int mc, fc_int kc, const FC_TA *A, fc_int rsa,
                                    fc_int csa, int mr, fc_int ip, FC_TPA *Ap)
{
    /* one MR-row panel: Ap[p*mr + i] = A[(ip*mr + i), p], rows past mc zero-filled */
    fc_int i0 = ip * mr;
    int m = (int)((mc - i0) < mr ? (mc - i0) : mr);
    FC_TPA *dst = Ap + ip * mr * kc;
    const FC_TA *src = A + i0 * rsa;
    if (csa == 1) {
#ifdef FC_TRANSPOSE8
        if (mr == 8 && m == 8 && FC_HAS_TRANSPOSE8()) {
            fc_int p = 0;
            for (; p + 8 <= kc; p += 8) FC_TRANSPOSE8(src + p, rsa, dst + p * 8, 8);
            for (; p < kc; p++)
                for (int i = 0; i < 8; i++) dst[p * 8 + i] = FC_A2P(src[i * rsa + p]);
            return;
        }
#endif
        if (mr == 6 && m == 6) {    /* AVX2's panels: six row streams, stores in order */
            const FC_TA *r0 = src, *r1 = r0 + rsa, *r2 = r1 + rsa, *r3 = r2 + rsa,
                        *r4 = r3 + rsa, *r5 = r4 + rsa;
            for (fc_int p = 0; p < kc; p++, dst += 6) {
                dst[0] = FC_A2P(r0[p]); dst[1] = FC_A2P(r1[p]); dst[2] = FC_A2P(r2[p]);
                dst[3] = FC_A2P(r3[p]); dst[4] = FC_A2P(r4[p]); dst[5] = FC_A2P(r5[p]);
            }
            return;
        }
        for (int i = 0; i < m; i++) {
            const FC_TA *row = src + i * rsa;
            for (fc_int p = 0; p < kc; p++) dst[p * mr + i] = FC_A2P(row[p]);
        }
    } else {
        for (fc_int p = 0; p < kc; p++) {
            const FC_TA *col = src + p * csa;
            for (int i = 0; i < m; i++) dst[p * mr + i] = FC_A2P(col[i * rsa]);
        }
    }
    if (m < mr)
        for (fc_int p = 0; p < kc; p++)
            for (int i = m; i < mr; i++) dst[p * mr + i] = 0;
}

static void FC_CAT(pack_a_, FC_SFX)(fc_int mc, fc_int kc, const FC_TA *A, fc_int rsa,
                                    fc_int csa, int mr, fc_int ip, FC_TPA *Ap)
{
    FC_CAT(pack_a_raw_, FC_SFX)(mc, kc, A, rsa, csa, mr, ip, Ap);
#ifdef FC_PAIRS
    FC_KERNEL()->pairs(Ap + ip * mr * kc, kc, mr);
#endif
}

/* B[p0 + p, j0 + j] for p < kc, j < n into dst[p*nr + j]; columns n..nr zero. */
static void FC_CAT(pack_b_matrix_, FC_SFX)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0,
                                         int n, int nr, FC_TPB *dst)
{
    const FC_TB *src = (const FC_TB *)B->ptr + p0 * B->rs + j0 * B->cs;
    fc_int rs = B->rs, cs = B->cs;
    if (cs == 1) {
        for (fc_int p = 0; p < kc; p++) {
            const FC_TB *row = src + p * rs;
            FC_TPB *d = dst + p * nr;
            for (int j = 0; j < n; j++) d[j] = FC_B2P(row[j]);
            for (int j = n; j < nr; j++) d[j] = 0;
        }
    } else if (rs == 1) {           /* transposed operand: read columns contiguously */
        int j = 0;
#ifdef FC_TRANSPOSE8
        if (FC_HAS_TRANSPOSE8())
            for (; j + 8 <= n; j += 8) {
                fc_int p = 0;
                for (; p + 8 <= kc; p += 8) FC_TRANSPOSE8(src + j * cs + p, cs, dst + p * nr + j, nr);
                for (; p < kc; p++)
                    for (int r = 0; r < 8; r++) dst[p * nr + j + r] = FC_B2P(src[(j + r) * cs + p]);
            }
#endif
        for (; j < n; j++) {
            const FC_TB *col = src + j * cs;
            for (fc_int p = 0; p < kc; p++) dst[p * nr + j] = FC_B2P(col[p]);
        }
        for (fc_int p = 0; p < kc; p++)
            for (int j = n; j < nr; j++) dst[p * nr + j] = 0;
    } else {
        for (fc_int p = 0; p < kc; p++) {
            const FC_TB *row = src + p * rs;
            FC_TPB *d = dst + p * nr;
            for (int j = 0; j < n; j++) d[j] = FC_B2P(row[j * cs]);
            for (int j = n; j < nr; j++) d[j] = 0;
        }
    }
}

/* Columns [j0, j0 + ncols) of a row-major B (cs == 1) as ceil(ncols / nr) panels, nr*kc
 * apart from dst, zero past ncols: row by row across the panels, so B streams in order.
 * Panel by panel read each row's nr values from a different page (rows kilobytes
 * apart, often a multiple of 4 KB: one L1 set): a 1024-wide B packed at 3.6 ns a
 * value, more than a tenth of its GEMM. */
static void FC_CAT(pack_b_rows_, FC_SFX)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0,
                                       fc_int ncols, int nr, FC_TPB *dst)
{
    const FC_TB *src = (const FC_TB *)B->ptr + p0 * B->rs + j0;
    fc_int npan = (ncols + nr - 1) / nr, full = ncols / nr;
    for (fc_int p = 0; p < kc; p++) {
        const FC_TB *row = src + p * B->rs;
        FC_TPB *d = dst + p * nr;
        for (fc_int jp = 0; jp < full; jp++)
            for (int j = 0; j < nr; j++) d[jp * nr * kc + j] = FC_B2P(row[jp * nr + j]);
        if (full < npan) {
            int n = (int)(ncols - full * nr);
            FC_TPB *e = d + full * nr * kc;
            for (int j = 0; j < n; j++) e[j] = FC_B2P(row[full * nr + j]);
            for (int j = n; j < nr; j++) e[j] = 0;
        }
    }
}

/* One output row segment of im2col: d[t] = x[ih, iw0 + t*sw] for t < len (0 outside). */
static inline void FC_CAT(gather_row_, FC_SFX)(const FC_TB *plane, fc_int H, fc_int W,
                                               fc_int ih, fc_int iw0, fc_int sw, fc_int len,
                                               FC_TPB *d, fc_int dstride)
{
    if (ih < 0 || ih >= H) {
        for (fc_int t = 0; t < len; t++) d[t * dstride] = 0;
        return;
    }
    const FC_TB *row = plane + ih * W;
    if (sw == 1) {
        fc_int lo = iw0 >= 0 ? 0 : -iw0, hi = W - iw0;
        if (lo > len) lo = len;
        if (hi > len) hi = len;
        if (hi < lo) hi = lo;
        for (fc_int t = 0; t < lo; t++) d[t * dstride] = 0;
        if (dstride == 1) {
            for (fc_int t = lo; t < hi; t++) d[t] = FC_B2P(row[iw0 + t]);
        } else {
            for (fc_int t = lo; t < hi; t++) d[t * dstride] = FC_B2P(row[iw0 + t]);
        }
        for (fc_int t = hi; t < len; t++) d[t * dstride] = 0;
    } else {
        /* strided: the in-range taps are one clean strided run */
        fc_int lo = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
        fc_int hi = W - iw0 <= 0 ? 0 : (W - iw0 + sw - 1) / sw;
        if (lo > len) lo = len;
        if (hi > len) hi = len;
        if (hi < lo) hi = lo;
        for (fc_int t = 0; t < lo; t++) d[t * dstride] = 0;
        const FC_TB *s = row + iw0;
        if (sw == 2 && dstride == 1) {      /* a constant stride vectorises (shuffles) */
            for (fc_int t = lo; t < hi; t++) d[t] = FC_B2P(s[2 * t]);
        } else {
            for (fc_int t = lo; t < hi; t++) d[t * dstride] = FC_B2P(s[t * sw]);
        }
        for (fc_int t = hi; t < len; t++) d[t * dstride] = 0;
    }
}

/* The im2col values of tap (kh, kw) for `count` consecutive output pixels from q0, into
 * d[t * dstride]: walked one output row at a time so interior segments are copies. */
static void FC_CAT(gather_pixels_, FC_SFX)(const fc_conv_geom_t *g, const FC_TB *plane,
                                           fc_int kh, fc_int kw, fc_int q0, fc_int count,
                                           FC_TPB *d, fc_int dstride)
{
    fc_int oh = q0 / g->OW, ow = q0 % g->OW, t = 0;
    while (t < count) {
        fc_int len = g->OW - ow < count - t ? g->OW - ow : count - t;
        FC_CAT(gather_row_, FC_SFX)(plane, g->H, g->W, oh * g->sh - g->ph + kh * g->dh,
                                  ow * g->sw - g->pw + kw * g->dw, g->sw, len, d + t * dstride,
                                  dstride);
        t += len;
        oh++;
        ow = 0;
    }
}

/* Tiny output rows (OW under 8: the last stages of a network): the row-segment walk
 * would make a call per 2-4 values, so gather one value at a time with running
 * (image, oh, ow) counters instead; pixel `first` onwards, `count` of them, into
 * d[t * dstride]. */
static void FC_CAT(gather_tiny_, FC_SFX)(const fc_conv_geom_t *g, const FC_TB *x, fc_int c,
                                       fc_int kh, fc_int kw, fc_int first, fc_int count,
                                       FC_TPB *d, fc_int dstride)
{
    fc_int OHW = g->OH * g->OW;
    fc_int img = g->nimg > 1 ? first / OHW : 0, q = first - img * OHW;
    fc_int oh = q / g->OW, ow = q - oh * g->OW;
    const FC_TB *plane = x + img * g->istride + c * g->H * g->W;
    fc_int ih = oh * g->sh - g->ph + kh * g->dh, iw0 = kw * g->dw - g->pw;
    for (fc_int t = 0; t < count; t++) {
        fc_int iw = ow * g->sw + iw0;
        d[t * dstride] = (ih >= 0 && ih < g->H && iw >= 0 && iw < g->W)
                             ? FC_B2P(plane[ih * g->W + iw]) : 0;
        if (++ow == g->OW) {
            ow = 0;
            ih += g->sh;
            if (++oh == g->OH) {
                oh = 0;
                ih = -g->ph + kh * g->dh;
                plane += g->istride;
            }
        }
    }
}

/* Small output planes: tab[r * OHW + q] = the offset in a channel plane of tap r's source
 * for output pixel q, or -1 where it falls in the padding.  Rows shorter than this walk
 * the per-row segments in calls of a few values; a table read is one load and a select. */
#ifndef FC_TAP_TABLE_MAX
#define FC_TAP_TABLE_MAX 4096       /* entries (16 KB on the caller's stack) */
static inline int fc_use_tap_table(const fc_conv_geom_t *g)
{
    fc_int OHW = g->OH * g->OW, KK = g->KH * g->KW;
    return (g->OW <= 8 || (g->sw != 1 && g->OW < 32)) && KK * OHW <= FC_TAP_TABLE_MAX &&
           g->H * g->W < ((fc_int)1 << 30);
}

/* After the table, one entry per tap (kernels up to FC_TAP_FLAT_MAX taps): d where every
 * in-range source of the tap is its output pixel + d (stride 1 with OW == W: the row is a
 * contiguous slice of the plane, masked where the table says padding), else
 * FC_TAP_NOT_FLAT. */
#define FC_TAP_FLAT_MAX 64
#define FC_TAP_NOT_FLAT INT32_MIN
static void fc_fill_tap_table(const fc_conv_geom_t *g, int32_t *tab)
{
    fc_int OHW = g->OH * g->OW, KK = g->KH * g->KW;
    for (fc_int kh = 0; kh < g->KH; kh++)
        for (fc_int kw = 0; kw < g->KW; kw++) {
            int32_t *t = tab + (kh * g->KW + kw) * OHW;
            fc_int d = (kh * g->dh - g->ph) * g->W + (kw * g->dw - g->pw);
            int flat = 1;
            for (fc_int oh = 0; oh < g->OH; oh++) {
                fc_int ih = oh * g->sh - g->ph + kh * g->dh;
                for (fc_int ow = 0; ow < g->OW; ow++) {
                    fc_int iw = ow * g->sw - g->pw + kw * g->dw;
                    int in = ih >= 0 && ih < g->H && iw >= 0 && iw < g->W;
                    t[oh * g->OW + ow] = in ? (int32_t)(ih * g->W + iw) : -1;
                    if (in && ih * g->W + iw != oh * g->OW + ow + d) flat = 0;
                }
            }
            if (KK <= FC_TAP_FLAT_MAX)
                tab[KK * OHW + kh * g->KW + kw] = flat ? (int32_t)d : FC_TAP_NOT_FLAT;
        }
}
#endif

/* Pixels first.. (count of them, across stacked images) of tap row t (a row of the
 * table) from channel c, into d[t * dstride]. */
static void FC_CAT(gather_table_, FC_SFX)(const fc_conv_geom_t *g, const FC_TB *x, fc_int c,
                                        const int32_t *t, fc_int first, fc_int count,
                                        FC_TPB *d, fc_int dstride, int32_t flat)
{
    fc_int OHW = g->OH * g->OW;
    fc_int img = g->nimg > 1 ? first / OHW : 0, q = first - img * OHW;
    const FC_TB *plane = x + img * g->istride + c * g->H * g->W;
#ifdef FC_GATHER_VEC
    const FC_TB *x_end = x + (g->nimg - 1) * g->istride + g->C * g->H * g->W;
#else
    (void)flat;
#endif
    for (fc_int done = 0; done < count;) {
        fc_int len = OHW - q < count - done ? OHW - q : count - done;
        FC_TPB *dd = d + done * dstride;
#ifdef FC_GATHER_VEC
        if (dstride == 1 && flat != FC_TAP_NOT_FLAT && plane + q + flat >= x &&
            plane + q + flat + len <= x_end) {
            /* a contiguous slice of the plane, masked where the table says padding:
             * four values per load, no per-value select */
            typedef int32_t iv4 __attribute__((vector_size(16)));
            typedef float fv4 __attribute__((vector_size(16)));
            const FC_TB *src = plane + q + flat;
            fc_int i = 0;
            for (; i + 4 <= len; i += 4) {
                iv4 o;
                fv4 v;
                __builtin_memcpy(&o, t + q + i, sizeof o);
                __builtin_memcpy(&v, src + i, sizeof v);
                v = (fv4)((iv4)v & (o >= 0));
                __builtin_memcpy(dd + i, &v, sizeof v);
            }
            for (; i < len; i++) dd[i] = t[q + i] >= 0 ? src[i] : 0;
        } else
#endif
        if (dstride == 1) {
            for (fc_int i = 0; i < len; i++) {     /* load always, then select: no branch */
                int32_t o = t[q + i];
                FC_TPB v = FC_B2P(plane[o < 0 ? 0 : o]);
                dd[i] = o >= 0 ? v : 0;
            }
        } else {
            for (fc_int i = 0; i < len; i++) {
                int32_t o = t[q + i];
                FC_TPB v = FC_B2P(plane[o < 0 ? 0 : o]);
                dd[i * dstride] = o >= 0 ? v : 0;
            }
        }
        done += len;
        q = 0;
        plane += g->istride;
    }
}

/* im2col rows (c, kh, kw) = p0.., columns pixels j0..: walk each row's pixel range one
 * output row at a time so interior segments are plain copies. */
/* Pixels j0 .. j0+n-1 of im2col row (c, kh, kw) across the stacked images (one gather
 * segment per image) into d, dstride apart. */
static inline void FC_CAT(gather_segments_, FC_SFX)(const fc_conv_geom_t *g, const FC_TB *x,
                                                  fc_int c, fc_int kh, fc_int kw, fc_int j0,
                                                  fc_int n, FC_TPB *d, fc_int dstride)
{
    fc_int OHW = g->OH * g->OW;
    for (fc_int j = j0; j < j0 + n;) {
        fc_int img = g->nimg > 1 ? j / OHW : 0, q0 = j - img * OHW;
        fc_int len = OHW - q0 < j0 + n - j ? OHW - q0 : j0 + n - j;
        FC_CAT(gather_pixels_, FC_SFX)(g, x + img * g->istride + c * g->H * g->W, kh, kw, q0,
                                     len, d + (j - j0) * dstride, dstride);
        j += len;
    }
}

static void FC_CAT(pack_b_im2col_, FC_SFX)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0,
                                         int n, int nr, FC_TPB *dst)
{
    const fc_conv_geom_t *g = &B->g;
    const FC_TB *x = (const FC_TB *)B->ptr;
    fc_int KK = g->KH * g->KW, OHW = g->OH * g->OW;
    for (fc_int p = 0; p < kc; p++) {
        fc_int q = p0 + p, c = q / KK, r = q % KK, kh = r / g->KW, kw = r % g->KW;
        FC_TPB *d = dst + p * nr;
        if (B->tab) {
            int32_t flat = KK <= FC_TAP_FLAT_MAX ? B->tab[KK * OHW + r] : FC_TAP_NOT_FLAT;
            FC_CAT(gather_table_, FC_SFX)(g, x, c, B->tab + r * OHW, j0, n, d, 1, flat);
            for (int j = n; j < nr; j++) d[j] = 0;
            continue;
        }
        if (g->OW < 8) {
            FC_CAT(gather_tiny_, FC_SFX)(g, x, c, kh, kw, j0, n, d, 1);
            for (int j = n; j < nr; j++) d[j] = 0;
            continue;
        }
        FC_CAT(gather_segments_, FC_SFX)(g, x, c, kh, kw, j0, n, d, 1);
        for (int j = n; j < nr; j++) d[j] = 0;
    }
}

/* Columns [j0, j0 + ncols) of im2col (no table, rows of 8 pixels and more) as ceil(ncols /
 * nr) panels, nr*kc apart from dst, zero past ncols: each row of B gathered once for the
 * whole run into tmp, then cut into the panels.  Panel by panel, every nr values paid a
 * gather call's set-up (the AVX2 kernel's 16-wide panels: a fifth of a stride-2 3x3
 * convolution).  The same values as pack_b_im2col, panel for panel. */
#define FC_IM2COL_RUN_MAX 4096
static void FC_CAT(pack_b_im2col_run_, FC_SFX)(const fc_bsrc_t *B, fc_int p0, fc_int kc,
                                             fc_int j0, fc_int ncols, int nr, FC_TPB *dst)
{
    FC_TPB tmp[FC_IM2COL_RUN_MAX];
    const fc_conv_geom_t *g = &B->g;
    const FC_TB *x = (const FC_TB *)B->ptr;
    fc_int KK = g->KH * g->KW;
    fc_int npan = (ncols + nr - 1) / nr;
    for (fc_int p = 0; p < kc; p++) {
        fc_int q = p0 + p, c = q / KK, r = q % KK, kh = r / g->KW, kw = r % g->KW;
        FC_CAT(gather_segments_, FC_SFX)(g, x, c, kh, kw, j0, ncols, tmp, 1);
        for (fc_int jp = 0; jp < npan; jp++) {
            FC_TPB *d = dst + jp * nr * kc + p * nr;
            const FC_TPB *t = tmp + jp * nr;
            int n = (int)(ncols - jp * nr < nr ? ncols - jp * nr : nr);
            for (int j = 0; j < n; j++) d[j] = t[j];
            for (int j = n; j < nr; j++) d[j] = 0;
        }
    }
}

/* Transposed im2col: rows pixels p0.., columns (c, kh, kw) j0.. (weight gradients). */
static void FC_CAT(pack_b_im2col_t_, FC_SFX)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0,
                                           int n, int nr, FC_TPB *dst)
{
    const fc_conv_geom_t *g = &B->g;
    const FC_TB *x = (const FC_TB *)B->ptr;
    fc_int KK = g->KH * g->KW;
    fc_int OHW = g->OH * g->OW;
    for (int j = 0; j < n; j++) {
        fc_int q = j0 + j, c = q / KK, r = q % KK, kh = r / g->KW, kw = r % g->KW;
        if (B->tab) {
            FC_CAT(gather_table_, FC_SFX)(g, x, c, B->tab + r * OHW, p0, kc, dst + j, nr,
                                        FC_TAP_NOT_FLAT);
            continue;
        }
        if (g->OW < 8) {
            FC_CAT(gather_tiny_, FC_SFX)(g, x, c, kh, kw, p0, kc, dst + j, nr);
            continue;
        }
        FC_CAT(gather_segments_, FC_SFX)(g, x, c, kh, kw, p0, kc, dst + j, nr);
    }
    for (fc_int p = 0; p < kc; p++)
        for (int j = n; j < nr; j++) dst[p * nr + j] = 0;
}

static void FC_CAT(pack_b_offsets_, FC_SFX)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0,
                                          int n, int nr, FC_TPB *dst)
{
    const FC_TB *base = (const FC_TB *)B->ptr + j0;
    for (fc_int p = 0; p < kc; p++) {
        const FC_TB *src = base + B->off[p0 + p];
        FC_TPB *d = dst + p * nr;
        for (int j = 0; j < n; j++) d[j] = FC_B2P(src[j]);
        for (int j = n; j < nr; j++) d[j] = 0;
    }
}

static void FC_CAT(pack_b_offsets_t_, FC_SFX)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0,
                                            int n, int nr, FC_TPB *dst)
{
    const FC_TB *base = (const FC_TB *)B->ptr + p0;
    int j = 0;
#ifdef FC_TRANSPOSE8_ROWS
    /* eight rows at a time through registers: column by column, every store of the
     * scalar loop lands on another cache line (nr values apart) */
    if (FC_HAS_TRANSPOSE8())
        for (; j + 8 <= n; j += 8) {
            const FC_TB *rows[8];
            for (int r = 0; r < 8; r++) rows[r] = base + B->off[j0 + j + r];
            fc_int p = 0;
            for (; p + 8 <= kc; p += 8) FC_TRANSPOSE8_ROWS(rows, p, dst + p * nr + j, nr);
            for (; p < kc; p++)
                for (int r = 0; r < 8; r++) dst[p * nr + j + r] = FC_B2P(rows[r][p]);
        }
#endif
    for (; j < n; j++) {
        const FC_TB *src = base + B->off[j0 + j];
        for (fc_int p = 0; p < kc; p++) dst[p * nr + j] = FC_B2P(src[p]);
    }
    for (fc_int p = 0; p < kc; p++)
        for (int j = n; j < nr; j++) dst[p * nr + j] = 0;
}

/* FC_B_TAPS: tap-major rows of one pixel class (every tap in range by construction). */
static void FC_CAT(pack_b_taps_, FC_SFX)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0,
                                       int n, int nr, FC_TPB *dst)
{
    const fc_conv_geom_t *g = &B->g;
    fc_int C = g->C, HW = g->H * g->W, npix = B->npix;
    for (fc_int p = 0; p < kc; p++) {
        fc_int q = p0 + p, r = q / C, c = q - r * C;
        const int32_t *t = B->tab + r * npix;
        const FC_TB *src = (const FC_TB *)B->ptr + c * HW;
        FC_TPB *d = dst + p * nr;
        fc_int img = (j0) / npix, k = j0 - img * npix;
        for (int j = 0; j < n;) {               /* one run per image */
            const FC_TB *pl = src + img * g->istride;
            fc_int len = npix - k < n - j ? npix - k : n - j;
            for (fc_int i = 0; i < len; i++) d[j + i] = FC_B2P(pl[t[k + i]]);
            j += (int)len;
            k = 0;
            img++;
        }
        for (int j = n; j < nr; j++) d[j] = 0;
    }
}

static void FC_CAT(pack_b_, FC_SFX)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0, int n,
                                  int nr, FC_TPB *dst)
{
    switch (B->kind) {
    case FC_B_OFFSETS: FC_CAT(pack_b_offsets_, FC_SFX)(B, p0, kc, j0, n, nr, dst); break;
    case FC_B_OFFSETS_T: FC_CAT(pack_b_offsets_t_, FC_SFX)(B, p0, kc, j0, n, nr, dst); break;
    case FC_B_IM2COL: FC_CAT(pack_b_im2col_, FC_SFX)(B, p0, kc, j0, n, nr, dst); break;
    case FC_B_IM2COL_T: FC_CAT(pack_b_im2col_t_, FC_SFX)(B, p0, kc, j0, n, nr, dst); break;
    case FC_B_TAPS: FC_CAT(pack_b_taps_, FC_SFX)(B, p0, kc, j0, n, nr, dst); break;
    default: FC_CAT(pack_b_matrix_, FC_SFX)(B, p0, kc, j0, n, nr, dst); break;
    }
#ifdef FC_PAIRS
    FC_KERNEL()->pairs(dst, kc, nr);
#endif
}

static void FC_CAT(epilogue_, FC_SFX)(FC_TC *c, fc_int ldc, int m, int n, const FC_TC *bias,
                                      const FC_TC *scale, int relu)
{
#ifdef FC_EPILOGUE_VEC
    if (FC_EPILOGUE_VEC(c, ldc, m, n, bias, scale, relu)) return;
#endif
    for (int i = 0; i < m; i++) {
        FC_TC *ci = c + i * ldc, b = bias ? bias[i] : 0;
        if (scale) {
            FC_TC a = scale[i];
            for (int j = 0; j < n; j++) ci[j] *= a;
        }
        if (relu == 2)          /* ReLU6: clamped to [0, 6], NaN kept */
            for (int j = 0; j < n; j++) {
                FC_TC v = ci[j] + b;
                ci[j] = v <= 0 ? 0 : (v >= 6 ? 6 : v);
            }
        else if (relu)
            for (int j = 0; j < n; j++) { FC_TC v = ci[j] + b; ci[j] = v <= 0 ? 0 : v; }
        else
            for (int j = 0; j < n; j++) ci[j] += b;
    }
}

void FC_GEMM_EX(fc_int M, fc_int N, fc_int K, FC_TC alpha,
                const FC_TA *A, fc_int rsa, fc_int csa, const fc_bsrc_t *B,
                FC_TC beta, FC_TC *C, fc_int ldc, const fc_epilogue_t *ep, int nthreads)
{
    const FC_TC *bias = ep ? (const FC_TC *)ep->row_bias : NULL;
    const FC_TC *scale = ep ? (const FC_TC *)ep->row_scale : NULL;
    int relu = ep ? ep->relu : 0;
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0) {
        for (fc_int i = 0; i < M; i++)
            for (fc_int j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        if (bias || scale || relu) FC_CAT(epilogue_, FC_SFX)(C, ldc, (int)M, (int)N, bias, scale, relu);
        return;
    }
    if (B->kind == FC_B_MATRIX && (double)M * N * K <= FC_GEMM_UNPACKED_MAX) {
        /* tiny (a classifier head on one image): packing would cost more than the maths;
         * plain dot products, the same for any thread count */
        const FC_TB *Bm = (const FC_TB *)B->ptr;
        /* eight rows' sums side by side: each is the same chain in K order as alone
         * (so the same bits), but eight independent chains run at the adder's
         * throughput, not its latency (a Linear head: 4x) */
        fc_int i8 = 0;
        for (; i8 + 8 <= M; i8 += 8)
            for (fc_int j = 0; j < N; j++) {
                FC_TC acc8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                for (fc_int p = 0; p < K; p++) {
                    FC_TC bv = FC_B2C(Bm[p * B->rs + j * B->cs]);
                    for (int r = 0; r < 8; r++)
                        acc8[r] += FC_A2C(A[(i8 + r) * rsa + p * csa]) * bv;
                }
                for (int r = 0; r < 8; r++) {
                    FC_TC *c = C + (i8 + r) * ldc + j;
                    *c = beta == 0 ? alpha * acc8[r] : alpha * acc8[r] + beta * *c;
                }
            }
        for (fc_int i = i8; i < M; i++)
            for (fc_int j = 0; j < N; j++) {
                FC_TC acc = 0;
                for (fc_int p = 0; p < K; p++)
                    acc += FC_A2C(A[i * rsa + p * csa]) * FC_B2C(Bm[p * B->rs + j * B->cs]);
                C[i * ldc + j] = beta == 0 ? alpha * acc : alpha * acc + beta * C[i * ldc + j];
            }
        if (bias || scale || relu) FC_CAT(epilogue_, FC_SFX)(C, ldc, (int)M, (int)N, bias, scale, relu);
        return;
    }
    if (nthreads > 1 && (double)M * N * K >= FC_GEMM_GRAIN) {
        /* few columns (a single frame's small planes): split the rows, each thread
         * packing its own (small) B - one fork-join instead of barriers per K block, which
         * cost more than the work when threads sleep between them.  Every element keeps
         * its K order, so the bits are the same. */
        const FC_KT *kd0 = FC_KERNEL();
        fc_int panels = (M + kd0->mr - 1) / kd0->mr;
        /* also when the column panels would leave threads idle (64 columns of a frame's
         * 8x8 plane are 48 + 16 for two threads); past 16 columns a part takes the
         * same kernel path as the whole */
        fc_int njp = (N + kd0->nr - 1) / kd0->nr, per = (njp + nthreads - 1) / nthreads;
        double col_eff = (double)N / ((double)kd0->nr * per * nthreads);
        fc_int mper = (panels + nthreads - 1) / nthreads;
        double row_eff = (double)panels / ((double)mper * nthreads);
        if (panels >= 2 * (fc_int)nthreads &&
            ((double)N * nthreads * 4 <= (double)M || (N > 16 && row_eff > col_eff + 0.15))) {
            int nt = nthreads;
            #pragma omp parallel num_threads(nt)
            {
                int t = omp_get_thread_num(), T = omp_get_num_threads();
                fc_int p0 = panels * t / T, p1 = panels * (t + 1) / T;
                fc_int m0 = p0 * kd0->mr, m1 = p1 * kd0->mr < M ? p1 * kd0->mr : M;
                if (m1 > m0) {
                    fc_epilogue_t e = {0};
                    if (ep) {
                        e = *ep;
                        if (bias) e.row_bias = bias + m0;
                        if (scale) e.row_scale = scale + m0;
                    }
                    FC_GEMM_EX(m1 - m0, N, K, alpha, A + m0 * rsa, rsa, csa, B, beta,
                               C + m0 * ldc, ldc, ep ? &e : NULL, 1);
                }
            }
            return;
        }
    }
    fc_bsrc_t Bl = *B;
    if (B->kind != FC_B_TAPS) Bl.tab = NULL;
    int32_t tab[FC_TAP_TABLE_MAX + FC_TAP_FLAT_MAX];
    if ((B->kind == FC_B_IM2COL || B->kind == FC_B_IM2COL_T) && fc_use_tap_table(&B->g)) {
        fc_fill_tap_table(&B->g, tab);
        Bl.tab = tab;
    }
    B = &Bl;
#ifdef FC_ROWDOT_KERNEL
    if (N <= 8 && csa == 1 && M >= 8 && (double)M * K >= 2048) {
        /* very few columns, A's rows contiguous (weights): dot products along K, B
         * packed once transposed [N][K] */
        fc_int ldb = (K + 15) & ~(fc_int)15;
        FC_TPB *Bp = fc_workspace(FC_WS_PACK, ((size_t)K * 8 + (size_t)ldb * 8) * sizeof(FC_TPB));
        if (!Bp) { fc_workspace_flag_error(); return; }
        FC_TPB *Bt = Bp + K * 8;
        FC_CAT(pack_b_, FC_SFX)(B, 0, K, 0, (int)N, 8, Bp);
        for (fc_int j = 0; j < N; j++)
            for (fc_int k = 0; k < K; k++) Bt[j * ldb + k] = Bp[k * 8 + j];
        if (nthreads < 1 || (double)M * N * K < FC_GEMM_GRAIN) nthreads = 1;
        fc_int nblk = (M + 31) / 32;              /* 32-row blocks: fixed by M alone */
        #pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
        for (fc_int blk = 0; blk < nblk; blk++) {
            fc_int i0 = blk * 32, rows = M - i0 < 32 ? M - i0 : 32;
            FC_ROWDOT_KERNEL(rows, A + i0 * rsa, rsa, K, Bt, ldb, (int)N, C + i0 * ldc, ldc,
                             alpha, beta);
            if (bias || scale || relu)
                FC_CAT(epilogue_, FC_SFX)(C + i0 * ldc, ldc, (int)rows, (int)N,
                                        bias ? bias + i0 : NULL, scale ? scale + i0 : NULL,
                                        relu);
        }
        return;
    }
#endif
#ifdef FC_SMALLN_KERNEL
    if (N <= 16 && M >= 8 && (double)M * K >= 2048) {
        /* few columns: rows straight from A, B packed once [K][16] */
        FC_TPB *Bp = fc_workspace(FC_WS_PACK, (size_t)K * 16 * sizeof(FC_TPB));
        if (!Bp) { fc_workspace_flag_error(); return; }
        FC_CAT(pack_b_, FC_SFX)(B, 0, K, 0, (int)N, 16, Bp);
        fc_int nblk = (M + 3) / 4;
        if (nthreads < 1 || (double)M * N * K < FC_GEMM_GRAIN) nthreads = 1;
        #pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
        for (fc_int blk = 0; blk < nblk; blk++) {
            FC_TC acc[4 * 16];
            fc_int m0 = blk * 4;
            int rows = (int)(M - m0 < 4 ? M - m0 : 4);
            FC_SMALLN_KERNEL(rows, K, A + m0 * rsa, rsa, csa, Bp, acc);
            for (int r = 0; r < rows; r++) {
                FC_TC *c = C + (m0 + r) * ldc;
                for (fc_int j = 0; j < N; j++)
                    c[j] = beta == 0 ? alpha * acc[r * 16 + j]
                                     : alpha * acc[r * 16 + j] + beta * c[j];
            }
            if (bias || scale || relu)
                FC_CAT(epilogue_, FC_SFX)(C + m0 * ldc, ldc, rows, (int)N,
                                        bias ? bias + m0 : NULL, scale ? scale + m0 : NULL,
                                        relu);
        }
        return;
    }
#endif
    const FC_KT *kd = FC_KERNEL();
    const int mr = kd->mr, nr = kd->nr;
    const fc_int MC = kd->mc, KC = kd->kc;
    fc_int NC = kd->nc;
    /* A in one block (rows and depth): packed once, not per column block */
    const int a_once = M <= MC && K <= KC;
    if (a_once) {
        /* each packed B value is read by the few row tiles right after its packing, so a
         * column block that stays in L2 serves them (a 1x1 convolution 32 -> 16 at
         * 112x112: 4080 columns of 32 rows spilled to L3 and were read three times from
         * there).  The K order of every sum is unchanged: the same bits. */
        fc_int cap = FC_GEMM_L2_B / ((fc_int)sizeof(FC_TPB) * K);
        cap = cap / nr * nr;
        if (cap < nr) cap = nr;
        if (cap < NC) NC = cap;
    }
#ifdef FC_DIRECT_B
    /* few rows of A: B's rows read in place, not packed (fc_sukr_b_t) */
    const int direct_b = kd->ukr_b && B->kind == FC_B_MATRIX && B->cs == 1 &&
                         M <= FC_DIRECT_B_MAX_M &&
                         !fc_b_rows_alias(B->rs * (fc_int)sizeof(FC_TB), K, N);
    const FC_TB *Bm = (const FC_TB *)B->ptr;
#else
    const int direct_b = 0;
#endif
    fc_int mc_max = M < MC ? M : MC, kc_max = K < KC ? K : KC, nc_max = N < NC ? N : NC;
    fc_int a_elems = ((mc_max + mr - 1) / mr) * mr * kc_max;
    fc_int b_elems = ((nc_max + nr - 1) / nr) * nr * kc_max;
    size_t a_bytes = ((size_t)a_elems * sizeof(FC_TPA) + 63) & ~(size_t)63;
    char *ws = fc_workspace(FC_WS_PACK, a_bytes + (size_t)b_elems * sizeof(FC_TPB));
    if (!ws) { fc_workspace_flag_error(); return; }
    FC_TPA *Ap = (FC_TPA *)ws;
    FC_TPB *Bp = (FC_TPB *)(ws + a_bytes);
    if (nthreads < 1) nthreads = 1;
    if ((double)M * N * K < FC_GEMM_GRAIN) nthreads = 1;

    #pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        for (fc_int jc = 0; jc < N; jc += NC) {
            fc_int nc = (N - jc) < NC ? (N - jc) : NC;
            fc_int njp = (nc + nr - 1) / nr;
            for (fc_int pc = 0; pc < K; pc += KC) {
                fc_int kc = (K - pc) < KC ? (K - pc) : KC;
                int last = pc + kc >= K;
                FC_TC beta_eff = pc == 0 ? beta : (FC_TC)1;
                int run_b = !direct_b && ((B->kind == FC_B_MATRIX && B->cs == 1) ||
                                          (B->kind == FC_B_IM2COL && !B->tab && B->g.OW >= 8));
                if (run_b) {
                    /* each thread a run of panels, B's rows in order (the panels and
                     * their values are those of the panel-by-panel packing) */
                    int t = omp_get_thread_num(), T = omp_get_num_threads();
                    fc_int jp0 = njp * t / T, jp1 = njp * (t + 1) / T;
                    for (; jp0 < jp1; ) {   /* im2col: runs of at most FC_IM2COL_RUN_MAX */
                        fc_int je = B->kind == FC_B_IM2COL && (jp1 - jp0) * nr > FC_IM2COL_RUN_MAX
                                    ? jp0 + FC_IM2COL_RUN_MAX / nr : jp1;
                        fc_int c1 = je * nr < nc ? je * nr : nc;
                        if (B->kind == FC_B_MATRIX)
                            FC_CAT(pack_b_rows_, FC_SFX)(B, pc, kc, jc + jp0 * nr, c1 - jp0 * nr,
                                                        nr, Bp + jp0 * nr * kc);
                        else
                            FC_CAT(pack_b_im2col_run_, FC_SFX)(B, pc, kc, jc + jp0 * nr,
                                                              c1 - jp0 * nr, nr,
                                                              Bp + jp0 * nr * kc);
#ifdef FC_PAIRS
                        for (fc_int jp = jp0; jp < je; jp++)
                            FC_KERNEL()->pairs(Bp + jp * nr * kc, kc, nr);
#endif
                        jp0 = je;
                    }
                    #pragma omp barrier
                } else if (!direct_b) {
                    #pragma omp for schedule(static)
                    for (fc_int jp = 0; jp < njp; jp++) {
                        fc_int j0 = jp * nr;
                        int n = (int)((nc - j0) < nr ? (nc - j0) : nr);
                        FC_CAT(pack_b_, FC_SFX)(B, pc, kc, jc + j0, n, nr, Bp + jp * nr * kc);
                    }
                }
                for (fc_int ic = 0; ic < M; ic += MC) {
                    fc_int mc = (M - ic) < MC ? (M - ic) : MC;
                    fc_int nip = (mc + mr - 1) / mr;
                    if (!a_once || jc == 0) {
                        #pragma omp for schedule(static)
                        for (fc_int ip = 0; ip < nip; ip++)
                            FC_CAT(pack_a_, FC_SFX)(mc, kc, A + ic * rsa + pc * csa, rsa, csa,
                                                    mr, ip, Ap);
                    }
                    fc_int ntiles = nip * njp;
                    int ep_done = 0;        /* the epilogue fused into the last K block's tiles */
#ifdef FC_EP_KERNEL
                    ep_done = last && (bias || scale || relu) && kd->ukr_ep &&
                              (!direct_b || kd->ukr_b_ep);
#endif
                    #pragma omp for schedule(static)
                    for (fc_int t = 0; t < ntiles; t++) {
                        fc_int jp = t / nip, ip = t % nip;
                        fc_int i0 = ip * mr, j0 = jp * nr;
                        int m = (int)((mc - i0) < mr ? (mc - i0) : mr);
                        int n = (int)((nc - j0) < nr ? (nc - j0) : nr);
                        FC_TC *ct = C + (ic + i0) * ldc + jc + j0;
#ifdef FC_EP_KERNEL
                        if (ep_done) {
                            const fc_tile_ep_t te = {scale ? scale + ic + i0 : NULL,
                                                     bias ? bias + ic + i0 : NULL, relu};
                            if (direct_b)
                                kd->ukr_b_ep(kc, Ap + ip * mr * kc, Bm + pc * B->rs + jc + j0,
                                             B->rs, ct, ldc, m, n, alpha, beta_eff, &te);
                            else
                                kd->ukr_ep(kc, (FC_UKP)(Ap + ip * mr * kc),
                                           (FC_UKP)(Bp + jp * nr * kc), ct, ldc, m, n, alpha,
                                           beta_eff, &te);
                            continue;
                        }
#endif
#ifdef FC_DIRECT_B
                        if (direct_b)
                            kd->ukr_b(kc, Ap + ip * mr * kc, Bm + pc * B->rs + jc + j0, B->rs,
                                      ct, ldc, m, n, alpha, beta_eff);
                        else
#endif
                        kd->ukr(kc, (FC_UKP)(Ap + ip * mr * kc), (FC_UKP)(Bp + jp * nr * kc),
                                ct, ldc, m, n, alpha, beta_eff);
                    }
                    /* the epilogue once the block's tiles are stored (the loop above ends
                     * in a barrier), a row at a time: right after a tile's masked vector
                     * stores, loads of the same lines wait for them to retire (a 1x1
                     * convolution at one frame: its epilogue cost half its GEMM) */
                    if (last && (bias || scale || relu) && !ep_done) {
                        #pragma omp for schedule(static)
                        for (fc_int r = 0; r < mc; r++)
                            FC_CAT(epilogue_, FC_SFX)(C + (ic + r) * ldc + jc, ldc, 1, (int)nc,
                                                    bias ? bias + ic + r : NULL,
                                                    scale ? scale + ic + r : NULL, relu);
                    }
                }
            }
        }
    }
}

#ifdef FC_CONV_TAPS
/* The taps kh (of KH) that land inside [0, H) from output row oh: [*lo, *hi] (empty:
 * lo > hi).  The in-range taps of a row are always one run. */
#ifndef FC_TAP_RANGE
#define FC_TAP_RANGE
static void fc_tap_range(fc_int o, fc_int s, fc_int p, fc_int d, fc_int K, fc_int H,
                         fc_int *lo, fc_int *hi)
{
    *lo = K;
    *hi = -1;
    for (fc_int k = 0; k < K; k++) {
        fc_int i = o * s - p + k * d;
        if (i >= 0 && i < H) {
            if (k < *lo) *lo = k;
            *hi = k;
        }
    }
}

/* The last index of the run from i0 (of n) whose tap range [lo, hi] is lo[i0], hi[i0]:
 * rows (or columns) of one border class. */
static fc_int fc_tap_run_end(const fc_int *lo, const fc_int *hi, fc_int i0, fc_int n)
{
    fc_int i1 = i0;
    while (i1 + 1 < n && lo[i1 + 1] == lo[i0] && hi[i1 + 1] == hi[i0]) i1++;
    return i1;
}

/* One class of output pixels, rows oh0..oh1 by columns ow0..ow1, whose taps inside the
 * input are kh0..kh1 x kw0..kw1 (not empty): its pixels (pix, *npix), the runs of tap-major
 * K its taps make (seg: start, length; whole kernel rows make one run), and tab[tap * npix
 * + k], the source offset in a channel plane of tap `tap` for pixel k.  Returns the run
 * count. */
static int fc_taps_class(fc_int oh0, fc_int oh1, fc_int ow0, fc_int ow1, fc_int kh0,
                         fc_int kh1, fc_int kw0, fc_int kw1, fc_int OW, fc_int KW, fc_int C,
                         fc_int W, fc_int sh, fc_int sw, fc_int ph, fc_int pw, fc_int dh,
                         fc_int dw, fc_int *pix, fc_int *npix, fc_int *seg, int32_t *tab)
{
    fc_int n = 0;
    for (fc_int oh = oh0; oh <= oh1; oh++)
        for (fc_int ow = ow0; ow <= ow1; ow++) pix[n++] = oh * OW + ow;
    *npix = n;
    int nseg = 0;
    if (kw0 == 0 && kw1 == KW - 1) {
        seg[0] = kh0 * KW * C;
        seg[1] = (kh1 - kh0 + 1) * KW * C;
        nseg = 1;
    } else
        for (fc_int kh = kh0; kh <= kh1; kh++, nseg++) {
            seg[2 * nseg] = (kh * KW + kw0) * C;
            seg[2 * nseg + 1] = (kw1 - kw0 + 1) * C;
        }
    for (fc_int kh = kh0; kh <= kh1; kh++)
        for (fc_int kw = kw0; kw <= kw1; kw++)
            for (fc_int k = 0; k < n; k++) {
                fc_int oh = pix[k] / OW, ow = pix[k] - oh * OW;
                tab[(kh * KW + kw) * n + k] =
                    (int32_t)((oh * sh - ph + kh * dh) * W + ow * sw - pw + kw * dw);
            }
    return nseg;
}
#endif

int FC_CONV_TAPS(fc_int N, fc_int C, fc_int H, fc_int W, fc_int M, fc_int OH, fc_int OW,
                 fc_int KH, fc_int KW, fc_int sh, fc_int sw, fc_int ph, fc_int pw, fc_int dh,
                 fc_int dw, const FC_TB *x, const FC_TA *w, const FC_TC *scale,
                 const FC_TC *bias, int relu, FC_TC *y, int nthreads)
{
    const FC_KT *kd = FC_KERNEL();
    const int mr = kd->mr, nr = kd->nr;
    const fc_int KC = kd->kc;
    fc_int KK = KH * KW, Kt = KK * C, OHW = OH * OW;
    if (N <= 0 || M <= 0 || OHW <= 0) return 0;
    if (nthreads < 1) nthreads = 1;
    /* row and column classes: runs of output rows (columns) with the same tap range */
    fc_int *rlo = malloc(sizeof(fc_int) * (size_t)(2 * (OH + OW) + OHW));
    int32_t *tab = malloc(sizeof(int32_t) * (size_t)(KK * OHW));
    if (!rlo || !tab) { free(rlo); free(tab); fc_workspace_flag_error(); return -1; }
    fc_int *rhi = rlo + OH, *clo = rhi + OH, *chi = clo + OW, *pix = chi + OW;
    for (fc_int o = 0; o < OH; o++) fc_tap_range(o, sh, ph, dh, KH, H, rlo + o, rhi + o);
    for (fc_int o = 0; o < OW; o++) fc_tap_range(o, sw, pw, dw, KW, W, clo + o, chi + o);
    /* the classes, each a block of output pixels (pix[start..start+npix)) with its taps'
     * runs of tap-major K (seg) and its source table (tab + KK*start) */
    fc_int ncls = 0, *cstart = malloc(sizeof(fc_int) * (size_t)(4 * OHW + 2 * KH * OHW));
    if (!cstart) { free(rlo); free(tab); fc_workspace_flag_error(); return -1; }
    fc_int *cnpix = cstart + OHW, *cnseg = cnpix + OHW, *cfirst = cnseg + OHW,
           *cseg = cfirst + OHW;
    for (fc_int oh0 = 0, start = 0; oh0 < OH;) {
        fc_int oh1 = fc_tap_run_end(rlo, rhi, oh0, OH);
        for (fc_int ow0 = 0; ow0 < OW;) {
            fc_int ow1 = fc_tap_run_end(clo, chi, ow0, OW);
            fc_int kh0 = rlo[oh0], kh1 = rhi[oh0], kw0 = clo[ow0], kw1 = chi[ow0];
            fc_int npix = (oh1 - oh0 + 1) * (ow1 - ow0 + 1);
            int nseg = 0;                  /* no taps: the pixels see only padding */
            if (kh0 <= kh1 && kw0 <= kw1)
                nseg = fc_taps_class(oh0, oh1, ow0, ow1, kh0, kh1, kw0, kw1, OW, KW, C, W, sh,
                                     sw, ph, pw, dh, dw, pix + start, &npix,
                                     cseg + 2 * KH * ncls, tab + KK * start);
            else
                for (fc_int oh = oh0, k = 0; oh <= oh1; oh++)
                    for (fc_int ow = ow0; ow <= ow1; ow++) pix[start + k++] = oh * OW + ow;
            cstart[ncls] = start;
            cnpix[ncls] = npix;
            cnseg[ncls] = nseg;
            ncls++;
            start += npix;
            ow0 = ow1 + 1;
        }
        oh0 = oh1 + 1;
    }
    /* scratch: the weights as NR-wide panels over all of K (tap-major: row p = tap * C +
     * c), then every class's output (N*OHW x M, class after class, rows image-major);
     * one K block's pixel panels of every class in the packing slot */
    fc_int njp = (M + nr - 1) / nr, colsmax = N * OHW;
    size_t w_bytes = (((size_t)njp * nr * Kt) * sizeof(FC_TPB) + 63) & ~(size_t)63;
    char *ws = fc_workspace(FC_WS_SCRATCH, w_bytes + (size_t)M * colsmax * sizeof(FC_TC));
    fc_int kcm = Kt < KC ? Kt : KC;
    FC_TPA *Ap = fc_workspace(FC_WS_PACK, (size_t)(colsmax + ncls * mr) * kcm *
                                             sizeof(FC_TPA));
    if (!ws || !Ap) { free(rlo); free(tab); free(cstart); fc_workspace_flag_error(); return -1; }
    FC_TPB *Bw = (FC_TPB *)ws;
    FC_TC *Cs = (FC_TC *)(ws + w_bytes);
    #pragma omp parallel for schedule(static) num_threads(nthreads) \
        if (nthreads > 1 && (double)M * Kt > FC_PARALLEL_GRAIN)
    for (fc_int jp = 0; jp < njp; jp++) {
        FC_TPB *dst = Bw + jp * nr * Kt;
        int n = (int)(M - jp * nr < nr ? M - jp * nr : nr);
        int j8 = 0;                 /* channels packed by 8x8 register transposes */
#ifdef FC_TRANSPOSE8_ROWS
        /* 8 channels' rows at 8 consecutive k into a block, its rows then copied to their
         * tap-major places: the value-by-value copy read each row Kt values apart, a tenth
         * of a 512-channel 4x4 layer's forward */
        if (FC_HAS_TRANSPOSE8() && nr % 8 == 0)
            for (; j8 + 8 <= n; j8 += 8) {
                const float *rows[8];
                for (int i = 0; i < 8; i++) rows[i] = w + (jp * nr + j8 + i) * Kt;
                fc_int k = 0;
                for (; k + 8 <= Kt; k += 8) {
                    float blk[64];
                    FC_TRANSPOSE8_ROWS(rows, k, blk, 8);
                    for (int q = 0; q < 8; q++) {
                        fc_int kq = k + q, c = kq / KK, r = kq - c * KK;
                        __builtin_memcpy(dst + (r * C + c) * nr + j8, blk + q * 8,
                                         8 * sizeof(float));
                    }
                }
                for (; k < Kt; k++) {
                    fc_int c = k / KK, r = k - c * KK;
                    for (int i = 0; i < 8; i++) dst[(r * C + c) * nr + j8 + i] = rows[i][k];
                }
            }
#endif
        for (fc_int r = 0; r < KK; r++)
            for (fc_int c = 0; c < C; c++) {
                FC_TPB *d = dst + (r * C + c) * nr;
                const FC_TA *src = w + (jp * nr) * Kt + c * KK + r;
                int j = j8;
                for (; j < n; j++) d[j] = FC_B2P(src[j * Kt]);
                for (; j < nr; j++) d[j] = 0;
            }
    }
    /* Every class's GEMM (Cs_class = P_class @ Wt over its taps' rows) in one sweep of K
     * blocks: each block of the packed weights, read once from memory, serves all the
     * classes whose taps it holds while it sits in cache.  A GEMM per class re-read the
     * weights once per class (nine on a 4x4 plane: 512 channels, 9.4 MB, over five times
     * per call).  A class's K order is its runs' order, block after block: the bits do
     * not depend on the thread count. */
    for (fc_int c = 0; c < ncls; c++) {
        cfirst[c] = 1;
        if (cnseg[c] == 0)
            for (fc_int i = 0; i < N * cnpix[c] * M; i++) Cs[N * cstart[c] * M + i] = 0;
    }
    /* per block: items (class, first row, rows, panel offset), classes in order */
    fc_int *it = malloc(sizeof(fc_int) * (size_t)(4 * 2 * KH * ncls + 2 * ncls + 2));
    if (!it) { free(rlo); free(tab); free(cstart); fc_workspace_flag_error(); return -1; }
    fc_int *ccls = it + 4 * 2 * KH * ncls, *ctiles = ccls + ncls + 1;
    double work = (double)M * colsmax * Kt;
    int nt = work < FC_GEMM_GRAIN ? 1 : nthreads;
    for (fc_int b0 = 0; b0 < Kt; b0 += KC) {
        fc_int b1 = b0 + KC < Kt ? b0 + KC : Kt, nit = 0, off = 0, ncc = 0, ntl = 0;
        for (fc_int c = 0; c < ncls; c++) {
            fc_int cols = N * cnpix[c], np = (cols + mr - 1) / mr, had = nit;
            const fc_int *sg = cseg + 2 * KH * c;
            for (fc_int q = 0; q < cnseg[c]; q++) {
                fc_int lo = sg[2 * q] > b0 ? sg[2 * q] : b0;
                fc_int hi = sg[2 * q] + sg[2 * q + 1] < b1 ? sg[2 * q] + sg[2 * q + 1] : b1;
                if (lo >= hi) continue;
                it[4 * nit] = c;
                it[4 * nit + 1] = lo;
                it[4 * nit + 2] = hi - lo;
                it[4 * nit + 3] = off;
                off += np * mr * (hi - lo);
                nit++;
            }
            if (nit > had) {
                ccls[ncc] = c;
                ctiles[ncc++] = ntl;
                ntl += np;
            }
        }
        ctiles[ncc] = ntl;
        if (nit == 0) continue;
        /* the items' pixel panels, then the tiles: weight panel jp by class tile, each
         * tile's items (a class's runs in this block) in order */
        #pragma omp parallel num_threads(nt) if (nt > 1)
        {
            fc_bsrc_t B = {0};
            B.kind = FC_B_TAPS;
            B.ptr = x;
            B.g.C = C; B.g.H = H; B.g.W = W; B.g.OH = OH; B.g.OW = OW;
            B.g.nimg = N; B.g.istride = C * H * W;
            for (fc_int i = 0; i < nit; i++) {
                fc_int c = it[4 * i], p0 = it[4 * i + 1], kc = it[4 * i + 2];
                fc_int cols = N * cnpix[c], np = (cols + mr - 1) / mr;
                B.tab = tab + KK * cstart[c];
                B.npix = cnpix[c];
                FC_TPA *dst = Ap + it[4 * i + 3];
                #pragma omp for schedule(static) nowait
                for (fc_int ip = 0; ip < np; ip++) {
                    fc_int i0 = ip * mr;
                    int m = (int)((cols - i0) < mr ? (cols - i0) : mr);
                    FC_CAT(pack_b_taps_, FC_SFX)(&B, p0, kc, i0, m, mr, dst + ip * mr * kc);
                }
            }
            #pragma omp barrier
            fc_int ntiles = njp * ntl;
            #pragma omp for schedule(static)
            for (fc_int t = 0; t < ntiles; t++) {
                fc_int jp = t / ntl, ct = t % ntl, k = 0;
                while (ctiles[k + 1] <= ct) k++;
                fc_int c = ccls[k], ip = ct - ctiles[k];
                fc_int cols = N * cnpix[c], i0 = ip * mr, j0 = jp * nr;
                int m = (int)((cols - i0) < mr ? (cols - i0) : mr);
                int n = (int)((M - j0) < nr ? (M - j0) : nr);
                FC_TC *ct_out = Cs + (N * cstart[c] + i0) * M + j0;
                int first = (int)cfirst[c];
                for (fc_int i = 0; i < nit; i++) {
                    if (it[4 * i] != c) continue;
                    fc_int p0 = it[4 * i + 1], kc = it[4 * i + 2];
                    kd->ukr(kc, (FC_UKP)(Ap + it[4 * i + 3] + ip * mr * kc),
                            (FC_UKP)(Bw + jp * nr * Kt + p0 * nr), ct_out, M, m, n, (FC_TC)1,
                            first ? (FC_TC)0 : (FC_TC)1);
                    first = 0;
                }
            }
        }
        for (fc_int k = 0; k < ncc; k++) cfirst[ccls[k]] = 0;
    }
    free(it);
    /* scatter each class's rows (image, pixel) to y: the factor, the bias, the clamp */
    #pragma omp parallel for schedule(static) num_threads(nthreads) \
        if (nthreads > 1 && (double)M * colsmax > FC_PARALLEL_GRAIN)
    for (fc_int n = 0; n < N; n++)
        for (fc_int c = 0; c < ncls; c++)
            for (fc_int k = 0; k < cnpix[c]; k++) {
                const FC_TC *src = Cs + (N * cstart[c] + n * cnpix[c] + k) * M;
                FC_TC *dst = y + n * M * OHW + pix[cstart[c] + k];
                for (fc_int m = 0; m < M; m++) {
                    FC_TC v = (scale ? src[m] * scale[m] : src[m]) + (bias ? bias[m] : 0);
                    dst[m * OHW] = relu && v <= 0 ? 0 : (relu == 2 && v >= 6 ? 6 : v);
                }
            }
    free(rlo);
    free(tab);
    free(cstart);
    return 0;
}

/* dW (M x C*KH*KW, natural layout, overwritten) of the same convolution, by the same
 * classes: for each class, dY's class columns (M x cols) times the class's pixel matrix
 * (cols x its taps, built explicitly), one GEMM per K segment added into a tap-major dW;
 * classes in a fixed order, so the bits do not depend on the thread count. */
int FC_CONV_TAPS_WGRAD(fc_int N, fc_int C, fc_int H, fc_int W, fc_int M, fc_int OH,
                       fc_int OW, fc_int KH, fc_int KW, fc_int sh, fc_int sw, fc_int ph,
                       fc_int pw, fc_int dh, fc_int dw, const FC_TB *x, const FC_TC *dy,
                       FC_TC *dwt_out, int nthreads)
{
    fc_int KK = KH * KW, Kt = KK * C, OHW = OH * OW, HW = H * W;
    if (M <= 0 || Kt <= 0) return 0;
    if (nthreads < 1) nthreads = 1;
    fc_int *q = malloc(sizeof(fc_int) * (size_t)(2 * (OHW > 0 ? OHW : 1)));
    if (!q) { fc_workspace_flag_error(); return -1; }
    fc_int *src = q + OHW;
    fc_int colsmax = N * OHW;
    size_t t_bytes = (((size_t)M * Kt) * sizeof(FC_TC) + 63) & ~(size_t)63;
    size_t a_bytes = (((size_t)M * colsmax) * sizeof(FC_TC) + 63) & ~(size_t)63;
    char *ws = fc_workspace(FC_WS_SCRATCH, t_bytes + a_bytes + (size_t)colsmax * C * sizeof(FC_TB));
    if (!ws) { free(q); fc_workspace_flag_error(); return -1; }
    FC_TC *Dt = (FC_TC *)ws, *A = (FC_TC *)(ws + t_bytes);
    FC_TB *P = (FC_TB *)(ws + t_bytes + a_bytes);
    /* one GEMM per tap over the output pixels whose input it reaches (the border classes'
     * pixels that hold it): dW_tap (M x C) = dY's columns of those pixels times their
     * inputs under the tap, written once.  By class, each class's GEMMs added into the
     * whole tap-major dW (a 4x4 plane's nine classes read and wrote 512-channel
     * gradients, 9.4 MB, over five times per call). */
    for (fc_int kh = 0; kh < KH; kh++)
        for (fc_int kw = 0; kw < KW; kw++) {
            fc_int r = kh * KW + kw, npix = 0;
            for (fc_int oh = 0; oh < OH; oh++) {
                fc_int ih = oh * sh - ph + kh * dh;
                if (ih < 0 || ih >= H) continue;
                for (fc_int ow = 0; ow < OW; ow++) {
                    fc_int iw = ow * sw - pw + kw * dw;
                    if (iw < 0 || iw >= W) continue;
                    q[npix] = oh * OW + ow;
                    src[npix++] = ih * W + iw;
                }
            }
            fc_int cols = N * npix;
            if (cols == 0) {                /* the tap only ever reads padding */
                for (fc_int m = 0; m < M; m++)
                    for (fc_int c = 0; c < C; c++) Dt[m * Kt + r * C + c] = 0;
                continue;
            }
            /* dY's columns of those pixels and their inputs (rows: image, pixel) */
            #pragma omp parallel for schedule(static) num_threads(nthreads) \
                if (nthreads > 1 && (double)cols * (M + C) > FC_PARALLEL_GRAIN)
            for (fc_int col = 0; col < cols; col++) {
                fc_int n = col / npix, k = col - n * npix;
                for (fc_int m = 0; m < M; m++) A[m * cols + col] = dy[(n * M + m) * OHW + q[k]];
                FC_TB *pr = P + col * C;
                const FC_TB *xs = x + n * C * HW + src[k];
                for (fc_int c = 0; c < C; c++) pr[c] = xs[c * HW];
            }
            FC_GEMM(M, C, cols, (FC_TC)1, A, cols, 1, P, C, 1, (FC_TC)0, Dt + r * C, Kt,
                    nthreads);
        }
    /* tap-major back to (m, c, tap) */
    #pragma omp parallel for schedule(static) num_threads(nthreads) \
        if (nthreads > 1 && (double)M * Kt > FC_PARALLEL_GRAIN)
    for (fc_int m = 0; m < M; m++)
        for (fc_int r = 0; r < KK; r++)
            for (fc_int c = 0; c < C; c++) dwt_out[m * Kt + c * KK + r] = Dt[m * Kt + r * C + c];
    free(q);
    return 0;
}
#endif

void FC_GEMM(fc_int M, fc_int N, fc_int K, FC_TC alpha,
             const FC_TA *A, fc_int rsa, fc_int csa,
             const FC_TB *Bm, fc_int rsb, fc_int csb,
             FC_TC beta, FC_TC *C, fc_int ldc, int nthreads)
{
    fc_bsrc_t B = {0};
    B.kind = FC_B_MATRIX;
    B.ptr = Bm;
    B.rs = rsb;
    B.cs = csb;
    FC_GEMM_EX(M, N, K, alpha, A, rsa, csa, &B, beta, C, ldc, NULL, nthreads);
}
#undef FC_A2P
#undef FC_B2P
#undef FC_A2C
#undef FC_B2C
#undef FC_UKP
