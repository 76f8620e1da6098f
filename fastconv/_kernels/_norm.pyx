"""BatchNorm kernels and per-channel reductions.

Notes
-----
Statistics are two-pass (mean, then centred sum of squares), per channel, each
channel reduced by one thread in a fixed order, so the bits do not depend on the
thread count.  A channel of a training batch (N x H x W floats) usually fits in L2,
so the second pass costs little bandwidth and avoids the cancellation of
sum/sum-of-squares.  float32 planes go through C kernels (src/norm.c) that sum in 32
fixed float lanes per plane (vectorised) and combine planes in float64; float64
data uses the plain loops below.

A fused ReLU (``relu`` / ``y`` arguments) lets a Conv-BN-ReLU block normalise and
rectify in one pass, and mask the gradient by the output inside the backward passes.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdint cimport uint16_t, uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from ._openmp_helpers cimport nthreads_for
from libc.math cimport sqrt

from ._cpu cimport fc_dispatch_t, kernels

cdef const fc_dispatch_t *KT = kernels()    # the kernel table: src/norm.c's best set

# Planes of fewer values than this: the bf16 kernels' callers widen them whole, and
# exact (few-value) channels' input gradient runs inline rather than a call per plane
cdef enum:
    SMALL_PLANE = 32

SMALL_PLANE_VALUES = SMALL_PLANE    # for the functional layer
# Channels of at most this many values (N*H*W) are normalised and differentiated in
# double: with two values the input gradient's three terms cancel to eps / (var + eps)
# of their size, and float32 rounding would cost whole digits
cdef enum:
    EXACT_VALUES = 256

EXACT_BELOW = EXACT_VALUES


def channel_stats(const floating[:, :, ::1] x, double[::1] mean, double[::1] var, int n_threads):
    """Per-channel mean and biased variance.  x (N, C, HW) IN; mean, var (C,) OUT."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], n, c, q
    cdef double s, m, d
    cdef float mf
    cdef const floating *row
    if C == 0:
        return
    if floating is float and N * HW <= EXACT_VALUES:
        # channels of few values: in double (their input gradient cancels to a few digits)
        with nogil:
            for c in prange(C, schedule='static', num_threads=nthreads_for(N * C * HW, n_threads)):
                s = 0
                for n in range(N):
                    row = &x[0, 0, 0] + (n * C + c) * HW
                    for q in range(HW):
                        s = s + row[q]
                m = s / (N * HW) if N * HW > 0 else 0
                mf = <float>m
                s = 0
                for n in range(N):
                    row = &x[0, 0, 0] + (n * C + c) * HW
                    for q in range(HW):
                        d = <double>row[q] - mf
                        s = s + d * d
                mean[c] = m
                var[c] = (s / (N * HW) - (m - mf) * (m - mf)) if N * HW > 0 else 0
        return
    if floating is float:
        # a call per channel over its N planes (the kernel's lanes run on across them)
        with nogil:
            for c in prange(C, schedule='static', num_threads=nthreads_for(N * C * HW, n_threads)):
                if N * HW == 0:
                    mean[c] = 0
                    var[c] = 0
                    continue
                s = KT.norm.sum_planes(&x[0, 0, 0] + c * HW, N, HW, C * HW)
                m = s / (N * HW)
                mf = <float>m
                s = KT.norm.sqdev_planes(&x[0, 0, 0] + c * HW, N, HW, C * HW, mf)
                mean[c] = m
                # sum of squares about the float32-rounded mean, corrected to the exact one
                var[c] = s / (N * HW) - (m - mf) * (m - mf)
        return
    with nogil:
        for c in prange(C, schedule='static', num_threads=nthreads_for(N * C * HW, n_threads)):
            s = 0
            for n in range(N):
                row = &x[n, c, 0] if HW > 0 else NULL
                for q in range(HW):
                    s = s + row[q]
            m = s / (N * HW) if N * HW > 0 else 0
            s = 0
            for n in range(N):
                row = &x[n, c, 0] if HW > 0 else NULL
                for q in range(HW):
                    d = row[q] - m
                    s = s + d * d
            mean[c] = m
            var[c] = s / (N * HW) if N * HW > 0 else 0


def fold_factors(floating[::1] scale, floating[::1] shift, const floating[::1] mean,
                 const floating[::1] var, const floating[::1] gamma, const floating[::1] beta,
                 double eps, const floating[::1] conv_bias):
    """An eval BatchNorm after a convolution as one per-channel affine map, computed in
    float64: scale = gamma / sqrt(var + eps), shift = beta + (conv_bias - mean) * scale.
    gamma, beta, conv_bias may be None (1, 0, 0); all (C,); scale, shift OUT (first: they
    pick the fused type)."""
    cdef Py_ssize_t c, C = mean.shape[0]
    cdef double a, b
    if var.shape[0] != C or scale.shape[0] != C or shift.shape[0] != C or \
            (gamma is not None and gamma.shape[0] != C) or \
            (beta is not None and beta.shape[0] != C) or \
            (conv_bias is not None and conv_bias.shape[0] != C):
        raise ValueError("fold_factors: every array must have the channel count")
    for c in range(C):
        a = 1.0 / sqrt(<double>var[c] + eps)
        if gamma is not None:
            a = <double>gamma[c] * a
        b = (<double>beta[c] if beta is not None else 0.0) - <double>mean[c] * a
        if conv_bias is not None:
            b = b + <double>conv_bias[c] * a
        scale[c] = <floating>a
        shift[c] = <floating>b


def channel_sum(const floating[:, :, ::1] x, floating[::1] out, int n_threads):
    """out[c] = sum over n, q of x[n, c, q] (float64 accumulation).  Bias gradients."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], n, c, q
    cdef double s
    cdef const floating *row
    if floating is float:
        # float lanes across the channel's planes, flushed to double (BatchNorm's sums): a
        # double add per value is a 4-cycle chain (a third of a transposed convolution's
        # backward)
        with nogil:
            for c in prange(C, schedule='static', num_threads=nthreads_for(N * C * HW, n_threads)):
                out[c] = <float>KT.norm.sum_planes(&x[0, 0, 0] + c * HW, N, HW, C * HW) \
                    if N * HW > 0 else 0
        return
    with nogil:
        for c in prange(C, schedule='static', num_threads=nthreads_for(N * C * HW, n_threads)):
            s = 0
            for n in range(N):
                row = &x[n, c, 0] if HW > 0 else NULL
                for q in range(HW):
                    s = s + row[q]
            out[c] = <floating>s


cdef inline bint _passes(double y, int relu) noexcept nogil:
    """Whether the fused activation passes the gradient at its output y: ReLU where y > 0
    (NaN passes, as ReLU's own backward lets it), ReLU6 where 0 < y < 6 (its backward).
    Branch-free (& of comparisons): data-dependent branches mispredict half the time."""
    return ((y > 0) & (y < 6)) if relu == 2 else (y <= 0) ^ 1


def channel_affine(const floating[:, :, ::1] x, floating[:, :, ::1] y, const floating[::1] center,
                   const floating[::1] scale, const floating[::1] shift, int relu, int n_threads):
    """y[n, c, q] = act((x[n, c, q] - center[c]) * scale[c] + shift[c]), act per relu: 0
    none, 1 max(., 0), 2 ReLU6 (clamped to [0, 6]; NaN kept).

    Centring first keeps BatchNorm exact for constant channels (no cancellation of
    x*scale against mean*scale).  y may be x."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], p, q, c
    cdef floating a, b, m, v
    cdef const floating *src
    cdef floating *dst
    if N * C * HW == 0:
        return
    if floating is float:
        with nogil:
            for p in prange(N * C, schedule='static',
                            num_threads=nthreads_for(N * C * HW, n_threads)):
                c = p % C
                KT.norm.affine(&x[0, 0, 0] + p * HW, &y[0, 0, 0] + p * HW, HW, center[c],
                               scale[c], shift[c], relu)
        return
    with nogil:
        for p in prange(N * C, schedule='static', num_threads=nthreads_for(N * C * HW, n_threads)):
            c = p % C
            m = center[c]
            a = scale[c]
            b = shift[c]
            src = &x[0, 0, 0] + p * HW
            dst = &y[0, 0, 0] + p * HW
            if relu == 2:
                for q in range(HW):
                    v = (src[q] - m) * a + b
                    dst[q] = 0 if v <= 0 else (6 if v >= 6 else v)
            elif relu:
                for q in range(HW):
                    v = (src[q] - m) * a + b
                    dst[q] = 0 if v <= 0 else v
            else:
                for q in range(HW):
                    dst[q] = (src[q] - m) * a + b


def bn_backward_reduce(const floating[:, :, ::1] x, const floating[:, :, ::1] dy,
                       const floating[:, :, ::1] y, const double[::1] mean,
                       const double[::1] invstd, double[::1] sum_dy, double[::1] sum_dy_xhat,
                       int n_threads, int relu=1, const float[::1] act_scale=None,
                       const float[::1] act_shift=None, bint exact=False):
    """sum_dy[c] = sum g; sum_dy_xhat[c] = sum g * (x - mean) * invstd (per channel), where
    g = dy, or dy masked by a fused activation (relu 1: ReLU, where its output y > 0;
    relu 2: ReLU6, where 0 < y < 6).  y is the forward's output when given (else None);
    without it, act_scale and act_shift (C,) float32 (the forward's affine map) recompute
    it from x as the forward did (float32 only); with neither, no mask.  exact: float32
    products in double (channels of few values, as bn_backward_apply's).

    x, dy, y (N, C, HW) IN; mean, invstd (C,) IN; sum_dy, sum_dy_xhat (C,) OUT."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], n, c, q
    cdef double s1, s2, m, g
    cdef float mf, sa = 0, sb = 0, v
    cdef const floating *xr
    cdef const floating *gr
    cdef const floating *yr
    cdef const floating *yp = &y[0, 0, 0] if (y is not None and N * C * HW > 0) else NULL
    cdef const float *ap = NULL
    cdef const float *bp = NULL
    if act_scale is not None and act_shift is not None and yp == NULL and C > 0:
        if act_scale.shape[0] != C or act_shift.shape[0] != C:
            raise ValueError("bn_backward_reduce: act_scale and act_shift must be (C,)")
        ap, bp = &act_scale[0], &act_shift[0]
    cdef int mode = relu if (yp != NULL or ap != NULL) else 0
    if floating is float and exact:
        with nogil:
            for c in prange(C, schedule='static', num_threads=nthreads_for(N * C * HW, n_threads)):
                s1 = 0
                s2 = 0
                mf = <float>mean[c]
                if ap != NULL:
                    sa = ap[c]
                    sb = bp[c]
                for n in range(N):
                    xr = &x[0, 0, 0] + (n * C + c) * HW
                    gr = &dy[0, 0, 0] + (n * C + c) * HW
                    yr = (yp + (n * C + c) * HW) if yp != NULL else NULL
                    for q in range(HW):
                        g = gr[q]
                        if mode:
                            v = yr[q] if yr != NULL else (xr[q] - mf) * sa + sb
                            g = g if _passes(v, mode) else 0.0
                        s1 = s1 + g
                        s2 = s2 + g * (<double>xr[q] - mf)
                sum_dy[c] = s1
                sum_dy_xhat[c] = (s2 - s1 * (mean[c] - mf)) * invstd[c]
        return
    if floating is float:
        with nogil:
            for c in prange(C, schedule='static', num_threads=nthreads_for(N * C * HW, n_threads)):
                if N * HW == 0:
                    sum_dy[c] = 0
                    sum_dy_xhat[c] = 0
                    continue
                s1 = 0      # assigned here: private to each thread (the kernel sets them)
                s2 = 0
                KT.norm.bwd_sums_planes(&x[0, 0, 0] + c * HW, &dy[0, 0, 0] + c * HW,
                                        (yp + c * HW) if yp != NULL else NULL, mode,
                                        ap[c] if ap != NULL else 0, bp[c] if bp != NULL else 0,
                                        N, HW, C * HW, C * HW, <float>mean[c], &s1, &s2)
                sum_dy[c] = s1
                # the sums are about the float32-rounded mean: shift to the exact one
                sum_dy_xhat[c] = (s2 - s1 * (mean[c] - <float>mean[c])) * invstd[c]
        return
    if mode:
        raise ValueError("bn_backward_reduce: the fused-activation mask is float32-only")
    with nogil:
        for c in prange(C, schedule='static', num_threads=nthreads_for(N * C * HW, n_threads)):
            s1 = 0
            s2 = 0
            m = mean[c]
            for n in range(N):
                if HW == 0:
                    break
                xr = &x[n, c, 0]
                gr = &dy[n, c, 0]
                for q in range(HW):
                    s1 = s1 + gr[q]
                    s2 = s2 + gr[q] * (xr[q] - m)
            sum_dy[c] = s1
            sum_dy_xhat[c] = s2 * invstd[c]


def bn_backward_apply(const floating[:, :, ::1] x, const floating[:, :, ::1] dy,
                      const floating[:, :, ::1] y, const double[::1] mean, const double[::1] a,
                      const double[::1] b, const double[::1] ik, floating[:, :, ::1] dx,
                      bint exact, int n_threads, int relu=1, const float[::1] act_scale=None,
                      const float[::1] act_shift=None):
    """dx = a[c] * (g - b[c] - (x - mean[c]) * ik[c]), with g = dy, masked by a fused
    activation as in bn_backward_reduce (y, or act_scale / act_shift, or neither);
    float32 data is evaluated in double when exact (channels of few values, where the
    terms cancel).

    Training: a = gamma*invstd, b = mean(g), ik = invstd * mean(g*xhat); eval: b = ik = 0.
    x, dy, y (N, C, HW) IN; mean, a, b, ik (C,) IN; dx (N, C, HW) OUT."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], p, q, c
    cdef double ac, bc, kc, mc
    cdef const floating *xr
    cdef const floating *gr
    cdef floating *dr
    cdef const floating *yp = &y[0, 0, 0] if (y is not None and N * C * HW > 0) else NULL
    cdef const float *ap = NULL
    cdef const float *bp = NULL
    cdef float mf, sa, sb, v
    if N * C * HW == 0:
        return
    if act_scale is not None and act_shift is not None and yp == NULL:
        if act_scale.shape[0] != C or act_shift.shape[0] != C:
            raise ValueError("bn_backward_apply: act_scale and act_shift must be (C,)")
        ap, bp = &act_scale[0], &act_shift[0]
    cdef int mode = relu if (yp != NULL or ap != NULL) else 0
    if floating is float and not (exact and HW < SMALL_PLANE):
        with nogil:
            for p in prange(N * C, schedule='static',
                            num_threads=nthreads_for(N * C * HW, n_threads)):
                c = p % C
                KT.norm.bwd_apply(&x[0, 0, 0] + p * HW, &dy[0, 0, 0] + p * HW,
                                  (yp + p * HW) if yp != NULL else NULL, mode,
                                  ap[c] if ap != NULL else 0, bp[c] if bp != NULL else 0,
                                  &dx[0, 0, 0] + p * HW,
                                  HW, mean[c], a[c], b[c], ik[c], exact)
        return
    if mode and floating is double:
        raise ValueError("bn_backward_apply: the fused-activation mask is float32-only")
    # float64, and exact float32 channels of small planes (a kernel call per plane of a
    # few values costs more than its arithmetic), in double
    with nogil:
        for p in prange(N * C, schedule='static', num_threads=nthreads_for(N * C * HW, n_threads)):
            c = p % C
            ac = a[c]
            bc = b[c]
            kc = ik[c]
            mc = mean[c]
            xr = &x[0, 0, 0] + p * HW
            gr = &dy[0, 0, 0] + p * HW
            dr = &dx[0, 0, 0] + p * HW
            if mode:
                mf = <float>mc
                sa = ap[c] if ap != NULL else 0
                sb = bp[c] if bp != NULL else 0
                for q in range(HW):
                    v = yp[p * HW + q] if yp != NULL else (xr[q] - mf) * sa + sb
                    dr[q] = ac * ((gr[q] if _passes(v, mode) else 0.0) - bc
                                  - (xr[q] - mc) * kc)
            else:
                for q in range(HW):
                    dr[q] = ac * (gr[q] - bc - (xr[q] - mc) * kc)


def plane_sums_finite(const float[:, ::1] x, int n_threads):
    """True when every plane's float sum is finite, i.e. x holds no NaN/Inf (a huge
    finite x may overflow a sum and answer False: callers only use this to prefer a
    fast path).  x (planes, HW) IN.  Vectorised fixed-lane sums, one pass."""
    cdef Py_ssize_t P = x.shape[0], HW = x.shape[1], p
    cdef int bad = 0
    cdef double s
    if P * HW == 0:
        return True
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * HW, n_threads)):
            s = KT.norm.sum(&x[p, 0], HW)
            if not (s - s == 0):        # NaN or +-Inf
                bad += 1
    return bad == 0


# ---------------------------------------------------------------- GroupNorm
# One (image, group) slab - Cg channels x HW values, contiguous in NCHW - per prange
# iteration, reduced in a fixed order in float64: the bits do not depend on threads.

def group_norm(const floating[:, :, ::1] x, const floating[::1] gamma,
               const floating[::1] beta, double eps, floating[:, :, ::1] y,
               double[:, ::1] mean, double[:, ::1] invstd, int n_threads):
    """y = (x - mean[n, g]) * invstd[n, g] * gamma[c] + beta[c] over each group.

    x, y (N, C, HW) IN / OUT; gamma, beta (C,) IN; mean, invstd (N, G) OUT (G = groups,
    C % G == 0 checked by the caller)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], G = mean.shape[1]
    cdef Py_ssize_t Cg = C // G, p, n, g, c, q
    cdef double s, m, d, v, a, b
    cdef const floating *xr
    cdef floating *yr
    if N * C * HW == 0:
        return
    with nogil:
        for p in prange(N * G, schedule='static', num_threads=nthreads_for(N * C * HW, n_threads)):
            n = p // G
            g = p % G
            xr = &x[n, g * Cg, 0]
            s = 0
            for q in range(Cg * HW):
                s = s + xr[q]
            m = s / (Cg * HW)
            v = 0
            for q in range(Cg * HW):
                d = xr[q] - m
                v = v + d * d
            mean[n, g] = m
            invstd[n, g] = 1.0 / sqrt(v / (Cg * HW) + eps)
            yr = &y[n, g * Cg, 0]
            for c in range(Cg):
                a = invstd[n, g] * gamma[g * Cg + c]
                b = beta[g * Cg + c] - m * a
                for q in range(HW):
                    yr[c * HW + q] = <floating>(xr[c * HW + q] * a + b)


def group_norm_backward(const floating[:, :, ::1] x, const floating[:, :, ::1] dy,
                        const floating[::1] gamma, const double[:, ::1] mean,
                        const double[:, ::1] invstd, floating[:, :, ::1] dx,
                        double[:, ::1] dgamma, double[:, ::1] dbeta, bint need_dx,
                        int n_threads):
    """dx = invstd * (dxh - mean(dxh) - xhat * mean(dxh * xhat)) per group, dxh = dy*gamma;
    per-image partial parameter gradients dgamma[n, c] = sum dy*xhat, dbeta[n, c] =
    sum dy (the caller sums them over n in order).

    x, dy, dx (N, C, HW); gamma (C,); mean, invstd (N, G); dgamma, dbeta (N, C) OUT."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], G = mean.shape[1]
    cdef Py_ssize_t Cg = C // G, p, n, g, c, q, k
    cdef double m, istd, s1, s2, sg, sgx, xh, gm, cnt
    cdef const floating *xr
    cdef const floating *gr
    cdef floating *dr
    if N * C * HW == 0:
        return
    cnt = Cg * HW
    with nogil:
        for p in prange(N * G, schedule='static', num_threads=nthreads_for(N * C * HW, n_threads)):
            n = p // G
            g = p % G
            m = mean[n, g]
            istd = invstd[n, g]
            xr = &x[n, g * Cg, 0]
            gr = &dy[n, g * Cg, 0]
            s1 = 0
            s2 = 0
            for c in range(Cg):
                k = g * Cg + c
                sg = 0
                sgx = 0
                for q in range(HW):
                    xh = (xr[c * HW + q] - m) * istd
                    sg = sg + gr[c * HW + q]
                    sgx = sgx + gr[c * HW + q] * xh
                dbeta[n, k] = sg
                dgamma[n, k] = sgx
                s1 = s1 + sg * gamma[k]
                s2 = s2 + sgx * gamma[k]
            if need_dx:
                s1 = s1 / cnt
                s2 = s2 / cnt
                dr = &dx[n, g * Cg, 0]
                for c in range(Cg):
                    gm = gamma[g * Cg + c]
                    for q in range(HW):
                        xh = (xr[c * HW + q] - m) * istd
                        dr[c * HW + q] = <floating>(istd * (gr[c * HW + q] * gm - s1 - xh * s2))


# ---------------------------------------------------------------- bf16-kept activations
# Under autocast("bf16") BatchNorm keeps its input and fused-ReLU output as bf16 bits
# (fastconv._precision.keep).  These two read them a plane at a time: each plane is
# widened into the thread's float scratch (in cache) and handed to the same float32
# kernels, so the backward needs no float32 copy of the whole tensor.  Planes of at
# least SMALL_PLANE values (the caller widens smaller ones whole).

cdef inline void _widen(const uint16_t *h, float *out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint32_t u
    for i in range(n):
        u = (<uint32_t>h[i]) << 16
        memcpy(&out[i], &u, 4)


def bn_backward_reduce_bf16(const uint16_t[:, :, ::1] x, const float[:, :, ::1] dy,
                            const uint16_t[:, :, ::1] y, const double[::1] mean,
                            const double[::1] invstd, double[::1] sum_dy,
                            double[::1] sum_dy_xhat, int n_threads, int relu=1):
    """bn_backward_reduce with x (and y, or None) as bf16 bits; float32 dy.  The same
    kernels in the same order: bit for bit bn_backward_reduce on the widened arrays."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], n, c, n0, k
    cdef const uint16_t *yp = &y[0, 0, 0] if (y is not None and N * C * HW > 0) else NULL
    cdef float *buf
    cdef int failed = 0
    cdef double s1, s2
    # planes widened and summed a chunk at a time: chunks of the kernel's flush period
    cdef Py_ssize_t chunk = max(1, (FC_NORM_FLUSH + HW - 1) // HW) if HW > 0 else 1
    if HW < SMALL_PLANE:
        raise ValueError("bn_backward_reduce_bf16: planes of at least 32 values")
    with nogil, parallel(num_threads=nthreads_for(N * C * HW, n_threads)):
        buf = <float *>malloc(2 * chunk * HW * sizeof(float))
        for c in prange(C, schedule='static'):
            s1 = 0
            s2 = 0
            if buf == NULL:
                failed += 1
                continue
            n0 = 0
            while n0 < N:
                k = min(chunk, N - n0)
                for n in range(k):
                    _widen(&x[0, 0, 0] + ((n0 + n) * C + c) * HW, buf + n * HW, HW)
                    if yp != NULL:
                        _widen(yp + ((n0 + n) * C + c) * HW, buf + (chunk + n) * HW, HW)
                KT.norm.bwd_sums_planes(buf, &dy[0, 0, 0] + (n0 * C + c) * HW,
                                        (buf + chunk * HW) if yp != NULL else NULL,
                                        relu if yp != NULL else 0, 0, 0, k, HW, HW, C * HW,
                                        <float>mean[c], &s1, &s2)
                n0 = n0 + k
            sum_dy[c] = s1
            sum_dy_xhat[c] = (s2 - s1 * (mean[c] - <float>mean[c])) * invstd[c]
        free(buf)
    if failed:
        raise MemoryError("bn_backward_reduce_bf16: cannot allocate plane scratch")


def bn_backward_apply_bf16(const uint16_t[:, :, ::1] x, const float[:, :, ::1] dy,
                           const uint16_t[:, :, ::1] y, const double[::1] mean,
                           const double[::1] a, const double[::1] b, const double[::1] ik,
                           float[:, :, ::1] dx, bint exact, int n_threads, int relu=1):
    """bn_backward_apply with x (and y, or None) as bf16 bits; float32 dy and dx."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], p, c
    cdef const uint16_t *yp = &y[0, 0, 0] if (y is not None and N * C * HW > 0) else NULL
    cdef float *buf
    cdef int failed = 0
    if HW < SMALL_PLANE:
        raise ValueError("bn_backward_apply_bf16: planes of at least 32 values")
    with nogil, parallel(num_threads=nthreads_for(N * C * HW, n_threads)):
        buf = <float *>malloc(2 * HW * sizeof(float))
        for p in prange(N * C, schedule='static'):
            if buf == NULL:
                failed += 1
                continue
            c = p % C
            _widen(&x[0, 0, 0] + p * HW, buf, HW)
            if yp != NULL:
                _widen(yp + p * HW, buf + HW, HW)
            KT.norm.bwd_apply(buf, &dy[0, 0, 0] + p * HW, (buf + HW) if yp != NULL else NULL,
                              relu if yp != NULL else 0, 0, 0, &dx[0, 0, 0] + p * HW, HW, mean[c], a[c], b[c], ik[c], exact)
        free(buf)
    if failed:
        raise MemoryError("bn_backward_apply_bf16: cannot allocate plane scratch")
