"""Pooling kernels: max (with window argmax), average, adaptive average.

Notes
-----
Every kernel parallelises over the N*C planes, so backward scatters (overlapping
windows) stay inside one thread and results do not depend on the thread count.
Max pooling follows PyTorch: padding counts as -inf, NaN wins (``val > max or
isnan(val)``), the argmax is the flat index in the input plane (int32: planes are
checked to hold fewer than 2**31 pixels by the caller), or -1 for a window that lies
wholly in padding (its output is -inf and its gradient goes nowhere).
Average pooling follows PyTorch's divisor rule: the window is clipped to the padded
input for ``count_include_pad``, to the input otherwise, unless ``divisor_override``.
Max unpooling scatters each plane into its output plane by int64 indices; where two
inputs share an index the last in the plane's row-major scan order wins, and only it
receives a gradient (the exact derivative; torch's backward gathers to both).
"""
from cython cimport floating
from cython.parallel cimport prange

from ._cpu cimport fc_dispatch_t, kernels
from ._openmp_helpers cimport nthreads_for
from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc
from libc.string cimport memset
from libc.stdint cimport int32_t, int64_t, uint8_t

cdef const fc_dispatch_t *KT = kernels()    # the kernel table: src/pool.c's best 2x2 set


cdef inline floating window_max(const floating *src, Py_ssize_t W, Py_ssize_t h0,
                                Py_ssize_t h1, Py_ssize_t dh, Py_ssize_t w0, Py_ssize_t w1,
                                Py_ssize_t dw, Py_ssize_t *best) noexcept nogil:
    """Max over rows h0, h0 + dh, ... < h1 and columns w0, w0 + dw, ... < w1 of a plane of
    width W, torch's rule (NaN wins, ties keep the first); *best = its flat index.  A
    window whose every tap lies in padding has no argmax: -inf and -1, which the
    backward skips (h0 * W + w0 would point past the plane)."""
    cdef floating m = -INFINITY, v
    cdef Py_ssize_t ih = h0, iw
    cdef Py_ssize_t b = h0 * W + w0 if (h0 < h1 and w0 < w1) else -1
    cdef bint t
    while ih < h1:
        iw = w0
        while iw < w1:
            v = src[ih * W + iw]
            # selects, not a branch: on real data the comparison is a coin toss
            t = (v > m) | (v != v)
            m = v if t else m
            b = ih * W + iw if t else b
            iw = iw + dw
        ih = ih + dh
    best[0] = b
    return m


def max_pool2d(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
               int32_t[:, :, :, ::1] idx not None, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh,
               Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
               int n_threads):
    """y = max over each window; idx receives the argmax's flat plane index.

    Separably, as max_pool2d_values, each row's maxima carrying their column (float32:
    src/pool_impl.h's max_rows and max_cols, vectorised per ISA): a window's first
    in-range tap and first in-range row are taken as they are, every later one by
    window_max's rule, so values and argmax are window_max's raster scan (NaN wins, the
    last NaN; otherwise the first maximum; a window wholly in padding: -inf and -1).

    x (N, C, H, W) IN; y (N, C, OH, OW) OUT; idx (N, C, OH, OW) int32 OUT."""
    cdef Py_ssize_t P = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3]
    cdef Py_ssize_t p, h, oh, k, ih
    cdef int first
    cdef floating *hm
    cdef int32_t *hc
    if P * OH * OW == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * H * W, n_threads)):
            hm = <floating *>malloc(H * OW * sizeof(floating))
            hc = <int32_t *>malloc(H * OW * sizeof(int32_t))
            if hm == NULL or hc == NULL:
                free(hm)
                free(hc)
                with gil:
                    raise MemoryError("max_pool2d: no memory for a plane's row maxima")
            for h in range(H):
                if floating is float:
                    KT.pool.max_rows(&x[0, 0, 0, 0] + p * H * W + h * W, W, hm + h * OW,
                                     hc + h * OW, OW, KW, sw, pw, dw)
                else:
                    _max_rows(&x[0, 0, 0, 0] + p * H * W + h * W, W, hm + h * OW, hc + h * OW,
                              OW, KW, sw, pw, dw)
            for oh in range(OH):
                first = 1
                for k in range(KH):
                    ih = oh * sh - ph + k * dh
                    if ih < 0 or ih >= H:
                        continue
                    if floating is float:
                        KT.pool.max_cols(hm + ih * OW, hc + ih * OW, <int32_t>(ih * W), OW,
                                         &y[0, 0, 0, 0] + p * OH * OW + oh * OW,
                                         &idx[0, 0, 0, 0] + p * OH * OW + oh * OW, first)
                    else:
                        _max_cols(hm + ih * OW, hc + ih * OW, <int32_t>(ih * W), OW,
                                  &y[0, 0, 0, 0] + p * OH * OW + oh * OW,
                                  &idx[0, 0, 0, 0] + p * OH * OW + oh * OW, first)
                    first = 0
                if first:            # every window row in padding (not reachable with
                    _fill_empty(&y[0, 0, 0, 0] + p * OH * OW + oh * OW,    # torch's pad <= K/2)
                                &idx[0, 0, 0, 0] + p * OH * OW + oh * OW, OW)
            free(hm)
            free(hc)


cdef inline Py_ssize_t _first_column(Py_ssize_t off, Py_ssize_t sw) noexcept nogil:
    """The first output column ow whose tap at offset off (k*dw - pw) lies inside the row:
    0 <= ow*sw + off."""
    return (-off + sw - 1) // sw if off < 0 else 0


cdef inline Py_ssize_t _end_column(Py_ssize_t off, Py_ssize_t sw, Py_ssize_t W,
                                   Py_ssize_t OW) noexcept nogil:
    """One past the last output column (at most OW) whose tap lies inside: ow*sw + off < W."""
    cdef Py_ssize_t hi = (W - off + sw - 1) // sw if W > off else 0
    return hi if hi < OW else OW


cdef void _max_rows(const double *row, Py_ssize_t W, double *hr, int32_t *hc, Py_ssize_t OW,
                    Py_ssize_t KW, Py_ssize_t sw, Py_ssize_t pw, Py_ssize_t dw) noexcept nogil:
    """max_rows of src/pool_impl.h in float64 (the same steps)."""
    cdef Py_ssize_t ow, k, off, lo, hi
    cdef double v, m
    cdef bint t
    for ow in range(OW):
        hr[ow] = -INFINITY
        hc[ow] = -1
    for k in range(KW):
        off = k * dw - pw
        lo = _first_column(off, sw)
        hi = _end_column(off, sw, W, OW)
        for ow in range(lo, hi):
            v = row[ow * sw + off]
            m = hr[ow]
            t = (v > m) | (v != v) | (hc[ow] < 0)
            if t:
                hr[ow] = v
                hc[ow] = <int32_t>(ow * sw + off)


cdef void _max_cols(const double *hr, const int32_t *hc, int32_t base, Py_ssize_t OW, double *y,
                    int32_t *idx, int first) noexcept nogil:
    """max_cols of src/pool_impl.h in float64."""
    cdef Py_ssize_t ow
    cdef double v
    for ow in range(OW):
        v = hr[ow]
        if first:
            y[ow] = v
            idx[ow] = base + hc[ow] if hc[ow] >= 0 else -1
        elif (v > y[ow]) | (v != v):
            y[ow] = v
            idx[ow] = base + hc[ow]


cdef void _fill_empty(floating *y, int32_t *idx, Py_ssize_t OW) noexcept nogil:
    cdef Py_ssize_t ow
    for ow in range(OW):
        y[ow] = -INFINITY
        idx[ow] = -1


def max_pool2d_values(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                      Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                      Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                      int n_threads):
    """max_pool2d without the argmax (inference), separably: each input row's maxima over
    the window columns first (hm, OW per row), then the maxima of those over the window
    rows.  window_max's rule (NaN wins, the last NaN; otherwise the first maximum) taken
    tap by tap in raster order, row by row and then across rows, picks the same value,
    so the bits are max_pool2d's.  Taps are the outer loops and output columns the inner
    ones, which the compiler vectorises (selects, no branches); every input row's column
    maxima serve all the windows that cover it.

    x (N, C, H, W) IN; y (N, C, OH, OW) OUT."""
    cdef Py_ssize_t P = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3]
    cdef Py_ssize_t p, h, oh, ow, k, off, lo, hi, ih
    cdef const floating *src
    cdef const floating *row
    cdef floating *dst
    cdef floating *hm
    cdef floating *hr
    cdef floating m, v
    if P * OH * OW == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * H * W, n_threads)):
            hm = <floating *>malloc(H * OW * sizeof(floating))
            if hm == NULL:
                with gil:
                    raise MemoryError("max_pool2d: no memory for a plane's row maxima")
            src = &x[0, 0, 0, 0] + p * H * W
            dst = &y[0, 0, 0, 0] + p * OH * OW
            for h in range(H):
                hr = hm + h * OW
                row = src + h * W
                for ow in range(OW):
                    hr[ow] = -INFINITY
                for k in range(KW):
                    off = k * dw - pw
                    lo = _first_column(off, sw)
                    hi = _end_column(off, sw, W, OW)
                    for ow in range(lo, hi):
                        v = row[ow * sw + off]
                        m = hr[ow]
                        hr[ow] = v if ((v > m) | (v != v)) else m
            for oh in range(OH):
                dst_row_fill(dst + oh * OW, OW)
                for k in range(KH):
                    ih = oh * sh - ph + k * dh
                    if ih < 0 or ih >= H:
                        continue
                    hr = hm + ih * OW
                    for ow in range(OW):
                        v = hr[ow]
                        m = dst[oh * OW + ow]
                        dst[oh * OW + ow] = v if ((v > m) | (v != v)) else m
            free(hm)


cdef inline void dst_row_fill(floating *d, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        d[i] = -INFINITY


def max_pool2d_backward(const floating[:, :, :, ::1] dy, const int32_t[:, :, :, ::1] idx,
                        floating[:, :, :, ::1] dx, int n_threads):
    """dx[plane, idx] += dy.  dy, idx (N, C, OH, OW) IN; dx (N, C, H, W) OUT (zeroed here)."""
    cdef Py_ssize_t P = dx.shape[0] * dx.shape[1], HW = dx.shape[2] * dx.shape[3]
    cdef Py_ssize_t OHW = dy.shape[2] * dy.shape[3], p, q
    cdef const floating *g
    cdef const int32_t *ix
    cdef floating *d
    if P * HW == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * HW, n_threads)):
            d = &dx[0, 0, 0, 0] + p * HW
            memset(d, 0, HW * sizeof(floating))
            if OHW == 0:
                continue
            g = &dy[0, 0, 0, 0] + p * OHW
            ix = &idx[0, 0, 0, 0] + p * OHW
            for q in range(OHW):
                if ix[q] >= 0:
                    d[ix[q]] += g[q]


cdef struct Window:
    Py_ssize_t h0, h1, w0, w1
    double inv          # 1 / divisor, 0 for an empty window


cdef inline Window avg_window(Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t H, Py_ssize_t W,
                              Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                              Py_ssize_t ph, Py_ssize_t pw, bint include_pad,
                              Py_ssize_t divisor) noexcept nogil:
    """The clipped window of output (oh, ow) and its divisor (returned by value, so each
    prange iteration owns its copy)."""
    cdef Window r
    cdef Py_ssize_t a0 = oh * sh - ph, b0 = ow * sw - pw
    cdef Py_ssize_t a1 = min(a0 + KH, H + ph), b1 = min(b0 + KW, W + pw)
    cdef Py_ssize_t pool = (a1 - a0) * (b1 - b0)
    r.h0 = max(a0, 0); r.w0 = max(b0, 0); r.h1 = min(a1, H); r.w1 = min(b1, W)
    if r.h0 >= r.h1 or r.w0 >= r.w1:
        r.inv = 0
    elif divisor > 0:
        r.inv = 1.0 / divisor
    elif include_pad:
        r.inv = 1.0 / pool
    else:
        r.inv = 1.0 / ((r.h1 - r.h0) * (r.w1 - r.w0))
    return r


def avg_pool2d(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
               Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
               Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad, Py_ssize_t divisor_override,
               int n_threads):
    """PyTorch AvgPool2d forward.  divisor_override <= 0 means none.

    x (N, C, H, W) IN; y (N, C, OH, OW) OUT."""
    cdef Py_ssize_t P = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3]
    cdef Py_ssize_t p, oh, ow, ih, iw
    cdef Window win
    cdef floating s
    cdef const floating *src
    cdef floating *dst
    if P * OH * OW == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * H * W, n_threads)):
            src = &x[0, 0, 0, 0] + p * H * W
            dst = &y[0, 0, 0, 0] + p * OH * OW
            for oh in range(OH):
                for ow in range(OW):
                    win = avg_window(oh, ow, H, W, KH, KW, sh, sw, ph, pw, count_include_pad,
                                     divisor_override)
                    s = 0
                    for ih in range(win.h0, win.h1):
                        for iw in range(win.w0, win.w1):
                            s = s + src[ih * W + iw]
                    dst[oh * OW + ow] = s * <floating>win.inv


def avg_pool2d_backward(const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx,
                        Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                        Py_ssize_t divisor_override, int n_threads):
    """Adjoint of avg_pool2d.  dy (N, C, OH, OW) IN; dx (N, C, H, W) OUT (zeroed here)."""
    cdef Py_ssize_t P = dx.shape[0] * dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dy.shape[2], OW = dy.shape[3]
    cdef Py_ssize_t p, oh, ow, ih, iw
    cdef Window win
    cdef floating g
    cdef const floating *src
    cdef floating *dst
    if P * H * W == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * H * W, n_threads)):
            dst = &dx[0, 0, 0, 0] + p * H * W
            memset(dst, 0, H * W * sizeof(floating))
            if OH * OW == 0:
                continue
            src = &dy[0, 0, 0, 0] + p * OH * OW
            for oh in range(OH):
                for ow in range(OW):
                    win = avg_window(oh, ow, H, W, KH, KW, sh, sw, ph, pw, count_include_pad,
                                     divisor_override)
                    g = src[oh * OW + ow] * <floating>win.inv
                    for ih in range(win.h0, win.h1):
                        for iw in range(win.w0, win.w1):
                            dst[ih * W + iw] += g


cdef inline Py_ssize_t start_index(Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) noexcept nogil:
    return (a * c) // b


cdef inline Py_ssize_t end_index(Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) noexcept nogil:
    return ((a + 1) * c + b - 1) // b


def adaptive_avg_pool2d(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y, int n_threads):
    """Output cell (i, j) averages rows [floor(i*H/OH), ceil((i+1)*H/OH)) and likewise columns.

    x (N, C, H, W) IN; y (N, C, OH, OW) OUT."""
    cdef Py_ssize_t P = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3]
    cdef Py_ssize_t p, oh, ow, ih, iw, h0, h1, w0, w1
    cdef floating s
    cdef const floating *src
    cdef floating *dst
    if P * OH * OW == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * H * W, n_threads)):
            src = &x[0, 0, 0, 0] + p * H * W
            dst = &y[0, 0, 0, 0] + p * OH * OW
            for oh in range(OH):
                h0 = start_index(oh, OH, H)
                h1 = end_index(oh, OH, H)
                for ow in range(OW):
                    w0 = start_index(ow, OW, W)
                    w1 = end_index(ow, OW, W)
                    s = 0
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            s = s + src[ih * W + iw]
                    dst[oh * OW + ow] = s / ((h1 - h0) * (w1 - w0))


def adaptive_avg_pool2d_backward(const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx,
                                 int n_threads):
    """Adjoint of adaptive_avg_pool2d.  dy (N, C, OH, OW) IN; dx (N, C, H, W) OUT."""
    cdef Py_ssize_t P = dx.shape[0] * dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dy.shape[2], OW = dy.shape[3]
    cdef Py_ssize_t p, oh, ow, ih, iw, h0, h1, w0, w1
    cdef floating g
    cdef const floating *src
    cdef floating *dst
    if P * H * W == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * H * W, n_threads)):
            dst = &dx[0, 0, 0, 0] + p * H * W
            memset(dst, 0, H * W * sizeof(floating))
            src = &dy[0, 0, 0, 0] + p * OH * OW
            for oh in range(OH):
                h0 = start_index(oh, OH, H)
                h1 = end_index(oh, OH, H)
                for ow in range(OW):
                    w0 = start_index(ow, OW, W)
                    w1 = end_index(ow, OW, W)
                    g = src[oh * OW + ow] / ((h1 - h0) * (w1 - w0))
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            dst[ih * W + iw] += g


# ---------------------------------------------------------------- 2x2 / stride 2 fast paths

def max_pool2x2(const float[:, :, :, ::1] x, float[:, :, :, ::1] y, uint8_t[:, :, :, ::1] idx,
                int n_threads):
    """2x2 / stride-2 max pooling; idx (or None) gets the window-local argmax (0..3).

    x (N, C, H, W) IN; y, idx (N, C, H//2, W//2) OUT."""
    cdef Py_ssize_t P = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3], p
    cdef uint8_t *ip = &idx[0, 0, 0, 0] if (idx is not None and P * OH * OW > 0) else NULL
    if P * OH * OW == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * H * W, n_threads)):
            KT.pool.max2x2_fwd(&x[0, 0, 0, 0] + p * H * W, H, W, &y[0, 0, 0, 0] + p * OH * OW,
                               (ip + p * OH * OW) if ip != NULL else NULL, OH, OW)


def max_pool2x2_backward(const float[:, :, :, ::1] dy, const uint8_t[:, :, :, ::1] idx,
                         float[:, :, :, ::1] dx, int n_threads):
    """dx = dy routed by the window-local argmax.  dx (N, C, H, W) OUT (fully written)."""
    cdef Py_ssize_t P = dx.shape[0] * dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dy.shape[2], OW = dy.shape[3], p
    if P * H * W == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * H * W, n_threads)):
            KT.pool.max2x2_bwd(&dy[0, 0, 0, 0] + p * OH * OW, &idx[0, 0, 0, 0] + p * OH * OW,
                               OH, OW, &dx[0, 0, 0, 0] + p * H * W, H, W)


def avg_pool2x2(const float[:, :, :, ::1] x, float[:, :, :, ::1] y, float div, int n_threads):
    """2x2 / stride-2 average pooling without padding, dividing each window sum by div."""
    cdef Py_ssize_t P = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3], p
    if P * OH * OW == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * H * W, n_threads)):
            KT.pool.avg2x2_fwd(&x[0, 0, 0, 0] + p * H * W, H, W, &y[0, 0, 0, 0] + p * OH * OW,
                               OH, OW, div)


def avg_pool2x2_backward(const float[:, :, :, ::1] dy, float[:, :, :, ::1] dx, float div,
                         int n_threads):
    """Adjoint of avg_pool2x2.  dx (N, C, H, W) OUT (fully written)."""
    cdef Py_ssize_t P = dx.shape[0] * dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dy.shape[2], OW = dy.shape[3], p
    if P * H * W == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * H * W, n_threads)):
            KT.pool.avg2x2_bwd(&dy[0, 0, 0, 0] + p * OH * OW, OH, OW, &dx[0, 0, 0, 0] + p * H * W,
                               H, W, div)


def adaptive_max_pool2d(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                        int32_t[:, :, :, ::1] idx, int n_threads):
    """Output cell (i, j) is the max over rows [floor(i*H/OH), ceil((i+1)*H/OH)) and
    likewise columns (never empty); idx (or None) gets its flat plane index, with
    max_pool2d's (torch's) rule: NaN wins, ties keep the first (its backward routes the
    gradient).

    x (N, C, H, W) IN; y, idx (N, C, OH, OW) OUT."""
    cdef Py_ssize_t P = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3]
    cdef Py_ssize_t p, oh, ow, h0, h1, w0, w1, best
    cdef const floating *src
    cdef floating *dst
    cdef int32_t *ip = &idx[0, 0, 0, 0] if (idx is not None and P * OH * OW > 0) else NULL
    if P * OH * OW == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * H * W, n_threads)):
            src = &x[0, 0, 0, 0] + p * H * W
            dst = &y[0, 0, 0, 0] + p * OH * OW
            for oh in range(OH):
                h0 = start_index(oh, OH, H)
                h1 = end_index(oh, OH, H)
                for ow in range(OW):
                    w0 = start_index(ow, OW, W)
                    w1 = end_index(ow, OW, W)
                    best = -1        # assigned here, so each thread has its own
                    dst[oh * OW + ow] = window_max(src, W, h0, h1, 1, w0, w1, 1, &best)
                    if ip != NULL:
                        ip[p * OH * OW + oh * OW + ow] = <int32_t>best


# ---------------------------------------------------------------- torch-style indices, unpooling

def indices_from_2x2(const uint8_t[:, :, :, ::1] idx, int64_t[:, :, :, ::1] out, Py_ssize_t W,
                     int n_threads):
    """torch's argmax (flat offset in the input plane of width W) from the 2x2 path's
    window-local one k (0..3, row-major in the window): (2*oh + k/2)*W + 2*ow + k%2.

    idx (N, C, OH, OW) IN; out (N, C, OH, OW) OUT."""
    cdef Py_ssize_t P = idx.shape[0] * idx.shape[1], OH = idx.shape[2], OW = idx.shape[3]
    cdef Py_ssize_t p, oh, ow
    cdef int64_t k
    cdef const uint8_t *src
    cdef int64_t *dst
    if P * OH * OW == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * OH * OW, n_threads)):
            src = &idx[0, 0, 0, 0] + p * OH * OW
            dst = &out[0, 0, 0, 0] + p * OH * OW
            for oh in range(OH):
                for ow in range(OW):
                    k = src[oh * OW + ow]
                    dst[oh * OW + ow] = (2 * oh + (k >> 1)) * W + 2 * ow + (k & 1)


def widen_indices(const int32_t[:, :, :, ::1] idx, int64_t[:, :, :, ::1] out, int n_threads):
    """out = idx as int64 (the general path's plane offsets; -1 stays -1).

    idx, out (N, C, OH, OW)."""
    cdef Py_ssize_t P = idx.shape[0] * idx.shape[1], Q = idx.shape[2] * idx.shape[3], p, q
    cdef const int32_t *src
    cdef int64_t *dst
    if P * Q == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * Q, n_threads)):
            src = &idx[0, 0, 0, 0] + p * Q
            dst = &out[0, 0, 0, 0] + p * Q
            for q in range(Q):
                dst[q] = src[q]


def max_unpool2d(const floating[:, :, :, ::1] x, const int64_t[:, :, :, ::1] idx,
                 floating[:, :, :, ::1] y, int n_threads):
    """y = 0, then y[plane, idx[plane, i]] = x[plane, i] in the plane's scan order (so of
    inputs sharing an index the last wins, whatever the thread count: a plane is one
    thread's).  Indices outside [0, OH*OW) are skipped and counted: the return value,
    which the caller turns into an error.

    x, idx (N, C, H, W) IN; y (N, C, OH, OW) OUT."""
    cdef Py_ssize_t P = x.shape[0] * x.shape[1], HW = x.shape[2] * x.shape[3]
    cdef Py_ssize_t OHW = y.shape[2] * y.shape[3], p, q
    cdef int64_t j
    cdef Py_ssize_t bad = 0
    cdef const floating *src
    cdef const int64_t *ix
    cdef floating *dst
    if P == 0:
        return 0
    if OHW == 0:
        return P * HW
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * (HW + OHW), n_threads)):
            dst = &y[0, 0, 0, 0] + p * OHW
            memset(dst, 0, OHW * sizeof(floating))
            if HW == 0:
                continue
            src = &x[0, 0, 0, 0] + p * HW
            ix = &idx[0, 0, 0, 0] + p * HW
            for q in range(HW):
                j = ix[q]
                if j < 0 or j >= OHW:
                    bad += 1
                else:
                    dst[j] = src[q]
    return bad


def max_unpool2d_backward(const floating[:, :, :, ::1] dy, const int64_t[:, :, :, ::1] idx,
                          floating[:, :, :, ::1] dx, uint8_t[:, ::1] taken, int n_threads):
    """dx[plane, i] = dy[plane, idx[plane, i]] for the input whose value the forward kept
    (the last in scan order with that index), 0 for those it overwrote: scanning each
    plane backwards, the first to claim an output position is its writer.  taken
    (N*C, OH*OW) is scratch.  Returns the count of indices outside [0, OH*OW) (their
    gradient is 0; the caller raises).

    dy (N, C, OH, OW) IN; idx (N, C, H, W) IN; dx (N, C, H, W) OUT."""
    cdef Py_ssize_t P = dx.shape[0] * dx.shape[1], HW = dx.shape[2] * dx.shape[3]
    cdef Py_ssize_t OHW = dy.shape[2] * dy.shape[3], p, q
    cdef int64_t j
    cdef Py_ssize_t bad = 0
    cdef const floating *g
    cdef const int64_t *ix
    cdef floating *d
    cdef uint8_t *t
    if P * HW == 0:
        return 0
    if OHW == 0:
        memset(&dx[0, 0, 0, 0], 0, P * HW * sizeof(floating))
        return P * HW
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * (HW + OHW), n_threads)):
            t = &taken[0, 0] + p * OHW
            memset(t, 0, OHW)
            g = &dy[0, 0, 0, 0] + p * OHW
            ix = &idx[0, 0, 0, 0] + p * HW
            d = &dx[0, 0, 0, 0] + p * HW
            for q in range(HW - 1, -1, -1):
                j = ix[q]
                if j < 0 or j >= OHW:
                    bad += 1
                    d[q] = 0
                elif t[j]:
                    d[q] = 0
                else:
                    t[j] = 1
                    d[q] = g[j]
    return bad
