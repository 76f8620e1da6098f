"""Softmax cross-entropy with label smoothing (PyTorch's CrossEntropyLoss): rows, and per-pixel logits."""
from cython cimport floating
from cython.parallel cimport parallel, prange

from ._openmp_helpers cimport nthreads_for
from libc.math cimport exp, log
from libc.stdlib cimport free, malloc
from libc.stdint cimport int64_t, uint8_t

import numpy as np


def cross_entropy(const floating[:, ::1] logits, const int64_t[::1] target, double smoothing,
                  floating[:, ::1] probs, double[::1] losses, int n_threads):
    """losses[i] = (1-eps) * -log p[i, t_i] + eps/C * sum_c -log p[i, c]; probs = softmax.

    logits (N, C) IN; target (N,) IN (checked in range by the caller); probs (N, C) OUT;
    losses (N,) OUT.  Row maths in float64."""
    cdef Py_ssize_t N = logits.shape[0], C = logits.shape[1], i, c
    cdef double m, s, lse, sum_logp
    with nogil:
        for i in prange(N, schedule='static', num_threads=nthreads_for(N * C, n_threads)):
            m = logits[i, 0]
            for c in range(1, C):
                if logits[i, c] > m:
                    m = logits[i, c]
            s = 0
            for c in range(C):
                s = s + exp(logits[i, c] - m)
            lse = m + log(s)
            sum_logp = 0
            for c in range(C):
                sum_logp = sum_logp + (logits[i, c] - lse)
                probs[i, c] = <floating>exp(logits[i, c] - lse)
            losses[i] = -(1.0 - smoothing) * (logits[i, target[i]] - lse) - smoothing / C * sum_logp


def cross_entropy_backward(const floating[:, ::1] probs, const int64_t[::1] target, double smoothing,
                           double scale, floating[:, ::1] dlogits, int n_threads):
    """dlogits = scale * (probs - (1-eps) onehot(t) - eps/C)."""
    cdef Py_ssize_t N = probs.shape[0], C = probs.shape[1], i, c
    cdef double off = smoothing / C
    with nogil:
        for i in prange(N, schedule='static', num_threads=nthreads_for(N * C, n_threads)):
            for c in range(C):
                dlogits[i, c] = <floating>(scale * (probs[i, c] - off - ((1.0 - smoothing) if c == target[i] else 0.0)))


cdef enum:
    PIX = 256          # pixels per block: the unit of work and of the partial sums


def cross_entropy_pixels(const floating[:, :, ::1] x, const int64_t[:, ::1] target,
                         const double[::1] weight, int64_t ignore_index, double smoothing,
                         double[:, ::1] per, floating[:, :, ::1] grad, int n_threads):
    """The general softmax cross-entropy, class axis 1 of x (N, C, P) (P = pixels; 1 for
    (N, C) logits): per[n, p] = (1-eps) w_t -(log p_t) + eps/C sum_c w_c -(log p_c) and
    grad[n, c, p] = d per[n, p] / d x[n, c, p], torch's CrossEntropyLoss with weight,
    ignore_index (a target equal to it: per 0, gradient 0) and label_smoothing.

    Returns (sum of per, sum of w_t over the counted targets, count of targets neither
    in [0, C) nor ignore_index: those count as ignored, and the caller raises).  Blocks of
    PIX pixels, classes outer and pixels inner (contiguous); each class's exp is taken
    once and kept in grad until the block's sums are known.  Pixel maths in float64; the
    sums are per block, added in block order: the result does not depend on the thread
    count."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2]
    cdef Py_ssize_t nblk = (P + PIX - 1) // PIX, u, n, p0, L, j, c, ti
    cdef double wsum = 0, keep = 1.0 - smoothing, off = smoothing / C if C else 0.0
    cdef double v, e, lse, w_t, pc, g, sl, tot = 0, den = 0
    cdef double *m
    cdef double *inv
    cdef double *wt
    cdef Py_ssize_t *tj
    cdef Py_ssize_t bad = 0
    cdef double[::1] btot, bden
    cdef int64_t[::1] bbad
    if N * P == 0:
        return 0.0, 0.0, 0
    btot = np.zeros(N * nblk)
    bden = np.zeros(N * nblk)
    bbad = np.zeros(N * nblk, np.int64)
    for c in range(C):
        wsum += weight[c]
    with nogil, parallel(num_threads=nthreads_for(N * C * P, n_threads)):
        # each thread's block scratch: the maxima, 1 / sums, target weights and targets
        m = <double *>malloc(3 * PIX * sizeof(double) + PIX * sizeof(Py_ssize_t))
        if m == NULL:
            with gil:
                raise MemoryError("cross_entropy: no memory for a block's scratch")
        inv = m + PIX
        wt = m + 2 * PIX
        tj = <Py_ssize_t *>(m + 3 * PIX)
        for u in prange(N * nblk, schedule='static'):
            n = u // nblk
            p0 = (u - n * nblk) * PIX
            L = min(PIX, P - p0)
            for j in range(L):
                m[j] = x[n, 0, p0 + j]
            for c in range(1, C):
                for j in range(L):
                    v = x[n, c, p0 + j]
                    m[j] = v if v > m[j] else m[j]
            for j in range(L):
                inv[j] = 0
            for c in range(C):
                for j in range(L):
                    e = exp(x[n, c, p0 + j] - m[j])
                    grad[n, c, p0 + j] = <floating>e
                    inv[j] = inv[j] + e
            for j in range(L):
                ti = target[n, p0 + j]
                lse = m[j] + log(inv[j])
                inv[j] = 1.0 / inv[j]
                if ti == ignore_index or ti < 0 or ti >= C:
                    if ti != ignore_index:
                        bbad[u] += 1
                    tj[j] = -1
                    wt[j] = 0
                    per[n, p0 + j] = 0
                    continue
                tj[j] = ti
                w_t = weight[ti]
                wt[j] = w_t
                v = -keep * w_t * (x[n, ti, p0 + j] - lse)
                if smoothing != 0:
                    sl = 0
                    for c in range(C):
                        sl = sl + weight[c] * (x[n, c, p0 + j] - lse)
                    v = v - off * sl
                per[n, p0 + j] = v
                btot[u] += v
                bden[u] += w_t
            for c in range(C):
                for j in range(L):
                    pc = grad[n, c, p0 + j] * inv[j]
                    g = keep * wt[j] * pc - (keep * wt[j] if c == tj[j] else 0.0)
                    if smoothing != 0 and tj[j] >= 0:
                        g = g + off * (pc * wsum - weight[c])
                    grad[n, c, p0 + j] = <floating>g
        free(m)
    for u in range(N * nblk):
        tot += btot[u]
        den += bden[u]
        bad += bbad[u]
    return tot, den, bad
