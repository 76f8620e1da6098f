"""Direct depthwise convolution (groups == C_in, any channel multiplier).

Notes
-----
Each output channel co reads only input channel co // mult.  A GEMM would have
M = mult, K = K_h*K_w: all packing, no arithmetic.  The plane kernels (src/depthwise.c,
the best set for the CPU from the dispatch table) work a row at a time: for each tap, a
contiguous axpy over the valid output range.  Stride 1 in float32 runs on zero-padded
planes kept in the per-thread workspace, so every row loop is whole vectors; where the
output rows keep the input's width (from 6 columns) each plane is one flat run of
vectors read in place, the taps that leave the plane masked (_forward_flat,
_backward_flat); planes under 6 columns put 16 channels in the vector lanes.
Forward planes run in parallel; the backward runs over input channels, each channel's
sums in one thread in a fixed order, so the bits do not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange

from ._cpu cimport FC_WS_SCRATCH, check_workspace, fc_dispatch_t, kernels
from libc.stdlib cimport free, malloc
from libc.string cimport memset, memcpy

cdef const fc_dispatch_t *KT = kernels()    # the kernel table


cdef inline void _load_padded(const float *x, Py_ssize_t H, Py_ssize_t W, float *xp,
                              Py_ssize_t PWD, Py_ssize_t pt, Py_ssize_t pl) noexcept nogil:
    """Copy an H x W plane into the interior of a zeroed padded plane at (pt, pl).  An
    inline loop, not memcpy: rows are short (a call per 28 values cost a sixth of a
    stride-1 backward)."""
    cdef Py_ssize_t r, i
    cdef float *d
    cdef const float *s
    for r in range(H):
        d = xp + (r + pt) * PWD + pl
        s = x + r * W
        for i in range(W):
            d[i] = s[i]


cdef void _forward_lanes(const float *x, const float *w, const float *bias, float *y,
                         Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                         Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW,
                         const fc_dwgeom_t *g, int relu, int nt) noexcept nogil:
    """Narrow planes (OW under FC_DW_LANES_BELOW(_S), one input channel per output): 16 channels
    of one image per call, in the vector lanes; each thread's scratch from the
    workspace."""
    cdef Py_ssize_t nb = (C + 15) // 16, b, n, c0
    cdef size_t scratch = (H * W + KH * KW + OH * OW) * 16 * sizeof(float)
    cdef float *s
    for b in prange(N * nb, schedule='static', num_threads=nt):
        s = <float *>KT.workspace.get(FC_WS_SCRATCH, scratch)
        if s == NULL:
            KT.workspace.flag_error()
            continue
        n = b // nb
        c0 = (b % nb) * 16
        KT.depthwise.fwd_lanes_f32(x + (n * C + c0) * H * W, H, W, w + c0 * KH * KW, KH, KW,
                                   y + (n * C + c0) * OH * OW, OH, OW, g,
                                   (bias + c0) if bias != NULL else NULL,
                                   <int>(16 if C - c0 > 16 else C - c0), relu, s)


cdef void _backward_lanes(const float *x, const float *w, const float *dy, float *dx,
                          double *dw_acc, double *db_acc, Py_ssize_t N, Py_ssize_t C,
                          Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW,
                          Py_ssize_t KH, Py_ssize_t KW, const fc_dwgeom_t *g, bint need_dx,
                          bint need_dw, bint need_db, int nt) noexcept nogil:
    """_forward_lanes' backward: parallel over 16-channel blocks, images in order inside
    (each channel's sums in one thread, in a fixed order: thread-count invariant).
    dw_acc (C, KH*KW) and db_acc (C,) float64, written."""
    cdef Py_ssize_t nb = (C + 15) // 16, b, n, c0, l, t, q, T = KH * KW
    cdef size_t scratch = (2 * H * W + OH * OW + T + T) * 16 * sizeof(float)
    cdef float *s
    cdef float *dwl
    cdef const float *gp
    cdef double sb
    cdef int nc
    for b in prange(nb, schedule='static', num_threads=nt):
        s = <float *>KT.workspace.get(FC_WS_SCRATCH, scratch)
        if s == NULL:
            KT.workspace.flag_error()
            continue
        dwl = s + (2 * H * W + OH * OW + T) * 16
        c0 = b * 16
        nc = <int>(16 if C - c0 > 16 else C - c0)
        for l in range(nc):
            if need_dw:
                for t in range(T):
                    dw_acc[(c0 + l) * T + t] = 0
            if need_db:
                db_acc[c0 + l] = 0
        for n in range(N):
            gp = dy + (n * C + c0) * OH * OW
            if need_db:     # vector lanes (norm.c's sum): a scalar double chain waits
                for l in range(nc):     # on the adder (a fifth of a stride-1 backward)
                    db_acc[c0 + l] += KT.norm.sum(gp + l * OH * OW, OH * OW)
            if need_dx or need_dw:
                KT.depthwise.bwd_lanes_f32(x + (n * C + c0) * H * W, gp, H, W, w + c0 * T, KH,
                                           KW, OH, OW, g, nc,
                                           (dx + (n * C + c0) * H * W) if need_dx else NULL,
                                           dwl if need_dw else NULL, s)
                if need_dw:
                    for l in range(nc):
                        for t in range(T):
                            dw_acc[(c0 + l) * T + t] += dwl[t * 16 + l]


# the flat stride-1 kernels (OW == W): planes up to FLAT_MAX values (beyond, 56x56
# measured even with the padded rows), taps up to FLAT_TAPS
cdef enum:
    FLAT_MAX = 4096
    FLAT_TAPS = 25


cdef void _flat_taps(fc_int *off, unsigned int *masks, const float **tm, Py_ssize_t KH,
                     Py_ssize_t KW, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t sgn,
                     Py_ssize_t rt, Py_ssize_t rl, Py_ssize_t W, Py_ssize_t src_rows,
                     Py_ssize_t n_dst, Py_ssize_t nvr, Py_ssize_t *lo,
                     Py_ssize_t *hi) noexcept nogil:
    """The flat kernels' taps: destination q (of n_dst, rows W wide) reads the source
    (src_rows x W) at q + off[t], row q // W + sgn*kh*dh - rt and column
    q % W + sgn*kw*dw - rl; masks[t] (nvr values) all-ones where that lies inside,
    tm[t] NULL where it does for every q.  lo, hi: the least and greatest offset."""
    cdef Py_ssize_t kh, kw, t, q, r, c, dr, dc
    cdef unsigned int *m
    cdef bint inside
    lo[0] = 0
    hi[0] = 0
    for kh in range(KH):
        for kw in range(KW):
            t = kh * KW + kw
            dr = sgn * kh * dh - rt
            dc = sgn * kw * dw - rl
            off[t] = dr * W + dc
            lo[0] = min(lo[0], off[t])
            hi[0] = max(hi[0], off[t])
            # row by row (no division per value: this runs on every call)
            m = masks + t * nvr
            inside = True
            q = 0
            for r in range((n_dst + W - 1) // W):
                for c in range(W):
                    if q < n_dst and 0 <= r + dr < src_rows and 0 <= c + dc < W:
                        m[q] = 0xFFFFFFFFu
                    else:
                        m[q] = 0
                        inside = inside and q >= n_dst
                    q += 1
            while q < nvr:
                m[q] = 0
                q += 1
            tm[t] = NULL
            if not inside:
                tm[t] = <const float *>&masks[t * nvr]


cdef inline const float *_margined(const float *p, Py_ssize_t n, Py_ssize_t lead,
                                   Py_ssize_t total, float *buf) noexcept nogil:
    """p[0:n] copied into buf (total values) after lead zeros, zeros after it: a plane
    the flat kernels may read past its ends.  Returns the copy's start."""
    memset(buf, 0, total * sizeof(float))
    memcpy(buf + lead, p, n * sizeof(float))
    return buf + lead


cdef int _forward_flat(const float *x, const float *w, const float *bias, float *y,
                       Py_ssize_t N, Py_ssize_t C, Py_ssize_t CO, Py_ssize_t H, Py_ssize_t W,
                       Py_ssize_t OH, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t pt,
                       Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, int relu,
                       int nt) noexcept nogil:
    """Stride-1 planes with OW == W as flat runs (depthwise_impl.h, fwd_flat): the taps'
    offsets and masks once per call, then the planes in parallel, read in place (the
    array's first and last planes through a zero-margined copy in the workspace).
    Returns -1 when the masks cannot be allocated (nothing written)."""
    cdef fc_int off[FLAT_TAPS]
    cdef const float *tm[FLAT_TAPS]
    cdef Py_ssize_t T = KH * KW, n_in = H * W, n_out = OH * W, nvr = (n_out + 15) // 16 * 16
    cdef Py_ssize_t lo, hi, lead, n_buf, n, mult = CO // C
    cdef unsigned int *masks = <unsigned int *>malloc(T * nvr * sizeof(unsigned int))
    cdef const float *xp
    cdef float *buf
    if masks == NULL:
        return -1
    _flat_taps(off, masks, tm, KH, KW, dh, dw, 1, pt, pl, W, H, n_out, nvr, &lo, &hi)
    lead = -lo
    n_buf = lead + max(n_in, hi + nvr)
    # (image, group of 4 channels) items across threads; a group holding the array's
    # first or last plane runs plane by plane, those two through a copy (their reads
    # would leave the array)
    cdef Py_ssize_t G = (CO + 3) // 4, it, co0, k
    cdef int np
    cdef const float *xend = x + N * C * n_in
    for it in prange(N * G, schedule='static', num_threads=nt):
        n = it // G
        co0 = (it % G) * 4
        np = <int>(4 if CO - co0 > 4 else CO - co0)
        xp = x + (n * C + co0 // mult) * n_in
        if mult == 1 and xp + lo >= x and xp + (np - 1) * n_in + hi + nvr <= xend:
            KT.depthwise.fwd_flat_f32(xp, n_in, np, w + co0 * T, <int>T, off, tm, n_out,
                                      y + (n * CO + co0) * n_out,
                                      (bias + co0) if bias != NULL else NULL, relu)
            continue
        for k in range(np):
            xp = x + (n * C + (co0 + k) // mult) * n_in
            if xp + lo < x or xp + hi + nvr > xend:
                buf = <float *>KT.workspace.get(FC_WS_SCRATCH, n_buf * sizeof(float))
                if buf == NULL:
                    KT.workspace.flag_error()
                    break
                xp = _margined(xp, n_in, lead, n_buf, buf)
            KT.depthwise.fwd_flat_f32(xp, n_in, 1, w + (co0 + k) * T, <int>T, off, tm, n_out,
                                      y + (n * CO + co0 + k) * n_out,
                                      (bias + co0 + k) if bias != NULL else NULL, relu)
    free(masks)
    return 0


def depthwise_forward_s1(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w,
                         const float[::1] bias, float[:, :, :, ::1] y, Py_ssize_t pt,
                         Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, int relu, int n_threads):
    """Stride-1 depthwise forward on padded planes (float32); see depthwise_forward.
    Each thread's padded plane (PH x PWD) and output row (OWR) are workspace scratch."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t CO = y.shape[1], OH = y.shape[2], OW = y.shape[3], KH = w.shape[2], KW = w.shape[3]
    cdef Py_ssize_t mult = CO // C, P = N * CO, p, co
    cdef Py_ssize_t OWR = (OW + 15) // 16 * 16, PH = OH + dh * (KH - 1), PWD = OWR + dw * (KW - 1)
    cdef size_t scratch = (PH * PWD + OWR) * sizeof(float)
    cdef float *xp
    cdef const float *bp = &bias[0] if bias is not None else NULL
    cdef int nt = n_threads if P * OH * OW * KH * KW > FC_DW_FWD_GRAIN else 1
    cdef int rc
    cdef fc_dwgeom_t g
    if P * OH * OW == 0:
        return
    # flat where its whole vectors beat the other kernels' lanes: rows from 6 up that
    # are not whole vectors already (16 and 32 wide padded rows are: flat measured
    # 0.9-0.95x there; at 28x28 1.5x, 24x24 1.3x, 8x8 2.2x)
    if OW == W and OW >= 6 and OW % 16 and OH * OW <= FLAT_MAX and KH * KW <= FLAT_TAPS:
        with nogil:
            rc = _forward_flat(&x[0, 0, 0, 0], &w[0, 0, 0, 0], bp, &y[0, 0, 0, 0], N, C, CO,
                               H, W, OH, KH, KW, pt, pl, dh, dw, relu, nt)
        if rc != 0:
            raise MemoryError("depthwise_forward_s1: no memory for the taps' masks")
        check_workspace()
        return
    if OW < FC_DW_LANES_BELOW and mult == 1:
        g.sh = 1; g.sw = 1; g.ph = pt; g.pw = pl; g.dh = dh; g.dw = dw
        with nogil:
            _forward_lanes(&x[0, 0, 0, 0], &w[0, 0, 0, 0], bp, &y[0, 0, 0, 0], N, C, H, W, OH,
                           OW, KH, KW, &g, relu, nt)
        check_workspace()
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nt):
            xp = <float *>KT.workspace.get(FC_WS_SCRATCH, scratch)
            if xp == NULL:
                KT.workspace.flag_error()
                continue
            co = p % CO
            memset(xp, 0, PH * PWD * sizeof(float))
            _load_padded(&x[0, 0, 0, 0] + ((p // CO) * C + co // mult) * H * W, H, W, xp, PWD,
                         pt, pl)
            KT.depthwise.fwd_padded_f32(xp, PWD, &w[0, 0, 0, 0] + co * KH * KW, KH, KW,
                                        &y[0, 0, 0, 0] + p * OH * OW, OH, OW, dh, dw,
                                        bp[co] if bp != NULL else 0, relu, xp + PH * PWD)
    check_workspace()


cdef int _backward_flat(const float *x, const float *w, const float *dy, float *dx,
                        double *dw_acc, double *db_acc, Py_ssize_t N, Py_ssize_t C,
                        Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t KH,
                        Py_ssize_t KW, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh,
                        Py_ssize_t dw, bint need_dx, bint need_dw, bint need_db,
                        int nt) noexcept nogil:
    """_forward_flat's backward (one output channel per input channel), parallel over
    channels, images in order inside (each channel's sums in one thread, in a fixed
    order): dx by the flat forward on dy with the taps reversed (dy[i - off[t]] for
    input i), dw by wgrad_flat, db by norm.sum.  Planes whose reads would leave x or dy
    (the arrays' first and last) go through zero-margined copies.  dx written; dw_acc
    (C, KH*KW) and db_acc (C,) float64, written.  Returns -1 without memory."""
    cdef fc_int offf[FLAT_TAPS]
    cdef fc_int offb[FLAT_TAPS]
    cdef const float *tmf[FLAT_TAPS]
    cdef const float *tmb[FLAT_TAPS]
    cdef Py_ssize_t T = KH * KW, n_in = H * W, n_out = OH * W
    cdef Py_ssize_t nvo = (n_out + 15) // 16 * 16, nvi = (n_in + 15) // 16 * 16
    cdef Py_ssize_t lof, hif, lob, hib, xlead, xn, ylead, yn, c, n, t, q
    cdef unsigned int *masks = <unsigned int *>malloc((T * (nvo + nvi) + nvo) * sizeof(unsigned int))
    cdef unsigned int *ym
    cdef const float *xp
    cdef const float *gp
    cdef const float *xs
    cdef const float *gs
    cdef float *buf
    cdef const float *xend = x + N * C * n_in
    cdef const float *yend = dy + N * C * n_out
    if masks == NULL:
        return -1
    _flat_taps(offf, masks, tmf, KH, KW, dh, dw, 1, pt, pl, W, H, n_out, nvo, &lof, &hif)
    _flat_taps(offb, masks + T * nvo, tmb, KH, KW, dh, dw, -1, -pt, -pl, W, OH, n_in, nvi,
               &lob, &hib)
    ym = masks + T * (nvo + nvi)
    for q in range(nvo):
        ym[q] = 0xFFFFFFFFu if q < n_out else 0
    xlead = -lof
    xn = xlead + max(n_in, hif + nvo)
    ylead = -lob
    yn = ylead + max(max(n_out, nvo), hib + nvi)
    for c in prange(C, schedule='static', num_threads=nt):
        if need_dw:
            for t in range(T):
                dw_acc[c * T + t] = 0
        if need_db:
            db_acc[c] = 0
        for n in range(N):
            xp = x + (n * C + c) * n_in
            gp = dy + (n * C + c) * n_out
            if need_db:
                db_acc[c] += KT.norm.sum(gp, n_out)
            xs = xp
            gs = gp
            if (need_dw and (xp + lof < x or xp + hif + nvo > xend)) or \
                    gp + lob < dy or gp + max(nvo, hib + nvi) > yend:
                buf = <float *>KT.workspace.get(FC_WS_SCRATCH, (xn + yn) * sizeof(float))
                if buf == NULL:
                    KT.workspace.flag_error()
                    break
                xs = _margined(xp, n_in, xlead, xn, buf)
                gs = _margined(gp, n_out, ylead, yn, buf + xn)
            if need_dw:
                KT.depthwise.wgrad_flat_f32(xs, gs, <int>T, offf, tmf, <const float *>ym,
                                            n_out, dw_acc + c * T)
            if need_dx:
                KT.depthwise.fwd_flat_f32(gs, n_out, 1, w + c * T, <int>T, offb, tmb, n_in,
                                          dx + (n * C + c) * n_in, NULL, 0)
    free(masks)
    return 0


def depthwise_backward_s1(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w,
                          const float[:, :, :, ::1] wflip, const float[:, :, :, ::1] dy,
                          float[:, :, :, ::1] dx, double[:, ::1] dw_acc, double[::1] db_acc,
                          Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dwl,
                          bint need_dx, bint need_dw, bint need_db, int n_threads):
    """Stride-1 depthwise backward (float32), parallel over input channels (fixed-order
    sums).  dw: lane sums of dy against the padded x plane.  dx: the forward kernel on
    the padded dy plane with flipped weights (gather form: each output row accumulates
    in one aligned scratch row - the scatter form's overlapping stores stall store
    forwarding).  wflip = w[:, :, ::-1, ::-1]; pt, pl <= d*(K-1) (else the generic path).
    Each thread's padded planes, rows and lanes are workspace scratch."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t CO = dy.shape[1], OH = dy.shape[2], OW = dy.shape[3], KH = w.shape[2], KW = w.shape[3]
    cdef Py_ssize_t mult = CO // C, ci, j, n, co, t
    cdef Py_ssize_t OWR = (OW + 15) // 16 * 16, PH = OH + dh * (KH - 1), PWD = OWR + dwl * (KW - 1)
    cdef Py_ssize_t WR = (W + 15) // 16 * 16, QH = H + dh * (KH - 1), QWD = WR + dwl * (KW - 1)
    cdef Py_ssize_t qt = dh * (KH - 1) - pt, ql = dwl * (KW - 1) - pl
    # x plane padded, its output row and weight-gradient lanes; dy plane padded, its row;
    # one input-gradient plane
    cdef Py_ssize_t x_part = PH * PWD + OWR + KH * KW * 16, dy_part = QH * QWD + WR
    cdef size_t scratch = (x_part + dy_part + H * W) * sizeof(float)
    cdef float *xp
    cdef float *gq
    cdef float *tmp
    cdef float *dxo
    cdef const float *gp
    cdef double sb
    cdef int nt = n_threads if N * C * H * W > FC_DW_GRAIN else 1
    cdef int rc
    cdef fc_dwgeom_t g
    if C * N == 0:
        return
    # as the forward, and 16 wide too (its padded backward copies two planes: flat 1.3x)
    if mult == 1 and OW == W and OW >= 6 and (OW % 16 or OW == 16) and \
            max(OH, H) * W <= FLAT_MAX and KH * KW <= FLAT_TAPS:
        with nogil:
            rc = _backward_flat(&x[0, 0, 0, 0], &w[0, 0, 0, 0], &dy[0, 0, 0, 0],
                                &dx[0, 0, 0, 0], &dw_acc[0, 0], &db_acc[0], N, C, H, W, OH,
                                KH, KW, pt, pl, dh, dwl, need_dx, need_dw, need_db, nt)
        if rc != 0:
            raise MemoryError("depthwise_backward_s1: no memory for the taps' masks")
        check_workspace()
        return
    if OW < FC_DW_LANES_BELOW_S and mult == 1:
        g.sh = 1; g.sw = 1; g.ph = pt; g.pw = pl; g.dh = dh; g.dw = dwl
        with nogil:
            _backward_lanes(&x[0, 0, 0, 0], &w[0, 0, 0, 0], &dy[0, 0, 0, 0], &dx[0, 0, 0, 0],
                            &dw_acc[0, 0], &db_acc[0], N, C, H, W, OH, OW, KH, KW, &g,
                            need_dx, need_dw, need_db, nt)
        check_workspace()
        return
    with nogil:
        for ci in prange(C, schedule='static', num_threads=nt):
            xp = <float *>KT.workspace.get(FC_WS_SCRATCH, scratch)
            if xp == NULL:
                KT.workspace.flag_error()
                continue
            gq = xp + x_part
            tmp = gq + dy_part
            for j in range(mult):
                co = ci * mult + j
                if need_dw:
                    for t in range(KH * KW):
                        dw_acc[co, t] = 0
                if need_db:
                    db_acc[co] = 0
            for n in range(N):
                if need_dw:
                    memset(xp, 0, PH * PWD * sizeof(float))
                    _load_padded(&x[0, 0, 0, 0] + (n * C + ci) * H * W, H, W, xp, PWD, pt, pl)
                dxo = &dx[0, 0, 0, 0] + (n * C + ci) * H * W
                for j in range(mult):
                    co = ci * mult + j
                    gp = &dy[0, 0, 0, 0] + (n * CO + co) * OH * OW
                    if need_db:
                        db_acc[co] += KT.norm.sum(gp, OH * OW)
                    if need_dw:
                        KT.depthwise.bwd_padded_f32(xp, NULL, PWD, gp,
                                                    &w[0, 0, 0, 0] + co * KH * KW, KH, KW, OH,
                                                    OW, dh, dwl, &dw_acc[co, 0], xp + PH * PWD,
                                                    xp + PH * PWD + OWR)
                    if need_dx:
                        memset(gq, 0, QH * QWD * sizeof(float))
                        _load_padded(gp, OH, OW, gq, QWD, qt, ql)
                        KT.depthwise.fwd_padded_f32(gq, QWD, &wflip[0, 0, 0, 0] + co * KH * KW,
                                                    KH, KW, dxo if j == 0 else tmp, H, W, dh,
                                                    dwl, 0, 0, gq + QH * QWD)
                        if j > 0:
                            for t in range(H * W):
                                dxo[t] += tmp[t]
    check_workspace()


def depthwise_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                      const floating[::1] bias, floating[:, :, :, ::1] y,
                      Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                      Py_ssize_t dh, Py_ssize_t dw, int relu, int n_threads):
    """y[n, co] = relu?(sum_{kh,kw} w[co, 0, kh, kw] x[n, co // mult, ...] + bias[co]).

    x (N, C, H, W) IN; w (C*mult, 1, KH, KW) IN; bias or None IN; y (N, C*mult, OH, OW) OUT.
    relu: 0 none, 1 ReLU, 2 ReLU6 (the clamp in the kernel's store)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t CO = y.shape[1], OH = y.shape[2], OW = y.shape[3], KH = w.shape[2], KW = w.shape[3]
    cdef Py_ssize_t mult = CO // C, P = N * CO, p, n, co
    cdef fc_dwgeom_t g
    g.sh = sh; g.sw = sw; g.ph = ph; g.pw = pw; g.dh = dh; g.dw = dw
    cdef const floating *bp = &bias[0] if bias is not None else NULL
    if P * OH * OW == 0:
        return
    if floating is float:
        if OW < FC_DW_LANES_BELOW_S and mult == 1:
            with nogil:
                _forward_lanes(&x[0, 0, 0, 0], &w[0, 0, 0, 0], bp, &y[0, 0, 0, 0], N, C, H, W,
                               OH, OW, KH, KW, &g, relu,
                               n_threads if P * OH * OW * KH * KW > FC_DW_FWD_GRAIN else 1)
            check_workspace()
            return
    with nogil:
        for p in prange(P, schedule='static',
                        num_threads=n_threads if P * OH * OW * KH * KW > FC_DW_FWD_GRAIN else 1):
            n = p // CO
            co = p % CO
            if floating is float:
                KT.depthwise.fwd_plane_f32(&x[0, 0, 0, 0] + (n * C + co // mult) * H * W, H, W,
                                           &w[0, 0, 0, 0] + co * KH * KW, KH, KW,
                                           &y[0, 0, 0, 0] + p * OH * OW, OH, OW, &g,
                                           bp[co] if bp != NULL else 0, relu)
            else:
                KT.depthwise.fwd_plane_f64(&x[0, 0, 0, 0] + (n * C + co // mult) * H * W, H, W,
                                           &w[0, 0, 0, 0] + co * KH * KW, KH, KW,
                                           &y[0, 0, 0, 0] + p * OH * OW, OH, OW, &g,
                                           bp[co] if bp != NULL else 0, relu)


def depthwise_backward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                       const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx,
                       double[:, ::1] dw_acc, double[::1] db_acc,
                       Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                       Py_ssize_t dh, Py_ssize_t dwl, bint need_dx, bint need_dw, bint need_db,
                       int n_threads):
    """One pass over dy for all three gradients, parallel over input channels (each
    channel's sums run in one thread, in a fixed order: thread-count invariant).

    dx (N, C, H, W) OUT (if need_dx); dw_acc (C*mult, KH*KW) float64 OUT; db_acc (C*mult,)
    float64 OUT."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t CO = dy.shape[1], OH = dy.shape[2], OW = dy.shape[3], KH = w.shape[2], KW = w.shape[3]
    cdef Py_ssize_t mult = CO // C, ci, j, n, co, t
    cdef fc_dwgeom_t g
    g.sh = sh; g.sw = sw; g.ph = ph; g.pw = pw; g.dh = dh; g.dw = dwl
    cdef floating *dxp
    cdef const floating *gp
    cdef double sb
    if C * N == 0:
        return
    if floating is float:
        if OW < FC_DW_LANES_BELOW_S and mult == 1:
            with nogil:
                _backward_lanes(&x[0, 0, 0, 0], &w[0, 0, 0, 0], &dy[0, 0, 0, 0],
                                &dx[0, 0, 0, 0], &dw_acc[0, 0], &db_acc[0], N, C, H, W, OH,
                                OW, KH, KW, &g, need_dx, need_dw, need_db,
                                n_threads if N * C * H * W > FC_DW_GRAIN else 1)
            check_workspace()
            return
    with nogil:
        for ci in prange(C, schedule='static',
                         num_threads=n_threads if N * C * H * W > FC_DW_GRAIN else 1):
            for j in range(mult):
                co = ci * mult + j
                if need_dw:
                    for t in range(KH * KW):
                        dw_acc[co, t] = 0
                if need_db:
                    db_acc[co] = 0
            for n in range(N):
                dxp = &dx[0, 0, 0, 0] + (n * C + ci) * H * W if need_dx else NULL
                for j in range(mult):   # the first output channel assigns dx, the rest add
                    co = ci * mult + j
                    gp = &dy[0, 0, 0, 0] + (n * CO + co) * OH * OW
                    if need_db:
                        if floating is float:
                            db_acc[co] += KT.norm.sum(gp, OH * OW)
                        else:
                            sb = 0
                            for t in range(OH * OW):
                                sb = sb + gp[t]
                            db_acc[co] += sb
                    if need_dx or need_dw:
                        if floating is float:
                            KT.depthwise.bwd_plane_f32(
                                &x[0, 0, 0, 0] + (n * C + ci) * H * W, gp, H, W,
                                &w[0, 0, 0, 0] + co * KH * KW, KH, KW, OH, OW, &g, dxp, j == 0,
                                &dw_acc[co, 0] if need_dw else NULL)
                        else:
                            KT.depthwise.bwd_plane_f64(
                                &x[0, 0, 0, 0] + (n * C + ci) * H * W, gp, H, W,
                                &w[0, 0, 0, 0] + co * KH * KW, KH, KW, OH, OW, &g, dxp, j == 0,
                                &dw_acc[co, 0] if need_dw else NULL)
