/* The int8 convolution driver, written once for every micro-kernel (qgemm.h): weight
 * packing, the im2col gather of u8 patches (padding = the zero point), the tiling over
 * (pixels x output channels) and the threads; the portable micro-kernel; the direct
 * depthwise kernel. */
#include <string.h>
#include "cpu.h"
#include "qgemm.h"
#include "workspace.h"

#define ROUND_UP(a, b) (((a) + (b) - 1) / (b) * (b))

fc_int fc_qpack_size(const fc_qkernel_t *k, fc_int K, fc_int cout)
{
    return ROUND_UP(cout, k->nr) * ROUND_UP(K, 4);
}

void fc_qpack(const fc_qkernel_t *k, const int8_t *w, fc_int K, fc_int cout, int8_t *bp)
{
    const fc_int NR = k->nr, Kq = ROUND_UP(K, 4) / 4, np = ROUND_UP(cout, NR) / NR;
    for (fc_int p = 0; p < np; p++)
        for (fc_int q = 0; q < Kq; q++)
            for (fc_int j = 0; j < NR; j++)
                for (fc_int i = 0; i < 4; i++) {
                    fc_int kk = 4 * q + i, c = p * NR + j;
                    *bp++ = (kk < K && c < cout) ? w[kk * cout + c] : 0;
                }
}

/* The im2col row of output pixel (n, oh, ow): the KH*KW taps' C-byte runs in (kh, kw)
 * order, the zero point where a tap falls in the padding, 0 up to Kp. */
static void im2col_row(const uint8_t *x, const fc_qgeom_t *g, fc_int n, fc_int oh,
                       fc_int ow, uint8_t *row, fc_int Kp)
{
    const fc_int C = g->c;
    uint8_t *p = row;
    for (fc_int i = 0; i < g->kh; i++) {
        const fc_int ih = oh * g->sh - g->ph + i * g->dh;
        for (fc_int j = 0; j < g->kw; j++, p += C) {
            const fc_int iw = ow * g->sw - g->pw + j * g->dw;
            if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) {
                memset(p, g->zp, (size_t)C);
            } else if (C < 16) {              /* a first layer's 3 channels: no call */
                const uint8_t *src = x + ((n * g->h + ih) * g->w + iw) * C;
                for (fc_int c = 0; c < C; c++) p[c] = src[c];
            } else {
                memcpy(p, x + ((n * g->h + ih) * g->w + iw) * C, (size_t)C);
            }
        }
    }
    memset(p, 0, (size_t)(row + Kp - p));
}

/* The indirection table of rows m0..m0+rows-1 (rounded up to MR: the rows past the end
 * repeat the last): per row, the pointer of each tap's C input bytes, or the zero-point
 * row for a tap in the padding. */
static void indirect_rows(const uint8_t *x, const fc_qgeom_t *g, fc_int m0, fc_int rows,
                          fc_int MR, const uint8_t *zrow, const uint8_t **ptrs)
{
    const fc_int C = g->c, ohw = g->oh * g->ow, T = g->kh * g->kw;
    const fc_int padded = (rows + MR - 1) / MR * MR;
    fc_int n = m0 / ohw, oh = (m0 % ohw) / g->ow, ow = m0 % g->ow;   /* then stepped */
    for (fc_int i = 0; i < padded; i++) {
        const uint8_t **p = ptrs + i * T;
        if (i >= rows) {                    /* past the end: repeat the last row */
            memcpy(p, p - T, (size_t)T * sizeof(*p));
            continue;
        }
        const fc_int ih0 = oh * g->sh - g->ph, iw0 = ow * g->sw - g->pw;
        if (ih0 >= 0 && ih0 + (g->kh - 1) * g->dh < g->h && iw0 >= 0 &&
            iw0 + (g->kw - 1) * g->dw < g->w) {          /* inside: no checks per tap */
            const uint8_t *base = x + ((n * g->h + ih0) * g->w + iw0) * C;
            for (fc_int a = 0; a < g->kh; a++, base += g->dh * g->w * C)
                for (fc_int b = 0; b < g->kw; b++)
                    *p++ = base + b * g->dw * C;
        } else {
            for (fc_int a = 0; a < g->kh; a++) {
                const fc_int ih = ih0 + a * g->dh;
                for (fc_int b = 0; b < g->kw; b++) {
                    const fc_int iw = iw0 + b * g->dw;
                    *p++ = (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w)
                               ? zrow : x + ((n * g->h + ih) * g->w + iw) * C;
                }
            }
        }
        if (++ow == g->ow) {                /* no divisions per row: they cost more */
            ow = 0;                         /* than the row's pointers */
            if (++oh == g->oh) {
                oh = 0;
                n++;
            }
        }
    }
}

/* Rows per tile: the tile's im2col block stays in L2 (about 192 KiB), whole MRs. */
static fc_int tile_rows(const fc_qkernel_t *k, fc_int Kp, fc_int M)
{
    fc_int mt = (192 * 1024 / Kp) / k->mr * k->mr;
    if (mt < k->mr) mt = k->mr;
    if (mt > 256) mt = 256;
    return mt > ROUND_UP(M, k->mr) ? ROUND_UP(M, k->mr) : mt;
}

int fc_qconv(const fc_qkernel_t *k, const uint8_t *x, const fc_qgeom_t *g, const int8_t *bp,
             fc_int cout, const fc_qepi_t *e, int nthreads)
{
    const fc_int K = g->kh * g->kw * g->c, Kp = ROUND_UP(K, 4), Kq = Kp / 4;
    const fc_int M = g->n * g->oh * g->ow, NR = k->nr, MR = k->mr;
    const fc_int npanel = ROUND_UP(cout, NR) / NR;
    /* 1x1, stride 1, no padding, C a multiple of 4: the input is the im2col matrix */
    const int direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 &&
                       g->ph == 0 && g->pw == 0 && g->c % 4 == 0;
    /* C a multiple of 4: the rows gathered through pointers, no im2col copy */
    const int indirect = !direct && g->c % 4 == 0;
    const fc_int T = g->kh * g->kw;
    const fc_int MT = tile_rows(k, Kp, M), nmt = (M + MT - 1) / MT;
    /* too few row tiles for the threads: split the output channels too */
    fc_int nnt = 1;
    if (nmt < 2 * nthreads) {
        nnt = (2 * nthreads + nmt - 1) / nmt;
        if (nnt > npanel) nnt = npanel;
    }
    const fc_int ppt = (npanel + nnt - 1) / nnt;        /* panels per column tile */
    nnt = (npanel + ppt - 1) / ppt;
    const fc_int ntiles = nmt * nnt;
    int failed = 0;
    if ((fc_int)nthreads > ntiles) nthreads = (int)ntiles;
    if (nthreads < 1) nthreads = 1;
    if ((double)M * Kp * cout < 1e6) nthreads = 1;      /* a parallel region costs more */

#pragma omp parallel for schedule(static) num_threads(nthreads) reduction(|:failed)
    for (fc_int t = 0; t < ntiles; t++) {
        const fc_int m0 = (t / nnt) * MT, p0 = (t % nnt) * ppt;
        const fc_int mrows = M - m0 < MT ? M - m0 : MT;
        const fc_int p1 = p0 + ppt < npanel ? p0 + ppt : npanel;
        const uint8_t *a;
        fc_int lda;
        const uint8_t **ptrs = NULL;
        if (direct) {
            a = x + m0 * g->c;
            lda = g->c;
        } else if (indirect) {
            const fc_int padded = (mrows + MR - 1) / MR * MR;
            void *buf = fc_workspace(FC_WS_PACK, (size_t)(padded * T) * sizeof(void *) +
                                                 (size_t)g->c);
            if (!buf) {
                fc_workspace_flag_error();
                failed = 1;
                continue;
            }
            ptrs = (const uint8_t **)buf;
            uint8_t *zrow = (uint8_t *)buf + (size_t)(padded * T) * sizeof(void *);
            memset(zrow, g->zp, (size_t)g->c);
            indirect_rows(x, g, m0, mrows, MR, zrow, ptrs);
            a = NULL;
            lda = 0;
        } else {
            uint8_t *buf = fc_workspace(FC_WS_PACK, (size_t)(MT * Kp));
            if (!buf) {
                fc_workspace_flag_error();
                failed = 1;
                continue;
            }
            const fc_int ohw = g->oh * g->ow;
            fc_int n = m0 / ohw, oh = (m0 % ohw) / g->ow, ow = m0 % g->ow;
            for (fc_int r = 0; r < mrows; r++) {
                im2col_row(x, g, n, oh, ow, buf + r * Kp, Kp);
                if (++ow == g->ow) {
                    ow = 0;
                    if (++oh == g->oh) {
                        oh = 0;
                        n++;
                    }
                }
            }
            a = buf;
            lda = Kp;
        }
        for (fc_int p = p0; p < p1; p++) {
            const fc_int c0 = p * NR;
            const int nr = (int)(cout - c0 < NR ? cout - c0 : NR);
            for (fc_int r = 0; r < mrows; r += MR) {
                const int mr = (int)(mrows - r < MR ? mrows - r : MR);
                if (ptrs)
                    k->itile(T, g->c / 4, ptrs + r * T, bp + p * Kq * 4 * NR, mr, nr, e,
                             m0 + r, c0);
                else
                    k->tile(Kq, a + r * lda, lda, bp + p * Kq * 4 * NR, mr, nr, e, m0 + r, c0);
            }
        }
    }
    return failed ? -1 : 0;
}

void fc_qdwconv(const uint8_t *x, const fc_qgeom_t *g, const int8_t *w, const fc_qepi_t *e,
                int nthreads)
{
    const fc_int C = g->c, rows = g->n * g->oh;
    if ((double)rows * g->ow * C * g->kh * g->kw < 1e6) nthreads = 1;
#pragma omp parallel num_threads(nthreads)
    {
        int32_t acc[256];
#pragma omp for schedule(static)
        for (fc_int r = 0; r < rows; r++) {
            const fc_int n = r / g->oh, oh = r % g->oh;
            for (fc_int ow = 0; ow < g->ow; ow++) {
                const fc_int orow = r * g->ow + ow;
                for (fc_int c0 = 0; c0 < C; c0 += 256) {
                    const fc_int nc = C - c0 < 256 ? C - c0 : 256;
                    for (fc_int c = 0; c < nc; c++) acc[c] = 0;
                    for (fc_int i = 0; i < g->kh; i++) {
                        const fc_int ih = oh * g->sh - g->ph + i * g->dh;
                        for (fc_int j = 0; j < g->kw; j++) {
                            const fc_int iw = ow * g->sw - g->pw + j * g->dw;
                            const int8_t *wt = w + (i * g->kw + j) * C + c0;
                            if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) {
                                for (fc_int c = 0; c < nc; c++)
                                    acc[c] += (int32_t)g->zp * wt[c];
                            } else {
                                const uint8_t *xp = x + ((n * g->h + ih) * g->w + iw) * C + c0;
                                for (fc_int c = 0; c < nc; c++)
                                    acc[c] += (int32_t)xp[c] * wt[c];
                            }
                        }
                    }
                    for (fc_int c = 0; c < nc; c++)
                        fc_qepi_store(acc[c], e, orow, c0 + c);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ portable kernel */

#define G_MR 4
#define G_NR 16

static void tile_generic(fc_int kq, const uint8_t *a, fc_int lda, const int8_t *b, int mr,
                         int nr, const fc_qepi_t *e, fc_int row0, fc_int col0)
{
    int32_t acc[G_MR][G_NR] = {{0}};
    for (fc_int q = 0; q < kq; q++, b += 4 * G_NR)
        for (int i = 0; i < mr; i++) {
            const uint8_t *ap = a + i * lda + 4 * q;
            for (int j = 0; j < G_NR; j++)
                acc[i][j] += ap[0] * b[4 * j] + ap[1] * b[4 * j + 1] + ap[2] * b[4 * j + 2] +
                             ap[3] * b[4 * j + 3];
        }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++)
            fc_qepi_store(acc[i][j], e, row0 + i, col0 + j);
}

static void itile_generic(fc_int ntaps, fc_int cq, const uint8_t *const *ptrs,
                          const int8_t *b, int mr, int nr, const fc_qepi_t *e, fc_int row0,
                          fc_int col0)
{
    int32_t acc[G_MR][G_NR] = {{0}};
    for (fc_int t = 0; t < ntaps; t++)
        for (fc_int q = 0; q < cq; q++, b += 4 * G_NR)
            for (int i = 0; i < mr; i++) {
                const uint8_t *ap = ptrs[i * ntaps + t] + 4 * q;
                for (int j = 0; j < G_NR; j++)
                    acc[i][j] += ap[0] * b[4 * j] + ap[1] * b[4 * j + 1] +
                                 ap[2] * b[4 * j + 2] + ap[3] * b[4 * j + 3];
            }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++)
            fc_qepi_store(acc[i][j], e, row0 + i, col0 + j);
}

const fc_qkernel_t fc_qkernel_generic = {0, G_MR, G_NR, "generic", tile_generic,
                                         itile_generic};
