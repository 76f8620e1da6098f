"""Convolutions: ``conv2d`` and ``conv_transpose2d``, forward and backward.

Each call builds a :class:`~fastconv._conv_plan.ConvGeometry`, lets the planner choose
the algorithm, allocates and calls the kernel.  ``padding`` for ``conv2d`` is a
4-tuple (top, bottom, left, right), so asymmetric 'same' padding needs no special
case.  The compute dtype is the promotion of the input's and the weight's.
"""
import functools
from typing import NamedTuple, Optional, Tuple

import numpy as np

from .. import _shape
from .._conv_plan import (DEPTHWISE, WINOGRAD, Algorithm, ConvGeometry, InputGrad, WeightGrad,
                          accepts, choose_algorithm, input_grad_algorithm,
                          weight_grad_algorithm)
from .._kernels import _conv, _depthwise, _elementwise, _memory, _norm, _pad, _winograd
from .._precision import bf16_enabled, keep, restore
from ._common import (RELU, RELU6, cast, channel_sum, empty, nthreads, per_channel, relu_code,
                      wants)


class ConvState(NamedTuple):
    """A planned convolution as its gradients need it (under bf16, src and the padded
    copy are kept as bf16: _precision.keep)."""
    geom: ConvGeometry
    algorithm: Algorithm
    w: np.ndarray               # (M, C/groups, KH, KW)
    src: Optional[np.ndarray]   # the input the kernel read (None for PADDED: see padded)
    padded: Optional[tuple]     # PADDED: (flat copy, image size, offsets, width, group size)


class Conv2dCtx(NamedTuple):
    conv: ConvState
    x_shape: Tuple[int, ...]
    padding_mode: str
    pt: int                     # explicit (non-zero mode) padding to fold back
    pl: int


class ConvTranspose2dCtx(NamedTuple):
    x: np.ndarray
    w: np.ndarray               # (C_in, C_out/groups, KH, KW)
    groups: int
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    dilation: Tuple[int, int]
    bf16: bool                  # the forward ran under autocast("bf16")


# ===================================================================== public ops

def conv2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1,
           padding_mode="zeros", layer="conv2d", relu=False, algorithm=None, scale=None,
           weight_cache=None):
    """2-D cross-correlation.  Returns ``(y, ctx)``.

    x (N, C_in, H, W); weight (C_out, C_in/groups, K_h, K_w); bias (C_out,) or None;
    padding (top, bottom, left, right).  y (N, C_out, H_out, W_out),
    H_out = floor((H + top + bottom - d_h*(K_h-1) - 1)/s_h) + 1.  relu=True applies
    max(., 0) in the kernel's epilogue, relu="relu6" the clamp to [0, 6] (inference of a
    folded Conv-BN-ReLU or -ReLU6).
    algorithm: force one of :class:`~fastconv._conv_plan.Algorithm` (tests).
    scale (C_out,): inference only (the returned ctx is None): y = conv * scale + bias, the
    factor applied in the GEMM's epilogue where the planned kernel has one (a BatchNorm
    folded without a pass over the weights), else folded into a copy of the weights.
    weight_cache: with scale (inference), a dict the caller keeps (a layer's): Winograd's
    transformed weights are kept there with a fingerprint of the weight and scale they
    came from, and reused while both fingerprint the same (at one frame the transform
    costs as much as the convolution).
    Under ``fastconv.autocast("bf16")`` a float32 convolution multiplies in bf16 (its
    backward too); a depthwise one stays float32."""
    relu = relu_code(relu, layer)
    if scale is not None and algorithm is None:
        run = inference_plan(x.shape, x.dtype, weight.shape, weight.dtype, tuple(stride),
                             tuple(padding), tuple(dilation), groups, padding_mode, layer, relu,
                             bf16_enabled(), weight_cache is not None)
        return run(x, weight, bias, scale, weight_cache), None
    dt, g, explicit = _setup(x.shape, x.dtype, weight.shape, weight.dtype, tuple(stride),
                             tuple(padding), tuple(dilation), groups, padding_mode, layer,
                             bf16_enabled())
    x, w, b = cast(x, dt), cast(weight, dt), cast(bias, dt)
    pt, pl = padding[0], padding[2]
    nt = nthreads()
    src = _explicitly_padded(x, g, pt, pl, _shape.padding_mode_code(padding_mode), nt) \
        if explicit else x
    algo = _plan(g, src, nt, algorithm, layer,
                 prepared=scale is not None and weight_cache is not None)
    if scale is not None:
        scale = cast(np.ascontiguousarray(scale), dt)
        return _run_scaled(src, w, b, g, algo, relu, nt, scale, weight_cache), None
    y, state = _run(src, w, b, g, algo, relu, nt)
    return y, Conv2dCtx(state, x.shape, padding_mode, pt if src is not x else 0,
                        pl if src is not x else 0)


@functools.lru_cache(maxsize=1024)
def _setup(x_shape, x_dtype, w_shape, w_dtype, stride, padding, dilation, groups, padding_mode,
           layer, bf16_on):
    """(compute dtype, planned geometry, explicit padding copy?) of a conv2d call, its
    arguments checked: once per configuration (a frame's layers are called thousands of
    times with the same shapes; an error raises every time, as errors are not cached)."""
    dt = np.result_type(x_dtype, w_dtype)
    N, C, H, W = x_shape
    KH, KW = w_shape[2:]
    pt, pb, pl, pr = padding
    _shape.checked_conv_output(layer, "height", H, KH, stride[0], (pt, pb), dilation[0])
    _shape.checked_conv_output(layer, "width", W, KW, stride[1], (pl, pr), dilation[1])
    _shape.check_conv_planes(layer, x_shape, padding_mode, any(padding))
    explicit = padding_mode != "zeros" and any(padding)
    pads = padding
    if explicit:
        _shape.check_padding_fits(layer, padding_mode, padding, H, W)
        x_shape, pads = (N, C, H + pt + pb, W + pl + pr), (0, 0, 0, 0)
    return dt, ConvGeometry.of(x_shape, w_shape, stride, pads, dilation, groups, dt,
                               _bf16(dt, groups, C, bf16_on)), explicit


@functools.lru_cache(maxsize=1024)
def inference_plan(x_shape, x_dtype, w_shape, w_dtype, stride, padding, dilation, groups,
                   padding_mode, layer, relu, bf16_on, cached):
    """conv2d's inference with a per-channel ``scale`` (a folded BatchNorm), planned once
    per configuration: ``run(x, weight, bias, scale, weight_cache=None) -> y``.

    The arguments are checked, the geometry built and the algorithm chosen here; a call
    does only what its data decide (the NaN/Inf pass before Winograd, the weight cache's
    fingerprint) and the kernel.  At one frame a layer's Python costs as much as its kernel:
    layers keep their runners (Conv2d.folded_forward).  relu: a relu_code; cached: calls
    pass a weight_cache (the planner may then count on Winograd's transformed weights
    being kept)."""
    dt, g, explicit = _setup(x_shape, x_dtype, w_shape, w_dtype, stride, padding, dilation,
                             groups, padding_mode, layer, bf16_on)
    algo, fallback = _choices(g, cached)
    winograd = algo in WINOGRAD
    pt, pl, mode = padding[0], padding[2], _shape.padding_mode_code(padding_mode)

    def run(x, weight, bias, scale, weight_cache=None):
        nt = nthreads()
        src = cast(x, dt)
        if explicit:
            src = _explicitly_padded(src, g, pt, pl, mode, nt)
        a = fallback if winograd and not _all_finite(src, nt) else algo
        return _run_scaled(src, cast(weight, dt), cast(bias, dt), g, a, relu, nt,
                           cast(np.ascontiguousarray(scale), dt), weight_cache)
    return run


def frozen_conv2d(x_shape, x_dtype, weight, bias, scale, stride, padding, dilation, groups,
                  padding_mode, layer, relu):
    """A convolution whose weights never change (``fastconv.freeze``), planned and
    prepared once for one input shape: ``run(x, nthreads) -> y``.

    weight (M, C/groups, KH, KW), bias (M,) or None, scale (M,) or None: y = relu?(conv(x)
    * scale + bias), as ``inference_plan``'s runner computes it (the same bits), but the
    weights' prepared forms (Winograd's transform, or the weights times scale where the
    kernel has no factor in its epilogue) are made here, for the planner's choice with a
    finite input and without one, instead of fingerprinted on every call.  The arrays
    are kept as given: pass copies nobody changes."""
    dt, g, explicit = _setup(tuple(x_shape), x_dtype, weight.shape, weight.dtype,
                             tuple(stride), tuple(padding), tuple(dilation), groups,
                             padding_mode, layer, False)
    w, b = cast(weight, dt), cast(bias, dt)
    s = None if scale is None else cast(np.ascontiguousarray(scale), dt)
    algo, fallback = _choices(g, True)
    nt0 = nthreads()
    main = _prepared(w, s, g, algo, nt0, alloc=np.empty)
    other = _prepared(w, s, g, fallback, nt0, alloc=np.empty) if fallback is not algo else main
    winograd = algo in WINOGRAD
    pt, pl, mode = padding[0], padding[2], _shape.padding_mode_code(padding_mode)

    def run(x, nt):
        src = cast(x, dt)
        if explicit:
            src = _explicitly_padded(src, g, pt, pl, mode, nt)
        if winograd and not _all_finite(src, nt):
            ws, sc, up = other
            return _run(src, ws, b, g, fallback, relu, nt, sc, up)[0]
        ws, sc, up = main
        return _run(src, ws, b, g, algo, relu, nt, sc, up)[0]
    return run


def _run_scaled(src, w, b, g, algo, relu, nt, scale, weight_cache):
    """y = conv(src) * scale + b (relu: 0, RELU or RELU6), the weights in the form
    _prepared gives (kept in weight_cache, when given)."""
    ws, sc, up = _prepared(w, scale, g, algo, nt, weight_cache)
    return _run(src, ws, b, g, algo, relu, nt, sc, up)[0]


def _prepared(w, scale, g, algo, nt, cache=None, alloc=empty):
    """(weights, epilogue factor, Winograd's weights) for y = conv(x, w) * scale run by
    algo: the factor in the GEMM's epilogue where the kernel has one, else folded into
    Winograd's transformed weights or into a copy of the weights (the kernel has no
    factor: depthwise, bf16).  cache (a layer's weight cache): the prepared forms kept
    while the weights and the factor fingerprint the same; alloc: the transformed
    weights' memory when not cached (np.empty for weights kept elsewhere)."""
    if scale is None or (algo in _EPILOGUE_SCALE and not g.bf16):
        return w, scale, None
    if algo in WINOGRAD:
        if cache is None:
            return w, None, _winograd_weights(_scaled(w, scale), algo, g, nt, alloc)
        return w, None, _cached_weights(
            cache, w, scale, ("winograd", algo, g.M, g.C, g.bf16),
            lambda ws: _winograd_weights(ws, algo, g, nt, alloc=np.empty), nt)
    if cache is None:
        return _scaled(w, scale), None, None
    return _cached_weights(cache, w, scale, ("scaled", w.shape, w.dtype), lambda v: v,
                           nt), None, None


def _explicitly_padded(x, g, pt, pl, mode, nt):
    """x copied into a (g.N, g.C, g.H, g.W) array with its reflect / replicate / circular
    padding (g planned on the padded size)."""
    src = empty((g.N, g.C, g.H, g.W), x.dtype)
    _pad.pad2d(x, src, pt, pl, mode, nt)
    return src


def conv2d_backward(ctx, gy, needs=None):
    """Gradients of conv2d w.r.t. (x, weight, bias); None where ``needs`` says False."""
    need_x, need_w, need_b = wants(needs, 3)
    nt = nthreads()
    gsrc, gw, gb = _grads(ctx.conv, gy, need_x, need_w, need_b, nt)
    gx = gsrc
    if gsrc is not None and gsrc.shape != ctx.x_shape:      # fold the explicit padding back
        gx = empty(ctx.x_shape, gsrc.dtype)
        _pad.pad2d_backward(gsrc, gx, ctx.pt, ctx.pl, _shape.padding_mode_code(ctx.padding_mode),
                             nt)
    return gx, gw, gb


def conv_transpose2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0),
                     groups=1, dilation=(1, 1), layer="conv_transpose2d"):
    """Transposed convolution (the adjoint of conv2d with the same geometry).
    Returns ``(y, ctx)``.

    x (N, C_in, H, W); weight (C_in, C_out/groups, K_h, K_w); bias (C_out,) or None.
    H_out = (H - 1)*s_h - 2*p_h + d_h*(K_h - 1) + output_padding_h + 1."""
    dt = np.result_type(x.dtype, weight.dtype)
    x, w, b = cast(x, dt), cast(weight, dt), cast(bias, dt)
    N, C_in, H, W = x.shape
    _, Cg_out, KH, KW = w.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    OH = _shape.checked_conv_transpose_output(layer, "height", H, KH, sh, ph, oph, dh)
    OW = _shape.checked_conv_transpose_output(layer, "width", W, KW, sw, pw, opw, dw)
    C_out = Cg_out * groups
    nt = nthreads()
    bf16 = _bf16(dt, groups, C_in)
    if sh == sw == 1:           # a stride-1 convolution with the flipped weights
        q = (dh * (KH - 1) - ph, dh * (KH - 1) - ph + oph, dw * (KW - 1) - pw,
             dw * (KW - 1) - pw + opw)
        wf = _flip_transpose(w, groups)
        g = ConvGeometry.of(x.shape, wf.shape, (1, 1), q, dilation, groups, dt, bf16)
        y, _ = _run(x, wf, b, g, _plan(g, x, nt), False, nt)
    else:                       # GEMM, then col2im onto the bias
        y = empty((N, C_out, OH, OW), dt)
        geom = (KH, KW, sh, sw, ph, pw, dh, dw)
        _conv.gemm_fold(x, w.reshape(C_in, -1), y, _fold_scratch(x, y, groups, geom, nt), groups,
                        *geom, nt, bf16, None if b is None else np.ascontiguousarray(b))
    return y, ConvTranspose2dCtx(keep(x) if bf16 else x, w, groups, tuple(stride),
                                 tuple(padding), tuple(dilation), bf16)


def conv_transpose2d_backward(ctx, gy, needs=None):
    """Gradients of conv_transpose2d w.r.t. (x, weight, bias).  d x is the convolution
    of gy with the same weight and geometry; the weight gradient reuses its plan."""
    need_x, need_w, need_b = wants(needs, 3)
    x, w, groups, (sh, sw), (ph, pw), (dh, dw), bf16 = ctx
    x = restore(x)
    KH, KW = w.shape[2:]
    H, W = x.shape[2:]
    OH, OW = gy.shape[2:]
    nt = nthreads()
    pads = (ph, (H - 1) * sh + dh * (KH - 1) + 1 - OH - ph,
            pw, (W - 1) * sw + dw * (KW - 1) + 1 - OW - pw)
    g = ConvGeometry.of(gy.shape, w.shape, (sh, sw), pads, (dh, dw), groups, gy.dtype, bf16)
    gx = gw = None
    state = None
    if need_x:
        gx, state = _run(gy, w, None, g, _plan(g, gy, nt), False, nt)
    if need_w:
        if state is None:
            state = ConvState(g, Algorithm.GATHER, w, gy, None)
        gw = _grads(state, x, False, True, False, nt)[1]    # that convolution's output is x
    return gx, gw, channel_sum(gy) if need_b else None


# ===================================================================== planned kernels

def _bf16(dt, groups, channels, enabled=None):
    """Whether a convolution of dtype dt multiplies in bf16 here: under autocast (enabled,
    or the calling thread's state when None), float32, and not depthwise (memory-bound:
    bf16 products would save nothing)."""
    if enabled is None:
        enabled = bf16_enabled()
    return dt == np.float32 and enabled and not (groups == channels and channels > 1)


def _plan(g, src, nt, algorithm=None, layer="conv2d", finite=None, prepared=False):
    """The algorithm for g: forced (checked), or the planner's, checking the input for
    NaN/Inf only when Winograd would run.  finite: known finiteness of src, or None;
    prepared: inference with the weights' transforms cached (choose_algorithm)."""
    if algorithm is not None:
        algorithm = Algorithm(algorithm)
        if not accepts(algorithm, g):
            raise ValueError(f"{layer}: algorithm '{algorithm.value}' does not accept {g}")
        return algorithm
    algo, fallback = _choices(g, prepared)
    if algo in WINOGRAD and not (_all_finite(src, nt) if finite is None else finite):
        return fallback
    return algo


@functools.lru_cache(maxsize=4096)
def _choices(g, prepared=False):
    """The planner's choice for g with a finite input, and without one (the geometry
    repeats every step of a training run: plan it once)."""
    return (choose_algorithm(g, prepared=prepared),
            choose_algorithm(g, finite=False, prepared=prepared))


# the algorithms whose kernels take a per-channel factor in their epilogue
_EPILOGUE_SCALE = (Algorithm.PADDED, Algorithm.GATHER, Algorithm.TAPS)


def _winograd_tile(algorithm, g):
    """(tile, bf16 products) of a Winograd algorithm: F(4x4) keeps float32 products."""
    tile = 4 if algorithm is Algorithm.WINOGRAD4 else 2
    return tile, g.bf16 and tile == 2


def _winograd_weights(w, algorithm, g, nt, alloc=empty):
    """Winograd's transformed weights of w, in memory from alloc (the caching allocator
    for a call's temporary; np.empty for weights a layer keeps)."""
    tile, bf16 = _winograd_tile(algorithm, g)
    Up = alloc((_winograd.winograd_weights_size(g.M, g.C, tile, bf16),), np.float32)
    _winograd.winograd_weights(w, Up, tile, nt, bf16)
    return Up


def _scaled(w, scale):
    """w * scale per output channel, in w's dtype (a BatchNorm folded into the weights)."""
    return np.multiply(w, scale.reshape(-1, 1, 1, 1), dtype=w.dtype)


def _cached_weights(cache, w, scale, key, build, nt=1):
    """build(w * scale) (weights prepared for inference: Winograd-transformed, or just
    scaled), from cache while w and scale hold the bytes they were built from: checked
    by their fingerprint (_memory.fingerprint: one read of the weights per call, no
    copy kept), so any in-place change (an optimiser step, load_state_dict, new
    BatchNorm statistics) rebuilds them.  One entry per key (the algorithm and
    precision are part of it), so a layer run alternately in float32 and bf16, or at
    two input sizes that plan differently, keeps both forms instead of rebuilding on
    every switch; one tuple per entry: readers in other threads see a whole entry."""
    w = np.ascontiguousarray(w)
    hit = cache.get(key)
    fp = _memory.fingerprint((w, scale), nt)
    if hit is not None and hit[0] == fp:
        return hit[1]
    prepared = build(_scaled(w, scale))
    cache[key] = (fp, prepared)
    return prepared


def _run(src, w, b, g, algorithm, relu, nt, scale=None, Up=None):
    """Forward of the planned convolution g on src (N, C, H, W): (y, ConvState).
    relu: 0, RELU or RELU6 (_common.relu_code; the GEMM and depthwise kernels clamp in
    their epilogue, Winograd's apply ReLU there and the clamp at 6 in a pass after).
    scale: a per-channel factor before the bias (algorithms in _EPILOGUE_SCALE only).
    Up: Winograd's transformed weights, when the caller has them."""
    if relu == RELU6 and algorithm not in _EPILOGUE_SCALE and algorithm not in DEPTHWISE:
        y, state = _run(src, w, b, g, algorithm, RELU, nt, scale, Up)
        f = y.reshape(-1)
        _elementwise.activation(f, f, 0, 0.0, nt)      # op 0: ReLU6
        return y, state
    N, M, OH, OW = g.N, g.M, g.OH, g.OW
    dt = src.dtype
    if algorithm in DEPTHWISE:
        y = empty((N, M, OH, OW), dt)
        if algorithm is Algorithm.DEPTHWISE_S1:
            _depthwise.depthwise_forward_s1(src, w, b, y, g.pt, g.pl, g.dh, g.dw, relu, nt)
        else:
            _depthwise.depthwise_forward(src, w, b, y, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw, relu, nt)
        return y, ConvState(g, algorithm, w, src, None)
    if algorithm in WINOGRAD:
        tile, bf16 = _winograd_tile(algorithm, g)   # F(4x4): float32 products (planner)
        if Up is None:
            Up = _winograd_weights(w, algorithm, g, nt)
        y = empty((N, M, OH, OW), np.float32)
        _winograd.winograd_conv3x3(src, Up, M, tile, b, y, g.pt, g.pl, relu, nt, bf16)
        # weight grads read straight from the input: no padded copy to keep or build
        return y, ConvState(g, algorithm, w, keep(src) if g.bf16 else src, None)
    w2 = w.reshape(M, -1)
    if algorithm is Algorithm.PADDED:
        data = _padded_source(src, g, nt)
        flat, image, off, PW, gsize = data
        ypad = empty((N, M, OH * PW), dt)
        _conv.padded_conv(flat, image, w2, b, ypad, off, g.groups, gsize, relu, nt, g.bf16, scale)
        state = ConvState(g, algorithm, w, None, (keep(flat),) + data[1:] if g.bf16 else data)
        if PW == OW:
            return ypad.reshape(N, M, OH, OW), state
        y = empty((N, M, OH, OW), dt)
        _conv.crop_columns(ypad.reshape(N * M, OH, PW), y.reshape(N * M, OH, OW), nt)
        return y, state
    y = empty((N, M, OH, OW), dt)
    if algorithm is Algorithm.TAPS:
        _conv.conv_taps(src, w2, b, y, g.KH, g.KW, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw, relu, nt,
                        scale)
        return y, ConvState(g, algorithm, w, src, None)
    _conv.unfold_gemm(src, w2, b, y, g.groups, g.KH, g.KW, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw,
                      relu, nt, g.bf16, scale)
    return y, ConvState(g, algorithm, w, keep(src) if g.bf16 else src, None)


def _grads(state, gy, need_input, need_weight, need_bias, nt):
    """(d src, d w, d b) of a planned convolution, given d y (N, M, OH, OW)."""
    g, algo, w = state.geom, state.algorithm, state.w
    if algo in DEPTHWISE:
        return _depthwise_grads(state, gy, need_input, need_weight, need_bias, nt)
    # both Winograd gradients need gy to be finite: check it once
    fin = _all_finite(gy, nt) if algo in WINOGRAD and need_input and need_weight else None
    gsrc = _input_grad(state, gy, nt, fin) if need_input else None
    gw = _weight_grad(state, gy, nt, fin) if need_weight else None
    return gsrc, gw, channel_sum(gy) if need_bias else None


def _input_grad(state, gy, nt, finite):
    g, w = state.geom, state.w
    if input_grad_algorithm(g, state.algorithm) is InputGrad.FLIPPED:
        pads = (g.dh * (g.KH - 1) - g.pt, g.dh * (g.KH - 1) - g.pb,
                g.dw * (g.KW - 1) - g.pl, g.dw * (g.KW - 1) - g.pr)
        wf = _flip_transpose(w, g.groups)
        gg = ConvGeometry.of(gy.shape, wf.shape, (1, 1), pads, (g.dh, g.dw), g.groups, gy.dtype,
                             g.bf16)
        return _run(gy, wf, None, gg, _plan(gg, gy, nt, finite=finite), False, nt)[0]
    gx = empty((g.N, g.C, g.H, g.W), gy.dtype)
    geom = (g.KH, g.KW, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw)
    _conv.gemm_fold(gy, w.reshape(g.M, -1), gx, _fold_scratch(gy, gx, g.groups, geom, nt),
                    g.groups, *geom, nt, g.bf16)
    return gx


def _weight_grad(state, gy, nt, finite):
    g = state.geom
    dw2 = empty((g.M, g.Cg * g.KH * g.KW), gy.dtype)
    wg = weight_grad_algorithm(g, state.algorithm)
    if wg is WeightGrad.WINOGRAD and not (_all_finite(gy, nt) if finite is None else finite):
        wg = weight_grad_algorithm(g, state.algorithm, finite=False)
    if wg is WeightGrad.WINOGRAD:
        S = empty(_winograd.winograd_wgrad_scratch_shape(g.N, g.C, g.M, g.OH, g.OW), np.float32)
        _winograd.winograd_conv3x3_wgrad(restore(state.src), gy, S, dw2, g.pt, g.pl, nt, g.bf16)
    elif wg is WeightGrad.PADDED:
        # a Winograd forward read its input in place: pad it now
        flat, image, off, PW, gsize = state.padded or _padded_source(restore(state.src), g, nt)
        flat = restore(flat)
        N, M, OH, OW = gy.shape
        if PW == OW:
            dypad = gy.reshape(N, M, OH * PW)
        else:                                    # junk columns must hold zeros
            dypad = empty((N, M, OH * PW), gy.dtype)
            _conv.widen_columns(gy.reshape(N * M, OH, OW), dypad.reshape(N * M, OH, PW), nt)
        scratch = empty((_conv.wgrad_chunks(N), dw2.size), gy.dtype)
        _conv.padded_weight_grad(dypad, flat, image, dw2, scratch, off, g.groups, gsize, nt,
                                 g.bf16)
    elif wg is WeightGrad.DIRECT:
        flat, image, _, PW, _ = state.padded or _padded_source(restore(state.src), g, nt)
        _conv.direct_weight_grad3(np.ascontiguousarray(gy), flat, image, g.H + g.pt + g.pb, PW,
                                  dw2, g.KH, g.dh, g.dw, nt)
    elif wg is WeightGrad.TAPS:
        _conv.conv_taps_wgrad(state.src, np.ascontiguousarray(gy), dw2, g.KH, g.KW, g.sh, g.sw,
                              g.pt, g.pl, g.dh, g.dw, nt)
    else:
        scratch = empty((_conv.wgrad_chunks(g.N, g.OH * g.OW), dw2.size), gy.dtype)
        _conv.weight_grad(gy, restore(state.src), dw2, scratch, g.groups, g.KH, g.KW, g.sh, g.sw, g.pt,
                          g.pl, g.dh, g.dw, nt, g.bf16)
    return dw2.reshape(state.w.shape)


def _depthwise_grads(state, gy, need_input, need_weight, need_bias, nt):
    """The fused depthwise backward: one pass over gy for all three gradients."""
    g, w, src = state.geom, state.w, state.src
    dt = src.dtype
    gsrc = empty(src.shape, dt) if need_input else src
    # zeros, not empty: an empty batch never reaches the kernel's own initialisation
    dw_acc = np.zeros((g.M, g.KH * g.KW)) if need_weight else np.zeros((1, 1))
    db_acc = np.zeros(g.M) if need_bias else np.zeros(1)
    if input_grad_algorithm(g, state.algorithm) is InputGrad.DEPTHWISE_S1:
        _depthwise.depthwise_backward_s1(src, w, np.ascontiguousarray(w[:, :, ::-1, ::-1]), gy,
                                         gsrc, dw_acc, db_acc, g.pt, g.pl, g.dh, g.dw, need_input,
                                         need_weight, need_bias, nt)
    else:
        _depthwise.depthwise_backward(src, w, gy, gsrc, dw_acc, db_acc, g.sh, g.sw, g.pt, g.pl,
                                      g.dh, g.dw, need_input, need_weight, need_bias, nt)
    return (gsrc if need_input else None,
            dw_acc.reshape(w.shape).astype(dt) if need_weight else None,
            db_acc.astype(dt) if need_bias else None)


# ===================================================================== helpers

def _padded_source(big, g, nt):
    """Zero-padded copy of big (flat, with slack for the last image's junk columns) and
    the im2col row offsets: (flat, image size, offsets, padded width, group size).
    Stride s > 1: the padded input split into its s*s phases (_pad.phase_split), where
    every tap reads at stride 1 - the same GEMM, on the phases' width."""
    N, C, H, W = big.shape
    if g.sh > 1:
        s = g.sh
        PH, PW = g.OH + (g.KH - 1) // s, g.OW + (g.KW - 1) // s
        image, slack, shape = s * s * C * PH * PW, (g.KW - 1) // s, (N, s * s, C, PH, PW)
        off = _conv.phase_offsets(g.Cg, C, g.KH, g.KW, s, PH, PW)
    else:
        PH, PW = H + g.pt + g.pb, W + g.pl + g.pr
        image, slack, shape = C * PH * PW, (g.KW - 1) * g.dw, (N, C, PH, PW)
        off = _conv.padded_offsets(g.Cg, g.KH, g.KW, PH, PW, g.dh, g.dw)
    flat = empty(N * image + slack + 16, big.dtype)
    flat[N * image:] = 0          # the last image's junk columns read zeros
    out = flat[:N * image].reshape(shape)
    if g.sh > 1:
        _pad.phase_split(big, out, g.sh, g.pt, g.pl, nt)
    else:
        _pad.pad2d(big, out, g.pt, g.pl, 0, nt)
    return flat, image, off, PW, g.Cg * PH * PW


def _all_finite(a, nt):
    """No NaN/Inf in a float32 (N, C, H, W) array (one pass)."""
    N, C, H, W = a.shape
    return _norm.plane_sums_finite(a.reshape(N * C, H * W), nt)


def _fold_scratch(small, big, groups, geom, nt):
    shape = _conv.fold_scratch_shape(big.shape[0], big.shape[1], groups, geom[0], geom[1],
                                     small.shape[2], small.shape[3], nt)
    return empty(shape, big.dtype)


def _flip_transpose(w, groups):
    """(A, B, kH, kW) -> (G*B, A/G, kH, kW), spatially flipped, per group: the weight of
    the convolution that is this one's adjoint at stride 1 (conv <-> transposed conv)."""
    A, B, KH, KW = w.shape
    out = empty((groups * B, A // groups, KH, KW), w.dtype)
    _conv.flip_transpose(np.ascontiguousarray(w), out, groups, nthreads())
    return out