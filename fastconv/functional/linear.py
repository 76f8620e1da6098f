"""linear: y = x W^T + b, forward and backward."""
from typing import NamedTuple

import numpy as np

from .._kernels import _linear
from ._common import cast, channel_sum, empty, nthreads, wants


class LinearCtx(NamedTuple):
    x: np.ndarray               # (N, in)
    w: np.ndarray               # (out, in)


def linear(x, weight, bias=None):
    """y = x @ weight.T + bias; ``(y, ctx)``.  x (N, in); weight (out, in); bias (out,)."""
    if x.dtype == weight.dtype and (bias is None or bias.dtype == x.dtype):
        dt, w, b = x.dtype, weight, bias          # the common case, without promotion work
    else:
        dt = np.result_type(x.dtype, weight.dtype)
        x, w, b = cast(x, dt), cast(weight, dt), cast(bias, dt)
    y = empty((x.shape[0], w.shape[0]), dt)
    _linear.forward(x, w, b, y, nthreads())
    return y, LinearCtx(x, w)


def linear_backward(ctx, gy, needs=None):
    """Gradients w.r.t. (x, weight, bias).  gy (N, out)."""
    need_x, need_w, need_b = wants(needs, 3)
    x, w = ctx
    nt = nthreads()
    gx = gw = None
    if need_x:
        gx = empty(x.shape, x.dtype)
        _linear.backward_input(gy, w, gx, nt)
    if need_w:
        gw = empty(w.shape, x.dtype)
        _linear.backward_weight(gy, x, gw, nt)
    return gx, gw, channel_sum(gy) if need_b else None
