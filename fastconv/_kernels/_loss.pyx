"""Softmax cross-entropy with label smoothing (PyTorch's CrossEntropyLoss, mean reduction)."""
from cython cimport floating
from cython.parallel cimport prange

from ._openmp_helpers cimport nthreads_for
from libc.math cimport exp, log
from libc.stdint cimport int64_t, uint8_t


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


def cross_entropy_nd(const floating[:, :, ::1] x, const int64_t[:, ::1] target,
                     const uint8_t[:, ::1] valid, const double[:, ::1] wt,
                     const double[::1] weight, double smoothing, double scale,
                     double[:, ::1] per, floating[:, :, ::1] grad, int n_threads):
    """The general softmax cross-entropy, class axis 1 of x (N, C, P) (P = pixels; 1 for
    (N, C) logits): per[n, p] = (1-eps) wt -(log p_t) + eps/C sum_c w_c -(log p_c) (0
    where not valid) and grad = scale * d per / d x, torch's CrossEntropyLoss with
    weight, ignore_index (valid, target 0 there) and label_smoothing.  wt[n, p] =
    weight[target] where valid, else 0.  Pixel maths in float64; one pixel per
    iteration, so the result does not depend on the thread count."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], i, n, p, c, ti
    cdef double m, s, lse, v, w_t, pc, g, wsum = 0, sumwl, keep = 1.0 - smoothing
    cdef double off = smoothing / C if C else 0.0
    for c in range(C):
        wsum += weight[c]
    with nogil:
        for i in prange(N * P, schedule='static', num_threads=nthreads_for(N * C * P, n_threads)):
            n = i // P
            p = i - n * P
            m = x[n, 0, p]
            for c in range(1, C):
                if x[n, c, p] > m:
                    m = x[n, c, p]
            s = 0
            for c in range(C):
                s = s + exp(x[n, c, p] - m)
            lse = m + log(s)
            ti = target[n, p]
            w_t = wt[n, p]
            if valid[n, p]:
                v = -keep * w_t * (x[n, ti, p] - lse)
                if smoothing != 0:
                    sumwl = 0
                    for c in range(C):
                        sumwl = sumwl + weight[c] * (x[n, c, p] - lse)
                    v = v - off * sumwl
            else:
                v = 0
            per[n, p] = v
            for c in range(C):
                pc = exp(x[n, c, p] - lse)
                g = keep * w_t * pc - (keep * w_t if c == ti else 0.0)
                if smoothing != 0 and valid[n, p]:
                    g = g + off * (pc * wsum - weight[c])
                grad[n, c, p] = <floating>(scale * g)
