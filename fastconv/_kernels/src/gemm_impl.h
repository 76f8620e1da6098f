/* GEMM framework, instantiated once per precision by gemm.c.
 * Expects FC_T (element type), FC_KT (kernel descriptor type), FC_GET_KERNEL() and
 * FC_GEMM (the function name) to be defined.
 *
 * Loop order (Goto/BLIS): jc over NC columns, pc over KC depth, ic over MC rows; inside,
 * the packed MC x KC block of A and KC x NC panel of B are swept by MR x NR micro-tiles.
 * Threads share the packing work and split the micro-tiles of each (jc, pc, ic) block
 * statically; the K order of every element is fixed, so bits never depend on threads.
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

static void FC_CAT(pack_b_, FC_T)(fc_int nc, fc_int kc, const FC_T *B, fc_int rsb, fc_int csb,
                                  int nr, fc_int jp, FC_T *Bp)
{
    /* one NR-column panel: Bp[p*nr + j] = B[p, (jp*nr + j)], columns past nc zero-filled */
    fc_int j0 = jp * nr;
    int n = (int)((nc - j0) < nr ? (nc - j0) : nr);
    FC_T *dst = Bp + jp * nr * kc;
    const FC_T *src = B + j0 * csb;
    if (csb == 1) {
        for (fc_int p = 0; p < kc; p++) {
            const FC_T *row = src + p * rsb;
            FC_T *d = dst + p * nr;
            for (int j = 0; j < n; j++) d[j] = row[j];
            for (int j = n; j < nr; j++) d[j] = 0;
        }
    } else {
        for (fc_int p = 0; p < kc; p++) {
            const FC_T *row = src + p * rsb;
            FC_T *d = dst + p * nr;
            for (int j = 0; j < n; j++) d[j] = row[j * csb];
            for (int j = n; j < nr; j++) d[j] = 0;
        }
    }
}

void FC_GEMM(fc_int M, fc_int N, fc_int K, FC_T alpha,
             const FC_T *A, fc_int rsa, fc_int csa,
             const FC_T *B, fc_int rsb, fc_int csb,
             FC_T beta, FC_T *C, fc_int ldc, int nthreads)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0) {
        for (fc_int i = 0; i < M; i++)
            for (fc_int j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        return;
    }
    const FC_KT *kd = FC_GET_KERNEL();
    const int mr = kd->mr, nr = kd->nr;
    const fc_int MC = kd->mc, KC = kd->kc, NC = kd->nc;
    fc_int mc_max = M < MC ? M : MC, kc_max = K < KC ? K : KC, nc_max = N < NC ? N : NC;
    fc_int a_elems = ((mc_max + mr - 1) / mr) * mr * kc_max;
    fc_int b_elems = ((nc_max + nr - 1) / nr) * nr * kc_max;
    FC_T *Ap = fc_aligned_alloc(a_elems * sizeof(FC_T));
    FC_T *Bp = fc_aligned_alloc(b_elems * sizeof(FC_T));
    if (!Ap || !Bp) { free(Ap); free(Bp); return; }  /* callers pre-check sizes */
    if (nthreads < 1) nthreads = 1;
    /* tiny problems: threads cost more than they give */
    if ((double)M * N * K < 64.0 * 64 * 64) nthreads = 1;

    #pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        for (fc_int jc = 0; jc < N; jc += NC) {
            fc_int nc = (N - jc) < NC ? (N - jc) : NC;
            fc_int njp = (nc + nr - 1) / nr;
            for (fc_int pc = 0; pc < K; pc += KC) {
                fc_int kc = (K - pc) < KC ? (K - pc) : KC;
                FC_T beta_eff = pc == 0 ? beta : (FC_T)1;
                #pragma omp for schedule(static)
                for (fc_int jp = 0; jp < njp; jp++)
                    FC_CAT(pack_b_, FC_T)(nc, kc, B + pc * rsb + jc * csb, rsb, csb, nr, jp, Bp);
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
                        kd->ukr(kc, Ap + ip * mr * kc, Bp + jp * nr * kc,
                                C + (ic + i0) * ldc + jc + j0, ldc, m, n, alpha, beta_eff);
                    }
                }
            }
        }
    }
    free(Ap);
    free(Bp);
}
