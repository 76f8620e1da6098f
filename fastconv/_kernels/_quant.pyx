"""int8 inference kernels: u8 activations in NHWC (channels last) with one scale and
zero point per tensor, s8 weights with one scale per output channel.

Notes
-----
Shapes: x (N, H, W, C) u8; a convolution's weight as the (K_h*K_w*C, C_out) s8 matrix
whose rows run (kh, kw, c), packed once by ``pack_weights`` for the kernel in use; a
depthwise weight as (K_h*K_w, C) s8.  The convolutions (src/qgemm.c, the best
micro-kernel for the CPU from the dispatch table) end in the epilogue of qgemm.h:

    v = (float)(acc + comp[c]) * mult[c] + bias[c], clamped to [lo, hi]

written as u8 (rounded half to even: the next int8 layer's input) or float32.  Every
ISA path gives the same bits (integer sums are exact; the float steps are the same
operations in the same order).  The other kernels here are plain loops compiled once,
so they are the same code on every path; all of them are elementwise or per window,
so the bits never depend on the thread count.
"""
from cython.parallel cimport prange
from libc.math cimport lrintf
from libc.stdint cimport int8_t, int32_t, uint8_t

import numpy as np

from ._base cimport fc_int
from ._cpu cimport check_workspace, fc_dispatch_t, kernels
from ._openmp_helpers cimport nthreads_for
from ._qgemm cimport fc_qepi_t, fc_qgeom_t

cdef extern from "qelem.h":
    void fc_q_quantize_row(const float *x, fc_int c, fc_int cs, fc_int w, float inv,
                           float zp, uint8_t z, uint8_t *y, fc_int cy) noexcept nogil
    void fc_q_maxpool_row(const uint8_t *x, fc_int H, fc_int W, fc_int C, fc_int oh,
                          fc_int OW, fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph,
                          fc_int pw, fc_int dh, fc_int dw, uint8_t *y) noexcept nogil

cdef const fc_dispatch_t *KT = kernels()    # the kernel table


def kernel_info():
    """The int8 micro-kernel in use: (name, MR rows, NR columns)."""
    k = KT.qgemm.kernel
    return k.name.decode(), k.mr, k.nr


def pack_weights(const int8_t[:, ::1] w):
    """(K, C_out) s8 -> the packed panels of the kernel in use (1-D int8)."""
    cdef Py_ssize_t K = w.shape[0], cout = w.shape[1]
    out = np.zeros(KT.qgemm.pack_size(KT.qgemm.kernel, K, cout), np.int8)
    cdef int8_t[::1] o = out
    if K * cout > 0:
        with nogil:
            KT.qgemm.pack(KT.qgemm.kernel, &w[0, 0], K, cout, &o[0])
    return out


cdef inline float _clampf(float v, float lo, float hi) noexcept nogil:
    v = v if v > lo else lo
    return v if v < hi else hi


cdef class QConv:
    """A prepared int8 convolution, dense or depthwise: the weights, the zero-point
    compensation and the epilogue bound once, so a call passes only the activations
    (at one frame the per-call argument handling cost as much as a small layer).

    weights: dense, ``pack_weights`` of the (K_h*K_w*C, C_out) matrix; depthwise, the
    (K_h*K_w, C) s8 matrix.  comp, mult, bias (C_out,); the input's zero point zp (the
    padding value, and what comp was computed for).  The arrays are kept referenced."""
    cdef object _keep
    cdef const int8_t *w
    cdef fc_qgeom_t g
    cdef fc_qepi_t e
    cdef readonly Py_ssize_t cin, cout
    cdef readonly bint depthwise

    def __cinit__(self, weights, bint depthwise, Py_ssize_t cin, Py_ssize_t cout,
                  Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh,
                  Py_ssize_t dw, int zp, comp, mult, bias, float lo, float hi):
        cdef const int8_t[::1] wv = np.ascontiguousarray(weights, np.int8).reshape(-1)
        cdef const int32_t[::1] cv = comp
        cdef const float[::1] mv = mult
        cdef const float[::1] bv = bias
        if min(cin, cout, KH, KW, sh, sw, dh, dw) < 1:
            raise ValueError("quant.QConv: sizes, strides and dilations must be positive")
        if cv.shape[0] != cout or mv.shape[0] != cout or bv.shape[0] != cout:
            raise ValueError("quant: comp, mult and bias need one value per output channel")
        if depthwise:
            if cin != cout or wv.shape[0] != KH * KW * cin:
                raise ValueError("quant.dwconv: the weight must be (K_h*K_w, C)")
        elif wv.shape[0] != KT.qgemm.pack_size(KT.qgemm.kernel, KH * KW * cin, cout):
            raise ValueError("quant.conv: the packed weights do not fit this geometry")
        self._keep = (wv, cv, mv, bv)
        self.w = &wv[0]
        self.cin, self.cout, self.depthwise = cin, cout, depthwise
        self.g.kh, self.g.kw, self.g.sh, self.g.sw, self.g.dh, self.g.dw = KH, KW, sh, sw, dh, dw
        self.g.zp = zp
        self.e.comp, self.e.mult, self.e.bias, self.e.lo, self.e.hi = &cv[0], &mv[0], &bv[0], lo, hi
        self.e.ldy = cout

    cdef int _run(self, const uint8_t[:, :, :, ::1] x, Py_ssize_t N, Py_ssize_t OH,
                  Py_ssize_t OW, Py_ssize_t C, Py_ssize_t ph, Py_ssize_t pw, uint8_t *y8,
                  float *yf, int n_threads) except -1:
        """The checks and the kernel call of run_u8 / run_f32: y (N, OH, OW, C) at y8 or
        yf (NULL for an empty output)."""
        cdef fc_qgeom_t g = self.g
        cdef fc_qepi_t e = self.e
        if C != self.cout:
            raise ValueError(f"quant: y has {C} channels, the layer makes {self.cout}")
        if x.shape[3] != self.cin:
            raise ValueError(f"quant: the input has {x.shape[3]} channels, the layer takes "
                             f"{self.cin}")
        if x.shape[0] != N:
            raise ValueError("quant: the output's batch differs from the input's")
        if N * OH * OW == 0:
            return 0
        g.n, g.h, g.w, g.c = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
        g.ph, g.pw, g.oh, g.ow = ph, pw, OH, OW
        e.y8, e.yf = y8, yf
        with nogil:
            if self.depthwise:
                KT.qgemm.dwconv(&x[0, 0, 0, 0], &g, self.w, &e, max(1, n_threads))
            else:
                KT.qgemm.conv(KT.qgemm.kernel, &x[0, 0, 0, 0], &g, self.w, self.cout, &e,
                              max(1, n_threads))
        check_workspace()
        return 0

    def run_u8(self, const uint8_t[:, :, :, ::1] x, uint8_t[:, :, :, ::1] y, Py_ssize_t ph,
               Py_ssize_t pw, int n_threads=1):
        """x (N, H, W, C_in) u8 -> y (N, OH, OW, C_out) u8, written; ph, pw the top and
        left padding (the bottom and right follow from the output size)."""
        self._run(x, y.shape[0], y.shape[1], y.shape[2], y.shape[3], ph, pw,
                  &y[0, 0, 0, 0] if y.shape[0] * y.shape[1] * y.shape[2] else NULL, NULL,
                  n_threads)

    def run_f32(self, const uint8_t[:, :, :, ::1] x, float[:, :, :, ::1] y, Py_ssize_t ph,
                Py_ssize_t pw, int n_threads=1):
        """As run_u8 with a float32 output (a layer whose consumer runs in float)."""
        self._run(x, y.shape[0], y.shape[1], y.shape[2], y.shape[3], ph, pw, NULL,
                  &y[0, 0, 0, 0] if y.shape[0] * y.shape[1] * y.shape[2] else NULL,
                  n_threads)


def _call(QConv k, x, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t ph, Py_ssize_t pw, y8, yf,
          int n_threads):
    if (y8 is None) == (yf is None):
        raise ValueError("quant: give exactly one of y8 (u8) and yf (float32)")
    y = y8 if y8 is not None else yf
    if y.ndim == 2:                                     # (N*OH*OW, C_out) accepted too
        y = y.reshape(x.shape[0], OH, OW, -1)
    if tuple(y.shape[1:3]) != (OH, OW):
        raise ValueError(f"quant: y is {tuple(y.shape)}, the output is {OH} x {OW}")
    if y8 is not None:
        k.run_u8(x, y, ph, pw, n_threads)
    else:
        k.run_f32(x, y, ph, pw, n_threads)


def conv(const uint8_t[:, :, :, ::1] x, packed, Py_ssize_t cout,
         Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
         Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t OH, Py_ssize_t OW, int zp,
         comp, mult, bias, float lo, float hi, y8=None, yf=None, int n_threads=1):
    """Dense int8 convolution, x (N, H, W, C) u8 -> y8 or yf (N, OH, OW, C_out),
    written; packed from ``pack_weights`` of the (K_h*K_w*C, C_out) matrix (a one-off
    QConv: layers keep theirs)."""
    k = QConv(packed, False, x.shape[3], cout, KH, KW, sh, sw, dh, dw, zp, comp, mult, bias,
              lo, hi)
    _call(k, x, OH, OW, ph, pw, y8, yf, n_threads)


def dwconv(const uint8_t[:, :, :, ::1] x, w, Py_ssize_t KH,
           Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
           Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t OH, Py_ssize_t OW, int zp,
           comp, mult, bias, float lo, float hi, y8=None, yf=None, int n_threads=1):
    """Depthwise int8 convolution (one output channel per input channel), x (N, H, W, C)
    u8, w (K_h*K_w, C) s8 -> y8 or yf (N, OH, OW, C), written."""
    if w.ndim != 2 or w.shape[0] != KH * KW or w.shape[1] != x.shape[3]:
        raise ValueError("quant.dwconv: the weight must be (K_h*K_w, C)")
    k = QConv(w, True, x.shape[3], x.shape[3], KH, KW, sh, sw, dh, dw, zp, comp, mult, bias,
              lo, hi)
    _call(k, x, OH, OW, ph, pw, y8, yf, n_threads)


def max_pool(const uint8_t[:, :, :, ::1] x, uint8_t[:, :, :, ::1] y, Py_ssize_t KH,
             Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
             Py_ssize_t dh, Py_ssize_t dw, int n_threads=1):
    """Max pooling on u8 NHWC (the scale and zero point pass through: max commutes with
    a monotonic map); padding never wins, as -inf in float.  y (N, OH, OW, C) written."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = y.shape[1], OW = y.shape[2], r, n, oh
    if y.shape[0] != N or y.shape[3] != C:
        raise ValueError("quant.max_pool: y must be (N, OH, OW, C) of x's N and C")
    if N * OH * OW * C == 0:
        return
    with nogil:
        for r in prange(N * OH, schedule='static',
                        num_threads=nthreads_for(N * OH * OW * C * KH * KW, n_threads)):
            n = r // OH
            oh = r % OH
            fc_q_maxpool_row(&x[n, 0, 0, 0], H, W, C, oh, OW, KH, KW, sh, sw, ph, pw, dh, dw,
                             &y[n, oh, 0, 0])


def global_avg_pool(const uint8_t[:, :, :, ::1] x, float[:, ::1] y, float scale, int zp):
    """Global average pooling of u8 NHWC, dequantised: y (N, C) float32 written,
    y = (sum - zp * H * W) * (scale / (H * W)) from an exact int64 sum."""
    cdef Py_ssize_t N = x.shape[0], HW = x.shape[1] * x.shape[2], C = x.shape[3]
    cdef Py_ssize_t n, p, c
    cdef const uint8_t *src
    cdef float k = scale / <float>HW if HW else 0
    acc = np.zeros(C, np.int64)
    cdef long long[::1] a = acc
    with nogil:
        for n in range(N):
            for c in range(C):
                a[c] = 0
            for p in range(HW):
                src = &x[n, 0, 0, 0] + p * C
                for c in range(C):
                    a[c] += src[c]
            for c in range(C):
                y[n, c] = <float>(a[c] - <long long>zp * HW) * k


def add(const uint8_t[::1] a, const uint8_t[::1] b, uint8_t[::1] y, float ka, int za,
        float kb, int zb, float zy, float lo, int n_threads=1):
    """Residual add on u8 (any layout, same for all three):
    y = round(clamp((a - za) * ka + (b - zb) * kb + zy, lo, 255)), ka = s_a / s_y,
    kb = s_b / s_y; lo = zy fuses a ReLU."""
    cdef Py_ssize_t n = a.shape[0], i
    cdef float v
    if b.shape[0] != n or y.shape[0] != n:
        raise ValueError("quant.add: the operands differ in size")
    with nogil:
        for i in prange(n, schedule='static', num_threads=nthreads_for(n, n_threads)):
            v = <float>(a[i] - za) * ka
            v = v + <float>(b[i] - zb) * kb
            v = v + zy
            y[i] = <uint8_t>lrintf(_clampf(v, lo, 255.0))


def quantize_nchw(const float[:, :, :, ::1] x, uint8_t[:, :, :, ::1] y, float inv_scale,
                  float zp, int n_threads=1):
    """float32 NCHW -> u8 NHWC: y = round(clamp(x * inv_scale + zp, 0, 255)), written.
    y may have more channels than x (a convolution's input padded to a multiple of 4
    channels, so its rows are gathered without a copy): those are set to zp."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t CY = y.shape[3], r, n, h
    cdef uint8_t z = <uint8_t>lrintf(_clampf(zp, 0.0, 255.0))
    if CY < C:
        raise ValueError("quantize_nchw: y has fewer channels than x")
    if y.shape[0] != N or y.shape[1] != H or y.shape[2] != W:
        raise ValueError("quantize_nchw: y must be (N, H, W, >= C) of x's N, H and W")
    if N * H * W == 0:
        return
    with nogil:
        for r in prange(N * H, schedule='static',
                        num_threads=nthreads_for(N * C * H * W, n_threads)):
            n = r // H
            h = r % H
            fc_q_quantize_row(&x[n, 0, h, 0], C, H * W, W, inv_scale, zp, z, &y[n, h, 0, 0],
                              CY)


def dequantize_nhwc(const uint8_t[:, :, :, ::1] x, float[:, :, :, ::1] y, float scale,
                    int zp, int n_threads=1):
    """u8 NHWC -> float32 NCHW: y = (x - zp) * scale, written."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t r, n, h, w, c
    with nogil:
        for r in prange(N * H, schedule='static',
                        num_threads=nthreads_for(N * C * H * W, n_threads)):
            n = r // H
            h = r % H
            for w in range(W):
                for c in range(C):
                    y[n, c, h, w] = <float>(x[n, h, w, c] - zp) * scale
