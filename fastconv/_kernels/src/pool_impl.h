/* 2x2 / stride-2 pooling planes (no padding, no dilation): the shape of nearly every
 * downsampling pool, and the two separable steps of any other max pool with its argmax.
 * Instantiated per ISA by pool.c; written as branch-free selects over stride-s loads
 * so GCC vectorises them.  Max pooling scans the window in torch's
 * order (a, b / c, d) with "v > m or isnan(v)", so values, NaN handling and the chosen
 * argmax match torch exactly; the argmax is stored window-locally as one byte. */

static void P_NAME(max2x2_fwd)(const float *restrict x, fc_int H, fc_int W, float *restrict y,
                               unsigned char *restrict idx, fc_int OH, fc_int OW)
{
    for (fc_int oh = 0; oh < OH; oh++) {
        const float *restrict r0 = x + (2 * oh) * W, *restrict r1 = r0 + W;
        float *restrict yr = y + oh * OW;
        unsigned char *restrict ir = idx ? idx + oh * OW : NULL;
        if (ir) {
            for (fc_int ow = 0; ow < OW; ow++) {
                float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
                float m = a;
                unsigned char k = 0;
                int t = (b > m) | (b != b); m = t ? b : m; k = t ? 1 : k;
                t = (c > m) | (c != c); m = t ? c : m; k = t ? 2 : k;
                t = (d > m) | (d != d); m = t ? d : m; k = t ? 3 : k;
                yr[ow] = m;
                ir[ow] = k;
            }
        } else {
            for (fc_int ow = 0; ow < OW; ow++) {
                float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
                float m = a;
                m = ((b > m) | (b != b)) ? b : m;
                m = ((c > m) | (c != c)) ? c : m;
                m = ((d > m) | (d != d)) ? d : m;
                yr[ow] = m;
            }
        }
    }
}

/* dx (H x W) = dy routed to each window's argmax; every dx element is written once
 * (rows/columns past 2*OH, 2*OW are zeroed). */
static void P_NAME(max2x2_bwd)(const float *restrict dy, const unsigned char *restrict idx,
                               fc_int OH, fc_int OW, float *restrict dx, fc_int H, fc_int W)
{
    for (fc_int oh = 0; oh < OH; oh++) {
        float *restrict r0 = dx + (2 * oh) * W, *restrict r1 = r0 + W;
        const float *restrict gr = dy + oh * OW;
        const unsigned char *restrict ir = idx + oh * OW;
        for (fc_int ow = 0; ow < OW; ow++) {
            float g = gr[ow];
            unsigned char k = ir[ow];
            r0[2 * ow] = k == 0 ? g : 0.0f;
            r0[2 * ow + 1] = k == 1 ? g : 0.0f;
            r1[2 * ow] = k == 2 ? g : 0.0f;
            r1[2 * ow + 1] = k == 3 ? g : 0.0f;
        }
        for (fc_int w = 2 * OW; w < W; w++) r0[w] = r1[w] = 0;
    }
    for (fc_int h = 2 * OH; h < H; h++)
        for (fc_int w = 0; w < W; w++) dx[h * W + w] = 0;
}

/* Average of each 2x2 window, summed in torch's order ((a + b) + c) + d, then / div. */
static void P_NAME(avg2x2_fwd)(const float *restrict x, fc_int H, fc_int W, float *restrict y,
                               fc_int OH, fc_int OW, float div)
{
    for (fc_int oh = 0; oh < OH; oh++) {
        const float *restrict r0 = x + (2 * oh) * W, *restrict r1 = r0 + W;
        float *restrict yr = y + oh * OW;
        for (fc_int ow = 0; ow < OW; ow++)
            yr[ow] = (((r0[2 * ow] + r0[2 * ow + 1]) + r1[2 * ow]) + r1[2 * ow + 1]) / div;
    }
}

static void P_NAME(avg2x2_bwd)(const float *restrict dy, fc_int OH, fc_int OW,
                               float *restrict dx, fc_int H, fc_int W, float div)
{
    for (fc_int oh = 0; oh < OH; oh++) {
        float *restrict r0 = dx + (2 * oh) * W, *restrict r1 = r0 + W;
        const float *restrict gr = dy + oh * OW;
        for (fc_int ow = 0; ow < OW; ow++) {
            float g = gr[ow] / div;
            r0[2 * ow] = g;
            r0[2 * ow + 1] = g;
            r1[2 * ow] = g;
            r1[2 * ow + 1] = g;
        }
        for (fc_int w = 2 * OW; w < W; w++) r0[w] = r1[w] = 0;
    }
    for (fc_int h = 2 * OH; h < H; h++)
        for (fc_int w = 0; w < W; w++) dx[h * W + w] = 0;
}

/* Max pooling with the argmax, any window (the separable form, _pool.pyx's max_pool2d):
 * one input row's maxima over each window's columns, carrying the column.  hr, hc
 * (OW): the maximum and its column, -inf and -1 where no tap lies in the row's range.
 * A window's first in-range tap is taken as it is, every later one by torch's rule,
 * the raster scan's result.  Plane widths are under 2**31 (checked by the caller). */
static void P_NAME(max_rows)(const float *restrict row, fc_int W, float *restrict hr,
                             int32_t *restrict hc, fc_int OW, fc_int KW, fc_int sw, fc_int pw,
                             fc_int dw)
{
    for (fc_int ow = 0; ow < OW; ow++) {
        hr[ow] = -INFINITY;
        hc[ow] = -1;
    }
    for (fc_int k = 0; k < KW; k++) {
        /* the columns ow whose tap k lies inside: 0 <= ow*sw + off < W */
        fc_int off = k * dw - pw;
        fc_int lo = off < 0 ? (-off + sw - 1) / sw : 0;
        fc_int hi = W > off ? (W - off + sw - 1) / sw : 0;
        if (hi > OW) hi = OW;
        const int32_t s = (int32_t)sw, o = (int32_t)off;
        for (int32_t ow = (int32_t)lo; ow < (int32_t)hi; ow++) {
            float v = row[ow * s + o], m = hr[ow];
            int32_t c = hc[ow];
            int t = (v > m) | (v != v) | (c < 0);
            hr[ow] = t ? v : m;
            hc[ow] = t ? ow * s + o : c;
        }
    }
}

/* The second step: a window row's maxima (hr, hc from max_rows on input row ih, base =
 * ih * W) folded into the output row y, idx (OW); first: the window's first row in range,
 * taken as it is. */
static void P_NAME(max_cols)(const float *restrict hr, const int32_t *restrict hc,
                             int32_t base, fc_int OW, float *restrict y, int32_t *restrict idx,
                             int first)
{
    if (first) {
        for (fc_int ow = 0; ow < OW; ow++) {
            y[ow] = hr[ow];
            idx[ow] = hc[ow] < 0 ? -1 : base + hc[ow];
        }
        return;
    }
    for (fc_int ow = 0; ow < OW; ow++) {
        /* a column with no tap in range has -inf, which never wins here */
        float v = hr[ow], m = y[ow];
        int t = (v > m) | (v != v);
        y[ow] = t ? v : m;
        idx[ow] = t ? base + hc[ow] : idx[ow];
    }
}
