/* GEMM framework, instantiated once per precision by gemm.c.
 * Expects FC_T (element type), FC_KT (kernel descriptor type), FC_GET_KERNEL(),
 * FC_GEMM_EX and FC_GEMM (function names) to be defined.
 *
 * Loop order (Goto/BLIS): jc over NC columns, pc over KC depth, ic over MC rows; inside,
 * the packed MC x KC block of A and KC x NC panel of B are swept by MR x NR micro-tiles.
 * Threads share the packing work and split the micro-tiles of each (jc, pc, ic) block
 * statically; the K order of every element is fixed, so bits never depend on threads.
 *
 * B may be a strided matrix or an image read through im2col indexing (implicit GEMM):
 * only the packing routine differs, the micro-kernels never know.
 */
static void FC_CAT(pack_a_, FC_T)(fc_int mc, fc_int kc, const FC_T *A, fc_int rsa, fc_int csa,
                                  int mr, fc_int ip, FC_T *Ap)
{
    /* one MR-row panel: Ap[p*mr + i] = A[(ip*mr + i), p], rows past mc zero-filled */
    fc_int i0 = ip * mr;
    int m = (int)((mc - i0) < mr ? (mc - i0) : mr);
    FC_T *dst = Ap + ip * mr * kc;
    const FC_T *src = A + i0 * rsa;
    if (csa == 1) {
#ifdef FC_TRANSPOSE8
        if (mr == 8 && m == 8 && FC_HAS_TRANSPOSE8()) {
            fc_int p = 0;
            for (; p + 8 <= kc; p += 8) FC_TRANSPOSE8(src + p, rsa, dst + p * 8, 8);
            for (; p < kc; p++)
                for (int i = 0; i < 8; i++) dst[p * 8 + i] = src[i * rsa + p];
            return;
        }
#endif
        for (int i = 0; i < m; i++) {
            const FC_T *row = src + i * rsa;
            for (fc_int p = 0; p < kc; p++) dst[p * mr + i] = row[p];
        }
    } else {
        for (fc_int p = 0; p < kc; p++) {
            const FC_T *col = src + p * csa;
            for (int i = 0; i < m; i++) dst[p * mr + i] = col[i * rsa];
        }
    }
    if (m < mr)
        for (fc_int p = 0; p < kc; p++)
            for (int i = m; i < mr; i++) dst[p * mr + i] = 0;
}

/* B[p0 + p, j0 + j] for p < kc, j < n into dst[p*nr + j]; columns n..nr zero. */
static void FC_CAT(pack_b_matrix_, FC_T)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0,
                                         int n, int nr, FC_T *dst)
{
    const FC_T *src = (const FC_T *)B->ptr + p0 * B->rs + j0 * B->cs;
    fc_int rs = B->rs, cs = B->cs;
    if (cs == 1) {
        for (fc_int p = 0; p < kc; p++) {
            const FC_T *row = src + p * rs;
            FC_T *d = dst + p * nr;
            for (int j = 0; j < n; j++) d[j] = row[j];
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
                    for (int r = 0; r < 8; r++) dst[p * nr + j + r] = src[(j + r) * cs + p];
            }
#endif
        for (; j < n; j++) {
            const FC_T *col = src + j * cs;
            for (fc_int p = 0; p < kc; p++) dst[p * nr + j] = col[p];
        }
        for (fc_int p = 0; p < kc; p++)
            for (int j = n; j < nr; j++) dst[p * nr + j] = 0;
    } else {
        for (fc_int p = 0; p < kc; p++) {
            const FC_T *row = src + p * rs;
            FC_T *d = dst + p * nr;
            for (int j = 0; j < n; j++) d[j] = row[j * cs];
            for (int j = n; j < nr; j++) d[j] = 0;
        }
    }
}

/* One output row segment of im2col: d[t] = x[ih, iw0 + t*sw] for t < len (0 outside). */
static inline void FC_CAT(gather_row_, FC_T)(const FC_T *plane, fc_int H, fc_int W, fc_int ih,
                                             fc_int iw0, fc_int sw, fc_int len, FC_T *d,
                                             fc_int dstride)
{
    if (ih < 0 || ih >= H) {
        for (fc_int t = 0; t < len; t++) d[t * dstride] = 0;
        return;
    }
    const FC_T *row = plane + ih * W;
    if (sw == 1) {
        fc_int lo = iw0 >= 0 ? 0 : -iw0, hi = W - iw0;
        if (lo > len) lo = len;
        if (hi > len) hi = len;
        if (hi < lo) hi = lo;
        for (fc_int t = 0; t < lo; t++) d[t * dstride] = 0;
        if (dstride == 1) {
            for (fc_int t = lo; t < hi; t++) d[t] = row[iw0 + t];
        } else {
            for (fc_int t = lo; t < hi; t++) d[t * dstride] = row[iw0 + t];
        }
        for (fc_int t = hi; t < len; t++) d[t * dstride] = 0;
    } else {
        for (fc_int t = 0; t < len; t++) {
            fc_int iw = iw0 + t * sw;
            d[t * dstride] = (iw >= 0 && iw < W) ? row[iw] : 0;
        }
    }
}

/* The im2col values of tap (kh, kw) for `count` consecutive output pixels from q0, into
 * d[t * dstride]: walked one output row at a time so interior segments are copies. */
static void FC_CAT(gather_pixels_, FC_T)(const fc_conv_geom_t *g, const FC_T *plane, fc_int kh,
                                         fc_int kw, fc_int q0, fc_int count, FC_T *d,
                                         fc_int dstride)
{
    fc_int oh = q0 / g->OW, ow = q0 % g->OW, t = 0;
    while (t < count) {
        fc_int len = g->OW - ow < count - t ? g->OW - ow : count - t;
        FC_CAT(gather_row_, FC_T)(plane, g->H, g->W, oh * g->sh - g->ph + kh * g->dh,
                                  ow * g->sw - g->pw + kw * g->dw, g->sw, len, d + t * dstride,
                                  dstride);
        t += len;
        oh++;
        ow = 0;
    }
}

/* im2col rows (c, kh, kw) = p0.., columns pixels j0..: walk each row's pixel range one
 * output row at a time so interior segments are plain copies. */
static void FC_CAT(pack_b_im2col_, FC_T)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0,
                                         int n, int nr, FC_T *dst)
{
    const fc_conv_geom_t *g = &B->g;
    const FC_T *x = (const FC_T *)B->ptr;
    fc_int KK = g->KH * g->KW;
    for (fc_int p = 0; p < kc; p++) {
        fc_int q = p0 + p, c = q / KK, r = q % KK, kh = r / g->KW, kw = r % g->KW;
        FC_T *d = dst + p * nr;
        FC_CAT(gather_pixels_, FC_T)(g, x + c * g->H * g->W, kh, kw, j0, n, d, 1);
        for (int j = n; j < nr; j++) d[j] = 0;
    }
}

/* Transposed im2col: rows pixels p0.., columns (c, kh, kw) j0.. (weight gradients). */
static void FC_CAT(pack_b_im2col_t_, FC_T)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0,
                                           int n, int nr, FC_T *dst)
{
    const fc_conv_geom_t *g = &B->g;
    const FC_T *x = (const FC_T *)B->ptr;
    fc_int KK = g->KH * g->KW;
    fc_int OHW = g->OH * g->OW;
    for (int j = 0; j < n; j++) {
        fc_int q = j0 + j, c = q / KK, r = q % KK, kh = r / g->KW, kw = r % g->KW;
        for (fc_int p = p0; p < p0 + kc;) {          /* one segment per stacked image */
            fc_int img = g->nimg > 1 ? p / OHW : 0, q0 = p - img * OHW;
            fc_int len = OHW - q0 < p0 + kc - p ? OHW - q0 : p0 + kc - p;
            FC_CAT(gather_pixels_, FC_T)(g, x + img * g->istride + c * g->H * g->W, kh, kw,
                                         q0, len, dst + (p - p0) * nr + j, nr);
            p += len;
        }
    }
    for (fc_int p = 0; p < kc; p++)
        for (int j = n; j < nr; j++) dst[p * nr + j] = 0;
}

static void FC_CAT(pack_b_offsets_, FC_T)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0,
                                          int n, int nr, FC_T *dst)
{
    const FC_T *base = (const FC_T *)B->ptr + j0;
    for (fc_int p = 0; p < kc; p++) {
        const FC_T *src = base + B->off[p0 + p];
        FC_T *d = dst + p * nr;
        for (int j = 0; j < n; j++) d[j] = src[j];
        for (int j = n; j < nr; j++) d[j] = 0;
    }
}

static void FC_CAT(pack_b_offsets_t_, FC_T)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0,
                                            int n, int nr, FC_T *dst)
{
    const FC_T *base = (const FC_T *)B->ptr + p0;
    for (int j = 0; j < n; j++) {
        const FC_T *src = base + B->off[j0 + j];
        for (fc_int p = 0; p < kc; p++) dst[p * nr + j] = src[p];
    }
    for (fc_int p = 0; p < kc; p++)
        for (int j = n; j < nr; j++) dst[p * nr + j] = 0;
}

static void FC_CAT(pack_b_, FC_T)(const fc_bsrc_t *B, fc_int p0, fc_int kc, fc_int j0, int n,
                                  int nr, FC_T *dst)
{
    switch (B->kind) {
    case FC_B_OFFSETS: FC_CAT(pack_b_offsets_, FC_T)(B, p0, kc, j0, n, nr, dst); break;
    case FC_B_OFFSETS_T: FC_CAT(pack_b_offsets_t_, FC_T)(B, p0, kc, j0, n, nr, dst); break;
    case FC_B_IM2COL: FC_CAT(pack_b_im2col_, FC_T)(B, p0, kc, j0, n, nr, dst); break;
    case FC_B_IM2COL_T: FC_CAT(pack_b_im2col_t_, FC_T)(B, p0, kc, j0, n, nr, dst); break;
    default: FC_CAT(pack_b_matrix_, FC_T)(B, p0, kc, j0, n, nr, dst); break;
    }
}

static void FC_CAT(epilogue_, FC_T)(FC_T *c, fc_int ldc, int m, int n, const FC_T *bias,
                                    int relu)
{
    for (int i = 0; i < m; i++) {
        FC_T *ci = c + i * ldc, b = bias ? bias[i] : 0;
        if (relu)
            for (int j = 0; j < n; j++) { FC_T v = ci[j] + b; ci[j] = v <= 0 ? 0 : v; }
        else
            for (int j = 0; j < n; j++) ci[j] += b;
    }
}

void FC_GEMM_EX(fc_int M, fc_int N, fc_int K, FC_T alpha,
                const FC_T *A, fc_int rsa, fc_int csa, const fc_bsrc_t *B,
                FC_T beta, FC_T *C, fc_int ldc, const fc_epilogue_t *ep, int nthreads)
{
    const FC_T *bias = ep ? (const FC_T *)ep->row_bias : NULL;
    int relu = ep ? ep->relu : 0;
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0) {
        for (fc_int i = 0; i < M; i++)
            for (fc_int j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        if (bias || relu) FC_CAT(epilogue_, FC_T)(C, ldc, (int)M, (int)N, bias, relu);
        return;
    }
    if (B->kind == FC_B_MATRIX && (double)M * N * K <= 8192.0) {
        /* tiny (a classifier head on one image): packing would cost more than the maths;
         * plain dot products, the same for any thread count */
        const FC_T *Bm = (const FC_T *)B->ptr;
        for (fc_int i = 0; i < M; i++)
            for (fc_int j = 0; j < N; j++) {
                FC_T acc = 0;
                for (fc_int p = 0; p < K; p++) acc += A[i * rsa + p * csa] * Bm[p * B->rs + j * B->cs];
                C[i * ldc + j] = beta == 0 ? alpha * acc : alpha * acc + beta * C[i * ldc + j];
            }
        if (bias || relu) FC_CAT(epilogue_, FC_T)(C, ldc, (int)M, (int)N, bias, relu);
        return;
    }
    const FC_KT *kd = FC_GET_KERNEL();
    const int mr = kd->mr, nr = kd->nr;
    const fc_int MC = kd->mc, KC = kd->kc, NC = kd->nc;
    fc_int mc_max = M < MC ? M : MC, kc_max = K < KC ? K : KC, nc_max = N < NC ? N : NC;
    fc_int a_elems = ((mc_max + mr - 1) / mr) * mr * kc_max;
    fc_int b_elems = ((nc_max + nr - 1) / nr) * nr * kc_max;
    size_t a_bytes = ((size_t)a_elems * sizeof(FC_T) + 63) & ~(size_t)63;
    char *ws = fc_workspace(a_bytes + (size_t)b_elems * sizeof(FC_T));
    if (!ws) { fc_gemm_flag_error(); return; }   /* reported by fc_gemm_take_error() */
    FC_T *Ap = (FC_T *)ws, *Bp = (FC_T *)(ws + a_bytes);
    if (nthreads < 1) nthreads = 1;
    if ((double)M * N * K < 64.0 * 64 * 64) nthreads = 1;   /* threads cost more than they give */

    #pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        for (fc_int jc = 0; jc < N; jc += NC) {
            fc_int nc = (N - jc) < NC ? (N - jc) : NC;
            fc_int njp = (nc + nr - 1) / nr;
            for (fc_int pc = 0; pc < K; pc += KC) {
                fc_int kc = (K - pc) < KC ? (K - pc) : KC;
                int last = pc + kc >= K;
                FC_T beta_eff = pc == 0 ? beta : (FC_T)1;
                #pragma omp for schedule(static)
                for (fc_int jp = 0; jp < njp; jp++) {
                    fc_int j0 = jp * nr;
                    int n = (int)((nc - j0) < nr ? (nc - j0) : nr);
                    FC_CAT(pack_b_, FC_T)(B, pc, kc, jc + j0, n, nr, Bp + jp * nr * kc);
                }
                for (fc_int ic = 0; ic < M; ic += MC) {
                    fc_int mc = (M - ic) < MC ? (M - ic) : MC;
                    fc_int nip = (mc + mr - 1) / mr;
                    #pragma omp for schedule(static)
                    for (fc_int ip = 0; ip < nip; ip++)
                        FC_CAT(pack_a_, FC_T)(mc, kc, A + ic * rsa + pc * csa, rsa, csa, mr, ip, Ap);
                    fc_int ntiles = nip * njp;
                    #pragma omp for schedule(static)
                    for (fc_int t = 0; t < ntiles; t++) {
                        fc_int jp = t / nip, ip = t % nip;
                        fc_int i0 = ip * mr, j0 = jp * nr;
                        int m = (int)((mc - i0) < mr ? (mc - i0) : mr);
                        int n = (int)((nc - j0) < nr ? (nc - j0) : nr);
                        FC_T *ct = C + (ic + i0) * ldc + jc + j0;
                        kd->ukr(kc, Ap + ip * mr * kc, Bp + jp * nr * kc, ct, ldc, m, n,
                                alpha, beta_eff);
                        if (last && (bias || relu))
                            FC_CAT(epilogue_, FC_T)(ct, ldc, m, n, bias ? bias + ic + i0 : NULL,
                                                    relu);
                    }
                }
            }
        }
    }
}

void FC_GEMM(fc_int M, fc_int N, fc_int K, FC_T alpha,
             const FC_T *A, fc_int rsa, fc_int csa,
             const FC_T *Bm, fc_int rsb, fc_int csb,
             FC_T beta, FC_T *C, fc_int ldc, int nthreads)
{
    fc_bsrc_t B = {0};
    B.kind = FC_B_MATRIX;
    B.ptr = Bm;
    B.rs = rsb;
    B.cs = csb;
    FC_GEMM_EX(M, N, K, alpha, A, rsa, csa, &B, beta, C, ldc, NULL, nthreads);
}
