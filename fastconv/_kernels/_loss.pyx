"""Softmax cross-entropy with label smoothing (PyTorch's CrossEntropyLoss, mean reduction)."""
from cython cimport floating
from cython.parallel cimport prange

from ._openmp_helpers cimport nthreads_for
from libc.math cimport exp, log
from libc.stdint cimport int64_t


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
