"""Explicit padding of (N, C, H, W) maps: zeros, reflect, replicate and circular, and the
adjoint scatter-add for the backward; each plane in one thread."""
from cython cimport floating
from cython.parallel cimport prange

from ._openmp_helpers cimport nthreads_for
from libc.string cimport memset, memcpy


# mode: 0 zeros, 1 reflect, 2 replicate, 3 circular

cdef inline Py_ssize_t src_index(Py_ssize_t i, Py_ssize_t n, int mode) noexcept nogil:
    """Map a padded coordinate (relative to the unpadded origin) to the source, or -1."""
    if 0 <= i < n:
        return i
    if mode == 0:
        return -1
    if mode == 1:       # reflect without repeating the edge; caller ensured pad < n
        if i < 0:
            return -i
        return 2 * (n - 1) - i
    if mode == 2:
        return 0 if i < 0 else n - 1
    # circular; caller ensured pad <= n
    if i < 0:
        return i + n
    return i - n


def pad2d(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
          Py_ssize_t pt, Py_ssize_t pl, int mode, int n_threads):
    """out[n, c, i, j] = x[n, c, map(i - pt), map(j - pl)] for the padding mode.

    x (N, C, H, W) IN; out (N, C, H + pt + pb, W + pl + pr) OUT."""
    cdef Py_ssize_t P = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = out.shape[2], OW = out.shape[3], pidx, i, j, si, sj
    cdef const floating *src
    cdef floating *dst
    cdef Py_ssize_t pr = OW - W - pl
    if P == 0 or OH * OW == 0:
        return
    if mode == 0 and pt >= 0 and pl >= 0 and pr >= 0 and OH - H - pt >= 0:
        with nogil:        # zeros: row copies and zero borders
            for pidx in prange(P, schedule='static',
                               num_threads=nthreads_for(P * OH * OW, n_threads)):
                src = &x[0, 0, 0, 0] + pidx * H * W
                dst = &out[0, 0, 0, 0] + pidx * OH * OW
                memset(dst, 0, pt * OW * sizeof(floating))
                for i in range(H):
                    memset(dst + (i + pt) * OW, 0, pl * sizeof(floating))
                    memcpy(dst + (i + pt) * OW + pl, src + i * W, W * sizeof(floating))
                    memset(dst + (i + pt) * OW + pl + W, 0, pr * sizeof(floating))
                memset(dst + (H + pt) * OW, 0, (OH - H - pt) * OW * sizeof(floating))
        return
    with nogil:
        for pidx in prange(P, schedule='static', num_threads=nthreads_for(P * OH * OW, n_threads)):
            src = &x[0, 0, 0, 0] + pidx * H * W
            dst = &out[0, 0, 0, 0] + pidx * OH * OW
            for i in range(OH):
                si = src_index(i - pt, H, mode)
                for j in range(OW):
                    sj = src_index(j - pl, W, mode)
                    dst[i * OW + j] = src[si * W + sj] if (si >= 0 and sj >= 0) else 0


def pad2d_backward(const floating[:, :, :, ::1] dout, floating[:, :, :, ::1] dx,
                   Py_ssize_t pt, Py_ssize_t pl, int mode, int n_threads):
    """Adjoint of pad2d: dx[n, c, map(i), map(j)] += dout[n, c, i, j].  dx OUT (zeroed here)."""
    cdef Py_ssize_t P = dx.shape[0] * dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dout.shape[2], OW = dout.shape[3], pidx, i, j, si, sj
    cdef const floating *src
    cdef floating *dst
    if P == 0 or H * W == 0:
        return
    with nogil:
        for pidx in prange(P, schedule='static', num_threads=nthreads_for(P * OH * OW, n_threads)):
            src = &dout[0, 0, 0, 0] + pidx * OH * OW
            dst = &dx[0, 0, 0, 0] + pidx * H * W
            memset(dst, 0, H * W * sizeof(floating))
            for i in range(OH):
                si = src_index(i - pt, H, mode)
                if si < 0:
                    continue
                for j in range(OW):
                    sj = src_index(j - pl, W, mode)
                    if sj >= 0:
                        dst[si * W + sj] += src[i * OW + j]


def phase_split(const floating[:, :, :, ::1] x, floating[:, :, :, :, ::1] out, Py_ssize_t s,
                Py_ssize_t pt, Py_ssize_t pl, int n_threads):
    """The zero-padded input split into its s*s stride phases (polyphase form of a
    stride-s convolution: each tap then reads one phase at stride 1, so im2col rows are
    contiguous slices): out[n, a*s + b, c, i, j] = x[n, c, s*i + a - pt, s*j + b - pl], 0
    outside x.

    x (N, C, H, W) IN; out (N, s*s, C, PH2, PW2) OUT."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t PH2 = out.shape[3], PW2 = out.shape[4], planes = N * s * s * C
    cdef Py_ssize_t p, n, ph, a, b, c, i, j, si, j0, j1
    cdef const floating *src
    cdef floating *dst
    if out.shape[0] != N or out.shape[1] != s * s or out.shape[2] != C:
        raise ValueError("phase_split: out must be (N, s*s, C, PH2, PW2)")
    if planes == 0 or PH2 * PW2 == 0:
        return
    with nogil:
        for p in prange(planes, schedule='static',
                        num_threads=nthreads_for(planes * PH2 * PW2, n_threads)):
            c = p % C
            ph = (p // C) % (s * s)
            n = p // (C * s * s)
            a = ph // s
            b = ph % s
            # columns j with 0 <= s*j + b - pl < W
            j0 = (pl - b + s - 1) // s if pl > b else 0
            j1 = (W - 1 + pl - b) // s + 1 if W - 1 + pl - b >= 0 else 0
            if j1 > PW2:
                j1 = PW2
            if j0 > j1:
                j0 = j1
            for i in range(PH2):
                dst = &out[n, ph, c, i, 0]
                si = s * i + a - pt
                if si < 0 or si >= H or j0 == j1:
                    memset(dst, 0, PW2 * sizeof(floating))
                    continue
                src = &x[n, c, si, 0]
                for j in range(j0):
                    dst[j] = 0
                for j in range(j0, j1):
                    dst[j] = src[s * j + b - pl]
                for j in range(j1, PW2):
                    dst[j] = 0
