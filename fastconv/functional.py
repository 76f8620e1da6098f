"""Stateless operations: each forward validates, allocates its output, calls a kernel
and returns ``(output, ctx)``; the matching ``*_backward(ctx, grad_output, ...)``
returns the gradients.  Layers in ``fastconv.nn`` own parameters and call these.

Shapes follow PyTorch (NCHW).  ``padding`` for convolutions is a 4-tuple
(top, bottom, left, right) so asymmetric 'same' padding needs no special case.
The compute dtype is the promotion of the input's and the weight's (float32 or
float64); arguments are assumed validated by ``fastconv._shape`` helpers (the layers
do that), except what depends on the input's shape, which is checked here.
"""
import numpy as np

from . import _shape
from ._kernels import (_conv, _elementwise, _gemm, _linear, _loss, _memory, _norm, _pool,
                       _upsample)
from ._threads import get_num_threads as _nt

_PAD_MODES = {"zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}


_empty = _memory.empty      # outputs of >= 1 MiB come from the caching allocator


def _empty_like(a):
    return _empty(a.shape, a.dtype)


def _cast(a, dt):
    return a if a is None or a.dtype == dt else a.astype(dt)


def _flat(a):
    return a.reshape(-1)


def _per_channel(a):
    """(N, C, ...) -> (N, C, rest) without -1, so an empty batch reshapes too."""
    return a.reshape(a.shape[0], a.shape[1], int(np.prod(a.shape[2:], dtype=np.int64)))


# ===================================================================== convolution

def conv2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1,
           padding_mode="zeros", layer="conv2d", relu=False):
    """2-D cross-correlation.

    x (N, C_in, H, W); weight (C_out, C_in/groups, K_h, K_w); bias (C_out,) or None;
    padding (top, bottom, left, right).  Returns y (N, C_out, H_out, W_out) and ctx,
    H_out = floor((H + top + bottom - d_h*(K_h-1) - 1)/s_h) + 1.  relu=True applies
    max(., 0) in the kernel's epilogue (inference of a folded Conv-BN-ReLU)."""
    dt = np.result_type(x.dtype, weight.dtype)
    x, w, b = _cast(x, dt), _cast(weight, dt), _cast(bias, dt)
    N, C, H, W = x.shape
    C_out, _, KH, KW = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    pt, pb, pl, pr = padding
    OH = _shape.checked_conv_output(layer, "height", H, KH, sh, (pt, pb), dh)
    OW = _shape.checked_conv_output(layer, "width", W, KW, sw, (pl, pr), dw)
    _shape.check_conv_planes(layer, x.shape, padding_mode, any(padding))
    nt = _nt()
    src, ph, pw = x, pt, pl
    if padding_mode != "zeros" and any(padding):
        if padding_mode == "reflect" and (max(pt, pb) >= H or max(pl, pr) >= W):
            raise ValueError(f"{layer}: reflect padding ({pt}, {pb}, {pl}, {pr}) must be smaller "
                             f"than the input size {H}x{W}")
        if padding_mode == "circular" and (max(pt, pb) > H or max(pl, pr) > W):
            raise ValueError(f"{layer}: circular padding ({pt}, {pb}, {pl}, {pr}) must not exceed "
                             f"the input size {H}x{W}")
        src = _empty((N, C, H + pt + pb, W + pl + pr), dt)
        _conv.pad2d(x, src, pt, pl, _PAD_MODES[padding_mode], nt)
        ph = pw = 0
    pads = (pt, pb, pl, pr) if src is x else (0, 0, 0, 0)
    if groups == C and C > 1:         # depthwise: direct kernel, no GEMM
        y = _empty((N, C_out, OH, OW), dt)
        if dt == np.float32 and sh == sw == 1:
            _conv.depthwise_forward_s1(src, w, b, y, pads[0], pads[2], dh, dw, relu,
                                       _dw_scratch(OH, OW, KH, KW, dh, dw, nt), nt)
        else:
            _conv.depthwise_forward(src, w, b, y, sh, sw, pads[0], pads[2], dh, dw, relu, nt)
        state = ("direct", src, (KH, KW, sh, sw) + pads + (dh, dw))
    else:
        y, state = _conv_gemm(src, w, b, OH, OW, groups, stride, pads, dilation, relu, nt)
    ctx = (state, w, groups, x.shape, src.shape, padding_mode, pt, pl)
    return y, ctx


def _dw_scratch(OH, OW, KH, KW, dh, dw, nt):
    return _empty((nt, _conv.dw_padded_geometry(OH, OW, KH, KW, dh, dw)[3]), np.float32)


def _conv_gemm(big, w, b, OH, OW, groups, stride, pads, dilation, relu, nt, finite=None):
    """GEMM convolution of big (N, C, H, W) with w (M, C/G, KH, KW); pads (top, bottom,
    left, right), possibly negative.  Returns y (N, M, OH, OW) and the state its
    gradients need: (kind, data, (KH, KW, sh, sw, pt, pb, pl, pr, dh, dw)).

    Paths: 3x3 stride-1 float32 layers with >= 16 channels use Winograd: F(4x4, 3x3)
    (36 multiplies per 4x4 outputs instead of 144) on planes of at least 32x32 with
    enough tiles, F(2x2, 3x3) (16 per 2x2 instead of 36) on smaller ones, whose short
    tile rows would leave most of F(4x4)'s 16-lane transforms idle; other stride-1
    layers run on the padded width (im2col packing becomes plain copies); the rest
    gather im2col patches inside the GEMM's packing.  finite: whether big is known to
    hold no NaN/Inf (None: check when it matters)."""
    N, C, H, W = big.shape
    M, Cg, KH, KW = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    pt, pb, pl, pr = pads
    geom = (KH, KW, sh, sw, pt, pb, pl, pr, dh, dw)
    if (big.dtype == np.float32 and (KH, KW, sh, sw, dh, dw) == (3, 3, 1, 1, 1, 1)
            and groups == 1 and C >= 16 and M >= 16 and min(pads) >= 0
            and (_all_finite(big, nt) if finite is None else finite)):
        # (Winograd's input transform subtracts inputs: an Inf would become NaN where a
        # direct convolution gives +-Inf, so non-finite inputs take the direct path)
        tile = 4 if min(OH, OW) >= 32 and N * ((OH + 3) // 4) * ((OW + 3) // 4) >= 256 else 2
        Up = _empty((_gemm.winograd_weights_size(M, C, tile),), np.float32)
        _gemm.winograd_weights(w, Up, tile, nt)
        y = _empty((N, M, OH, OW), np.float32)
        _gemm.winograd_conv3x3(big, Up, M, tile, b, y, pt, pl, relu, nt)
        # weight grads read straight from the input: no padded copy to keep or build
        return y, ("winograd", big, geom)
    w2 = w.reshape(M, -1)
    # padded width pays a crop pass over the output: worth it when each output element
    # has enough of K (Cg*KH*KW) behind it that the gathers it saves dominate
    if sh == sw == 1 and min(pads) >= 0 and (KH, KW) != (1, 1) and Cg * KH * KW >= 64:
        data = _padded_source(big, pads, Cg, KH, KW, dh, dw, nt)
        flat, image, off, PW, gsize = data
        ypad = _empty((N, M, OH * PW), big.dtype)
        _conv.padded_conv(flat, image, w2, b, ypad, off, groups, gsize, relu, nt)
        state = ("padded", data, geom)
        if PW == OW:
            return ypad.reshape(N, M, OH, OW), state
        y = _empty((N, M, OH, OW), big.dtype)
        _conv.crop_columns(ypad.reshape(N * M, OH, PW), y.reshape(N * M, OH, OW), nt)
        return y, state
    y = _empty((N, M, OH, OW), big.dtype)
    _conv.unfold_gemm(big, w2, b, y, groups, KH, KW, sh, sw, pt, pl, dh, dw, relu, nt)
    return y, ("gather", big, geom)


def _padded_source(big, pads, Cg, KH, KW, dh, dw, nt):
    """Zero-padded copy of big (flat, with slack for the last image's junk columns) and
    the im2col row offsets: (flat, image size, offsets, padded width, group size)."""
    N, C, H, W = big.shape
    pt, pb, pl, pr = pads
    PH, PW = H + pt + pb, W + pl + pr
    image, gsize = C * PH * PW, Cg * PH * PW
    flat = _empty(N * image + (KW - 1) * dw + 16, big.dtype)
    flat[N * image:] = 0          # the last image's junk columns read zeros
    _conv.pad2d(big, flat[:N * image].reshape(N, C, PH, PW), pt, pl, 0, nt)
    return flat, image, _conv.padded_offsets(Cg, KH, KW, PH, PW, dh, dw), PW, gsize


def _all_finite(a, nt):
    """No NaN/Inf in a float32 (N, C, H, W) array (one pass)."""
    N, C, H, W = a.shape
    return _norm.plane_sums_finite(a.reshape(N * C, H * W), nt)


def _conv_gemm_wgrad(state, gy, groups, wshape, nt, finite=None):
    """Weight gradient (M, C/G, KH, KW) of a _conv_gemm call, given d out (N, M, OH, OW)."""
    kind, data, (KH, KW, sh, sw, pt, pb, pl, pr, dh, dw) = state
    dw2 = _empty((wshape[0], int(np.prod(wshape[1:]))), gy.dtype)
    M, C = wshape[0], wshape[1]
    # Winograd F(2x2, 3x3) for the weight gradient too (2.25x fewer multiplies) while
    # the per-chunk partial sums (chunks x 16 x M x C) stay small next to the work; a
    # non-finite gy goes direct, as non-finite inputs do in the forward
    if (kind == "winograd" and M * C <= 128 * 128
            and (_all_finite(gy, nt) if finite is None else finite)):
        S = _empty(_gemm.winograd_wgrad_scratch_shape(gy.shape[0], C, M, gy.shape[2],
                                                      gy.shape[3]), np.float32)
        _gemm.winograd_conv3x3_wgrad(data, gy, S, dw2, pt, pl, nt)
        return dw2.reshape(wshape)
    if kind == "padded":
        flat, image, off, PW, gsize = data
        N, M, OH, OW = gy.shape
        if PW == OW:
            dypad = gy.reshape(N, M, OH * PW)
        else:                                    # junk columns must hold zeros
            dypad = _empty((N, M, OH * PW), gy.dtype)
            _conv.widen_columns(gy.reshape(N * M, OH, OW), dypad.reshape(N * M, OH, PW), nt)
        scratch = _empty((_conv.wgrad_chunks(N), dw2.size), gy.dtype)
        _conv.padded_weight_grad(dypad, flat, image, dw2, scratch, off, groups, gsize, nt)
    else:
        N, _, OH, OW = gy.shape
        scratch = _empty((_conv.wgrad_chunks(N, OH * OW), dw2.size), gy.dtype)
        _conv.weight_grad(gy, data, dw2, scratch, groups, KH, KW, sh, sw, pt, pl, dh, dw, nt)
    return dw2.reshape(wshape)


def _conv_gemm_input_grad(state, w, gy, groups, big_shape, nt, finite=None):
    """d big of a _conv_gemm call: at stride 1 the flipped-weight convolution of gy
    (the same fast path as a forward); otherwise a GEMM then col2im."""
    kind, data, (KH, KW, sh, sw, pt, pb, pl, pr, dh, dw) = state
    # the flipped convolution has M = C/G rows: under 8 (a first layer's 3 colour
    # channels) most of each 8-row GEMM tile would be idle, so go through col2im
    if sh == sw == 1 and big_shape[1] // groups >= 8:
        pads = (dh * (KH - 1) - pt, dh * (KH - 1) - pb, dw * (KW - 1) - pl, dw * (KW - 1) - pr)
        gx, _ = _conv_gemm(gy, _flip_transpose(w, groups), None, big_shape[2], big_shape[3],
                           groups, (1, 1), pads, (dh, dw), False, nt, finite)
        return gx
    gx = _empty(big_shape, gy.dtype)
    geom = (KH, KW, sh, sw, pt, pl, dh, dw)
    _conv.gemm_fold(gy, w.reshape(w.shape[0], -1), gx, _fold_scratch(gy, gx, groups, geom, nt),
                    groups, *geom, nt)
    return gx


def _fold_scratch(small, big, groups, geom, nt):
    shape = _conv.fold_scratch_shape(big.shape[0], big.shape[1], groups, geom[0], geom[1],
                                     small.shape[2], small.shape[3], nt)
    return _empty(shape, big.dtype)


def _flip_transpose(w, groups):
    """(A, B, kH, kW) -> (G*B, A/G, kH, kW), spatially flipped, per group: the weight of
    the convolution that is this one's adjoint at stride 1 (conv <-> transposed conv)."""
    A, B, KH, KW = w.shape
    v = w.reshape(groups, A // groups, B, KH, KW)[:, :, :, ::-1, ::-1]
    return np.ascontiguousarray(v.transpose(0, 2, 1, 3, 4)).reshape(groups * B, A // groups, KH, KW)


def conv2d_backward(ctx, gy, need_input=True, need_weight=True, need_bias=True):
    """Returns (grad_x, grad_weight, grad_bias); entries not asked for are None."""
    state, w, groups, xshape, src_shape, mode, pt, pl = ctx
    dt = w.dtype
    nt = _nt()
    gx = gw = gb = gsrc = None
    if state[0] == "direct":                 # depthwise
        _, src, (KH, KW, sh, sw, ph, _pb, pw, _pr, dh, dw) = state
        gsrc = _empty(src.shape, dt) if need_input else src
        # zeros, not empty: an empty batch never reaches the kernel's own initialisation
        dw_acc = np.zeros((w.shape[0], KH * KW)) if need_weight else np.zeros((1, 1))
        db_acc = np.zeros(w.shape[0]) if need_bias else np.zeros(1)
        if dt == np.float32 and sh == sw == 1 and ph <= dh * (KH - 1) and pw <= dw * (KW - 1):
            H, W = src.shape[2:]
            per = (_conv.dw_padded_geometry(gy.shape[2], gy.shape[3], KH, KW, dh, dw)[3]
                   + _conv.dw_padded_geometry(H, W, KH, KW, dh, dw)[3] + H * W)
            _conv.depthwise_backward_s1(src, w, np.ascontiguousarray(w[:, :, ::-1, ::-1]), gy,
                                        gsrc, dw_acc, db_acc, ph, pw, dh, dw, need_input,
                                        need_weight, need_bias, _empty((nt, per), np.float32), nt)
        else:
            _conv.depthwise_backward(src, w, gy, gsrc, dw_acc, db_acc, sh, sw, ph, pw, dh, dw,
                                     need_input, need_weight, need_bias, nt)
        gw = dw_acc.reshape(w.shape).astype(dt) if need_weight else None
        gb = db_acc.astype(dt) if need_bias else None
        gsrc = gsrc if need_input else None
    else:
        # both Winograd gradients need gy to be finite: check it once
        fin = _all_finite(gy, nt) if state[0] == "winograd" and need_input and need_weight \
            else None
        if need_input:
            gsrc = _conv_gemm_input_grad(state, w, gy, groups, src_shape, nt, fin)
        if need_weight:
            gw = _conv_gemm_wgrad(state, gy, groups, w.shape, nt, fin)
        if need_bias:
            gb = channel_sum(gy)
    if gsrc is not None:
        if gsrc.shape != xshape:                 # fold the explicit padding back
            gx = _empty(xshape, dt)
            _conv.pad2d_backward(gsrc, gx, pt, pl, _PAD_MODES[mode], nt)
        else:
            gx = gsrc
    return gx, gw, gb


def conv_transpose2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0),
                     groups=1, dilation=(1, 1), layer="conv_transpose2d"):
    """Transposed convolution (the adjoint of conv2d with the same geometry).

    x (N, C_in, H, W); weight (C_in, C_out/groups, K_h, K_w); bias (C_out,) or None.
    H_out = (H - 1)*s_h - 2*p_h + d_h*(K_h - 1) + output_padding_h + 1."""
    dt = np.result_type(x.dtype, weight.dtype)
    x, w, b = _cast(x, dt), _cast(weight, dt), _cast(bias, dt)
    N, C_in, H, W = x.shape
    _, Cg_out, KH, KW = w.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    OH = _shape.checked_conv_transpose_output(layer, "height", H, KH, sh, ph, oph, dh)
    OW = _shape.checked_conv_transpose_output(layer, "width", W, KW, sw, pw, opw, dw)
    C_out = Cg_out * groups
    w2 = w.reshape(C_in, -1)
    geom = (KH, KW, sh, sw, ph, pw, dh, dw)
    nt = _nt()
    if sh == sw == 1:           # a stride-1 convolution with the flipped weights
        q = (dh * (KH - 1) - ph, dh * (KH - 1) - ph + oph, dw * (KW - 1) - pw,
             dw * (KW - 1) - pw + opw)
        y, _ = _conv_gemm(x, _flip_transpose(w, groups), b, OH, OW, groups, (1, 1), q, dilation,
                          False, nt)
    else:
        y = _empty((N, C_out, OH, OW), dt)
        _conv.gemm_fold(x, w2, y, _fold_scratch(x, y, groups, geom, nt), groups, *geom, nt)
        if b is not None:
            y3 = _per_channel(y)
            _norm.channel_affine(y3, y3, np.zeros(C_out, dt), np.ones(C_out, dt), b, False, nt)
    return y, (x, w2, w.shape, groups, geom)


def conv_transpose2d_backward(ctx, gy, need_input=True, need_weight=True, need_bias=True):
    """Returns (grad_x, grad_weight, grad_bias).  d x is the convolution of gy with the
    same weight and geometry; the weight gradient reuses that convolution's state."""
    x, w2, wshape, groups, (KH, KW, sh, sw, ph, pw, dh, dw) = ctx
    nt = _nt()
    gx = gw = gb = None
    H, W = x.shape[2:]
    OH, OW = gy.shape[2:]
    pads = (ph, (H - 1) * sh + dh * (KH - 1) + 1 - OH - ph,
            pw, (W - 1) * sw + dw * (KW - 1) + 1 - OW - pw)
    w = w2.reshape(wshape)
    state = None
    if need_input:
        gx, state = _conv_gemm(gy, w, None, H, W, groups, (sh, sw), pads, (dh, dw), False, nt)
    if need_weight:
        if state is None:
            state = ("gather", gy, (KH, KW, sh, sw) + pads + (dh, dw))
        gw = _conv_gemm_wgrad(state, x, groups, wshape, nt)
    if need_bias:
        gb = channel_sum(gy)
    return gx, gw, gb


def channel_sum(g):
    """Sum of g (N, C, ...) over every axis but 1: bias gradients."""
    out = _empty(g.shape[1], g.dtype)
    _norm.channel_sum(_per_channel(g), out, _nt())
    return out


# ===================================================================== pooling

def max_pool2d(x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False,
               need_indices=True, layer="max_pool2d"):
    """x (N, C, H, W) -> y (N, C, H_out, W_out); ctx holds the int32 argmax plane offsets."""
    N, C, H, W = x.shape
    _shape.plane_limit(layer, H, W)
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    OH = _shape.checked_pool_output(layer, "height", H, KH, sh, ph, dh, ceil_mode)
    OW = _shape.checked_pool_output(layer, "width", W, KW, sw, pw, dw, ceil_mode)
    y = _empty((N, C, OH, OW), x.dtype)
    if _is_2x2(x, kernel_size, stride, padding, dilation, OH, OW):
        idx = _empty((N, C, OH, OW), np.uint8) if need_indices else None
        _pool.max_pool2x2(x, y, idx, _nt())
    else:
        idx = _empty((N, C, OH, OW), np.int32) if need_indices else None
        _pool.max_pool2d(x, y, idx, KH, KW, sh, sw, ph, pw, dh, dw, _nt())
    return y, (idx, x.shape)


def _is_2x2(x, kernel_size, stride, padding, dilation, OH, OW):
    """The 2x2 / stride-2 fast path applies (float32, no padding, whole windows)."""
    return (x.dtype == np.float32 and kernel_size == (2, 2) and stride == (2, 2)
            and padding == (0, 0) and dilation == (1, 1)
            and OH == x.shape[2] // 2 and OW == x.shape[3] // 2)


def max_pool2d_backward(ctx, gy):
    idx, xshape = ctx
    gx = _empty(xshape, gy.dtype)
    if idx.dtype == np.uint8:
        _pool.max_pool2x2_backward(gy, idx, gx, _nt())
    else:
        _pool.max_pool2d_backward(gy, idx, gx, _nt())
    return gx


def avg_pool2d(x, kernel_size, stride, padding=(0, 0), ceil_mode=False, count_include_pad=True,
               divisor_override=None, layer="avg_pool2d"):
    """x (N, C, H, W) -> y (N, C, H_out, W_out), PyTorch's divisor rules."""
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (ph, pw) = kernel_size, stride, padding
    OH = _shape.checked_pool_output(layer, "height", H, KH, sh, ph, 1, ceil_mode)
    OW = _shape.checked_pool_output(layer, "width", W, KW, sw, pw, 1, ceil_mode)
    y = _empty((N, C, OH, OW), x.dtype)
    args = (KH, KW, sh, sw, ph, pw, bool(count_include_pad), int(divisor_override or 0))
    if _is_2x2(x, kernel_size, stride, padding, (1, 1), OH, OW):
        div = float(divisor_override or 4)
        _pool.avg_pool2x2(x, y, div, _nt())
        return y, (x.shape, div)
    _pool.avg_pool2d(x, y, *args, _nt())
    return y, (x.shape, args)


def avg_pool2d_backward(ctx, gy):
    xshape, args = ctx
    gx = _empty(xshape, gy.dtype)
    if isinstance(args, float):
        _pool.avg_pool2x2_backward(gy, gx, args, _nt())
    else:
        _pool.avg_pool2d_backward(gy, gx, *args, _nt())
    return gx


def adaptive_avg_pool2d(x, output_size, layer="adaptive_avg_pool2d"):
    """x (N, C, H, W) -> (N, C, OH, OW); a None in output_size keeps the input size."""
    N, C, H, W = x.shape
    OH = H if output_size[0] is None else output_size[0]
    OW = W if output_size[1] is None else output_size[1]
    if H == 0 or W == 0:
        raise ValueError(f"{layer}: expected a non-empty plane, got input shape {x.shape}")
    y = _empty((N, C, OH, OW), x.dtype)
    _pool.adaptive_avg_pool2d(x, y, _nt())
    return y, x.shape


def adaptive_avg_pool2d_backward(xshape, gy):
    gx = _empty(xshape, gy.dtype)
    _pool.adaptive_avg_pool2d_backward(gy, gx, _nt())
    return gx


# ===================================================================== normalisation

def batch_norm(x, weight, bias, eps, running_mean=None, running_var=None, training=True,
               relu=False):
    """BatchNorm over (N, H, W) per channel.  x (N, C, H, W) or (N, C); weight, bias (C,).

    training: batch statistics; returns (y, ctx, mean, biased_var) - the caller updates
    running statistics.  Otherwise running_mean / running_var normalise; mean, var None."""
    dt = x.dtype
    N, C = x.shape[:2]
    x3 = _per_channel(x)
    nt = _nt()
    if training:
        mean, var = _empty(C), _empty(C)
        _norm.channel_stats(x3, mean, var, nt)
    else:
        mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
    invstd = 1.0 / np.sqrt(var + eps)
    gamma = np.ones(C) if weight is None else weight.astype(np.float64)
    beta = np.zeros(C) if bias is None else bias.astype(np.float64)
    y = _empty_like(x)
    _norm.channel_affine(x3, _per_channel(y), mean.astype(dt), (gamma * invstd).astype(dt),
                         beta.astype(dt), relu, nt)
    ctx = (x, mean, invstd, gamma, training, y if relu else None)
    return y, ctx, (mean if training else None), (var if training else None)


def batch_norm_backward(ctx, gy):
    """Returns (grad_x, grad_weight, grad_bias) (weight/bias grads in float64)."""
    x, mean, invstd, gamma, training, y = ctx
    dt = x.dtype
    N, C = x.shape[:2]
    nt = _nt()
    if y is not None and dt != np.float32:      # fused ReLU, float64: mask first
        gy, y = relu_backward(y, gy), None
    x3, g3 = _per_channel(x), _per_channel(gy)
    y3 = None if y is None else _per_channel(y)
    sum_dy, sum_dy_xhat = np.empty(C), np.empty(C)
    _norm.bn_backward_reduce(x3, g3, y3, mean, invstd, sum_dy, sum_dy_xhat, nt)
    cnt = x3.shape[0] * x3.shape[2]
    if training and cnt > 0:
        b, k = sum_dy / cnt, sum_dy_xhat / cnt
    else:
        b = k = np.zeros(C)
    gx = _empty_like(x)
    _norm.bn_backward_apply(x3, g3, y3, mean, gamma * invstd, b, invstd * k, _per_channel(gx), nt)
    return gx, sum_dy_xhat, sum_dy


# ===================================================================== element-wise

def relu(x, inplace=False):
    """max(x, 0), NaN propagated.  inplace writes into x (which must be writeable)."""
    y = x if inplace else _empty_like(x)
    _elementwise.relu(_flat(x), _flat(y), _nt())
    return y


def relu_backward(y, gy):
    gx = _empty_like(gy)
    _elementwise.relu_backward(_flat(y), _flat(gy), _flat(gx), _nt())
    return gx


def add(a, b):
    out = _empty_like(a)
    _elementwise.add(_flat(a), _flat(b), _flat(out), _nt())
    return out


def dropout(x, p, seed):
    """Zero each element with probability p, scale the rest by 1/(1-p); returns (y, mask)."""
    y = _empty_like(x)
    mask = _empty(x.shape, np.uint8)
    _elementwise.dropout(_flat(x), _flat(y), _flat(mask), float(p), int(seed), _nt())
    return y, mask


def dropout_backward(mask, p, gy):
    gx = _empty_like(gy)
    _elementwise.dropout_backward(_flat(gy), _flat(mask), float(p), _flat(gx), _nt())
    return gx


# ===================================================================== linear

def linear(x, weight, bias=None):
    """y = x @ weight.T + bias.  x (N, in); weight (out, in); bias (out,) or None."""
    if x.dtype == weight.dtype and (bias is None or bias.dtype == x.dtype):
        dt, w, b = x.dtype, weight, bias          # the common case, without promotion work
    else:
        dt = np.result_type(x.dtype, weight.dtype)
        x, w, b = _cast(x, dt), _cast(weight, dt), _cast(bias, dt)
    y = _empty((x.shape[0], w.shape[0]), dt)
    _linear.forward(x, w, b, y, _nt())
    return y, (x, w)


def linear_backward(ctx, gy, need_input=True, need_weight=True, need_bias=True):
    x, w = ctx
    nt = _nt()
    gx = gw = gb = None
    if need_input:
        gx = _empty(x.shape, x.dtype)
        _linear.backward_input(gy, w, gx, nt)
    if need_weight:
        gw = _empty(w.shape, x.dtype)
        _linear.backward_weight(gy, x, gw, nt)
    if need_bias:
        gb = channel_sum(gy)
    return gx, gw, gb


# ===================================================================== upsampling

def _nearest_index(n_in, n_out, scale):
    # torch's nearest_idx: float32 scale, floor, clamp
    if n_out == n_in:
        return np.arange(n_out, dtype=np.int64)
    if n_out == 2 * n_in:
        return np.arange(n_out, dtype=np.int64) >> 1
    s = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
    idx = np.floor(np.arange(n_out, dtype=np.float32) * s).astype(np.int64)
    return np.minimum(idx, n_in - 1)


def _linear_index(n_in, n_out, scale, align_corners, dt):
    # torch's area_pixel_compute_scale / _source_index / compute_indices_weights_linear
    if align_corners:
        s = dt(n_in - 1) / dt(n_out - 1) if n_out > 1 else dt(0)
        src = s * np.arange(n_out, dtype=dt)
    else:
        s = dt(1.0 / scale) if scale else dt(n_in) / dt(n_out)
        src = s * (np.arange(n_out, dtype=dt) + dt(0.5)) - dt(0.5)
        src = np.maximum(src, dt(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0.astype(dt), dt(0), dt(1)).astype(dt)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, (dt(1) - lam).astype(dt), lam


def upsample(x, size, scale_factor, mode, align_corners):
    """Resize x (N, C, H, W) to size (OH, OW); scale_factor (sh, sw) or None is used for
    the source-index arithmetic as torch does when it was given."""
    N, C, H, W = x.shape
    OH, OW = size
    sh, sw = scale_factor if scale_factor is not None else (None, None)
    y = _empty((N, C, OH, OW), x.dtype)
    nt = _nt()
    if mode == "nearest":
        tabs = (_nearest_index(H, OH, sh), _nearest_index(W, OW, sw))
        _upsample.nearest(x, y, *tabs, nt)
    else:
        dt = x.dtype.type
        h = _linear_index(H, OH, sh, align_corners, dt)
        w = _linear_index(W, OW, sw, align_corners, dt)
        tabs = h + w
        _upsample.bilinear(x, y, *tabs, _empty((nt, H, OW), x.dtype), nt)
    return y, (x.shape, mode, tabs)


def upsample_backward(ctx, gy):
    xshape, mode, tabs = ctx
    gx = _empty(xshape, gy.dtype)
    if mode == "nearest":
        _upsample.nearest_backward(gy, gx, *tabs, _nt())
    else:
        nt = _nt()
        _upsample.bilinear_backward(gy, gx, *tabs, _empty((nt, xshape[2], gy.shape[3]), gy.dtype),
                                    nt)
    return gx


# ===================================================================== loss

def cross_entropy(logits, target, label_smoothing=0.0):
    """Mean softmax cross-entropy.  logits (N, C); target (N,) ints in [0, C).
    Returns (loss as a Python float, ctx)."""
    N, C = logits.shape
    probs = _empty_like(logits)
    losses = _empty(N)
    _loss.cross_entropy(logits, target, float(label_smoothing), probs, losses, _nt())
    loss = float(np.sum(losses) / N) if N else float("nan")
    return loss, (probs, target, float(label_smoothing))


def cross_entropy_backward(ctx):
    probs, target, eps = ctx
    g = _empty_like(probs)
    N = probs.shape[0]
    _loss.cross_entropy_backward(probs, target, eps, 1.0 / max(N, 1), g, _nt())
    return g
