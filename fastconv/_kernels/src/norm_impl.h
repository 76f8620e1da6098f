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

static double N_NAME(sqdev)(const float *restrict x, fc_int n, float mean)
{
    float acc[LANES] = {0};
    fc_int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) { float d = x[i + l] - mean; acc[l] += d * d; }
    double s = 0;
    for (; i < n; i++) { double d = (double)x[i] - mean; s += d * d; }
    for (int l = 0; l < LANES; l++) s += acc[l];
    return s;
}

/* *o1 += sum g, *o2 += sum g * (x - mean) with g = dy masked by y > 0 when y != NULL. */
static void N_NAME(bwd_sums)(const float *restrict x, const float *restrict dy,
                             const float *restrict y, fc_int n, float mean, double *o1,
                             double *o2)
{
    float a1[LANES] = {0}, a2[LANES] = {0};
    fc_int i = 0;
    if (y) {
        for (; i + LANES <= n; i += LANES)
            for (int l = 0; l < LANES; l++) {
                float g = y[i + l] <= 0 ? 0.0f : dy[i + l];
                a1[l] += g;
                a2[l] += g * (x[i + l] - mean);
            }
    } else {
        for (; i + LANES <= n; i += LANES)
            for (int l = 0; l < LANES; l++) {
                float g = dy[i + l];
                a1[l] += g;
                a2[l] += g * (x[i + l] - mean);
            }
    }
    double s1 = 0, s2 = 0;
    for (; i < n; i++) {
        double g = (y && y[i] <= 0) ? 0.0 : dy[i];
        s1 += g;
        s2 += g * ((double)x[i] - mean);
    }
    for (int l = 0; l < LANES; l++) { s1 += a1[l]; s2 += a2[l]; }
    *o1 += s1;
    *o2 += s2;
}

/* y = relu?((x - m) * a + b) */
static void N_NAME(affine)(const float *restrict x, float *y, fc_int n, float m, float a,
                           float b, int relu)
{
    if (relu)
        for (fc_int i = 0; i < n; i++) { float v = (x[i] - m) * a + b; y[i] = v <= 0 ? 0.0f : v; }
    else
        for (fc_int i = 0; i < n; i++) y[i] = (x[i] - m) * a + b;
}

/* dx = a * (g - b - (x - m) * ik), g = dy masked by y > 0 when y != NULL.  exact: in
 * double, for channels of few values, where the three terms nearly cancel (two values:
 * the result is eps / (var + eps) of them) and float32 rounding of m, b and ik would
 * cost whole digits; large channels take the float32 loop, which vectorises 4x better. */
static void N_NAME(bwd_apply)(const float *restrict x, const float *restrict dy,
                              const float *restrict y, float *restrict dx, fc_int n, double m,
                              double a, double b, double ik, int exact)
{
    if (!exact) {
        const float mf = (float)m, af = (float)a, bf = (float)b, kf = (float)ik;
        if (y)
            for (fc_int i = 0; i < n; i++) {
                float g = y[i] <= 0 ? 0.0f : dy[i];
                dx[i] = af * (g - bf - (x[i] - mf) * kf);
            }
        else
            for (fc_int i = 0; i < n; i++) dx[i] = af * (dy[i] - bf - (x[i] - mf) * kf);
        return;
    }
    if (y)
        for (fc_int i = 0; i < n; i++) {
            double g = y[i] <= 0 ? 0.0 : dy[i];
            dx[i] = (float)(a * (g - b - ((double)x[i] - m) * ik));
        }
    else
        for (fc_int i = 0; i < n; i++)
            dx[i] = (float)(a * ((double)dy[i] - b - ((double)x[i] - m) * ik));
}
#undef LANES
