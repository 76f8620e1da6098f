"""Upsampling kernels driven by precomputed per-row / per-column index tables.

Notes
-----
The tables (source index and weights, one entry per output row or column) are built
once per call by the caller with PyTorch's arithmetic (scale in the compute dtype),
so a kernel only gathers (forward) or scatters (backward) within one plane.
Planes are split across threads; scatters stay inside a plane.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset
from libc.stdint cimport int64_t

cdef enum:
    GRAIN = 32768


cdef inline int nthreads_for(Py_ssize_t work, int n_threads) noexcept nogil:
    return n_threads if work > GRAIN else 1


def nearest(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
            const int64_t[::1] hidx, const int64_t[::1] widx, int n_threads):
    """y[.., i, j] = x[.., hidx[i], widx[j]].  x (N, C, H, W) IN; y (N, C, OH, OW) OUT."""
    cdef Py_ssize_t P = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3], p, i, j
    cdef const floating *src
    cdef const floating *row
    cdef floating *dst
    if P * OH * OW == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * OH * OW, n_threads)):
            src = &x[0, 0, 0, 0] + p * H * W
            dst = &y[0, 0, 0, 0] + p * OH * OW
            for i in range(OH):
                row = src + hidx[i] * W
                for j in range(OW):
                    dst[i * OW + j] = row[widx[j]]


def nearest_backward(const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx,
                     const int64_t[::1] hidx, const int64_t[::1] widx, int n_threads):
    """Adjoint of nearest.  dx OUT (zeroed here)."""
    cdef Py_ssize_t P = dx.shape[0] * dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dy.shape[2], OW = dy.shape[3], p, i, j
    cdef const floating *src
    cdef floating *dst
    cdef floating *row
    if P * H * W == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * OH * OW, n_threads)):
            src = &dy[0, 0, 0, 0] + p * OH * OW
            dst = &dx[0, 0, 0, 0] + p * H * W
            memset(dst, 0, H * W * sizeof(floating))
            for i in range(OH):
                row = dst + hidx[i] * W
                for j in range(OW):
                    row[widx[j]] += src[i * OW + j]


def bilinear(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
             const int64_t[::1] h0, const int64_t[::1] h1, const floating[::1] hl0, const floating[::1] hl1,
             const int64_t[::1] w0, const int64_t[::1] w1, const floating[::1] wl0, const floating[::1] wl1,
             int n_threads):
    """y[i, j] = hl0[i] (wl0[j] x[h0, w0] + wl1[j] x[h0, w1]) + hl1[i] (wl0[j] x[h1, w0] + wl1[j] x[h1, w1])."""
    cdef Py_ssize_t P = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3], p, i, j
    cdef const floating *src
    cdef const floating *r0
    cdef const floating *r1
    cdef floating *dst
    if P * OH * OW == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * OH * OW, n_threads)):
            src = &x[0, 0, 0, 0] + p * H * W
            dst = &y[0, 0, 0, 0] + p * OH * OW
            for i in range(OH):
                r0 = src + h0[i] * W
                r1 = src + h1[i] * W
                for j in range(OW):
                    dst[i * OW + j] = (hl0[i] * (wl0[j] * r0[w0[j]] + wl1[j] * r0[w1[j]])
                                       + hl1[i] * (wl0[j] * r1[w0[j]] + wl1[j] * r1[w1[j]]))


def bilinear_backward(const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx,
                      const int64_t[::1] h0, const int64_t[::1] h1, const floating[::1] hl0,
                      const floating[::1] hl1, const int64_t[::1] w0, const int64_t[::1] w1,
                      const floating[::1] wl0, const floating[::1] wl1, int n_threads):
    """Adjoint of bilinear.  dx OUT (zeroed here)."""
    cdef Py_ssize_t P = dx.shape[0] * dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dy.shape[2], OW = dy.shape[3], p, i, j
    cdef const floating *src
    cdef floating *dst
    cdef floating *r0
    cdef floating *r1
    cdef floating g
    if P * H * W == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * OH * OW, n_threads)):
            src = &dy[0, 0, 0, 0] + p * OH * OW
            dst = &dx[0, 0, 0, 0] + p * H * W
            memset(dst, 0, H * W * sizeof(floating))
            for i in range(OH):
                r0 = dst + h0[i] * W
                r1 = dst + h1[i] * W
                for j in range(OW):
                    g = src[i * OW + j]
                    r0[w0[j]] += hl0[i] * wl0[j] * g
                    r0[w1[j]] += hl0[i] * wl1[j] * g
                    r1[w0[j]] += hl1[i] * wl0[j] * g
                    r1[w1[j]] += hl1[i] * wl1[j] * g
