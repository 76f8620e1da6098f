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

from ._cpu cimport check_workspace, fc_dispatch_t, kernels
from ._openmp_helpers cimport nthreads_for
from ._qgemm cimport fc_qepi_t, fc_qgeom_t

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


cdef int _epilogue(fc_qepi_t *e, const int32_t[::1] comp, const float[::1] mult,
                   const float[::1] bias, float lo, float hi, object y8, object yf,
                   Py_ssize_t cout) except -1:
    """Fill e from the arrays: y8 (u8) or yf (float32), each (..., C_out) C-contiguous."""
    cdef uint8_t[::1] o8
    cdef float[::1] of
    if comp.shape[0] != cout or mult.shape[0] != cout or bias.shape[0] != cout:
        raise ValueError("quant: comp, mult and bias need one value per output channel")
    e.comp, e.mult, e.bias, e.lo, e.hi = &comp[0], &mult[0], &bias[0], lo, hi
    e.y8, e.yf, e.ldy = NULL, NULL, cout
    if (y8 is None) == (yf is None):
        raise ValueError("quant: give exactly one of y8 (u8) and yf (float32)")
    if y8 is not None:
        o8 = y8.reshape(-1)
        e.y8 = &o8[0]
    else:
        of = yf.reshape(-1)
        e.yf = &of[0]
    return 0


def conv(const uint8_t[:, :, :, ::1] x, const int8_t[::1] packed, Py_ssize_t cout,
         Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
         Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t OH, Py_ssize_t OW, int zp,
         const int32_t[::1] comp, const float[::1] mult, const float[::1] bias, float lo,
         float hi, y8=None, yf=None, int n_threads=1):
    """Dense int8 convolution, x (N, H, W, C) u8 -> y8 or yf (N, OH, OW, C_out),
    written; packed from ``pack_weights`` of the (K_h*K_w*C, C_out) matrix."""
    cdef fc_qgeom_t g
    cdef fc_qepi_t e
    cdef int rc
    g.n, g.h, g.w, g.c = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = KH, KW, sh, sw, ph, pw, dh, dw
    g.oh, g.ow, g.zp = OH, OW, zp
    _epilogue(&e, comp, mult, bias, lo, hi, y8, yf, cout)
    if packed.shape[0] != KT.qgemm.pack_size(KT.qgemm.kernel, KH * KW * g.c, cout):
        raise ValueError("quant.conv: the packed weights do not fit this geometry")
    if g.n * OH * OW == 0 or cout == 0:
        return
    with nogil:
        rc = KT.qgemm.conv(KT.qgemm.kernel, &x[0, 0, 0, 0], &g, &packed[0], cout, &e,
                           max(1, n_threads))
    check_workspace()


def dwconv(const uint8_t[:, :, :, ::1] x, const int8_t[:, ::1] w, Py_ssize_t KH,
           Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
           Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t OH, Py_ssize_t OW, int zp,
           const int32_t[::1] comp, const float[::1] mult, const float[::1] bias, float lo,
           float hi, y8=None, yf=None, int n_threads=1):
    """Depthwise int8 convolution (one output channel per input channel), x (N, H, W, C)
    u8, w (K_h*K_w, C) s8 -> y8 or yf (N, OH, OW, C), written."""
    cdef fc_qgeom_t g
    cdef fc_qepi_t e
    g.n, g.h, g.w, g.c = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = KH, KW, sh, sw, ph, pw, dh, dw
    g.oh, g.ow, g.zp = OH, OW, zp
    if w.shape[0] != KH * KW or w.shape[1] != g.c:
        raise ValueError("quant.dwconv: the weight must be (K_h*K_w, C)")
    _epilogue(&e, comp, mult, bias, lo, hi, y8, yf, g.c)
    if g.n * OH * OW * g.c == 0:
        return
    with nogil:
        KT.qgemm.dwconv(&x[0, 0, 0, 0], &g, &w[0, 0], &e, max(1, n_threads))


def max_pool(const uint8_t[:, :, :, ::1] x, uint8_t[:, :, :, ::1] y, Py_ssize_t KH,
             Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
             Py_ssize_t dh, Py_ssize_t dw, int n_threads=1):
    """Max pooling on u8 NHWC (the scale and zero point pass through: max commutes with
    a monotonic map); padding never wins, as -inf in float.  y (N, OH, OW, C) written."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = y.shape[1], OW = y.shape[2], r, n, oh, ow, i, j, ih, iw, c
    cdef uint8_t *dst
    cdef const uint8_t *src
    with nogil:
        for r in prange(N * OH, schedule='static',
                        num_threads=nthreads_for(N * OH * OW * C * KH * KW, n_threads)):
            n = r // OH
            oh = r % OH
            for ow in range(OW):
                dst = &y[n, oh, ow, 0]
                for c in range(C):
                    dst[c] = 0
                for i in range(KH):
                    ih = oh * sh - ph + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    for j in range(KW):
                        iw = ow * sw - pw + j * dw
                        if iw < 0 or iw >= W:
                            continue
                        src = &x[n, ih, iw, 0]
                        for c in range(C):
                            dst[c] = src[c] if src[c] > dst[c] else dst[c]


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
    cdef Py_ssize_t CY = y.shape[3], r, n, h, w, c
    cdef float v
    cdef uint8_t z = <uint8_t>lrintf(_clampf(zp, 0.0, 255.0))
    if CY < C:
        raise ValueError("quantize_nchw: y has fewer channels than x")
    with nogil:
        for r in prange(N * H, schedule='static',
                        num_threads=nthreads_for(N * C * H * W, n_threads)):
            n = r // H
            h = r % H
            for c in range(C):
                for w in range(W):
                    v = x[n, c, h, w] * inv_scale
                    v = v + zp
                    y[n, h, w, c] = <uint8_t>lrintf(_clampf(v, 0.0, 255.0))
            for c in range(C, CY):
                for w in range(W):
                    y[n, h, w, c] = z


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
