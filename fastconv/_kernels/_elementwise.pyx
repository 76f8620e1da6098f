"""Element-wise kernels: ReLU, residual add, dropout.

Notes
-----
ReLU follows PyTorch on NaN: relu(NaN) = NaN and its gradient passes (the mask is
``not (x <= 0)``).  Dropout draws its mask from a counter-based hash of
(seed, element index), so the mask is the same whatever the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange

from ._openmp_helpers cimport nthreads_for
from libc.stdint cimport uint8_t, uint64_t



def relu(const floating[::1] x, floating[::1] y, int n_threads):
    """y = max(x, 0) (NaN kept).  x, y (n,) flat; y may alias x (in-place)."""
    cdef Py_ssize_t n = x.shape[0], i
    cdef floating v
    with nogil:
        for i in prange(n, schedule='static', num_threads=nthreads_for(n, n_threads)):
            v = x[i]
            y[i] = 0 if v <= 0 else v


def relu_backward(const floating[::1] y, const floating[::1] dy, floating[::1] dx, int n_threads):
    """dx = dy where not (y <= 0), else 0.  All (n,) flat."""
    cdef Py_ssize_t n = y.shape[0], i
    cdef floating g
    with nogil:
        for i in prange(n, schedule='static', num_threads=nthreads_for(n, n_threads)):
            g = dy[i]          # load unconditionally: the select then compiles branch-free
            dx[i] = 0 if y[i] <= 0 else g


def add(const floating[::1] a, const floating[::1] b, floating[::1] out, int n_threads):
    """out = a + b.  All (n,) flat; out may alias a or b."""
    cdef Py_ssize_t n = a.shape[0], i
    with nogil:
        for i in prange(n, schedule='static', num_threads=nthreads_for(n, n_threads)):
            out[i] = a[i] + b[i]


cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    # splitmix64 finaliser: a bijective hash with good avalanche
    z = (z ^ (z >> 30)) * <uint64_t>0xbf58476d1ce4e5b9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94d049bb133111ebULL
    return z ^ (z >> 31)


def dropout(const floating[::1] x, floating[::1] y, uint8_t[::1] mask, double p, uint64_t seed,
            int n_threads):
    """mask[i] = U_i >= p with U_i = hash(seed, i) / 2**64; y = x * mask / (1 - p)."""
    cdef Py_ssize_t n = x.shape[0], i
    cdef uint64_t thresh = <uint64_t>(p * 18446744073709551616.0) if p < 1 else <uint64_t>0xFFFFFFFFFFFFFFFFULL
    cdef floating scale = <floating>(1.0 / (1.0 - p)) if p < 1 else 0
    cdef uint8_t keep
    with nogil:
        for i in prange(n, schedule='static', num_threads=nthreads_for(n, n_threads)):
            keep = mix64(seed + <uint64_t>i * <uint64_t>0x9e3779b97f4a7c15ULL) >= thresh and p < 1
            mask[i] = keep
            y[i] = x[i] * scale if keep else 0


def dropout_backward(const floating[::1] dy, const uint8_t[::1] mask, double p, floating[::1] dx,
                     int n_threads):
    """dx = dy * mask / (1 - p)."""
    cdef Py_ssize_t n = dy.shape[0], i
    cdef floating scale = <floating>(1.0 / (1.0 - p)) if p < 1 else 0
    with nogil:
        for i in prange(n, schedule='static', num_threads=nthreads_for(n, n_threads)):
            dx[i] = dy[i] * scale * mask[i]

