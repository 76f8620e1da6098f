"""Upsampling kernels driven by precomputed per-row / per-column index tables.

Notes
-----
The tables (source index and weights, one entry per output row or column) are built
once per call by the caller with PyTorch's arithmetic (scale in the compute dtype),
so a kernel only gathers (forward) or scatters (backward) within one plane.
Planes are split across threads; scatters stay inside a plane.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid

from ._openmp_helpers cimport nthreads_for
from libc.string cimport memset
from libc.stdint cimport int64_t



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
             floating[:, :, ::1] scratch, int n_threads):
    """y[i, j] = hl0[i] u[h0[i], j] + hl1[i] u[h1[i], j] with the horizontally
    interpolated rows u[h, j] = wl0[j] x[h, w0[j]] + wl1[j] x[h, w1[j]], each computed
    once per input row (scratch (threads, H, OW) holds them); the vertical blend is a
    contiguous, vectorised pass."""
    cdef Py_ssize_t P = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3], p, i, j, h, t
    cdef const floating *src
    cdef const floating *xr
    cdef floating *u
    cdef floating *ur
    cdef const floating *u0
    cdef const floating *u1
    cdef floating *dst
    cdef floating a, b
    cdef int nt = nthreads_for(P * OH * OW, n_threads)
    if P * OH * OW == 0:
        return
    if scratch.shape[0] < nt or scratch.shape[1] < H or scratch.shape[2] < OW:
        raise ValueError("bilinear: scratch must be (threads, H, OW)")
    with nogil:
        for p in prange(P, schedule='static', num_threads=nt):
            t = threadid()
            u = &scratch[t, 0, 0]
            src = &x[0, 0, 0, 0] + p * H * W
            for h in range(H):
                xr = src + h * W
                ur = u + h * OW
                for j in range(OW):
                    ur[j] = wl0[j] * xr[w0[j]] + wl1[j] * xr[w1[j]]
            dst = &y[0, 0, 0, 0] + p * OH * OW
            for i in range(OH):
                u0 = u + h0[i] * OW
                u1 = u + h1[i] * OW
                a = hl0[i]
                b = hl1[i]
                for j in range(OW):
                    dst[i * OW + j] = a * u0[j] + b * u1[j]


def bilinear_backward(const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx,
                      const int64_t[::1] h0, const int64_t[::1] h1, const floating[::1] hl0,
                      const floating[::1] hl1, const int64_t[::1] w0, const int64_t[::1] w1,
                      const floating[::1] wl0, const floating[::1] wl1,
                      floating[:, :, ::1] scratch, int n_threads):
    """Adjoint of bilinear: vertical scatter into row accumulators du (H, OW), then the
    horizontal scatter into dx.  dx OUT (zeroed here)."""
    cdef Py_ssize_t P = dx.shape[0] * dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dy.shape[2], OW = dy.shape[3], p, i, j, h, t
    cdef const floating *src
    cdef const floating *g
    cdef floating *u
    cdef floating *u0
    cdef floating *u1
    cdef floating *ur
    cdef floating *dst
    cdef floating *dr
    cdef floating a, b
    cdef int nt = nthreads_for(P * OH * OW, n_threads)
    if P * H * W == 0:
        return
    if scratch.shape[0] < nt or scratch.shape[1] < H or scratch.shape[2] < OW:
        raise ValueError("bilinear_backward: scratch must be (threads, H, OW)")
    with nogil:
        for p in prange(P, schedule='static', num_threads=nt):
            t = threadid()
            u = &scratch[t, 0, 0]
            memset(u, 0, H * OW * sizeof(floating))
            src = &dy[0, 0, 0, 0] + p * OH * OW
            for i in range(OH):
                g = src + i * OW
                u0 = u + h0[i] * OW
                u1 = u + h1[i] * OW
                a = hl0[i]
                b = hl1[i]
                for j in range(OW):
                    u0[j] += a * g[j]
                for j in range(OW):
                    u1[j] += b * g[j]
            dst = &dx[0, 0, 0, 0] + p * H * W
            memset(dst, 0, H * W * sizeof(floating))
            for h in range(H):
                ur = u + h * OW
                dr = dst + h * W
                for j in range(OW):
                    dr[w0[j]] += wl0[j] * ur[j]
                    dr[w1[j]] += wl1[j] * ur[j]
