/* Depthwise convolution plane kernels, instantiated per precision and ISA by depthwise.c
 * (FC_T, FC_ACC = accumulation type for weight grads, DW_NAME(x) = suffixed name).
 * Each works on one (image, channel) plane, a row at a time: for each tap, a
 * contiguous axpy / dot over the output columns whose input column is in range. */

/* relu: 0 none, 1 ReLU (v <= 0 ? +0 : v), 2 then the clamp at 6 (ReLU6); NaN kept */
static inline FC_T DW_NAME(act)(FC_T v, int relu)
{
    v = relu && v <= 0 ? 0 : v;
    return relu == 2 && v >= 6 ? 6 : v;
}

static inline void DW_NAME(range)(fc_int off, fc_int s, fc_int n_out, fc_int n_in,
                                  fc_int *lo, fc_int *hi)
{
    fc_int a = off < 0 ? (-off + s - 1) / s : 0;
    fc_int b = n_in > off ? (n_in - off + s - 1) / s : 0;
    if (b > n_out) b = n_out;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* Each tap column's output range [lo, hi) depends on the column alone: computed once
 * per plane (two divisions each), not once per output row and tap row, where the
 * divisions cost more than a narrow row's products (a 16-wide stride-2 plane: 2x).
 * Returns 0 when KW exceeds the table (the callers then compute them in place). */
#ifndef DW_COLS_MAX
#define DW_COLS_MAX 32
#endif
static inline int DW_NAME(col_ranges)(fc_int KW, const fc_dwgeom_t *g, fc_int OW, fc_int W,
                                      fc_int *lo, fc_int *hi)
{
    if (KW > DW_COLS_MAX) return 0;
    for (fc_int kw = 0; kw < KW; kw++)
        DW_NAME(range)(kw * g->dw - g->pw, g->sw, OW, W, &lo[kw], &hi[kw]);
    return 1;
}

/* Stride 2 across (dilation 1) on planes up to FC_DW_S2_MAX values: the plane is split
 * once into its even and odd columns, so every tap reads one of them contiguously
 * (vectorised) instead of every other value; the same products are added in the same
 * order as the strided loop, so the same bits. */
#ifndef FC_DW_S2_MAX
#define FC_DW_S2_MAX 16384      /* plane values split on the stack (64 KB of float) */
#endif

static int DW_NAME(fwd_plane_s2)(const FC_T *restrict x, fc_int H, fc_int W,
                                 const FC_T *restrict w, fc_int KH, fc_int KW,
                                 FC_T *restrict y, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                                 FC_T bias, int relu);

/* y = relu?(bias + sum_taps w * x) for one plane. */
static void DW_NAME(fwd_plane)(const FC_T *restrict x, fc_int H, fc_int W,
                               const FC_T *restrict w, fc_int KH, fc_int KW,
                               FC_T *restrict y, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                               FC_T bias, int relu)
{
    if (g->sw == 2 && g->dw == 1 &&
        DW_NAME(fwd_plane_s2)(x, H, W, w, KH, KW, y, OH, OW, g, bias, relu))
        return;
    FC_T buf[FC_DW_S2_MAX];
    int split = g->sw == 2 && g->dw == 1 && H * W <= FC_DW_S2_MAX;
    fc_int WE = (W + 1) / 2, WO = W / 2;
    FC_T *restrict E = buf, *restrict O = buf + H * WE;
    if (split)
        for (fc_int ih = 0; ih < H; ih++) {
            const FC_T *restrict xr = x + ih * W;
            FC_T *restrict er = E + ih * WE, *restrict orow = O + ih * WO;
            for (fc_int i = 0; i < WO; i++) {
                er[i] = xr[2 * i];
                orow[i] = xr[2 * i + 1];
            }
            if (W & 1) er[WE - 1] = xr[W - 1];
        }
    fc_int clo[DW_COLS_MAX], chi[DW_COLS_MAX];
    int cols = DW_NAME(col_ranges)(KW, g, OW, W, clo, chi);
    for (fc_int oh = 0; oh < OH; oh++) {
        FC_T *restrict yr = y + oh * OW;
        for (fc_int ow = 0; ow < OW; ow++) yr[ow] = bias;
        for (fc_int kh = 0; kh < KH; kh++) {
            fc_int ih = oh * g->sh - g->ph + kh * g->dh;
            if (ih < 0 || ih >= H) continue;
            const FC_T *restrict xr = x + ih * W;
            for (fc_int kw = 0; kw < KW; kw++) {
                FC_T wv = w[kh * KW + kw];
                fc_int off = kw * g->dw - g->pw, lo, hi;
                if (cols) {
                    lo = clo[kw];
                    hi = chi[kw];
                } else {
                    DW_NAME(range)(off, g->sw, OW, W, &lo, &hi);
                }
                if (split) {        /* column 2 * ow + off = 2 * (ow + q) + (off & 1) */
                    fc_int q = off >= 0 ? off / 2 : -((-off + 1) / 2);
                    const FC_T *restrict src = ((off & 1) ? O + ih * WO : E + ih * WE) + q;
                    for (fc_int ow = lo; ow < hi; ow++) yr[ow] += wv * src[ow];
                } else if (g->sw == 1) {
                    const FC_T *restrict xs = xr + off;
                    for (fc_int ow = lo; ow < hi; ow++) yr[ow] += wv * xs[ow];
                } else {
                    for (fc_int ow = lo; ow < hi; ow++) yr[ow] += wv * xr[ow * g->sw + off];
                }
            }
        }
        if (relu)
            for (fc_int ow = 0; ow < OW; ow++) yr[ow] = DW_NAME(act)(yr[ow], relu);
    }
}

static int DW_NAME(bwd_plane_s2)(const FC_T *restrict x, const FC_T *restrict dy, fc_int H,
                                 fc_int W, const FC_T *restrict w, fc_int KH, fc_int KW,
                                 fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                                 FC_T *restrict dx, int assign, FC_ACC *restrict dw_acc);

/* dx = (assign) or += taps^T dy, dw_acc[tap] += <dy, shifted x>, for one plane. */
static void DW_NAME(bwd_plane)(const FC_T *restrict x, const FC_T *restrict dy, fc_int H,
                               fc_int W, const FC_T *restrict w, fc_int KH, fc_int KW,
                               fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                               FC_T *restrict dx, int assign, FC_ACC *restrict dw_acc)
{
    if (g->sw == 2 && g->dw == 1 &&
        DW_NAME(bwd_plane_s2)(x, dy, H, W, w, KH, KW, OH, OW, g, dx, assign, dw_acc))
        return;
    if (dx && assign)
        memset(dx, 0, (size_t)(H * W) * sizeof(FC_T));
    fc_int clo[DW_COLS_MAX], chi[DW_COLS_MAX];
    int cols = DW_NAME(col_ranges)(KW, g, OW, W, clo, chi);
    for (fc_int oh = 0; oh < OH; oh++) {
        const FC_T *restrict gr = dy + oh * OW;
        for (fc_int kh = 0; kh < KH; kh++) {
            fc_int ih = oh * g->sh - g->ph + kh * g->dh;
            if (ih < 0 || ih >= H) continue;
            const FC_T *restrict xr = x + ih * W;
            FC_T *restrict dxr = dx ? dx + ih * W : NULL;
            for (fc_int kw = 0; kw < KW; kw++) {
                fc_int off = kw * g->dw - g->pw, lo, hi;
                if (cols) {
                    lo = clo[kw];
                    hi = chi[kw];
                } else {
                    DW_NAME(range)(off, g->sw, OW, W, &lo, &hi);
                }
                if (g->sw == 1) {
                    if (dw_acc) {
                        const FC_T *restrict xs = xr + off;
                        FC_T s = 0;
                        for (fc_int ow = lo; ow < hi; ow++) s += gr[ow] * xs[ow];
                        dw_acc[kh * KW + kw] += s;
                    }
                    if (dxr) {
                        FC_T wv = w[kh * KW + kw];
                        FC_T *restrict ds = dxr + off;
                        for (fc_int ow = lo; ow < hi; ow++) ds[ow] += wv * gr[ow];
                    }
                } else {
                    if (dw_acc) {
                        FC_T s = 0;
                        for (fc_int ow = lo; ow < hi; ow++) s += gr[ow] * xr[ow * g->sw + off];
                        dw_acc[kh * KW + kw] += s;
                    }
                    if (dxr) {
                        FC_T wv = w[kh * KW + kw];
                        for (fc_int ow = lo; ow < hi; ow++) dxr[ow * g->sw + off] += wv * gr[ow];
                    }
                }
            }
        }
    }
}

/* Stride-1 fast path on zero-padded planes.  Rows are processed OWR = OW rounded up to
 * 16 wide so every loop is whole vectors: the padded input row width PWD is at least
 * OWR + dw*(KW-1); outputs go through a row of scratch (OWR) and the gradient row is
 * zero-extended there, so the extra lanes contribute nothing.  Weight-gradient sums
 * keep 16 lanes per tap for the whole plane (fixed order), reduced at the end. */
#define DW_LANES 16

/* One vector of DW_LANES values; unaligned loads and stores go through memcpy.  As a
 * GCC/Clang vector extension it is one zmm for float on AVX-512, but without AVX-512
 * GCC lowers 64-byte vectors through the stack (every splat and accumulator spilled:
 * the AVX2 depthwise kernels ran at a quarter of torch's speed).  An includer that sets
 * DW_VW (8 for AVX2) gets a pair of native DW_VW-lane vectors instead, with the same
 * lanes in the same order and the same operations per lane, so the same bits.  The
 * operations on vec go through the macros below. */
#undef DW_ZERO
#undef DW_SPLAT
#undef DW_FMA
#undef DW_FMAV
#undef DW_MULADDV
#undef DW_ADDV
#undef DW_RELU
#undef DW_SPLIT2
#undef DW_INTERLEAVE2
#undef DW_RELU_PART
#undef DW_RELU6_PART
#undef DW_RELU6
#undef DW_LOAD
#undef DW_STORE
#if defined(DW_VW) && DW_VW * 2 == DW_LANES
typedef FC_T DW_NAME(nvec) __attribute__((vector_size(DW_VW * sizeof(FC_T))));
typedef struct { DW_NAME(nvec) p0, p1; } DW_NAME(vec);
#define DW_ZERO(vec) ((vec){(DW_NAME(nvec)){0}, (DW_NAME(nvec)){0}})
/* v = the DW_LANES values at p / the values at p = v (part by part: a memcpy of the
 * pair went through the stack) */
#define DW_LOAD(v, p) do { __builtin_memcpy(&(v).p0, (p), sizeof (v).p0);                   \
                           __builtin_memcpy(&(v).p1, (p) + DW_VW, sizeof (v).p1); } while (0)
#define DW_STORE(p, v) do { __builtin_memcpy((p), &(v).p0, sizeof (v).p0);                  \
                            __builtin_memcpy((p) + DW_VW, &(v).p1, sizeof (v).p1); } while (0)
#define DW_SPLAT(vec, s) ((vec){(DW_NAME(nvec)){0} + (s), (DW_NAME(nvec)){0} + (s)})
/* acc += s * (the vector at p), s a scalar (DW_FMA) or a vec (DW_FMAV) */
#define DW_FMA(vec, acc, s, p) do { DW_NAME(nvec) v0_, v1_;                                \
        __builtin_memcpy(&v0_, (p), sizeof v0_);                                          \
        __builtin_memcpy(&v1_, (p) + DW_VW, sizeof v1_);                                  \
        (acc).p0 += (s) * v0_; (acc).p1 += (s) * v1_; } while (0)
#define DW_FMAV(vec, acc, s, p) do { DW_NAME(nvec) v0_, v1_;                               \
        __builtin_memcpy(&v0_, (p), sizeof v0_);                                          \
        __builtin_memcpy(&v1_, (p) + DW_VW, sizeof v1_);                                  \
        (acc).p0 += (s).p0 * v0_; (acc).p1 += (s).p1 * v1_; } while (0)
#define DW_MULADDV(acc, a, b) do { (acc).p0 += (a).p0 * (b).p0;                            \
                                   (acc).p1 += (a).p1 * (b).p1; } while (0)
#define DW_ADDV(acc, v) do { (acc).p0 += (v).p0; (acc).p1 += (v).p1; } while (0)
#define DW_RELU_PART(x) do { __typeof__((x) <= (x)) k_ = ~((x) <= (DW_NAME(nvec)){0});      \
                             (x) = (DW_NAME(nvec))((__typeof__(k_))(x) & k_); } while (0)
#define DW_RELU(vec, v) do { DW_RELU_PART((v).p0); DW_RELU_PART((v).p1); } while (0)
#define DW_RELU6_PART(x) do { const DW_NAME(nvec) s_ = (DW_NAME(nvec)){0} + 6;               \
                              __typeof__((x) <= (x)) h_ = (x) >= s_;                       \
                              (x) = (DW_NAME(nvec))(((__typeof__(h_))(x) & ~h_) |          \
                                                    ((__typeof__(h_))s_ & h_)); } while (0)
#define DW_RELU6(vec, v) do { DW_RELU6_PART((v).p0); DW_RELU6_PART((v).p1); } while (0)
#if DW_VW == 8
/* ev / od: the even / odd values of a (values 0..15) then b (16..31) */
#define DW_SPLIT2(a, b, ev, od) do {                                                       \
        (ev).p0 = __builtin_shufflevector((a).p0, (a).p1, 0, 2, 4, 6, 8, 10, 12, 14);     \
        (ev).p1 = __builtin_shufflevector((b).p0, (b).p1, 0, 2, 4, 6, 8, 10, 12, 14);     \
        (od).p0 = __builtin_shufflevector((a).p0, (a).p1, 1, 3, 5, 7, 9, 11, 13, 15);     \
        (od).p1 = __builtin_shufflevector((b).p0, (b).p1, 1, 3, 5, 7, 9, 11, 13, 15); } while (0)
/* lo / hi: e[0] o[0] e[1] o[1] ... for lanes 0..7 / 8..15 */
#define DW_INTERLEAVE2(e, o, lo, hi) do {                                                  \
        (lo).p0 = __builtin_shufflevector((e).p0, (o).p0, 0, 8, 1, 9, 2, 10, 3, 11);      \
        (lo).p1 = __builtin_shufflevector((e).p0, (o).p0, 4, 12, 5, 13, 6, 14, 7, 15);    \
        (hi).p0 = __builtin_shufflevector((e).p1, (o).p1, 0, 8, 1, 9, 2, 10, 3, 11);      \
        (hi).p1 = __builtin_shufflevector((e).p1, (o).p1, 4, 12, 5, 13, 6, 14, 7, 15); } while (0)
#else
#error "DW_VW: only 8 (float on AVX2) is written"
#endif
#else
typedef FC_T DW_NAME(vec) __attribute__((vector_size(DW_LANES * sizeof(FC_T))));
#define DW_ZERO(vec) ((vec){0})
#define DW_LOAD(v, p) __builtin_memcpy(&(v), (p), sizeof(v))
#define DW_STORE(p, v) __builtin_memcpy((p), &(v), sizeof(v))
#define DW_SPLAT(vec, s) ((vec){0} + (s))
#define DW_FMA(vec, acc, s, p) do { vec v_; DW_LOAD(v_, (p));          \
                                    (acc) += (s) * v_; } while (0)
#define DW_FMAV DW_FMA
#define DW_MULADDV(acc, a, b) ((acc) += (a) * (b))
#define DW_ADDV(acc, v) ((acc) += (v))
#define DW_RELU(vec, v) do { __typeof__((v) <= (v)) k_ = ~((v) <= (vec){0});                \
                             (v) = (vec)((__typeof__(k_))(v) & k_); } while (0)
#define DW_RELU6(vec, v) do { const vec s_ = (vec){0} + 6;                                 \
                              __typeof__((v) <= (v)) h_ = (v) >= s_;                       \
                              (v) = (vec)(((__typeof__(h_))(v) & ~h_) |                    \
                                          ((__typeof__(h_))s_ & h_)); } while (0)
#define DW_SPLIT2(a, b, ev, od) do {                                                       \
        (ev) = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22,    \
                                       24, 26, 28, 30);                                    \
        (od) = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23,    \
                                       25, 27, 29, 31); } while (0)
#define DW_INTERLEAVE2(e, o, lo, hi) do {                                                  \
        (lo) = __builtin_shufflevector(e, o, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6,  \
                                       22, 7, 23);                                         \
        (hi) = __builtin_shufflevector(e, o, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, \
                                       14, 30, 15, 31); } while (0)
#endif

static void DW_NAME(fwd_plane_padded)(const FC_T *restrict xp, fc_int PWD,
                                      const FC_T *restrict w, fc_int KH, fc_int KW,
                                      FC_T *restrict y, fc_int OH, fc_int OW, fc_int dh,
                                      fc_int dw, FC_T bias, int relu, FC_T *restrict row)
{
    /* one vector of outputs at a time, summed over every tap in a register and stored
     * once (same order of additions as tap by tap: the same bits) */
    typedef DW_NAME(vec) vec;
    fc_int OWR = (OW + DW_LANES - 1) / DW_LANES * DW_LANES;
    for (fc_int oh = 0; oh < OH; oh++) {
        FC_T *restrict yr = y + oh * OW;
        for (fc_int ow0 = 0; ow0 < OWR; ow0 += DW_LANES) {
            vec acc = DW_SPLAT(vec, bias);
            if (KH == 3 && KW == 3) {       /* the common case: taps known at compile time */
                for (int kh = 0; kh < 3; kh++) {
                    const FC_T *xr = xp + (oh + kh * dh) * PWD + ow0;
                    DW_FMA(vec, acc, w[kh * 3], xr);
                    DW_FMA(vec, acc, w[kh * 3 + 1], xr + dw);
                    DW_FMA(vec, acc, w[kh * 3 + 2], xr + 2 * dw);
                }
            } else {
                for (fc_int kh = 0; kh < KH; kh++) {
                    const FC_T *xr = xp + (oh + kh * dh) * PWD + ow0;
                    for (fc_int kw = 0; kw < KW; kw++)
                        DW_FMA(vec, acc, w[kh * KW + kw], xr + kw * dw);
                }
            }
            if (relu)                       /* inference: lane by lane, NaN kept */
                DW_RELU(vec, acc);
            if (relu == 2)
                DW_RELU6(vec, acc);
            if (ow0 + DW_LANES <= OW) {
                DW_STORE(yr + ow0, acc);
            } else {                        /* the row's tail */
                DW_STORE(row, acc);
                fc_int n = OW - ow0;
                for (fc_int l = 0; l < n; l++) yr[ow0 + l] = row[l];
            }
        }
    }
}

/* floor(a / 2) for either sign */
static inline fc_int DW_NAME(half_floor)(fc_int a) { return a >= 0 ? a / 2 : -((-a + 1) / 2); }

/* The split rows of a stride-2-across plane (dilation 1 across): tap kw reads split
 * column ow + q(kw), q(kw) = floor((kw - pw) / 2) in [qmin, qmax]; tap kh of output row
 * oh reads input row oh * sh - ph + kh * dh.  Rows are RW wide with LM columns of zeros
 * on the left (and enough on the right for OWR columns of outputs), and TM zero rows
 * above the plane and BM below (rows output rows read). */
typedef struct { fc_int qmin, qmax, LM, RW, TM, BM, HR; } DW_NAME(split_t);

static inline DW_NAME(split_t) DW_NAME(split_geom)(fc_int H, fc_int W, fc_int KH, fc_int KW,
                                                  fc_int rows, fc_int OWR,
                                                  const fc_dwgeom_t *g)
{
    DW_NAME(split_t) s;
    fc_int WE = (W + 1) / 2;
    s.qmin = DW_NAME(half_floor)(-g->pw);
    s.qmax = DW_NAME(half_floor)(KW - 1 - g->pw);
    s.LM = s.qmin < 0 ? -s.qmin : 0;
    fc_int reach = OWR + (s.qmax > 0 ? s.qmax : 0);
    s.RW = s.LM + (WE > reach ? WE : reach);
    s.TM = g->ph > 0 ? g->ph : 0;
    fc_int last = (rows - 1) * g->sh - g->ph + (KH - 1) * g->dh;
    s.BM = last > H - 1 ? last - (H - 1) : 0;
    s.HR = s.TM + H + s.BM;
    return s;
}

/* x's even and odd columns into rows of E and O (RW wide, from column LM, TM zero rows
 * above and BM below): the margins zeroed as vectors around the data rather than the
 * whole buffer (a memset of the buffer per plane cost a fifth of a backward).  A row's
 * trailing zero vector may run DW_LANES past it: into the next row (written after) or
 * past the last row (the caller leaves DW_LANES spare there). */
static void DW_NAME(split_rows)(const FC_T *restrict x, fc_int H, fc_int W, FC_T *E,
                                FC_T *O, fc_int RW, fc_int LM, fc_int TM, fc_int BM)
{
    typedef DW_NAME(vec) vec;
    const vec z = DW_ZERO(vec);
    fc_int WE = (W + 1) / 2, WO = W / 2;
    memset(E, 0, (size_t)(TM * RW) * sizeof(FC_T));
    memset(O, 0, (size_t)(TM * RW) * sizeof(FC_T));
    memset(E + (TM + H) * RW, 0, (size_t)(BM * RW) * sizeof(FC_T));
    memset(O + (TM + H) * RW, 0, (size_t)(BM * RW) * sizeof(FC_T));
    for (fc_int ih = 0; ih < H; ih++) {
        const FC_T *restrict xr = x + ih * W;
        FC_T *er = E + (TM + ih) * RW, *orow = O + (TM + ih) * RW;
        for (fc_int i = 0; i < LM; i += DW_LANES) {        /* left margin */
            DW_STORE(er + i, z);
            DW_STORE(orow + i, z);
        }
        er += LM;
        orow += LM;
        fc_int i = 0;
        for (; 2 * i + 2 * DW_LANES <= W; i += DW_LANES) {
            vec a, b;
            DW_LOAD(a, xr + 2 * i);
            DW_LOAD(b, xr + 2 * i + DW_LANES);
            vec ev, od;
            DW_SPLIT2(a, b, ev, od);
            DW_STORE(er + i, ev);
            DW_STORE(orow + i, od);
        }
        for (; i < WO; i++) {
            er[i] = xr[2 * i];
            orow[i] = xr[2 * i + 1];
        }
        if (W & 1) er[WE - 1] = xr[W - 1];
        for (fc_int k = WE; k < RW - LM; k += DW_LANES)    /* right margins */
            DW_STORE(er + k, z);
        for (fc_int k = WO; k < RW - LM; k += DW_LANES)
            DW_STORE(orow + k, z);
    }
}

/* Stride 2 across (dilation 1 across): the plane's even and odd columns are split into
 * rows with zero margins on every side, so every tap of every output reads whole vectors
 * of one of them; DW_S2_ROWS output rows x one vector of columns are summed over every
 * tap in registers (independent chains: the adds' latency is hidden) and stored once.
 * The plane goes in bands of DW_S2_BAND output rows, each band's input rows split just
 * before use: the split rows stay in L1, and planes of any height take this kernel (the
 * whole plane split at once capped it at 16384 values; larger ones, a 224x224 frame's
 * first stride-2 layer, fell back to the strided loop).  Taps in the padding
 * multiply its zeros, as the stride-1 padded kernel does: the sums are the strided
 * loop's, in its order, but for the sign of an exact zero.  Returns 0 (nothing done)
 * when a band's split rows do not fit the stack buffer. */
#define DW_S2_ROWS 4
#define DW_S2_BAND 8            /* output rows per band: a multiple of DW_S2_ROWS */
static int DW_NAME(fwd_plane_s2)(const FC_T *restrict x, fc_int H, fc_int W,
                                 const FC_T *restrict w, fc_int KH, fc_int KW,
                                 FC_T *restrict y, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                                 FC_T bias, int relu)
{
    typedef DW_NAME(vec) vec;
    FC_T buf[FC_DW_S2_MAX], row[DW_LANES];
    fc_int OWR = (OW + DW_LANES - 1) / DW_LANES * DW_LANES;
    fc_int band = OH < DW_S2_BAND ? (OH + DW_S2_ROWS - 1) / DW_S2_ROWS * DW_S2_ROWS : DW_S2_BAND;
    DW_NAME(split_t) sp = DW_NAME(split_geom)(H, W, KH, KW, band, OWR, g);
    fc_int LM = sp.LM, RW = sp.RW;
    fc_int HB = (band - 1) * g->sh + (KH - 1) * g->dh + 1;     /* input rows a band reads */
    if (2 * HB * RW + 2 * DW_LANES > FC_DW_S2_MAX)
        return 0;
    FC_T *E = buf, *O = buf + HB * RW + DW_LANES;
    fc_int rstep = g->sh * RW;
    for (fc_int ob = 0; ob < OH; ob += band) {
        /* the band's input rows ih0 .. ih0 + HB - 1: those outside the plane zero */
        fc_int ih0 = ob * g->sh - g->ph, ih1 = ih0 + HB;
        fc_int a = ih0 > 0 ? ih0 : 0, b = ih1 < H ? ih1 : H;
        if (b < a) b = a;
        DW_NAME(split_rows)(x + a * W, b - a, W, E, O, RW, LM, a - ih0, ih1 - b);
        fc_int oend = ob + band < OH ? ob + band : OH;
        for (fc_int oh = ob; oh < oend; oh += DW_S2_ROWS) {
            fc_int top = (oh - ob) * g->sh;             /* buffer row of tap kh = 0 */
            for (fc_int ow0 = 0; ow0 < OWR; ow0 += DW_LANES) {
                vec acc[DW_S2_ROWS];
                for (int r = 0; r < DW_S2_ROWS; r++) acc[r] = DW_SPLAT(vec, bias);
                for (fc_int kh = 0; kh < KH; kh++) {
                    fc_int base = (top + kh * g->dh) * RW + LM + ow0;
                    for (fc_int kw = 0; kw < KW; kw++) {
                        fc_int off = kw - g->pw;
                        const FC_T *src = ((off & 1) ? O : E) + base + DW_NAME(half_floor)(off);
                        FC_T wv = w[kh * KW + kw];
                        for (int r = 0; r < DW_S2_ROWS; r++)
                            DW_FMA(vec, acc[r], wv, src + r * rstep);
                    }
                }
                fc_int n = OW - ow0 < DW_LANES ? OW - ow0 : DW_LANES;
                for (int r = 0; r < DW_S2_ROWS && oh + r < oend; r++) {
                    FC_T *restrict yr = y + (oh + r) * OW + ow0;
                    vec v = acc[r];
                    if (relu)               /* v <= 0 ? +0 : v, lane by lane (NaN kept) */
                        DW_RELU(vec, v);
                    if (relu == 2)          /* then v >= 6 ? 6 : v */
                        DW_RELU6(vec, v);
                    if (n == DW_LANES) {
                        DW_STORE(yr, v);
                    } else {
                        DW_STORE(row, v);
                        for (fc_int l = 0; l < n; l++) yr[l] = row[l];
                    }
                }
            }
        }
    }
    return 1;
}

/* The weight gradient's tap sums of one stride-2 plane over the split rows (E, O: RW wide,
 * LM columns of left margin, TM rows of top margin): one lane vector per tap, summed in
 * registers over every output row and vector of columns (grow: the dy row, zero past
 * OW).  Inlined with KH, KW constant for 3x3. */
static inline __attribute__((always_inline)) void DW_NAME(s2_dw_lanes)(
    const FC_T *restrict E, const FC_T *restrict O, fc_int RW, fc_int LM, fc_int TM,
    const FC_T *restrict dy, FC_T *restrict grow, fc_int KH, fc_int KW, fc_int OH, fc_int OW,
    fc_int OWR, const fc_dwgeom_t *g, DW_NAME(vec) *acc)
{
    typedef DW_NAME(vec) vec;
    for (fc_int t = 0; t < KH * KW; t++) acc[t] = DW_ZERO(vec);
    for (fc_int oh = 0; oh < OH; oh++) {
        for (fc_int ow = 0; ow < OW; ow++) grow[ow] = dy[oh * OW + ow];
        for (fc_int ow = OW; ow < OWR; ow++) grow[ow] = 0;
        fc_int top = oh * g->sh - g->ph + TM;
        for (fc_int ow0 = 0; ow0 < OWR; ow0 += DW_LANES) {
            vec gv;
            DW_LOAD(gv, grow + ow0);
            for (fc_int kh = 0; kh < KH; kh++) {
                fc_int base = (top + kh * g->dh) * RW + LM + ow0;
                for (fc_int kw = 0; kw < KW; kw++) {
                    fc_int off = kw - g->pw;
                    DW_FMAV(vec, acc[kh * KW + kw], gv,
                           ((off & 1) ? O : E) + base + DW_NAME(half_floor)(off));
                }
            }
        }
    }
}

/* Stride-2-across backward of one plane (dilation 1 across; kernels up to 5x5):
 * - d weight: x split into even and odd columns with zero margins (as the forward), the
 *   tap sums in lane vectors held in registers (s2_dw_lanes), reduced in double;
 * - d input in gather form: each of its even and odd columns sums the taps of its
 *   parity over a zero-margined copy of dy, a vector of columns at a time in registers,
 *   then the two are interleaved and added into dx.
 * The strided loops scattered into dx tap by tap, each store waiting on the last.  Sums
 * run in another (fixed) order than theirs; taps in the padding multiply zeros, as the
 * stride-1 kernels do.  Returns 0 (nothing done) when the buffers do not fit the
 * stack. */
static int DW_NAME(bwd_plane_s2)(const FC_T *restrict x, const FC_T *restrict dy, fc_int H,
                                 fc_int W, const FC_T *restrict w, fc_int KH, fc_int KW,
                                 fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                                 FC_T *restrict dx, int assign, FC_ACC *restrict dw_acc)
{
    typedef DW_NAME(vec) vec;
    enum { TMAX = 25 };
    fc_int T = KH * KW;
    if (T > TMAX || OW <= 0 || OH <= 0) return 0;
    FC_T buf[FC_DW_S2_MAX];
    fc_int WE = (W + 1) / 2;
    fc_int OWR = (OW + DW_LANES - 1) / DW_LANES * DW_LANES;
    fc_int IWR = (WE + DW_LANES - 1) / DW_LANES * DW_LANES;
    /* x split (d weight) */
    DW_NAME(split_t) sp = DW_NAME(split_geom)(H, W, KH, KW, OH, OWR, g);
    fc_int qmin = sp.qmin, qmax = sp.qmax, LM = sp.LM, RW = sp.RW, TM = sp.TM, BM = sp.BM,
           HR = sp.HR;
    fc_int xs = dw_acc ? 2 * HR * RW + 2 * DW_LANES + OWR : 0;
    /* dy with margins (d input): column i - q(kw) for i < IWR */
    fc_int DL = qmax > 0 ? qmax : 0;
    fc_int DPW = DL + IWR + (qmin < 0 ? -qmin : 0);
    fc_int ds = dx ? OH * DPW + 2 * DW_LANES : 0;
    if (xs + ds > FC_DW_S2_MAX) return 0;
    if (dw_acc) {
        /* E and O DW_LANES apart (a row's trailing zero vector may run past its end) */
        FC_T *E = buf, *O = buf + HR * RW + DW_LANES, *grow = buf + 2 * HR * RW + 2 * DW_LANES;
        DW_NAME(split_rows)(x, H, W, E, O, RW, LM, TM, BM);
        vec acc[TMAX];
        if (KH == 3 && KW == 3)
            DW_NAME(s2_dw_lanes)(E, O, RW, LM, TM, dy, grow, 3, 3, OH, OW, OWR, g, acc);
        else
            DW_NAME(s2_dw_lanes)(E, O, RW, LM, TM, dy, grow, KH, KW, OH, OW, OWR, g, acc);
        for (fc_int t = 0; t < T; t++) {
            FC_T lanes[DW_LANES];
            DW_STORE(lanes, acc[t]);
            FC_ACC sum = 0;
            for (int l = 0; l < DW_LANES; l++) sum += lanes[l];
            dw_acc[t] += sum;
        }
    }
    if (dx) {
        FC_T *restrict dyp = buf + xs, *restrict eb = dyp + OH * DPW, *restrict ob = eb + DW_LANES;
        memset(dyp, 0, (size_t)(OH * DPW) * sizeof(FC_T));
        for (fc_int oh = 0; oh < OH; oh++)
            for (fc_int ow = 0; ow < OW; ow++) dyp[oh * DPW + DL + ow] = dy[oh * OW + ow];
        for (fc_int ih = 0; ih < H; ih++) {
            FC_T *restrict dxr = dx + ih * W;
            for (fc_int i0 = 0; i0 < IWR; i0 += DW_LANES) {
                vec ae = DW_ZERO(vec), ao = DW_ZERO(vec);
                for (fc_int kh = 0; kh < KH; kh++) {
                    fc_int t = ih + g->ph - kh * g->dh;
                    if (t < 0 || t % g->sh) continue;
                    fc_int oh = t / g->sh;
                    if (oh >= OH) continue;
                    const FC_T *rowp = dyp + oh * DPW + DL + i0;
                    for (fc_int kw = 0; kw < KW; kw++) {
                        fc_int off = kw - g->pw, q = DW_NAME(half_floor)(off);
                        if (off & 1)
                            DW_FMA(vec, ao, w[kh * KW + kw], rowp - q);
                        else
                            DW_FMA(vec, ae, w[kh * KW + kw], rowp - q);
                    }
                }
                fc_int c0 = 2 * i0;
                if (c0 + 2 * DW_LANES <= W) {   /* interleaved: ae[0] ao[0] ae[1] ao[1] ... */
                    vec lo, hi;
                    DW_INTERLEAVE2(ae, ao, lo, hi);
                    if (!assign) {
                        vec d0, d1;
                        DW_LOAD(d0, dxr + c0);
                        DW_LOAD(d1, dxr + c0 + DW_LANES);
                        DW_ADDV(lo, d0);
                        DW_ADDV(hi, d1);
                    }
                    DW_STORE(dxr + c0, lo);
                    DW_STORE(dxr + c0 + DW_LANES, hi);
                } else {
                    DW_STORE(eb, ae);
                    DW_STORE(ob, ao);
                    for (int j = 0; j < DW_LANES && c0 + 2 * j < W; j++) {
                        dxr[c0 + 2 * j] = (assign ? 0 : dxr[c0 + 2 * j]) + eb[j];
                        if (c0 + 2 * j + 1 < W)
                            dxr[c0 + 2 * j + 1] = (assign ? 0 : dxr[c0 + 2 * j + 1]) + ob[j];
                    }
                }
            }
        }
    }
    return 1;
}

/* 8x8 blocks through registers: r[i] (8 values) becomes column i of the block, as
 * AVX's unpack / shuffle / 128-bit permute sequence (24 shuffles for 64 values, where the
 * value-by-value copy of a block of lanes was most of the tiny planes' time: 144
 * channels at 16x16, stride 2, spent 5 of 5.3 us per 16 channels in the two copies). */
typedef FC_T DW_NAME(v8) __attribute__((vector_size(8 * sizeof(FC_T))));
static inline __attribute__((always_inline)) void DW_NAME(transpose8)(DW_NAME(v8) *r)
{
    typedef DW_NAME(v8) v8;
    v8 t0 = __builtin_shufflevector(r[0], r[1], 0, 8, 1, 9, 4, 12, 5, 13);
    v8 t1 = __builtin_shufflevector(r[0], r[1], 2, 10, 3, 11, 6, 14, 7, 15);
    v8 t2 = __builtin_shufflevector(r[2], r[3], 0, 8, 1, 9, 4, 12, 5, 13);
    v8 t3 = __builtin_shufflevector(r[2], r[3], 2, 10, 3, 11, 6, 14, 7, 15);
    v8 t4 = __builtin_shufflevector(r[4], r[5], 0, 8, 1, 9, 4, 12, 5, 13);
    v8 t5 = __builtin_shufflevector(r[4], r[5], 2, 10, 3, 11, 6, 14, 7, 15);
    v8 t6 = __builtin_shufflevector(r[6], r[7], 0, 8, 1, 9, 4, 12, 5, 13);
    v8 t7 = __builtin_shufflevector(r[6], r[7], 2, 10, 3, 11, 6, 14, 7, 15);
    v8 u0 = __builtin_shufflevector(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13);
    v8 u1 = __builtin_shufflevector(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
    v8 u2 = __builtin_shufflevector(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13);
    v8 u3 = __builtin_shufflevector(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
    v8 u4 = __builtin_shufflevector(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);
    v8 u5 = __builtin_shufflevector(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
    v8 u6 = __builtin_shufflevector(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);
    v8 u7 = __builtin_shufflevector(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
    r[0] = __builtin_shufflevector(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11);
    r[1] = __builtin_shufflevector(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11);
    r[2] = __builtin_shufflevector(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11);
    r[3] = __builtin_shufflevector(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11);
    r[4] = __builtin_shufflevector(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15);
    r[5] = __builtin_shufflevector(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15);
    r[6] = __builtin_shufflevector(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15);
    r[7] = __builtin_shufflevector(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15);
}

/* A block of nc planes (stride values apart, n values each) into lanes:
 * dst[q * DW_LANES + l] = src[l * stride + q], zero in the lanes past nc. */
static void DW_NAME(to_lanes)(const FC_T *restrict src, fc_int n, fc_int stride, int nc,
                              FC_T *restrict dst)
{
    typedef DW_NAME(v8) v8;
    fc_int q = 0;
    for (; q + 8 <= n; q += 8)
        for (int l0 = 0; l0 < DW_LANES; l0 += 8) {
            v8 r[8];
            for (int i = 0; i < 8; i++) {
                r[i] = (v8){0};
                if (l0 + i < nc) __builtin_memcpy(&r[i], src + (l0 + i) * stride + q, sizeof r[i]);
            }
            DW_NAME(transpose8)(r);
            for (int j = 0; j < 8; j++)
                __builtin_memcpy(dst + (q + j) * DW_LANES + l0, &r[j], sizeof r[j]);
        }
    for (; q < n; q++)
        for (int l = 0; l < DW_LANES; l++) dst[q * DW_LANES + l] = l < nc ? src[l * stride + q] : 0;
}

/* The inverse for the first nc lanes: dst[l * stride + q] = src[q * DW_LANES + l]. */
static void DW_NAME(from_lanes)(const FC_T *restrict src, fc_int n, fc_int stride, int nc,
                                FC_T *restrict dst)
{
    typedef DW_NAME(v8) v8;
    fc_int q = 0;
    for (; q + 8 <= n; q += 8)
        for (int l0 = 0; l0 < nc; l0 += 8) {
            v8 r[8];
            for (int i = 0; i < 8; i++)
                __builtin_memcpy(&r[i], src + (q + i) * DW_LANES + l0, sizeof r[i]);
            DW_NAME(transpose8)(r);
            for (int j = 0; j < 8 && l0 + j < nc; j++)
                __builtin_memcpy(dst + (l0 + j) * stride + q, &r[j], sizeof r[j]);
        }
    for (; q < n; q++)
        for (int l = 0; l < nc; l++) dst[l * stride + q] = src[q * DW_LANES + l];
}

/* Tiny planes (OW under 8, where a row is a fraction of a vector): DW_LANES channels in
 * the vector lanes instead.  x: the block's first input plane (planes H*W apart), nc
 * channels (<= DW_LANES); w: their KH*KW weights each; bias: theirs or NULL; y: the
 * block's first output plane.  Any stride, padding and dilation (taps outside the
 * input are skipped).  scratch: (H*W + KH*KW + OH*OW) * DW_LANES values. */
static void DW_NAME(fwd_lanes)(const FC_T *restrict x, fc_int H, fc_int W,
                               const FC_T *restrict w, fc_int KH, fc_int KW, FC_T *restrict y,
                               fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                               const FC_T *restrict bias, int nc, int relu,
                               FC_T *restrict scratch)
{
    typedef DW_NAME(vec) vec;
    fc_int HW = H * W, T = KH * KW, OHW = OH * OW;
    FC_T *restrict xt = scratch;                   /* [pixel][lane] */
    FC_T *restrict wt = scratch + HW * DW_LANES;   /* [tap][lane] */
    FC_T *restrict ot = wt + T * DW_LANES;         /* [output pixel][lane] */
    FC_T out[DW_LANES];
    DW_NAME(to_lanes)(x, HW, HW, nc, xt);
    DW_NAME(to_lanes)(w, T, T, nc, wt);
    for (int l = 0; l < DW_LANES; l++) out[l] = (bias && l < nc) ? bias[l] : 0;
    vec b;
    DW_LOAD(b, out);
    for (fc_int oh = 0; oh < OH; oh++) {
        /* the taps inside the input: kh in [kh0, kh1), kw in [kw0, kw1), in order */
        fc_int ih0 = oh * g->sh - g->ph, kh0 = 0, kh1 = KH;
        while (kh0 < KH && ih0 + kh0 * g->dh < 0) kh0++;
        while (kh1 > kh0 && ih0 + (kh1 - 1) * g->dh >= H) kh1--;
        for (fc_int ow = 0; ow < OW; ow++) {
            fc_int iw0 = ow * g->sw - g->pw, kw0 = 0, kw1 = KW;
            while (kw0 < KW && iw0 + kw0 * g->dw < 0) kw0++;
            while (kw1 > kw0 && iw0 + (kw1 - 1) * g->dw >= W) kw1--;
            /* acc goes to memory once, in ot (copied into a small array that is then
             * read lane by lane, GCC kept it on the stack: a store-to-load round trip
             * per tap) */
            vec acc = b;
            for (fc_int kh = kh0; kh < kh1; kh++) {
                const FC_T *xr = xt + ((ih0 + kh * g->dh) * W + iw0) * DW_LANES;
                const FC_T *wr = wt + kh * KW * DW_LANES;
                for (fc_int kw = kw0; kw < kw1; kw++) {
                    vec wv;
                    DW_LOAD(wv, wr + kw * DW_LANES);
                    DW_FMAV(vec, acc, wv, xr + kw * g->dw * DW_LANES);
                }
            }
            DW_STORE(ot + (oh * OW + ow) * DW_LANES, acc);
        }
    }
    if (relu)
        for (fc_int q = 0; q < OHW * DW_LANES; q++) ot[q] = DW_NAME(act)(ot[q], relu);
    DW_NAME(from_lanes)(ot, OHW, OHW, nc, y);
}

/* The backward of fwd_lanes for one image: dx (written, not accumulated; NULL when not
 * wanted) and this image's weight-gradient sums dwl[tap * DW_LANES + lane] (written;
 * NULL when not wanted), nc channels in the lanes.  Each lane's sums run in one fixed
 * order.  scratch: (2 * H*W + OH*OW + KH*KW) * DW_LANES values. */
static void DW_NAME(bwd_lanes)(const FC_T *restrict x, const FC_T *restrict dy, fc_int H,
                               fc_int W, const FC_T *restrict w, fc_int KH, fc_int KW,
                               fc_int OH, fc_int OW, const fc_dwgeom_t *g, int nc,
                               FC_T *restrict dx, FC_T *restrict dwl, FC_T *restrict scratch)
{
    typedef DW_NAME(vec) vec;
    fc_int HW = H * W, T = KH * KW, OHW = OH * OW;
    FC_T *restrict xt = scratch;                    /* [pixel][lane] */
    FC_T *restrict gt = xt + HW * DW_LANES;         /* [output pixel][lane] */
    FC_T *restrict dxt = gt + OHW * DW_LANES;       /* [pixel][lane] */
    FC_T *restrict wt = dxt + HW * DW_LANES;        /* [tap][lane] */
    DW_NAME(to_lanes)(dy, OHW, OHW, nc, gt);
    if (dwl) {
        DW_NAME(to_lanes)(x, HW, HW, nc, xt);
        for (fc_int t = 0; t < T * DW_LANES; t++) dwl[t] = 0;
    }
    if (dx) {
        for (fc_int q = 0; q < HW * DW_LANES; q++) dxt[q] = 0;
        DW_NAME(to_lanes)(w, T, T, nc, wt);
    }
    for (fc_int oh = 0; oh < OH; oh++)
        for (fc_int ow = 0; ow < OW; ow++) {
            vec gv;
            DW_LOAD(gv, gt + (oh * OW + ow) * DW_LANES);
            for (fc_int kh = 0; kh < KH; kh++) {
                fc_int ih = oh * g->sh - g->ph + kh * g->dh;
                if (ih < 0 || ih >= H) continue;
                for (fc_int kw = 0; kw < KW; kw++) {
                    fc_int iw = ow * g->sw - g->pw + kw * g->dw;
                    if (iw < 0 || iw >= W) continue;
                    fc_int i = (ih * W + iw) * DW_LANES, t = (kh * KW + kw) * DW_LANES;
                    vec a;
                    if (dwl) {
                        DW_LOAD(a, dwl + t);
                        DW_FMAV(vec, a, gv, xt + i);
                        DW_STORE(dwl + t, a);
                    }
                    if (dx) {
                        vec wv;
                        DW_LOAD(wv, wt + t);
                        DW_LOAD(a, dxt + i);
                        DW_MULADDV(a, wv, gv);
                        DW_STORE(dxt + i, a);
                    }
                }
            }
        }
    if (dx) DW_NAME(from_lanes)(dxt, HW, HW, nc, dx);
}

/* Stride-1 planes whose output rows are as wide as the input's (OW == W, 'same'
 * padding across): the plane as one flat run of values, so output q reads input
 * q + off[t] for tap t and every load is a whole vector, whatever the row width (rows
 * of 6 to 28 leave lanes of the row-wise kernels idle, or pay their padded copy; under
 * 6 columns the channels-in-lanes kernel is faster).  The loads read x in place, past
 * the plane's ends where a tap leaves it (the neighbouring planes' values),
 * and tmask[t] (DW_FVW-lane blocks of all-ones / zero bit patterns; NULL where the tap
 * stays inside for every output) clears those lanes: NaN and Inf there never reach a
 * sum.  Where the reads would leave the array (its first and last planes), the caller
 * passes a copy of the plane with zero margins instead.
 * np planes per call, xs values apart in x, n_out apart in y, T weights apart in w; bias
 * theirs or NULL.  Four vectors at a time (independent chains); a store other than the
 * call's last plane's may run past its plane (a whole vector), as the next plane's
 * stores come after it.  The sum is bias + taps in order, as fwd_plane_padded's: the same
 * bits.  n_out = OH*W outputs per plane. */
#ifndef DW_FLAT_TAPS
#define DW_FLAT_TAPS 25         /* the flat kernels' largest kernel (5x5) */
#endif
#ifdef DW_FVW
#define DW_FVW_ DW_FVW
#else
#define DW_FVW_ 4               /* baseline (SSE, NEON): one 128-bit register */
#endif
/* y[q..q+r) = the first r lanes of a (r < DW_FVW_), lane by lane from the register: a
 * copy through memory would stall the loads on the vector store */
#define DW_FLAT_TAIL(y, a, r) do {                                                         \
        for (int l_ = 0; l_ < DW_FVW_; l_++) if (l_ < (r)) (y)[l_] = (a)[l_]; } while (0)

static void DW_NAME(fwd_flat)(const FC_T *restrict x, fc_int xs, int np,
                              const FC_T *restrict w, int T, const fc_int *restrict off,
                              const FC_T **tmask, fc_int n_out, FC_T *restrict y,
                              const FC_T *restrict bias, int relu)
{
    typedef FC_T fvec __attribute__((vector_size(DW_FVW_ * sizeof(FC_T))));
    typedef int ivec __attribute__((vector_size(DW_FVW_ * sizeof(FC_T))));
    const fvec zero = {0}, six = zero + 6;
    fc_int nv = (n_out + DW_FVW_ - 1) / DW_FVW_;
#define DW_FLAT_ACT(a) do {                                                                \
        if (relu) {                     /* v <= 0 -> +0, NaN kept (as act) */              \
            (a) = (fvec)((ivec)(a) & ~(ivec)((a) <= zero));                                \
            if (relu == 2)                                                                  \
                (a) = (fvec)(((ivec)(a) & ~(ivec)((a) >= six)) |                           \
                             ((ivec)six & (ivec)((a) >= six)));                             \
        } } while (0)
    for (int pl = 0; pl < np; pl++, x += xs, w += T, y += n_out) {
        const FC_T *b0 = x;
        FC_T b = bias ? bias[pl] : 0;
        for (fc_int v0 = 0; v0 < nv; v0 += 4) {
            int nb = nv - v0 < 4 ? (int)(nv - v0) : 4;
            fvec acc[4];
            for (int j = 0; j < 4; j++) acc[j] = zero + b;
            for (int t = 0; t < T; t++) {
                const FC_T *src = b0 + off[t] + v0 * DW_FVW_;
                const FC_T *m = tmask[t] ? tmask[t] + v0 * DW_FVW_ : NULL;
                FC_T wt = w[t];
                for (int j = 0; j < nb; j++) {
                    fvec xv;
                    __builtin_memcpy(&xv, src + j * DW_FVW_, sizeof xv);
                    if (m) {
                        fvec mv;
                        __builtin_memcpy(&mv, m + j * DW_FVW_, sizeof mv);
                        xv = (fvec)((ivec)xv & (ivec)mv);
                    }
                    acc[j] += wt * xv;
                }
            }
            for (int j = 0; j < nb; j++) {
                DW_FLAT_ACT(acc[j]);
                fc_int q = (v0 + j) * DW_FVW_;
                if (q + DW_FVW_ <= n_out || pl + 1 < np)
                    __builtin_memcpy(y + q, &acc[j], sizeof acc[j]);
                else                        /* the call's last plane's tail */
                    DW_FLAT_TAIL(y + q, acc[j], n_out - q);
            }
        }
    }
#undef DW_FLAT_ACT
}
#undef DW_FLAT_TAIL

/* The weight gradient of one flat plane (fwd_flat's geometry): dw_acc[t] += the sum over
 * outputs q of dy[q] * x[q + off[t]], with tmask[t] clearing the lanes whose input lies
 * outside the plane and ymask (n_out rounded up to whole vectors: all-ones below n_out)
 * the last vector's lanes past dy's plane.  Each lane sums over the vectors in order
 * (the taps side by side: independent chains), then the lanes are added in order in
 * double: the same bits for any thread count. */
static void DW_NAME(wgrad_flat)(const FC_T *restrict x, const FC_T *restrict dy, int T,
                                const fc_int *restrict off, const FC_T **tmask,
                                const FC_T *restrict ymask, fc_int n_out,
                                FC_ACC *restrict dw_acc)
{
    typedef FC_T fvec __attribute__((vector_size(DW_FVW_ * sizeof(FC_T))));
    typedef int ivec __attribute__((vector_size(DW_FVW_ * sizeof(FC_T))));
    fc_int nv = (n_out + DW_FVW_ - 1) / DW_FVW_;
    fvec acc[DW_FLAT_TAPS];
    for (int t = 0; t < T; t++) acc[t] = (fvec){0};
#define DW_WGRAD_STEP(TT) do {                                                              \
        for (fc_int v = 0; v < nv; v++) {                                                  \
            fvec g;                                                                         \
            __builtin_memcpy(&g, dy + v * DW_FVW_, sizeof g);                              \
            if ((v + 1) * DW_FVW_ > n_out) {                                               \
                fvec m;                                                                     \
                __builtin_memcpy(&m, ymask + v * DW_FVW_, sizeof m);                       \
                g = (fvec)((ivec)g & (ivec)m);                                             \
            }                                                                               \
            for (int t = 0; t < (TT); t++) {                                               \
                fvec xv;                                                                    \
                __builtin_memcpy(&xv, x + off[t] + v * DW_FVW_, sizeof xv);                \
                if (tmask[t]) {                                                            \
                    fvec m;                                                                 \
                    __builtin_memcpy(&m, tmask[t] + v * DW_FVW_, sizeof m);                \
                    xv = (fvec)((ivec)xv & (ivec)m);                                       \
                }                                                                           \
                acc[t] += g * xv;                                                          \
            }                                                                               \
        } } while (0)
    if (T == 9)                         /* 3x3: the nine sums in registers */
        DW_WGRAD_STEP(9);
    else
        DW_WGRAD_STEP(T);
#undef DW_WGRAD_STEP
    for (int t = 0; t < T; t++) {
        FC_T lanes[DW_FVW_];
        __builtin_memcpy(lanes, &acc[t], sizeof lanes);
        FC_ACC sum = 0;
        for (int l = 0; l < DW_FVW_; l++) sum += lanes[l];
        dw_acc[t] += sum;
    }
}
#undef DW_FVW_

static void DW_NAME(bwd_plane_padded)(const FC_T *restrict xp, FC_T *restrict dxp, fc_int PWD,
                                      const FC_T *restrict dy, const FC_T *restrict w,
                                      fc_int KH, fc_int KW, fc_int OH, fc_int OW, fc_int dh,
                                      fc_int dw, FC_ACC *restrict dw_acc, FC_T *restrict row,
                                      FC_T *restrict lanes)
{
    typedef DW_NAME(vec) vec;
    fc_int OWR = (OW + DW_LANES - 1) / DW_LANES * DW_LANES, T = KH * KW;
    if (dw_acc)
        for (fc_int t = 0; t < T * DW_LANES; t++) lanes[t] = 0;
    if (dw_acc && !dxp && KH == 3 && KW == 3) {
        /* the nine tap sums in registers over the whole plane (one lane vector each, the
         * same order of additions as the general loop below) */
        vec acc[9];
        for (int t = 0; t < 9; t++) acc[t] = DW_ZERO(vec);
        for (fc_int oh = 0; oh < OH; oh++) {
            for (fc_int ow = 0; ow < OW; ow++) row[ow] = dy[oh * OW + ow];
            for (fc_int ow = OW; ow < OWR; ow++) row[ow] = 0;
            for (fc_int ow0 = 0; ow0 < OWR; ow0 += DW_LANES) {
                vec g;
                DW_LOAD(g, row + ow0);
                for (int kh = 0; kh < 3; kh++) {
                    const FC_T *xr = xp + (oh + kh * dh) * PWD + ow0;
                    DW_FMAV(vec, acc[kh * 3], g, xr);
                    DW_FMAV(vec, acc[kh * 3 + 1], g, xr + dw);
                    DW_FMAV(vec, acc[kh * 3 + 2], g, xr + 2 * dw);
                }
            }
        }
        for (int t = 0; t < 9; t++) DW_STORE(lanes + t * DW_LANES, acc[t]);
        goto reduce;
    }
    for (fc_int oh = 0; oh < OH; oh++) {
        for (fc_int ow = 0; ow < OW; ow++) row[ow] = dy[oh * OW + ow];
        for (fc_int ow = OW; ow < OWR; ow++) row[ow] = 0;
        for (fc_int kh = 0; kh < KH; kh++) {
            for (fc_int kw = 0; kw < KW; kw++) {
                fc_int o = (oh + kh * dh) * PWD + kw * dw;
                if (dw_acc) {
                    const FC_T *restrict xs = xp + o;
                    FC_T *restrict ln = lanes + (kh * KW + kw) * DW_LANES;
                    for (fc_int ow = 0; ow < OWR; ow += DW_LANES)
                        for (int l = 0; l < DW_LANES; l++) ln[l] += row[ow + l] * xs[ow + l];
                }
                if (dxp) {
                    FC_T wv = w[kh * KW + kw];
                    FC_T *restrict ds = dxp + o;
                    for (fc_int ow = 0; ow < OWR; ow++) ds[ow] += wv * row[ow];
                }
            }
        }
    }
reduce:
    if (dw_acc)
        for (fc_int t = 0; t < T; t++) {
            FC_ACC s = 0;
            for (int l = 0; l < DW_LANES; l++) s += lanes[t * DW_LANES + l];
            dw_acc[t] += s;
        }
}
#undef DW_LANES
