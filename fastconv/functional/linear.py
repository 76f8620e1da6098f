"""linear: y = x W^T + b, forward and backward."""
from typing import NamedTuple

import numpy as np

from .._kernels import _linear
from .._precision import bf16_enabled
from ._common import cast, channel_sum, empty, nthreads, wants


class LinearCtx(NamedTuple):
    x: np.ndarray               # (N, in)
    w: np.ndarray               # (out, in)
    bf16: bool                  # the forward ran under autocast("bf16")


def linear(x, weight, bias=None):
    """y = x @ weight.T + bias; ``(y, ctx)``.  x (N, in); weight (out, in); bias (out,).
    Under ``fastconv.autocast("bf16")`` a float32 linear multiplies in bf16 (its backward
    too), summing in float32."""
    if x.dtype == weight.dtype and (bias is None or bias.dtype == x.dtype):
        dt, w, b = x.dtype, weight, bias          # the common case, without promotion work
    else:
        dt = np.result_type(x.dtype, weight.dtype)
        x, w, b = cast(x, dt), cast(weight, dt), cast(bias, dt)
    bf16 = dt == np.float32 and bf16_enabled()
    y = empty((x.shape[0], w.shape[0]), dt)
    _linear.forward(x, w, b, y, nthreads(), bf16)
    return y, LinearCtx(x, w, bf16)


def linear_backward(ctx, gy, needs=None):
    """Gradients w.r.t. (x, weight, bias).  gy (N, out)."""
    need_x, need_w, need_b = wants(needs, 3)
    x, w, bf16 = ctx
    nt = nthreads()
    gx = gw = None
    if need_x:
        gx = empty(x.shape, x.dtype)
        _linear.backward_input(gy, w, gx, nt, bf16)
    if need_w:
        gw = empty(w.shape, x.dtype)
        _linear.backward_weight(gy, x, gw, nt, bf16)
    return gx, gw, channel_sum(gy) if need_b else None
