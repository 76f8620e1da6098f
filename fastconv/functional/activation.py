"""Element-wise ops: relu, add, dropout."""
from typing import NamedTuple

import numpy as np

from .._kernels import _elementwise
from ._common import cast, empty, empty_like, flat, nthreads, wants


class ReluCtx(NamedTuple):
    y: np.ndarray               # the output: its sign is the mask


class AddCtx(NamedTuple):
    a_dtype: np.dtype
    b_dtype: np.dtype


class DropoutCtx(NamedTuple):
    mask: np.ndarray            # uint8, 1 where kept
    p: float


def relu(x, inplace=False):
    """max(x, 0), NaN propagated; ``(y, ctx)``.  inplace writes into x (writeable)."""
    y = x if inplace else empty_like(x)
    _elementwise.relu(flat(x), flat(y), nthreads())
    return y, ReluCtx(y)


def relu_backward(ctx, gy, needs=None):
    """(d x,): gy where the output is positive."""
    if not wants(needs, 1)[0]:
        return (None,)
    gx = empty_like(gy)
    _elementwise.relu_backward(flat(ctx.y), flat(gy), flat(gx), nthreads())
    return (gx,)


def add(a, b):
    """a + b for arrays of one shape, in their promoted dtype; ``(out, ctx)``."""
    dt = np.result_type(a.dtype, b.dtype)
    a2, b2 = np.ascontiguousarray(cast(a, dt)), np.ascontiguousarray(cast(b, dt))
    out = empty(a2.shape, dt)
    _elementwise.add(flat(a2), flat(b2), flat(out), nthreads())
    return out, AddCtx(a.dtype, b.dtype)


def add_relu_(a, b):
    """a = max(a + b, 0) in place, one compiled pass (inference: a residual block's add and
    ReLU); a and b of one shape and dtype, a writeable and contiguous.  Returns a."""
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(f"add_relu_: expected two arrays of one shape and dtype, got "
                         f"{a.shape} {a.dtype} and {b.shape} {b.dtype}")
    _elementwise.add_relu(flat(a), flat(np.ascontiguousarray(b)), flat(a), nthreads())
    return a


def add_backward(ctx, g, needs=None):
    """(d a, d b): g itself, in each operand's dtype."""
    need_a, need_b = wants(needs, 2)
    return (cast(g, ctx.a_dtype) if need_a else None, cast(g, ctx.b_dtype) if need_b else None)


def dropout(x, p, seed):
    """Zero each element with probability p, scale the rest by 1/(1-p); ``(y, ctx)``."""
    y = empty_like(x)
    mask = empty(x.shape, np.uint8)
    _elementwise.dropout(flat(x), flat(y), flat(mask), float(p), int(seed), nthreads())
    return y, DropoutCtx(mask, float(p))


def dropout_backward(ctx, gy, needs=None):
    """(d x,): gy through the kept elements, scaled by 1/(1-p)."""
    if not wants(needs, 1)[0]:
        return (None,)
    gx = empty_like(gy)
    _elementwise.dropout_backward(flat(gy), flat(ctx.mask), ctx.p, flat(gx), nthreads())
    return (gx,)


def dropout2d(x, p, rng):
    """Zero whole channels of x (N, C, ...) with probability p each (one draw of rng per
    (n, c)), scale the rest by 1/(1-p); ``(y, ctx)``."""
    keep = (rng.random(x.shape[:2]) >= p).astype(np.uint8)
    scale = x.dtype.type(1.0 / (1.0 - p)) if p < 1 else x.dtype.type(0)
    y = x * (keep.reshape(keep.shape + (1,) * (x.ndim - 2)) * scale)
    return y.astype(x.dtype, copy=False), DropoutCtx(keep, float(p))


def dropout2d_backward(ctx, gy, needs=None):
    """(d x,): gy through the kept channels, scaled by 1/(1-p)."""
    if not wants(needs, 1)[0]:
        return (None,)
    keep = ctx.mask.reshape(ctx.mask.shape + (1,) * (gy.ndim - 2))
    scale = gy.dtype.type(1.0 / (1.0 - ctx.p)) if ctx.p < 1 else gy.dtype.type(0)
    return ((gy * (keep * scale)).astype(gy.dtype, copy=False),)


# the compiled kernels' op codes (_kernels/_elementwise.pyx)
ACTIVATIONS = {"relu6": 0, "leaky_relu": 1, "elu": 2, "silu": 3, "gelu": 4, "gelu_tanh": 5,
               "sigmoid": 6, "tanh": 7, "hardswish": 8, "hardsigmoid": 9, "mish": 10}


_FROM_OUTPUT = (0, 9)           # ops whose derivative the kernel reads off the output


class ActivationCtx(NamedTuple):
    x: np.ndarray               # the input (flat)
    y: np.ndarray               # the output (flat)
    op: int
    alpha: float


def activation(x, name, alpha=0.0, out=None):
    """An element-wise activation by name (ACTIVATIONS), torch's definitions, computed in
    float64 per element; alpha is LeakyReLU's slope or ELU's alpha.  out: write there
    (e.g. x itself, in place; the input is then kept for the backward as a copy).
    ``(y, ctx)``."""
    op = ACTIVATIONS[name]
    y = empty_like(x) if out is None else out
    # ReLU6's and Hardsigmoid's backward reads only y: keep no x (in place: no copy)
    saved = y if op in _FROM_OUTPUT else (x.copy() if out is x else x)
    _elementwise.activation(flat(x), flat(y), op, float(alpha), nthreads())
    return y, ActivationCtx(flat(saved), flat(y), op, float(alpha))


def activation_backward(ctx, gy, needs=None):
    """(d x,): gy times the activation's derivative at the input."""
    if not wants(needs, 1)[0]:
        return (None,)
    gx = empty_like(gy)
    _elementwise.activation_backward(ctx.x, ctx.y, flat(gy), flat(gx), ctx.op, ctx.alpha,
                                     nthreads())
    return (gx,)


class PReluCtx(NamedTuple):
    x: np.ndarray
    w: np.ndarray


def _rows(x):
    return x.reshape(x.shape[0], x.shape[1] if x.ndim > 1 else 1, -1) if x.size else \
        x.reshape(x.shape[0], x.shape[1] if x.ndim > 1 else 1, 0)


def prelu(x, weight):
    """x where x > 0, else weight[c] * x (weight: one value, or one per channel on
    axis 1); ``(y, ctx)``."""
    w = cast(weight, x.dtype)
    y = empty_like(x)
    _elementwise.prelu(_rows(x), w, _rows(y), nthreads())
    return y, PReluCtx(x, w)


def prelu_backward(ctx, gy, needs=None):
    """Gradients w.r.t. (x, weight)."""
    need_x, need_w = wants(needs, 2)
    x, w = ctx
    C = _rows(x).shape[1]
    gx = empty_like(gy) if need_x else None
    dw = np.zeros(C)
    _elementwise.prelu_backward(_rows(x), w, _rows(gy),
                                _rows(gx) if need_x else np.empty((0, 0, 0), gy.dtype), dw,
                                need_x, nthreads())
    if not need_w:
        return gx, None
    return gx, (dw.sum(keepdims=True) if w.size == 1 else dw).astype(gy.dtype)
