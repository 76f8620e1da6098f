"""Element-wise kernels: ReLU, residual add, dropout, bf16 storage.

Notes
-----
ReLU follows PyTorch on NaN: relu(NaN) = NaN and its gradient passes (the mask is
``not (x <= 0)``).  Dropout draws its mask from a counter-based hash of
(seed, element index), so the mask is the same whatever the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange

from ._openmp_helpers cimport nthreads_for
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef extern from "gemm.h":
    # the GEMM packing's rounding: nearest even, subnormals to zero, NaN kept
    uint32_t fc_bf16_round(float x) nogil


def to_bf16(const float[::1] x, uint16_t[::1] h, int n_threads):
    """h = bf16 bits of x, rounded as the bf16 GEMM rounds its operands.  (n,) flat."""
    cdef Py_ssize_t n = x.shape[0], i
    with nogil:
        for i in prange(n, schedule='static', num_threads=nthreads_for(n, n_threads)):
            h[i] = <uint16_t>(fc_bf16_round(x[i]) >> 16)


def from_bf16(const uint16_t[::1] h, float[::1] x, int n_threads):
    """x = the float32 values of bf16 bits h (exact).  (n,) flat."""
    cdef Py_ssize_t n = h.shape[0], i
    cdef uint32_t u
    cdef float f
    with nogil:
        for i in prange(n, schedule='static', num_threads=nthreads_for(n, n_threads)):
            u = (<uint32_t>h[i]) << 16
            memcpy(&f, &u, 4)
            x[i] = f


def matches_bf16(const float[::1] x, const uint16_t[::1] h, int n_threads):
    """Whether h holds the bf16 bits of x now (a saved copy still valid after x may
    have been written in place).  (n,) flat."""
    cdef Py_ssize_t n = x.shape[0], i
    cdef Py_ssize_t bad = 0
    with nogil:
        for i in prange(n, schedule='static', num_threads=nthreads_for(n, n_threads)):
            if h[i] != <uint16_t>(fc_bf16_round(x[i]) >> 16):
                bad += 1
    return bad == 0



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


def add_relu(const floating[::1] a, const floating[::1] b, floating[::1] out, int n_threads):
    """out = max(a + b, 0) (NaN kept: relu's rule), the residual add and ReLU in one pass.
    All (n,) flat; out may alias a or b."""
    cdef Py_ssize_t n = a.shape[0], i
    cdef floating v
    with nogil:
        for i in prange(n, schedule='static', num_threads=nthreads_for(n, n_threads)):
            v = a[i] + b[i]
            out[i] = 0 if v <= 0 else v


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



# ---------------------------------------------------------------- activations
# op codes (fastconv/functional/activation.py's ACTIVATIONS): 0 relu6, 1 leaky_relu,
# 2 elu, 3 silu, 4 gelu (erf), 5 gelu (tanh), 6 sigmoid, 7 tanh, 8 hardswish,
# 9 hardsigmoid, 10 mish.  Evaluated in double; comparisons are written so that NaN
# propagates as in torch.
from libc.math cimport erf, exp, log1p, sqrt, tanh

cdef double SQRT_HALF = 0.7071067811865476, INV_SQRT_2PI = 0.3989422804014327
cdef double K_BETA = 0.7978845608028654, K_KAPPA = 0.044715


cdef inline double _sigmoid(double v) noexcept nogil:
    return 1.0 / (1.0 + exp(-v))


cdef inline double _softplus(double v) noexcept nogil:
    return v if v > 20 else log1p(exp(v))      # torch's threshold


cdef inline double _act(double v, int op, double a) noexcept nogil:
    if op == 0:
        return 0 if v <= 0 else (6 if v >= 6 else v)
    if op == 1:
        return v if not v <= 0 else a * v
    if op == 2:
        return v if not v <= 0 else a * (exp(v) - 1)
    if op == 3:
        return v * _sigmoid(v)
    if op == 4:
        return 0.5 * v * (1 + erf(v * SQRT_HALF))
    if op == 5:
        return 0.5 * v * (1 + tanh(K_BETA * (v + K_KAPPA * v * v * v)))
    if op == 6:
        return _sigmoid(v)
    if op == 7:
        return tanh(v)
    if op == 8:
        return 0 if v <= -3 else (v if v >= 3 else v * (v + 3) / 6)
    if op == 9:
        return 0 if v <= -3 else (1 if v >= 3 else v / 6 + 0.5)
    return v * tanh(_softplus(v))


cdef inline double _dact(double v, double y, int op, double a) noexcept nogil:
    """d act / d x at x = v (y = act(v))."""
    cdef double s, t, inner
    if op == 0:
        return 1 if (v > 0 and v < 6) else 0
    if op == 1:
        return 1 if v > 0 else a
    if op == 2:
        return 1 if v > 0 else a * exp(v)
    if op == 3:
        s = _sigmoid(v)
        return s * (1 + v * (1 - s))
    if op == 4:
        return 0.5 * (1 + erf(v * SQRT_HALF)) + v * INV_SQRT_2PI * exp(-0.5 * v * v)
    if op == 5:
        inner = tanh(K_BETA * (v + K_KAPPA * v * v * v))
        return 0.5 * (1 + inner) + 0.5 * v * (1 - inner * inner) * K_BETA * (
            1 + 3 * K_KAPPA * v * v)
    if op == 6:
        return y * (1 - y)
    if op == 7:
        return 1 - y * y
    if op == 8:
        return 0 if v <= -3 else (v / 3 + 0.5 if v < 3 else 1)     # torch's kinks
    if op == 9:
        return 1.0 / 6 if (v > -3 and v < 3) else 0
    t = tanh(_softplus(v))
    return t + v * _sigmoid(v) * (1 - t * t)


def activation(const floating[::1] x, floating[::1] y, int op, double alpha, int n_threads):
    """y = act(x) element-wise (op: the code above; alpha: LeakyReLU's slope, ELU's
    alpha).  x, y (n,) flat; y may alias x (in-place).

    The piecewise-linear ones (ReLU6, LeakyReLU, Hardswish, Hardsigmoid: the hot
    activations of MobileNets) run a loop of their own in the input's precision, which
    the compiler vectorises; a clamp is exact, and torch computes them in float too.
    The rest go through _act in float64."""
    cdef Py_ssize_t n = x.shape[0], i
    cdef floating v, t, lo = 0, six = 6, three = 3, a = <floating>alpha
    cdef int nt = nthreads_for(n, n_threads)
    with nogil:
        if op == 0:
            for i in prange(n, schedule='static', num_threads=nt):
                v = x[i]
                y[i] = lo if v <= 0 else (six if v >= 6 else v)
        elif op == 1:
            for i in prange(n, schedule='static', num_threads=nt):
                v = x[i]
                y[i] = a * v if v <= 0 else v
        elif op == 8:
            for i in prange(n, schedule='static', num_threads=nt):
                v = x[i]
                t = v + three
                t = lo if t <= 0 else (six if t >= 6 else t)
                y[i] = v * t / six
        elif op == 9:
            for i in prange(n, schedule='static', num_threads=nt):
                v = x[i] + three
                v = lo if v <= 0 else (six if v >= 6 else v)
                y[i] = v / six
        else:
            for i in prange(n, schedule='static', num_threads=nt):
                y[i] = <floating>_act(x[i], op, alpha)


def activation_backward(const floating[::1] x, const floating[::1] y, const floating[::1] dy,
                        floating[::1] dx, int op, double alpha, int n_threads):
    """dx = dy * act'(x); x is the forward's input, y its output.  All (n,) flat."""
    cdef Py_ssize_t n = x.shape[0], i
    cdef floating v, g, zero = 0, sixth = <floating>(1.0 / 6), a = <floating>alpha
    cdef int nt = nthreads_for(n, n_threads)
    with nogil:
        if op == 0:             # from y: 0 < y < 6 exactly where 0 < x < 6 (x may be gone)
            for i in prange(n, schedule='static', num_threads=nt):
                # both loads unconditional and & (not `and`): a select, so it vectorises
                v, g = y[i], dy[i]
                dx[i] = g if ((v > 0) & (v < 6)) else zero
        elif op == 1:
            for i in prange(n, schedule='static', num_threads=nt):
                g = dy[i]
                dx[i] = g if x[i] > 0 else a * g
        elif op == 9:           # from y: 0 < y < 1 exactly where -3 < x < 3
            for i in prange(n, schedule='static', num_threads=nt):
                v, g = y[i], dy[i]
                dx[i] = g * sixth if ((v > 0) & (v < 1)) else zero
        else:
            for i in prange(n, schedule='static', num_threads=nt):
                dx[i] = <floating>(dy[i] * _dact(x[i], y[i], op, alpha))


def prelu(const floating[:, :, ::1] x, const floating[::1] w, floating[:, :, ::1] y,
          int n_threads):
    """y = x where x > 0, else w[c] * x (w of one value, or one per channel).
    x, y (N, C, rest) IN / OUT."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], R = x.shape[2], p, c, q
    cdef double wc
    cdef floating v
    if N * C * R == 0:
        return
    with nogil:
        for p in prange(N * C, schedule='static', num_threads=nthreads_for(N * C * R, n_threads)):
            c = p % C
            wc = w[c if w.shape[0] > 1 else 0]
            for q in range(R):
                v = x[p // C, c, q]
                y[p // C, c, q] = v if v > 0 else <floating>(wc * v)


def prelu_backward(const floating[:, :, ::1] x, const floating[::1] w,
                   const floating[:, :, ::1] dy, floating[:, :, ::1] dx, double[::1] dw,
                   bint need_dx, int n_threads):
    """dx = dy where x > 0, else w[c] * dy; dw[c] = sum over x <= 0 of dy * x, per
    channel (dw of length C), each channel summed by one thread in a fixed order."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], R = x.shape[2], n, c, q
    cdef double wc, s
    cdef floating v
    if C == 0:
        return
    with nogil:
        for c in prange(C, schedule='static', num_threads=nthreads_for(N * C * R, n_threads)):
            wc = w[c if w.shape[0] > 1 else 0]
            s = 0
            for n in range(N):
                for q in range(R):
                    v = x[n, c, q]
                    if not v > 0:
                        s = s + dy[n, c, q] * v
                    if need_dx:
                        dx[n, c, q] = dy[n, c, q] if v > 0 else <floating>(wc * dy[n, c, q])
            dw[c] = s
