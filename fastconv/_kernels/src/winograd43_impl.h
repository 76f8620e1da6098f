/* Winograd F(4x4, 3x3) transforms (Lavin & Gray, arXiv 1509.09308), instantiated per ISA
 * by winograd_generic.c and winograd_avx2.c.  A 4x4 output tile costs 36 multiplies
 * instead of 144 (F(2x2, 3x3): 64), from a 6x6 input patch d:
 *     Y = A^T [ (G g G^T) (.) (B^T d B) ] A
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
 *          0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * W43_WL (16 or 8, set by the includer) horizontally consecutive tiles go through at
 * once, one vector per line below; the compiler vectorises the lane loops for the ISA
 * it is built for (AVX-512 has hand-written versions in winograd_avx512.c).  The
 * 8-lane build serves planes whose tile rows are 8 tiles long. */
#define WL W43_WL

/* B^T applied to six values (one column or row of a patch), in place of d[0..5]. */
#define W43_BT(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5)   \
    do {                                                          \
        float s12 = (d1) + (d2), s34 = (d3) + (d4);                \
        o0 = 4.0f * (d0) - 5.0f * (d2) + (d4);                    \
        o1 = s34 - 4.0f * s12;                                    \
        o2 = ((d4) - (d3)) + 4.0f * ((d1) - (d2));                \
        o3 = ((d4) - (d2)) + 2.0f * ((d3) - (d1));                \
        o4 = ((d4) - (d2)) - 2.0f * ((d3) - (d1));                \
        o5 = 4.0f * (d1) - 5.0f * (d3) + (d5);                    \
    } while (0)

/* V[xi*vs + j], xi = 6*i + k, for j < n tiles of one row of tiles; patch origin
 * (ih0, iw0); rows and columns outside the plane read as zeros. */
static void W_NAME(input43)(const float *restrict plane, fc_int H, fc_int W, fc_int ih0,
                            fc_int iw0, int n, float *restrict V, fc_int vs)
{
    float h[6][6][WL];            /* h[r][k] = (row r of the patch) B, column k */
    float buf[4 * WL + 2];
    for (int r = 0; r < 6; r++) {
        const float *row = w_patch_row(plane, H, W, ih0 + r, iw0, 4 * WL + 2, 4 * (fc_int)n + 2,
                                       buf);
        float c[6][WL];           /* patch columns 4q + k: stride-4 loads */
        for (int q = 0; q < WL; q++)
            for (int k = 0; k < 6; k++) c[k][q] = row[4 * q + k];
        for (int q = 0; q < WL; q++)
            W43_BT(c[0][q], c[1][q], c[2][q], c[3][q], c[4][q], c[5][q],
                   h[r][0][q], h[r][1][q], h[r][2][q], h[r][3][q], h[r][4][q], h[r][5][q]);
    }
    for (int k = 0; k < 6; k++) {  /* V = B^T h (vertical pass) */
        float v[6][WL];
        for (int q = 0; q < WL; q++)
            W43_BT(h[0][k][q], h[1][k][q], h[2][k][q], h[3][k][q], h[4][k][q], h[5][k][q],
                   v[0][q], v[1][q], v[2][q], v[3][q], v[4][q], v[5][q]);
        for (int i = 0; i < 6; i++) {
            float *dst = V + (i * 6 + k) * vs;
            if (n == WL)
                for (int q = 0; q < WL; q++) dst[q] = v[i][q];
            else
                for (int q = 0; q < n; q++) dst[q] = v[i][q];
        }
    }
}

/* A^T applied to six values. */
#define W43_AT(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3)           \
    do {                                                          \
        float a12 = (m1) + (m2), d12 = (m1) - (m2);               \
        float a34 = (m3) + (m4), d34 = (m3) - (m4);               \
        o0 = (m0) + a12 + a34;                                    \
        o1 = d12 + 2.0f * d34;                                    \
        o2 = a12 + 4.0f * a34;                                    \
        o3 = d12 + 8.0f * d34 + (m5);                             \
    } while (0)

/* The 4x4 outputs of n tiles from Mx[xi*ms + j]: rows oh0.. (those < OH) of one plane,
 * columns ow0.. (those < OW), plus bias, then ReLU if asked. */
static void W_NAME(output43)(const float *restrict Mx, fc_int ms, int n, float *restrict y,
                             fc_int OH, fc_int OW, fc_int oh0, fc_int ow0, float bias, int relu)
{
    float t[4][6][WL];
    for (int k = 0; k < 6; k++) {  /* t = A^T m (down each column k) */
        float m[6][WL];
        for (int i = 0; i < 6; i++) {
            const float *src = Mx + (i * 6 + k) * ms;
            if (n == WL)
                for (int j = 0; j < WL; j++) m[i][j] = src[j];
            else
                for (int j = 0; j < WL; j++) m[i][j] = j < n ? src[j] : 0.0f;
        }
        for (int j = 0; j < WL; j++)
            W43_AT(m[0][j], m[1][j], m[2][j], m[3][j], m[4][j], m[5][j],
                   t[0][k][j], t[1][k][j], t[2][k][j], t[3][k][j]);
    }
    fc_int cols = 4 * (fc_int)n;
    if (ow0 + cols > OW) cols = OW - ow0;
    for (int r = 0; r < 4; r++) {  /* y = t A (along each row), interleaved into the row */
        if (oh0 + r >= OH) break;
        float o[4 * WL];
        for (int j = 0; j < WL; j++) {
            float a0, a1, a2, a3;
            W43_AT(t[r][0][j], t[r][1][j], t[r][2][j], t[r][3][j], t[r][4][j], t[r][5][j],
                   a0, a1, a2, a3);
            a0 += bias;
            a1 += bias;
            a2 += bias;
            a3 += bias;
            if (relu) {
                a0 = a0 <= 0 ? 0.0f : a0;
                a1 = a1 <= 0 ? 0.0f : a1;
                a2 = a2 <= 0 ? 0.0f : a2;
                a3 = a3 <= 0 ? 0.0f : a3;
            }
            o[4 * j] = a0;
            o[4 * j + 1] = a1;
            o[4 * j + 2] = a2;
            o[4 * j + 3] = a3;
        }
        float *dst = y + (oh0 + r) * OW + ow0;
        if (cols == 4 * WL)
            for (int q = 0; q < 4 * WL; q++) dst[q] = o[q];
        else
            for (fc_int q = 0; q < cols; q++) dst[q] = o[q];
    }
}
#undef WL
