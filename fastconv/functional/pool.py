"""Pooling: max, average and adaptive average, forward and backward."""
from typing import NamedTuple, Tuple

import numpy as np

from .. import _shape
from .._kernels import _pool
from ._common import empty, nthreads, wants


class MaxPool2dCtx(NamedTuple):
    indices: np.ndarray         # uint8 window-local argmax (2x2 path) or int32 plane offsets
    x_shape: Tuple[int, ...]


class AvgPool2dCtx(NamedTuple):
    x_shape: Tuple[int, ...]
    args: tuple                 # the general kernel's geometry, or () on the 2x2 path
    divisor: float              # the 2x2 path's divisor


class AdaptiveAvgPool2dCtx(NamedTuple):
    x_shape: Tuple[int, ...]


def _is_2x2(x, kernel_size, stride, padding, dilation, OH, OW):
    """The 2x2 / stride-2 fast path applies (float32, no padding, whole windows)."""
    return (x.dtype == np.float32 and kernel_size == (2, 2) and stride == (2, 2)
            and padding == (0, 0) and dilation == (1, 1)
            and OH == x.shape[2] // 2 and OW == x.shape[3] // 2)


def max_pool2d(x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False,
               need_indices=True, layer="max_pool2d"):
    """x (N, C, H, W) -> ``(y, ctx)``, y (N, C, H_out, W_out); padding counts as -inf,
    NaN wins, ties keep the first tap (torch's rules).  need_indices=False keeps no
    argmax (inference)."""
    N, C, H, W = x.shape
    _shape.plane_limit(layer, H, W)
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    OH = _shape.checked_pool_output(layer, "height", H, KH, sh, ph, dh, ceil_mode)
    OW = _shape.checked_pool_output(layer, "width", W, KW, sw, pw, dw, ceil_mode)
    y = empty((N, C, OH, OW), x.dtype)
    if _is_2x2(x, kernel_size, stride, padding, dilation, OH, OW):
        idx = empty((N, C, OH, OW), np.uint8) if need_indices else None
        _pool.max_pool2x2(x, y, idx, nthreads())
    else:
        idx = empty((N, C, OH, OW), np.int32) if need_indices else None
        _pool.max_pool2d(x, y, idx, KH, KW, sh, sw, ph, pw, dh, dw, nthreads())
    return y, MaxPool2dCtx(idx, x.shape)


def max_pool2d_backward(ctx, gy, needs=None):
    """(d x,): gy routed to each window's argmax."""
    if not wants(needs, 1)[0]:
        return (None,)
    gx = empty(ctx.x_shape, gy.dtype)
    if ctx.indices.dtype == np.uint8:
        _pool.max_pool2x2_backward(gy, ctx.indices, gx, nthreads())
    else:
        _pool.max_pool2d_backward(gy, ctx.indices, gx, nthreads())
    return (gx,)


def avg_pool2d(x, kernel_size, stride, padding=(0, 0), ceil_mode=False, count_include_pad=True,
               divisor_override=None, layer="avg_pool2d"):
    """x (N, C, H, W) -> ``(y, ctx)``, y (N, C, H_out, W_out), torch's divisor rules."""
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (ph, pw) = kernel_size, stride, padding
    OH = _shape.checked_pool_output(layer, "height", H, KH, sh, ph, 1, ceil_mode)
    OW = _shape.checked_pool_output(layer, "width", W, KW, sw, pw, 1, ceil_mode)
    y = empty((N, C, OH, OW), x.dtype)
    if _is_2x2(x, kernel_size, stride, padding, (1, 1), OH, OW):
        div = float(divisor_override or 4)
        _pool.avg_pool2x2(x, y, div, nthreads())
        return y, AvgPool2dCtx(x.shape, (), div)
    args = (KH, KW, sh, sw, ph, pw, bool(count_include_pad), int(divisor_override or 0))
    _pool.avg_pool2d(x, y, *args, nthreads())
    return y, AvgPool2dCtx(x.shape, args, 0.0)


def avg_pool2d_backward(ctx, gy, needs=None):
    """(d x,): each output's gradient spread over its window, divided as the forward."""
    if not wants(needs, 1)[0]:
        return (None,)
    gx = empty(ctx.x_shape, gy.dtype)
    if not ctx.args:
        _pool.avg_pool2x2_backward(gy, gx, ctx.divisor, nthreads())
    else:
        _pool.avg_pool2d_backward(gy, gx, *ctx.args, nthreads())
    return (gx,)


def adaptive_avg_pool2d(x, output_size, layer="adaptive_avg_pool2d"):
    """x (N, C, H, W) -> ``(y, ctx)``, y (N, C, OH, OW); a None in output_size keeps the
    input size.  Cell (i, j) averages rows [floor(i*H/OH), ceil((i+1)*H/OH))."""
    N, C, H, W = x.shape
    OH = H if output_size[0] is None else output_size[0]
    OW = W if output_size[1] is None else output_size[1]
    if H == 0 or W == 0:
        raise ValueError(f"{layer}: expected a non-empty plane, got input shape {x.shape}")
    y = empty((N, C, OH, OW), x.dtype)
    _pool.adaptive_avg_pool2d(x, y, nthreads())
    return y, AdaptiveAvgPool2dCtx(x.shape)


def adaptive_avg_pool2d_backward(ctx, gy, needs=None):
    """(d x,)."""
    if not wants(needs, 1)[0]:
        return (None,)
    gx = empty(ctx.x_shape, gy.dtype)
    _pool.adaptive_avg_pool2d_backward(gy, gx, nthreads())
    return (gx,)


def adaptive_max_pool2d(x, output_size, need_indices=True, layer="adaptive_max_pool2d"):
    """x (N, C, H, W) -> ``(y, ctx)``, y (N, C, OH, OW): the max over adaptive windows
    (as adaptive_avg_pool2d's); a None in output_size keeps the input size.  The
    backward is max_pool2d's (the argmax as a flat plane index)."""
    N, C, H, W = x.shape
    _shape.plane_limit(layer, H, W)
    OH = H if output_size[0] is None else output_size[0]
    OW = W if output_size[1] is None else output_size[1]
    if H == 0 or W == 0:
        raise ValueError(f"{layer}: expected a non-empty plane, got input shape {x.shape}")
    y = empty((N, C, OH, OW), x.dtype)
    idx = empty((N, C, OH, OW), np.int32) if need_indices else None
    _pool.adaptive_max_pool2d(x, y, idx, nthreads())
    return y, MaxPool2dCtx(idx, x.shape)


adaptive_max_pool2d_backward = max_pool2d_backward
