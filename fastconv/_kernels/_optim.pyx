"""Optimiser update kernels, element-wise over a flat parameter, with PyTorch's rules."""
from cython cimport floating
from cython.parallel cimport prange

from ._openmp_helpers cimport nthreads_for
from libc.math cimport sqrt



def sgd(floating[::1] p, const floating[::1] g, floating[::1] buf, double lr, double momentum,
        double dampening, double weight_decay, bint nesterov, bint first, int n_threads):
    """torch.optim.SGD: d = g + wd*p; buf = d if first else mu*buf + (1-damp)*d;
    d = d + mu*buf if nesterov else buf (momentum > 0); p -= lr*d.  buf may be None."""
    cdef Py_ssize_t n = p.shape[0], i
    cdef floating d, bv
    cdef bint use_buf = momentum != 0
    with nogil:
        for i in prange(n, schedule='static', num_threads=nthreads_for(n, n_threads)):
            d = g[i]
            if weight_decay != 0:
                d = d + <floating>weight_decay * p[i]
            if use_buf:
                if first:
                    bv = d
                else:
                    bv = <floating>momentum * buf[i] + <floating>(1 - dampening) * d
                buf[i] = bv
                if nesterov:
                    d = d + <floating>momentum * bv
                else:
                    d = bv
            p[i] = p[i] - <floating>lr * d


def adam(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v,
         double lr, double beta1, double beta2, double eps, double weight_decay, bint decoupled,
         Py_ssize_t step, int n_threads):
    """torch.optim.Adam (decoupled=False: L2 added to the gradient) or AdamW (decoupled:
    p *= 1 - lr*wd first), single-tensor arithmetic order."""
    cdef Py_ssize_t n = p.shape[0], i
    cdef double bc1 = 1 - beta1 ** step, bc2 = 1 - beta2 ** step
    cdef floating step_size = <floating>(lr / bc1)
    cdef floating bc2_sqrt = <floating>sqrt(bc2)
    cdef floating b1 = <floating>beta1, b2 = <floating>beta2, e = <floating>eps
    cdef floating decay = <floating>(1 - lr * weight_decay), wd = <floating>weight_decay
    cdef floating gi, mi, vi, pi
    with nogil:
        for i in prange(n, schedule='static', num_threads=nthreads_for(n, n_threads)):
            gi = g[i]
            pi = p[i]
            if weight_decay != 0:
                if decoupled:
                    pi = pi * decay
                else:
                    gi = gi + wd * pi
            mi = m[i] + (gi - m[i]) * (1 - b1)
            vi = v[i] * b2 + (1 - b2) * gi * gi
            m[i] = mi
            v[i] = vi
            p[i] = pi - step_size * mi / (sqrt(vi) / bc2_sqrt + e)
