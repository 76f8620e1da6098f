/* What the transform templates share (winograd23_impl.h, winograd43_impl.h). */
#ifndef FASTCONV_WINOGRAD_TILES_H
#define FASTCONV_WINOGRAD_TILES_H
#include "base.h"

/* Row ih of an input patch whose `width` columns start at iw0: a pointer into the plane
 * when they all lie inside it, else buf holding them, zero outside the plane and past
 * the `used` columns the tiles read. */
static inline const float *w_patch_row(const float *plane, fc_int H, fc_int W, fc_int ih,
                                       fc_int iw0, int width, fc_int used, float *buf)
{
    int row_in = ih >= 0 && ih < H;
    if (row_in && iw0 >= 0 && iw0 + width <= W) return plane + ih * W + iw0;
    for (int q = 0; q < width; q++) buf[q] = 0;
    if (row_in) {
        fc_int lo = iw0 < 0 ? -iw0 : 0, hi = W - iw0;
        if (hi > used) hi = used;
        for (fc_int q = lo; q < hi; q++) buf[q] = plane[ih * W + iw0 + q];
    }
    return buf;
}

#endif
