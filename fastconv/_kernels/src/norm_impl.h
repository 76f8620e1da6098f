/* Per-plane reductions and element-wise passes for BatchNorm, instantiated per ISA by
 * norm.c.  Sums use LANES float accumulators in a fixed pattern (lane = index mod LANES),
 * so GCC vectorises them without -ffast-math and the order never depends on threads;
 * each plane's lanes are combined in double by the caller's fixed plane order. */
#define LANES 32

static double N_NAME(sum)(const float *restrict x, fc_int n)
{
    float acc[LANES] = {0};
    fc_int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += x[i + l];
    double s = 0;
    for (; i < n; i++) s += x[i];
    for (int l = 0; l < LANES; l++) s += acc[l];
    return s;
}

/* dy where the fused activation passes it: ReLU where y > 0 (not y <= 0: NaN passes, as
 * ReLU's own backward lets it), ReLU6 where 0 < y < 6 (ReLU6's backward).  The same
 * holds of the pre-activation value v = (x - mean) * ma + mb, so the mask can come from
 * x.  Both operands loaded and combined with & (not &&): a select, so loops vectorise. */
#define N_PASS(y, relu) ((relu) == 2 ? ((y) > 0) & ((y) < 6) : !((y) <= 0))
/* the value the fused activation saw: y, or recomputed from x as the forward did */
#define N_SEEN(i) (y ? y[i] : (x[i] - mf) * ma + mb)

/* Per-channel sums over a channel's np planes of n values each (x and y planes xs apart,
 * dy planes gs apart), in one call: the lanes run on from plane to plane (a plane's tail
 * goes to lanes 0..) and are added into the double sums at the end of the call and every
 * FC_NORM_FLUSH values or so (after each ceil(FC_NORM_FLUSH / n) planes), so a plane of
 * 36 values (a 6x6 map) costs its loads and FMAs, not a reduction of 2 x 32 lanes and a
 * call of its own.  A caller may split the planes into calls of ceil(FC_NORM_FLUSH / n)
 * (the bf16 path, which widens a chunk at a time): the same bits. */
#define N_PLANES_LOOP(...)                                                           \
    fc_int since = 0;                                                                \
    for (fc_int p = 0; p < np; p++) {                                                \
        const fc_int ox = p * xs, og = p * gs;                                       \
        fc_int i = 0;                                                                \
        for (; i + LANES <= n; i += LANES)                                           \
            for (int l = 0; l < LANES; l++) {                                        \
                const fc_int kx = ox + i + l, kg = og + i + l; __VA_ARGS__ }         \
        for (int l = 0; i + l < n; l++) {                                            \
            const fc_int kx = ox + i + l, kg = og + i + l; __VA_ARGS__ }             \
        since += n;                                                                  \
        if (since >= FC_NORM_FLUSH || p == np - 1) { N_FLUSH_LANES since = 0; }      \
    }

static double N_NAME(sum_planes)(const float *restrict x, fc_int np, fc_int n, fc_int xs)
{
    float acc[LANES] = {0};
    double s = 0;
    const fc_int gs = xs;
#define N_FLUSH_LANES for (int l = 0; l < LANES; l++) { s += acc[l]; acc[l] = 0; }
    N_PLANES_LOOP((void)kg; acc[l] += x[kx];)
#undef N_FLUSH_LANES
    return s;
}

static double N_NAME(sqdev_planes)(const float *restrict x, fc_int np, fc_int n, fc_int xs,
                                   float mean)
{
    float acc[LANES] = {0};
    double s = 0;
    const fc_int gs = xs;
#define N_FLUSH_LANES for (int l = 0; l < LANES; l++) { s += acc[l]; acc[l] = 0; }
    N_PLANES_LOOP((void)kg; float d = x[kx] - mean; acc[l] += d * d;)
#undef N_FLUSH_LANES
    return s;
}

/* *o1 += sum g, *o2 += sum g * (x - mean) over one channel's planes, g as bwd_sums's
 * (the lanes added into *o1, *o2 one by one, so split calls give the same bits). */
static void N_NAME(bwd_sums_planes)(const float *restrict x, const float *restrict dy,
                                    const float *restrict y, int relu, float ma, float mb,
                                    fc_int np, fc_int n, fc_int xs, fc_int gs, float mean,
                                    double *o1, double *o2)
{
    float a1[LANES] = {0}, a2[LANES] = {0};
    double s1 = *o1, s2 = *o2;
#define N_FLUSH_LANES for (int l = 0; l < LANES; l++) { s1 += a1[l]; s2 += a2[l]; a1[l] = a2[l] = 0; }
    if (relu && y) {
        N_PLANES_LOOP(float g = N_PASS(y[kx], relu) ? dy[kg] : 0.0f;
                      a1[l] += g; a2[l] += g * (x[kx] - mean);)
    } else if (relu) {
        N_PLANES_LOOP(float d = x[kx] - mean, v = d * ma + mb;
                      float g = N_PASS(v, relu) ? dy[kg] : 0.0f;
                      a1[l] += g; a2[l] += g * d;)
    } else {
        N_PLANES_LOOP(float g = dy[kg]; a1[l] += g; a2[l] += g * (x[kx] - mean);)
    }
#undef N_FLUSH_LANES
    *o1 = s1;
    *o2 = s2;
}
#undef N_PLANES_LOOP

/* y = act((x - m) * a + b), act per relu (0 none, 1 ReLU, 2 ReLU6: the value clamped to
 * [0, 6], NaN kept, as ReLU6's own kernel does) */
static void N_NAME(affine)(const float *restrict x, float *y, fc_int n, float m, float a,
                           float b, int relu)
{
    if (relu == 2)
        for (fc_int i = 0; i < n; i++) {
            float v = (x[i] - m) * a + b;
            y[i] = v <= 0 ? 0.0f : (v >= 6 ? 6.0f : v);
        }
    else if (relu)
        for (fc_int i = 0; i < n; i++) { float v = (x[i] - m) * a + b; y[i] = v <= 0 ? 0.0f : v; }
    else
        for (fc_int i = 0; i < n; i++) y[i] = (x[i] - m) * a + b;
}

/* dx = a * (g - b - (x - m) * ik), g = dy masked by y > 0 when y != NULL.  exact: in
 * double, for channels of few values, where the three terms nearly cancel (two values:
 * the result is eps / (var + eps) of them) and float32 rounding of m, b and ik would
 * cost whole digits; large channels take the float32 loop, which vectorises 4x better. */
static void N_NAME(bwd_apply)(const float *restrict x, const float *restrict dy,
                              const float *restrict y, int relu, float ma, float mb,
                              float *restrict dx, fc_int n, double m, double a, double b,
                              double ik, int exact)
{
    const float mf = (float)m;
    if (!exact) {
        const float af = (float)a, bf = (float)b, kf = (float)ik;
        if (relu && y)
            for (fc_int i = 0; i < n; i++) {
                float v = y[i], g = N_PASS(v, relu) ? dy[i] : 0.0f;
                dx[i] = af * (g - bf - (x[i] - mf) * kf);
            }
        else if (relu)
            for (fc_int i = 0; i < n; i++) {
                float d = x[i] - mf, v = d * ma + mb, g = N_PASS(v, relu) ? dy[i] : 0.0f;
                dx[i] = af * (g - bf - d * kf);
            }
        else
            for (fc_int i = 0; i < n; i++) dx[i] = af * (dy[i] - bf - (x[i] - mf) * kf);
        return;
    }
    if (relu)
        for (fc_int i = 0; i < n; i++) {
            double g = N_PASS(N_SEEN(i), relu) ? dy[i] : 0.0;
            dx[i] = (float)(a * (g - b - ((double)x[i] - m) * ik));
        }
    else
        for (fc_int i = 0; i < n; i++)
            dx[i] = (float)(a * ((double)dy[i] - b - ((double)x[i] - m) * ik));
}
#undef LANES
#undef N_PASS
#undef N_SEEN
