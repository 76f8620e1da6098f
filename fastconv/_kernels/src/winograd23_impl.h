/* Winograd F(2x2, 3x3) transforms (Lavin & Gray, arXiv 1509.09308), instantiated per ISA
 * by winograd_generic.c and winograd_avx2.c.  Each output 2x2 tile needs 16 multiplies
 * instead of 36:
 *     Y = A^T [ (G g G^T) (.) (B^T d B) ] A
 * with d the 4x4 input patch.  The transforms run on 16 horizontally consecutive tiles
 * at once, so every arithmetic line below is a 16-lane vector operation. */
#define WL 16

/* V[xi*vs + j] for j < n tiles of one row of tiles, patch origin (ih0, iw0); vs = C*ts. */
static void W_NAME(input_tiles)(const float *restrict plane, fc_int H, fc_int W, fc_int ih0,
                                fc_int iw0, int n, float *restrict V, fc_int vs)
{
    float h[4][4][WL];            /* h[r] = row r of the patch times B (horizontal pass) */
    float buf[2 * WL + 2];
    for (int r = 0; r < 4; r++) {
        const float *row = w_patch_row(plane, H, W, ih0 + r, iw0, 2 * WL + 2, 2 * (fc_int)n + 2,
                                       buf);
        float e[WL + 1], o[WL + 1];   /* even / odd patch columns: a stride-2 load pair */
        for (int q = 0; q < WL; q++) { e[q] = row[2 * q]; o[q] = row[2 * q + 1]; }
        e[WL] = row[2 * WL];
        o[WL] = row[2 * WL + 1];
        for (int q = 0; q < WL; q++) {
            h[r][0][q] = e[q] - e[q + 1];
            h[r][1][q] = o[q] + e[q + 1];
            h[r][2][q] = e[q + 1] - o[q];
            h[r][3][q] = o[q] - o[q + 1];
        }
    }
    for (int k = 0; k < 4; k++) {  /* V = B^T h (vertical pass) */
        float *v0 = V + (0 * 4 + k) * vs, *v1 = V + (1 * 4 + k) * vs;
        float *v2 = V + (2 * 4 + k) * vs, *v3 = V + (3 * 4 + k) * vs;
        if (n == WL) {
            for (int q = 0; q < WL; q++) {
                v0[q] = h[0][k][q] - h[2][k][q];
                v1[q] = h[1][k][q] + h[2][k][q];
                v2[q] = h[2][k][q] - h[1][k][q];
                v3[q] = h[1][k][q] - h[3][k][q];
            }
        } else {
            for (int q = 0; q < n; q++) {
                v0[q] = h[0][k][q] - h[2][k][q];
                v1[q] = h[1][k][q] + h[2][k][q];
                v2[q] = h[2][k][q] - h[1][k][q];
                v3[q] = h[1][k][q] - h[3][k][q];
            }
        }
    }
}

/* The 2x2 outputs of n tiles from Mx[xi*ms + j]; rows oh0, oh0+1 (if < OH) of one plane. */
static void W_NAME(output_tiles)(const float *restrict Mx, fc_int ms, int n, float *restrict y,
                                 fc_int OH, fc_int OW, fc_int oh0, fc_int ow0, float bias,
                                 int relu)
{
    float m[16][WL], t[2][4][WL], o[2][2 * WL];
    for (int xi = 0; xi < 16; xi++) {
        const float *src = Mx + xi * ms;
        if (n == WL) {
            for (int j = 0; j < WL; j++) m[xi][j] = src[j];
        } else {
            for (int j = 0; j < WL; j++) m[xi][j] = j < n ? src[j] : 0.0f;
        }
    }
    for (int k = 0; k < 4; k++)    /* t = A^T m (rows) */
        for (int j = 0; j < WL; j++) {
            t[0][k][j] = m[0 + k][j] + m[4 + k][j] + m[8 + k][j];
            t[1][k][j] = m[4 + k][j] - m[8 + k][j] - m[12 + k][j];
        }
    for (int r = 0; r < 2; r++)    /* y = t A (columns), interleaved into output rows */
        for (int j = 0; j < WL; j++) {
            float a = t[r][0][j] + t[r][1][j] + t[r][2][j] + bias;
            float b = t[r][1][j] - t[r][2][j] - t[r][3][j] + bias;
            if (relu) { a = a <= 0 ? 0.0f : a; b = b <= 0 ? 0.0f : b; }
            o[r][2 * j] = a;
            o[r][2 * j + 1] = b;
        }
    fc_int cols = 2 * (fc_int)n;
    if (ow0 + cols > OW) cols = OW - ow0;
    for (int r = 0; r < 2; r++) {
        if (oh0 + r >= OH) break;
        float *dst = y + (oh0 + r) * OW + ow0;
        if (cols == 2 * WL) {
            for (int q = 0; q < 2 * WL; q++) dst[q] = o[r][q];
        } else {
            for (fc_int q = 0; q < cols; q++) dst[q] = o[r][q];
        }
    }
}
/* Z[xi*zs + j] = (A dY A^T)[xi] for j < n tiles of one row of tiles (weight gradients):
 * the 2x2 output-gradient tile at rows oh0, oh0+1 and columns ow0.., zero past OH, OW. */
static void W_NAME(grad_tiles)(const float *restrict dy, fc_int OH, fc_int OW, fc_int oh0,
                               fc_int ow0, int n, float *restrict Z, fc_int zs)
{
    float h[2][4][WL];
    fc_int cols = 2 * (fc_int)n;
    if (ow0 + cols > OW) cols = OW - ow0;
    for (int r = 0; r < 2; r++) {
        float buf[2 * WL];
        for (int q = 0; q < 2 * WL; q++) buf[q] = 0;
        if (oh0 + r < OH)
            for (fc_int q = 0; q < cols; q++) buf[q] = dy[(oh0 + r) * OW + ow0 + q];
        for (int q = 0; q < WL; q++) {
            float e = buf[2 * q], o = buf[2 * q + 1];
            h[r][0][q] = e;
            h[r][1][q] = e + o;
            h[r][2][q] = e - o;
            h[r][3][q] = 0.0f - o;
        }
    }
    for (int k = 0; k < 4; k++) {
        float *z0 = Z + (0 * 4 + k) * zs, *z1 = Z + (1 * 4 + k) * zs;
        float *z2 = Z + (2 * 4 + k) * zs, *z3 = Z + (3 * 4 + k) * zs;
        for (int q = 0; q < n; q++) {
            z0[q] = h[0][k][q];
            z1[q] = h[0][k][q] + h[1][k][q];
            z2[q] = h[0][k][q] - h[1][k][q];
            z3[q] = 0.0f - h[1][k][q];
        }
    }
}
#undef WL
