"""Convolution kernels over the GEMM framework: implicit-GEMM convolution, col2im, weight
gradients, and the padded-width stride-1 path.

Notes
-----
Notation: N batch, G groups; the "big" map has C channels and H x W pixels (the input
of a convolution, the output of a transposed one); the "small" map has OH x OW pixels.
K_h, K_w kernel, s stride, p padding (top/left; the bottom/right amount is implied by
OH, OW), d dilation.  W2 is the weight viewed as (G*Mg, Kg) with Kg = (C/G)*K_h*K_w:
a Conv2d weight (C_out, C_in/G, K_h, K_w) or a ConvTranspose2d weight
(C_in, C_out/G, K_h, K_w), as stored, without copies.

Three primitives serve both layers (Caffe's observation: the transposed convolution
is the convolution's backward-data pass and vice versa):

    unfold_gemm   small_g  = W2_g @ im2col(big_g)        conv fwd, convT bwd-data, and
                                                          (flipped weights) stride-1
                                                          conv bwd-data / convT fwd
    gemm_fold     big_g    = col2im(W2_g^T @ small_g)     strided conv bwd-data, convT fwd
    weight_grad   dW2_g    = sum_n small_g @ im2col(big_g)^T

unfold_gemm and weight_grad are implicit GEMMs: the GEMM engine gathers im2col
patches straight into its packed panels (no column buffer); unfold_gemm also fuses
a per-channel bias and ReLU into the GEMM's epilogue.

Threads: images are split across threads when N >= n_threads; otherwise images run
in turn with a multi-threaded GEMM.  The weight gradient is reduced over a chunk
count fixed by N (never by n_threads) and the partial sums are added in chunk order,
so results are bitwise thread-invariant.
"""
from cython cimport floating
from cython.parallel cimport prange, parallel, threadid

from ._cpu cimport FC_WS_SCRATCH, check_workspace, fc_dispatch_t, kernels
from ._gemm cimport (fc_gemm_ops_t, FC_B_IM2COL, FC_B_IM2COL_T, FC_B_MATRIX, FC_B_OFFSETS, FC_B_OFFSETS_T,
                     fc_bsrc_t, fc_epilogue_t, fc_int, gemm, gemm_ex)
from ._openmp_helpers cimport nthreads_for
from libc.string cimport memset, memcpy
from libc.stdint cimport int64_t

import numpy as np

cdef const fc_dispatch_t *KT = kernels()    # the kernel table


cdef inline const fc_gemm_ops_t *gemm_ops(bint bf16, size_t itemsize) except NULL:
    """The GEMM entries of the precision asked for: bf16 products (float32 sums) exist
    for float32 operands only."""
    if not bf16:
        return &KT.gemm
    if itemsize != 4:
        raise TypeError("bf16 products need float32 operands")
    return &KT.gemm_bf16


cdef struct Geom:
    Py_ssize_t C, H, W        # big map, per image
    Py_ssize_t OH, OW         # small map
    Py_ssize_t KH, KW, sh, sw, ph, pw, dh, dw

# Chunks for the weight-gradient batch reduction: fixed, so bits do not depend on threads.
# Output planes under WGRAD_STACK_BELOW pixels stack a chunk's images along K.
cdef enum:
    WGRAD_STACK_BELOW = 256
# Output planes under STACK_BELOW pixels run the forward and the strided backward-data as
# one GEMM over the batch's images side by side (a GEMM per image would be a few pixels
# wide: the micro-tile mostly idle and the whole weight packed again for every image).
cdef enum:
    STACK_BELOW = 64
cdef enum:
    MAX_WGRAD_CHUNKS = 8


cdef void _sum_chunks(floating[:, ::1] part, Py_ssize_t nchunk, floating[:, ::1] out,
                      int nt) except *:
    """out = part[0] + part[1] + ... in chunk order (the fixed-order batch reduction)."""
    cdef Py_ssize_t wsize = out.shape[0] * out.shape[1], i, c
    cdef floating acc
    cdef floating *o = &out[0, 0]
    with nogil:
        for i in prange(wsize, schedule='static', num_threads=nthreads_for(wsize, nt)):
            acc = part[0, i]
            for c in range(1, nchunk):
                acc = acc + part[c, i]
            o[i] = acc


def wgrad_chunks(Py_ssize_t n, Py_ssize_t ohw=WGRAD_STACK_BELOW):
    """Number of batch chunks the weight gradient is reduced over (depends on the batch n
    and output plane size ohw only); 0 for small planes, whose images all stack into one
    GEMM that writes the gradient directly."""
    if ohw < WGRAD_STACK_BELOW:
        return 0
    return min(n, MAX_WGRAD_CHUNKS)


cdef inline bint is_pointwise(const Geom *g) noexcept nogil:
    return (g.KH == 1 and g.KW == 1 and g.sh == 1 and g.sw == 1 and g.ph == 0
            and g.pw == 0 and g.OH == g.H and g.OW == g.W)


cdef void col2im(const floating *col, Py_ssize_t Cg, const Geom *g, floating *x,
                 Py_ssize_t ldcol=0) noexcept nogil:
    """Adjoint of im2col: x[c, ih, iw] += col[...] (x must be zeroed by the caller).
    ldcol: the distance between col's rows (default OH*OW: contiguous)."""
    cdef Py_ssize_t c, kh, kw, oh, ow, ih, iw0, lo, hi
    cdef Py_ssize_t OHW = g.OH * g.OW
    cdef const floating *row
    cdef const floating *s
    cdef floating *dst
    for c in range(Cg):
        for kh in range(g.KH):
            for kw in range(g.KW):
                row = col + ((c * g.KH + kh) * g.KW + kw) * (ldcol if ldcol else OHW)
                iw0 = kw * g.dw - g.pw
                for oh in range(g.OH):
                    ih = oh * g.sh - g.ph + kh * g.dh
                    if ih < 0 or ih >= g.H:
                        continue
                    s = row + oh * g.OW
                    dst = x + (c * g.H + ih) * g.W
                    if g.sw == 1:           # contiguous: a vectorisable add over [lo, hi)
                        lo = 0 if iw0 >= 0 else -iw0
                        hi = min(g.OW, g.W - iw0)
                        for ow in range(lo, hi):
                            dst[ow + iw0] += s[ow]
                    else:                   # the columns inside x, then no test per value
                        lo = 0 if iw0 >= 0 else (-iw0 + g.sw - 1) // g.sw
                        hi = 0 if g.W - 1 - iw0 < 0 else min(g.OW, (g.W - 1 - iw0) // g.sw + 1)
                        for ow in range(lo, hi):
                            dst[ow * g.sw + iw0] += s[ow]


cdef inline Geom make_geom(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW,
                           Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                           Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw):
    cdef Geom g
    g.C = C; g.H = H; g.W = W; g.OH = OH; g.OW = OW; g.KH = KH; g.KW = KW
    g.sh = sh; g.sw = sw; g.ph = ph; g.pw = pw; g.dh = dh; g.dw = dw
    return g


cdef inline fc_bsrc_t conv_source(const floating *big, const Geom *g, Py_ssize_t Cg,
                                  bint transposed) noexcept nogil:
    """The B operand: im2col(big) (or its transpose), or big itself for a 1x1 conv."""
    cdef fc_bsrc_t b
    b.ptr = big
    if is_pointwise(g):
        b.kind = FC_B_MATRIX
        b.rs = 1 if transposed else g.H * g.W
        b.cs = g.H * g.W if transposed else 1
    else:
        b.kind = FC_B_IM2COL_T if transposed else FC_B_IM2COL
        b.rs = 0
        b.cs = 0
    b.g.C = Cg; b.g.H = g.H; b.g.W = g.W; b.g.OH = g.OH; b.g.OW = g.OW
    b.g.KH = g.KH; b.g.KW = g.KW; b.g.sh = g.sh; b.g.sw = g.sw
    b.g.ph = g.ph; b.g.pw = g.pw; b.g.dh = g.dh; b.g.dw = g.dw
    b.g.nimg = 1; b.g.istride = 0
    return b


cdef void _unfold_gemm_image(const fc_gemm_ops_t *ops, const floating *big, const floating *w, const floating *bias,
                             const floating *scale, floating *small, const Geom *g, Py_ssize_t G, Py_ssize_t Mg,
                             int relu, int nt) noexcept nogil:
    cdef Py_ssize_t Cg = g.C // G, Kg = Cg * g.KH * g.KW, OHW = g.OH * g.OW, grp
    cdef fc_bsrc_t b
    cdef fc_epilogue_t ep
    ep.relu = relu
    for grp in range(G):
        b = conv_source(big + grp * Cg * g.H * g.W, g, Cg, False)
        ep.row_bias = (bias + grp * Mg) if bias != NULL else NULL
        ep.row_scale = (scale + grp * Mg) if scale != NULL else NULL
        gemm_ex(ops, Mg, OHW, Kg, <floating>1, w + grp * Mg * Kg, Kg, 1, &b,
                <floating>0, small + grp * Mg * OHW, OHW, &ep, nt)


cdef void _unfold_gemm_stacked(const fc_gemm_ops_t *ops, const floating *big, const floating *w, const floating *bias,
                               const floating *scale, floating *small, const Geom *g, Py_ssize_t N,
                               Py_ssize_t bstride, Py_ssize_t sstride, Py_ssize_t G,
                               Py_ssize_t Mg, int relu, int nt) noexcept nogil:
    """unfold_gemm with every image side by side in one GEMM per group (small planes):
    C (Mg x N*OHW) in the workspace's scratch slot, then copied to (N, Mg, OHW)."""
    cdef Py_ssize_t Cg = g.C // G, Kg = Cg * g.KH * g.KW, OHW = g.OH * g.OW, grp, n, m
    cdef Py_ssize_t cols = N * OHW
    cdef fc_bsrc_t b
    cdef fc_epilogue_t ep
    cdef floating *c = <floating *>KT.workspace.get(FC_WS_SCRATCH, Mg * cols * sizeof(floating))
    if c == NULL:
        KT.workspace.flag_error()
        return
    ep.relu = relu
    for grp in range(G):
        b = conv_source(big + grp * Cg * g.H * g.W, g, Cg, False)
        b.kind = FC_B_IM2COL        # a 1x1 too: its "im2col" rows are the channel planes
        b.g.nimg = N
        b.g.istride = bstride
        ep.row_bias = (bias + grp * Mg) if bias != NULL else NULL
        ep.row_scale = (scale + grp * Mg) if scale != NULL else NULL
        gemm_ex(ops, Mg, cols, Kg, <floating>1, w + grp * Mg * Kg, Kg, 1, &b,
                <floating>0, c, cols, &ep, nt)
        for n in prange(N, schedule='static', num_threads=nthreads_for(Mg * cols, nt)):
            for m in range(Mg):
                memcpy(small + n * sstride + (grp * Mg + m) * OHW, c + m * cols + n * OHW,
                       OHW * sizeof(floating))


def unfold_gemm(const floating[:, :, :, ::1] big, const floating[:, ::1] w2, const floating[::1] bias,
                floating[:, :, :, ::1] small, Py_ssize_t groups,
                Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, int relu, int n_threads,
        bint bf16=False, const floating[::1] scale=None):
    """small[n, g*Mg + m] = relu?(sum_k W2[g*Mg + m, k] * im2col(big[n, group g])[k] * scale
    + bias).

    big (N, C, H, W) IN; w2 (G*Mg, (C/G)*KH*KW) IN; bias, scale (G*Mg,) or None IN (scale:
    an inference BatchNorm in the epilogue); small (N, G*Mg, OH, OW) OUT.  ph, pw may be
    negative (cropping)."""
    cdef Py_ssize_t N = big.shape[0], n
    cdef Geom g = make_geom(big.shape[1], big.shape[2], big.shape[3], small.shape[2], small.shape[3],
                            KH, KW, sh, sw, ph, pw, dh, dw)
    cdef Py_ssize_t Mg = w2.shape[0] // groups
    cdef const fc_gemm_ops_t *ops = gemm_ops(bf16, sizeof(floating))
    cdef int nt = max(1, n_threads)
    cdef bint outer = N >= nt and nt > 1
    cdef const floating *bp = &bias[0] if bias is not None else NULL
    cdef const floating *sp = &scale[0] if scale is not None else NULL
    cdef Py_ssize_t bstride = big.shape[1] * g.H * g.W, sstride = small.shape[1] * g.OH * g.OW
    if N == 0 or sstride == 0:
        return
    if g.OH * g.OW < STACK_BELOW and N > 1:
        with nogil:
            _unfold_gemm_stacked(ops, &big[0, 0, 0, 0], &w2[0, 0], bp, sp, &small[0, 0, 0, 0], &g, N,
                                 bstride, sstride, groups, Mg, relu, nt)
        check_workspace()
        return
    if outer:
        with nogil:
            for n in prange(N, schedule='static', num_threads=nt):
                _unfold_gemm_image(ops, &big[0, 0, 0, 0] + n * bstride, &w2[0, 0], bp, sp,
                                   &small[0, 0, 0, 0] + n * sstride, &g, groups, Mg, relu, 1)
    else:
        with nogil:
            for n in range(N):
                _unfold_gemm_image(ops, &big[0, 0, 0, 0] + n * bstride, &w2[0, 0], bp, sp,
                                   &small[0, 0, 0, 0] + n * sstride, &g, groups, Mg, relu, nt)
    check_workspace()


def conv_taps(const floating[:, :, :, ::1] x, const floating[:, ::1] w2, const floating[::1] bias,
              floating[:, :, :, ::1] y, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh,
              Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
              int relu, int n_threads, const floating[::1] scale=None):
    """y = relu?(conv(x, W2) + bias), groups 1, on small output planes: one GEMM per class
    of output pixels over the taps that land inside x (the padding's zeros are never
    multiplied), the batch's images side by side (gemm.h, conv_taps).

    x (N, C, H, W) IN; w2 (M, C*KH*KW) IN; bias, scale (M,) or None IN (y = conv * scale +
    bias); y (N, M, OH, OW) OUT.  ph, pw may be negative (cropping)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t M = y.shape[1], OH = y.shape[2], OW = y.shape[3]
    cdef int nt = max(1, n_threads), rc
    if w2.shape[0] != M or w2.shape[1] != C * KH * KW:
        raise ValueError("conv_taps: w2 must be (M, C*KH*KW)")
    if N == 0 or M == 0 or OH * OW == 0:
        return
    cdef const floating *bp = &bias[0] if bias is not None else NULL
    cdef const floating *sp = &scale[0] if scale is not None else NULL
    with nogil:
        if floating is float:
            rc = KT.gemm.sconv_taps(N, C, H, W, M, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw,
                                    &x[0, 0, 0, 0], &w2[0, 0], sp, bp, relu, &y[0, 0, 0, 0], nt)
        else:
            rc = KT.gemm.dconv_taps(N, C, H, W, M, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw,
                                    &x[0, 0, 0, 0], &w2[0, 0], sp, bp, relu, &y[0, 0, 0, 0], nt)
    check_workspace()


def conv_taps_wgrad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                    floating[:, ::1] dw2, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh,
                    Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                    int n_threads):
    """dW2 of conv_taps's convolution by the same border classes (the padding's zeros are
    never multiplied).  x (N, C, H, W) IN; dy (N, M, OH, OW) IN; dw2 (M, C*KH*KW) OUT."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t M = dy.shape[1], OH = dy.shape[2], OW = dy.shape[3]
    cdef int nt = max(1, n_threads), rc
    if dw2.shape[0] != M or dw2.shape[1] != C * KH * KW or dy.shape[0] != N:
        raise ValueError("conv_taps_wgrad: dw2 must be (M, C*KH*KW) and dy (N, M, OH, OW)")
    if M * C * KH * KW == 0:
        return
    with nogil:
        if floating is float:
            rc = KT.gemm.sconv_taps_wgrad(N, C, H, W, M, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw,
                                          &x[0, 0, 0, 0] if N * C * H * W else NULL,
                                          &dy[0, 0, 0, 0] if N * M * OH * OW else NULL,
                                          &dw2[0, 0], nt)
        else:
            rc = KT.gemm.dconv_taps_wgrad(N, C, H, W, M, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw,
                                          &x[0, 0, 0, 0] if N * C * H * W else NULL,
                                          &dy[0, 0, 0, 0] if N * M * OH * OW else NULL,
                                          &dw2[0, 0], nt)
    check_workspace()


cdef void _fill_planes(floating *big, Py_ssize_t C, Py_ssize_t HW,
                       const floating *bias) noexcept nogil:
    """big's C planes set to bias[c], or zeroed (bias NULL)."""
    cdef Py_ssize_t c, i
    if bias == NULL:
        memset(big, 0, C * HW * sizeof(floating))
        return
    for c in range(C):
        for i in range(HW):
            big[c * HW + i] = bias[c]


cdef void _gemm_fold_image(const fc_gemm_ops_t *ops, const floating *small, const floating *w, floating *big, const Geom *g,
                           Py_ssize_t G, Py_ssize_t Mg, floating *col, int nt,
                           const floating *bias) noexcept nogil:
    cdef Py_ssize_t Cg = g.C // G, KK = g.KH * g.KW, Kg = Cg * KK, OHW = g.OH * g.OW
    cdef Py_ssize_t grp
    if is_pointwise(g):     # onto the bias (beta 1), else overwritten
        if bias != NULL:
            _fill_planes(big, g.C, g.H * g.W, bias)
        for grp in range(G):
            gemm(ops, Kg, OHW, Mg, <floating>1, w + grp * Mg * Kg, 1, Kg,
                 small + grp * Mg * OHW, OHW, 1, <floating>(bias != NULL),
                 big + grp * Cg * g.H * g.W, OHW, nt)
        return
    # the output starts as the bias (no zeroing pass, and no bias pass after)
    _fill_planes(big, g.C, g.H * g.W, bias)
    for grp in range(G):
        gemm(ops, Kg, OHW, Mg, <floating>1, w + grp * Mg * Kg, 1, Kg,
             small + grp * Mg * OHW, OHW, 1, <floating>0, col, OHW, nt)
        col2im(col, Cg, g, big + grp * Cg * g.H * g.W)


cdef void _stack_images(const floating *small, floating *a, Py_ssize_t N, Py_ssize_t Mg,
                        Py_ssize_t OHW, Py_ssize_t sstride, int nt) noexcept nogil:
    """a (Mg x N*OHW) = the N images' Mg planes side by side (small: the group's first
    plane of image 0, images sstride apart)."""
    cdef Py_ssize_t n, m
    for n in prange(N, schedule='static', num_threads=nthreads_for(Mg * N * OHW, nt)):
        for m in range(Mg):
            memcpy(a + m * N * OHW + n * OHW, small + n * sstride + m * OHW,
                   OHW * sizeof(floating))


cdef void _gemm_fold_stacked(const fc_gemm_ops_t *ops, const floating *small, const floating *w, floating *big,
                             const Geom *g, Py_ssize_t N, Py_ssize_t bstride, Py_ssize_t sstride,
                             Py_ssize_t G, Py_ssize_t Mg, int nt, const floating *bias) noexcept nogil:
    """gemm_fold with every image side by side (small planes): small's group gathered to
    (Mg x N*OHW), one GEMM to columns (Kg x N*OHW), then col2im per image (images in
    parallel: each owns its output)."""
    cdef Py_ssize_t Cg = g.C // G, Kg = Cg * g.KH * g.KW, OHW = g.OH * g.OW, grp, n, m
    cdef Py_ssize_t cols = N * OHW
    cdef floating *a = <floating *>KT.workspace.get(FC_WS_SCRATCH,
                                                    (Mg + Kg) * cols * sizeof(floating))
    cdef floating *col
    if a == NULL:
        KT.workspace.flag_error()
        return
    col = a + Mg * cols
    for grp in range(G):
        _stack_images(small + grp * Mg * OHW, a, N, Mg, OHW, sstride, nt)
        gemm(ops, Kg, cols, Mg, <floating>1, w + grp * Mg * Kg, 1, Kg, a, cols, 1,
             <floating>0, col, cols, nt)
        for n in prange(N, schedule='static', num_threads=nthreads_for(Kg * cols, nt)):
            _fill_planes(big + n * bstride + grp * Cg * g.H * g.W, Cg, g.H * g.W,
                         bias + grp * Cg if bias != NULL else NULL)
            col2im(col + n * OHW, Cg, g, big + n * bstride + grp * Cg * g.H * g.W, cols)


def fold_scratch_shape(Py_ssize_t N, Py_ssize_t C, Py_ssize_t groups, Py_ssize_t KH,
                       Py_ssize_t KW, Py_ssize_t OH, Py_ssize_t OW, int n_threads):
    """Shape of gemm_fold's column scratch: one (C/G)*KH*KW x OH*OW buffer per thread."""
    nt = max(1, n_threads)
    return (nt if (N >= nt and nt > 1) else 1, max((C // groups) * KH * KW * OH * OW, 1))


def gemm_fold(const floating[:, :, :, ::1] small, const floating[:, ::1] w2,
              floating[:, :, :, ::1] big, floating[:, ::1] cols, Py_ssize_t groups,
              Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
              Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, int n_threads,
        bint bf16=False, const floating[::1] bias=None):
    """big[n, group g] = col2im(W2_g^T @ small[n, group g]) (+ bias[c] on channel c).

    small (N, G*Mg, OH, OW) IN; w2 (G*Mg, (C/G)*KH*KW) IN; big (N, C, H, W) OUT;
    cols (fold_scratch_shape(...)) scratch; bias (C,) or None."""
    cdef const floating *bp = NULL
    if bias is not None:
        if bias.shape[0] != big.shape[1]:
            raise ValueError("gemm_fold: bias must have one value per output channel")
        if bias.shape[0]:
            bp = &bias[0]
    cdef Py_ssize_t N = big.shape[0], n
    cdef Geom g = make_geom(big.shape[1], big.shape[2], big.shape[3], small.shape[2], small.shape[3],
                            KH, KW, sh, sw, ph, pw, dh, dw)
    cdef Py_ssize_t Mg = w2.shape[0] // groups
    cdef const fc_gemm_ops_t *ops = gemm_ops(bf16, sizeof(floating))
    cdef int nt = max(1, n_threads)
    cdef bint outer = N >= nt and nt > 1
    if (cols.shape[0], cols.shape[1]) != fold_scratch_shape(N, g.C, groups, KH, KW, g.OH, g.OW, nt):
        raise ValueError("gemm_fold: scratch must have fold_scratch_shape(...)")
    cdef Py_ssize_t bstride = big.shape[1] * g.H * g.W, sstride = small.shape[1] * g.OH * g.OW
    if N == 0 or bstride == 0:
        return
    if sstride == 0:
        with nogil:
            for n in range(N):
                _fill_planes(&big[0, 0, 0, 0] + n * bstride, g.C, g.H * g.W, bp)
        return
    if g.OH * g.OW < STACK_BELOW and N > 1 and not is_pointwise(&g):
        with nogil:
            _gemm_fold_stacked(ops, &small[0, 0, 0, 0], &w2[0, 0], &big[0, 0, 0, 0], &g, N, bstride,
                               sstride, groups, Mg, nt, bp)
        check_workspace()
        return
    if outer:
        with nogil, parallel(num_threads=nt):
            for n in prange(N, schedule='static'):
                _gemm_fold_image(ops, &small[0, 0, 0, 0] + n * sstride, &w2[0, 0],
                                 &big[0, 0, 0, 0] + n * bstride, &g, groups, Mg,
                                 &cols[threadid(), 0], 1, bp)
    else:
        with nogil:
            for n in range(N):
                _gemm_fold_image(ops, &small[0, 0, 0, 0] + n * sstride, &w2[0, 0],
                                 &big[0, 0, 0, 0] + n * bstride, &g, groups, Mg, &cols[0, 0], nt,
                                 bp)
    check_workspace()


cdef void _wgrad_chunk(const fc_gemm_ops_t *ops, const floating *small, const floating *big, floating *dw,
                       Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t sstride, Py_ssize_t bstride,
                       const Geom *g, Py_ssize_t G, Py_ssize_t Mg, int nt) noexcept nogil:
    cdef Py_ssize_t Cg = g.C // G, Kg = Cg * g.KH * g.KW, OHW = g.OH * g.OW, n, grp, m
    cdef Py_ssize_t nimg = n1 - n0
    cdef fc_bsrc_t b
    cdef floating *a
    if OHW < WGRAD_STACK_BELOW and nimg > 1 and not is_pointwise(g):
        # small planes: the images stacked along K, one GEMM (a GEMM per image would
        # have K = OH*OW, and read and write the whole dW block for each); the stacked
        # output gradient goes in the workspace's scratch slot (the GEMM packs in another)
        a = <floating *>KT.workspace.get(FC_WS_SCRATCH, Mg * nimg * OHW * sizeof(floating))
        if a == NULL:
            KT.workspace.flag_error()
            return
        for grp in range(G):
            _stack_images(small + n0 * sstride + grp * Mg * OHW, a, nimg, Mg, OHW, sstride, 1)
            b = conv_source(big + n0 * bstride + grp * Cg * g.H * g.W, g, Cg, True)
            b.g.nimg = nimg
            b.g.istride = bstride
            gemm_ex(ops, Mg, Kg, nimg * OHW, <floating>1, a, nimg * OHW, 1, &b, <floating>0,
                    dw + grp * Mg * Kg, Kg, NULL, nt)
        return
    for n in range(n0, n1):
        for grp in range(G):
            b = conv_source(big + n * bstride + grp * Cg * g.H * g.W, g, Cg, True)
            gemm_ex(ops, Mg, Kg, OHW, <floating>1, small + n * sstride + grp * Mg * OHW, OHW,
                    1, &b, <floating>(0 if n == n0 else 1), dw + grp * Mg * Kg, Kg, NULL, nt)


def weight_grad(const floating[:, :, :, ::1] small, const floating[:, :, :, ::1] big,
                floating[:, ::1] dw2, floating[:, ::1] part, Py_ssize_t groups,
                Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, int n_threads,
        bint bf16=False):
    """dW2_g = sum_n small[n, g] @ im2col(big[n, g])^T, reduced in fixed batch chunks.

    small (N, G*Mg, OH, OW) IN; big (N, C, H, W) IN; dw2 (G*Mg, (C/G)*KH*KW) OUT;
    part (wgrad_chunks(N, OH*OW), dw2.size) scratch for the per-chunk partial sums."""
    cdef Py_ssize_t N = big.shape[0], ch, i, n0, n1, c
    cdef Geom g = make_geom(big.shape[1], big.shape[2], big.shape[3], small.shape[2], small.shape[3],
                            KH, KW, sh, sw, ph, pw, dh, dw)
    cdef Py_ssize_t Mg = dw2.shape[0] // groups
    cdef Py_ssize_t nchunk = min(N, MAX_WGRAD_CHUNKS)
    cdef const fc_gemm_ops_t *ops = gemm_ops(bf16, sizeof(floating))
    cdef int nt = max(1, n_threads)
    cdef bint outer = nchunk >= nt and nt > 1
    cdef Py_ssize_t wsize = dw2.shape[0] * dw2.shape[1]
    cdef Py_ssize_t bstride = big.shape[1] * g.H * g.W, sstride = small.shape[1] * g.OH * g.OW
    if N == 0 or sstride == 0 or wsize == 0:
        dw2[...] = 0
        return
    if g.OH * g.OW < WGRAD_STACK_BELOW:
        # small planes: every image stacked along K in one GEMM, threaded over its output
        # tiles (each dW element has one owner and one K order, so no partial sums)
        with nogil:
            _wgrad_chunk(ops, &small[0, 0, 0, 0], &big[0, 0, 0, 0], &dw2[0, 0], 0, N, sstride,
                         bstride, &g, groups, Mg, nt)
        check_workspace()
        return
    if part.shape[0] < nchunk or part.shape[1] != wsize:
        raise ValueError("weight_grad: scratch must be (wgrad_chunks(N, OH*OW), dw2.size)")
    if outer:
        with nogil:
            for ch in prange(nchunk, schedule='static', num_threads=nt):
                _wgrad_chunk(ops, &small[0, 0, 0, 0], &big[0, 0, 0, 0], &part[ch, 0],
                             ch * N // nchunk, (ch + 1) * N // nchunk, sstride, bstride,
                             &g, groups, Mg, 1)
    else:
        with nogil:
            for ch in range(nchunk):
                _wgrad_chunk(ops, &small[0, 0, 0, 0], &big[0, 0, 0, 0], &part[ch, 0],
                             ch * N // nchunk, (ch + 1) * N // nchunk, sstride, bstride,
                             &g, groups, Mg, nt)
    _sum_chunks(part, nchunk, dw2, nt)
    check_workspace()


# ---------------------------------------------------------------- padded-width stride-1 path
# The input is zero-padded once; the output is computed on the padded width PW (the
# last PW - OW columns of every row are junk, cropped afterwards), so im2col row
# (c, kh, kw) is the contiguous slice xpad[c*PH*PW + kh*dh*PW + kw*dw + q]: packing is a
# copy.  The weight gradient reads the same slices, against an output gradient whose
# junk columns are zero.

def padded_offsets(Py_ssize_t Cg, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t PH, Py_ssize_t PW,
                   Py_ssize_t dh, Py_ssize_t dw):
    """off[(c, kh, kw)] = c*PH*PW + kh*dh*PW + kw*dw (int64, length Cg*KH*KW)."""
    off = np.empty(Cg * KH * KW, np.int64)
    cdef int64_t[::1] o = off
    cdef Py_ssize_t c, kh, kw, i = 0
    for c in range(Cg):
        for kh in range(KH):
            for kw in range(KW):
                o[i] = c * PH * PW + kh * dh * PW + kw * dw
                i += 1
    return off


def phase_offsets(Py_ssize_t Cg, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t s,
                  Py_ssize_t PH2, Py_ssize_t PW2):
    """The im2col row offsets of a stride-s convolution over its phase-split input
    (_pad.phase_split, C channels per phase): tap (kh, kw) of channel c reads phase
    (kh % s, kw % s) shifted by (kh // s, kw // s): off[(c, kh, kw)] = ((kh % s)*s +
    kw % s)*C*PH2*PW2 + c*PH2*PW2 + (kh // s)*PW2 + kw // s (int64, Cg*KH*KW)."""
    off = np.empty(Cg * KH * KW, np.int64)
    cdef int64_t[::1] o = off
    cdef Py_ssize_t c, kh, kw, i = 0, plane = PH2 * PW2
    for c in range(Cg):
        for kh in range(KH):
            for kw in range(KW):
                o[i] = ((kh % s) * s + kw % s) * C * plane + c * plane + (kh // s) * PW2 + kw // s
                i += 1
    return off


def padded_conv(const floating[::1] xpad, Py_ssize_t image_size, const floating[:, ::1] w2,
                const floating[::1] bias, floating[:, :, ::1] ypad, const int64_t[::1] off,
                Py_ssize_t groups, Py_ssize_t group_size, int relu, int n_threads,
        bint bf16=False, const floating[::1] scale=None):
    """ypad[n, g*Mg + m, q] = relu?(sum_k W2[g*Mg + m, k] xpad[n*image_size + g*group_size
    + off[k] + q] * scale + bias).  ypad (N, G*Mg, OH*PW) OUT."""
    cdef Py_ssize_t N = ypad.shape[0], Q = ypad.shape[2], Mg = w2.shape[0] // groups
    cdef Py_ssize_t Kg = w2.shape[1], n
    cdef const fc_gemm_ops_t *ops = gemm_ops(bf16, sizeof(floating))
    cdef int nt = max(1, n_threads)
    cdef const floating *bp = &bias[0] if bias is not None else NULL
    cdef const floating *sp = &scale[0] if scale is not None else NULL
    if N * Q * Mg == 0:
        return
    if N >= nt and nt > 1:
        with nogil:
            for n in prange(N, schedule='static', num_threads=nt):
                _padded_conv_image(ops, &xpad[0] + n * image_size, &w2[0, 0], bp, sp, &ypad[n, 0, 0], &off[0],
                                   groups, group_size, Mg, Kg, Q, relu, 1)
    else:
        with nogil:
            for n in range(N):
                _padded_conv_image(ops, &xpad[0] + n * image_size, &w2[0, 0], bp, sp, &ypad[n, 0, 0], &off[0],
                                   groups, group_size, Mg, Kg, Q, relu, nt)
    check_workspace()


cdef void _padded_conv_image(const fc_gemm_ops_t *ops, const floating *x, const floating *w, const floating *bias,
                             const floating *scale, floating *y, const int64_t *off, Py_ssize_t G, Py_ssize_t gsize,
                             Py_ssize_t Mg, Py_ssize_t Kg, Py_ssize_t Q, int relu,
                             int nt) noexcept nogil:
    cdef fc_bsrc_t b
    cdef fc_epilogue_t ep
    cdef Py_ssize_t grp
    b.kind = FC_B_OFFSETS
    b.off = <const fc_int *>off
    b.rs = 0
    b.cs = 0
    ep.relu = relu
    for grp in range(G):
        b.ptr = x + grp * gsize
        ep.row_bias = (bias + grp * Mg) if bias != NULL else NULL
        ep.row_scale = (scale + grp * Mg) if scale != NULL else NULL
        gemm_ex(ops, Mg, Q, Kg, <floating>1, w + grp * Mg * Kg, Kg, 1, &b, <floating>0,
                y + grp * Mg * Q, Q, &ep, nt)


cdef void _padded_wgrad_chunk(const fc_gemm_ops_t *ops, const floating *dyp, const floating *x, floating *dw,
                              Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t dstride,
                              Py_ssize_t image_size, const int64_t *off, Py_ssize_t G,
                              Py_ssize_t gsize, Py_ssize_t Mg, Py_ssize_t Kg, Py_ssize_t Q,
                              int nt) noexcept nogil:
    cdef fc_bsrc_t b
    cdef Py_ssize_t n, grp
    b.kind = FC_B_OFFSETS_T
    b.off = <const fc_int *>off
    b.rs = 0
    b.cs = 0
    for n in range(n0, n1):
        for grp in range(G):
            b.ptr = x + n * image_size + grp * gsize
            gemm_ex(ops, Mg, Kg, Q, <floating>1, dyp + n * dstride + grp * Mg * Q, Q, 1, &b,
                    <floating>(0 if n == n0 else 1), dw + grp * Mg * Kg, Kg, NULL, nt)


def padded_weight_grad(const floating[:, :, ::1] dypad, const floating[::1] xpad,
                       Py_ssize_t image_size, floating[:, ::1] dw2, floating[:, ::1] part,
                       const int64_t[::1] off, Py_ssize_t groups, Py_ssize_t group_size,
                       int n_threads,
        bint bf16=False):
    """dW2_g = sum_n dypad[n, g] @ B_n^T with B_n[k, q] = xpad[n, g, off[k] + q]; dypad's
    junk columns must be zero.  Reduced over wgrad_chunks(N) fixed chunks, in order."""
    cdef Py_ssize_t N = dypad.shape[0], Q = dypad.shape[2], Mg = dw2.shape[0] // groups
    cdef Py_ssize_t Kg = dw2.shape[1], wsize = dw2.shape[0] * dw2.shape[1], ch, i, c
    cdef Py_ssize_t nchunk = min(N, MAX_WGRAD_CHUNKS), dstride = dypad.shape[1] * Q
    cdef const fc_gemm_ops_t *ops = gemm_ops(bf16, sizeof(floating))
    cdef int nt = max(1, n_threads)
    if N == 0 or Q == 0 or wsize == 0:
        dw2[...] = 0
        return
    if part.shape[0] < nchunk or part.shape[1] != wsize:
        raise ValueError("padded_weight_grad: scratch must be (wgrad_chunks(N), dw2.size)")
    if nchunk >= nt and nt > 1:
        with nogil:
            for ch in prange(nchunk, schedule='static', num_threads=nt):
                _padded_wgrad_chunk(ops, &dypad[0, 0, 0], &xpad[0], &part[ch, 0], ch * N // nchunk,
                                    (ch + 1) * N // nchunk, dstride, image_size, &off[0], groups,
                                    group_size, Mg, Kg, Q, 1)
    else:
        with nogil:
            for ch in range(nchunk):
                _padded_wgrad_chunk(ops, &dypad[0, 0, 0], &xpad[0], &part[ch, 0], ch * N // nchunk,
                                    (ch + 1) * N // nchunk, dstride, image_size, &off[0], groups,
                                    group_size, Mg, Kg, Q, nt)
    _sum_chunks(part, nchunk, dw2, nt)
    check_workspace()


def direct_weight_grad3(const float[:, :, :, ::1] dy, const float[::1] xpad,
                        Py_ssize_t image_size, Py_ssize_t PH, Py_ssize_t PW,
                        float[:, ::1] dw2, Py_ssize_t KH, Py_ssize_t dh, Py_ssize_t dw,
                        int n_threads):
    """dW2 of a stride-1, groups-1 convolution with 3-wide kernels, directly (no im2col):
    dw2[m, (c*KH + kh)*3 + kw] = sum dy[n, m, oh, ow] * xpad[n, c, oh + kh*dh, ow + kw*dw].

    dy (N, M, OH, OW) IN; xpad the zero-padded input, images image_size apart, channels
    PH*PW apart, rows PW (_padded_source's flat copy) IN; dw2 (M, C*KH*3) OUT."""
    cdef Py_ssize_t N = dy.shape[0], M = dy.shape[1], OH = dy.shape[2], OW = dy.shape[3]
    cdef Py_ssize_t C = dw2.shape[1] // (3 * KH) if KH > 0 else 0
    cdef int rc = 0
    if dw2.shape[0] != M or dw2.shape[1] != C * KH * 3 or OH + dh * (KH - 1) > PH or \
            OW + 2 * dw > PW or image_size < C * PH * PW or \
            xpad.shape[0] < (N - 1) * image_size + C * PH * PW:
        raise ValueError("direct_weight_grad3: shapes do not agree")
    if N * M * OH * OW == 0 or C == 0:
        dw2[...] = 0
        return
    with nogil:
        rc = KT.wgrad.swgrad3(&dy[0, 0, 0, 0], &xpad[0], N, M, C, OH, OW, image_size, PH * PW,
                              PW, KH, dh, dw, &dw2[0, 0], max(1, n_threads))
    if rc:
        raise MemoryError("direct_weight_grad3: cannot allocate the accumulators")


def crop_columns(const floating[:, :, ::1] src, floating[:, :, ::1] dst, int n_threads):
    """dst[p, r, :W] = src[p, r, :W] with src's rows wider (padded-width outputs)."""
    cdef Py_ssize_t P = dst.shape[0], R = dst.shape[1], W = dst.shape[2], SW = src.shape[2], p, r
    if P * R * W == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * R * W, n_threads)):
            for r in range(R):
                memcpy(&dst[p, r, 0], &src[p, r, 0], W * sizeof(floating))


def widen_columns(const floating[:, :, ::1] src, floating[:, :, ::1] dst, int n_threads):
    """dst[p, r, :W] = src[p, r], the remaining columns zero (the inverse of crop)."""
    cdef Py_ssize_t P = src.shape[0], R = src.shape[1], W = src.shape[2], DW = dst.shape[2], p, r
    if P * R * DW == 0:
        return
    with nogil:
        for p in prange(P, schedule='static', num_threads=nthreads_for(P * R * DW, n_threads)):
            for r in range(R):
                memcpy(&dst[p, r, 0], &src[p, r, 0], W * sizeof(floating))
                memset(&dst[p, r, W], 0, (DW - W) * sizeof(floating))


def flip_transpose(const floating[:, :, :, ::1] w, floating[:, :, :, ::1] out, Py_ssize_t groups,
                   int n_threads):
    """The weights of the adjoint stride-1 convolution: out[g*B + b, a] = w[g*Ag + a, b]
    flipped in both spatial axes, for each of the groups.

    w (groups*Ag, B, KH, KW) IN; out (groups*B, Ag, KH, KW) OUT.  Tiles of 16 x 16
    (a, b), so both the rows read and the rows written stay in cache (512x512x3x3: 9 MB);
    a 1x1's is a plain transpose."""
    cdef Py_ssize_t A = w.shape[0], B = w.shape[1], KK = w.shape[2] * w.shape[3]
    cdef Py_ssize_t Ag = A // groups, nb = (B + 15) // 16, na = (Ag + 15) // 16
    cdef Py_ssize_t t, gi, rem, a0, a1, b0, b1, a, b, k
    cdef const floating *src = &w[0, 0, 0, 0] if A * B * KK else NULL
    cdef floating *dst = &out[0, 0, 0, 0] if A * B * KK else NULL
    cdef const floating *s
    cdef floating *d
    if A * B * KK == 0:
        return
    with nogil:
        for t in prange(groups * nb * na, schedule='static',
                        num_threads=nthreads_for(A * B * KK, n_threads)):
            gi = t // (nb * na)
            rem = t - gi * nb * na
            b0 = (rem // na) * 16
            a0 = (rem % na) * 16
            b1 = min(b0 + 16, B)
            a1 = min(a0 + 16, Ag)
            if KK == 1:
                for b in range(b0, b1):
                    d = dst + (gi * B + b) * Ag
                    s = src + gi * Ag * B + b
                    for a in range(a0, a1):
                        d[a] = s[a * B]
            else:
                for b in range(b0, b1):
                    for a in range(a0, a1):
                        s = src + ((gi * Ag + a) * B + b) * KK
                        d = dst + ((gi * B + b) * Ag + a) * KK
                        for k in range(KK):
                            d[k] = s[KK - 1 - k]
