"""Pooling: max (with torch-style indices on request), max unpooling, average and
adaptive average, forward and backward."""
from typing import NamedTuple, Tuple

import numpy as np

from .. import _shape
from .._kernels import _pool
from ._common import empty, nthreads, wants


class MaxPool2dCtx(NamedTuple):
    indices: np.ndarray         # uint8 window-local argmax (2x2 path) or int32 plane offsets
    x_shape: Tuple[int, ...]


class MaxUnpool2dCtx(NamedTuple):
    indices: np.ndarray         # (N, C, H, W) int64 offsets into the output planes
    out_shape: Tuple[int, ...]  # (N, C, OH, OW)
    layer: str                  # for the backward's error


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
               need_indices=True, layer="max_pool2d", return_indices=False):
    """x (N, C, H, W) -> ``(y, ctx)``, y (N, C, H_out, W_out); padding counts as -inf,
    NaN wins, ties keep the first tap (torch's rules).  need_indices=False keeps no
    argmax (inference).

    return_indices=True: ``((y, indices), ctx)``, indices (N, C, H_out, W_out) int64,
    each window's argmax as the flat offset h*W + w into its (n, c) input plane, as
    torch's (a window wholly in padding, which has no argmax, gets -1 where torch's
    points past the plane).  They are a fresh array (ctx keeps its own compact argmax),
    converted by a compiled pass."""
    N, C, H, W = x.shape
    _shape.plane_limit(layer, H, W)
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    OH = _shape.checked_pool_output(layer, "height", H, KH, sh, ph, dh, ceil_mode)
    OW = _shape.checked_pool_output(layer, "width", W, KW, sw, pw, dw, ceil_mode)
    y = empty((N, C, OH, OW), x.dtype)
    keep = need_indices or return_indices
    if _is_2x2(x, kernel_size, stride, padding, dilation, OH, OW):
        idx = empty((N, C, OH, OW), np.uint8) if keep else None
        _pool.max_pool2x2(x, y, idx, nthreads())
    elif keep:
        idx = empty((N, C, OH, OW), np.int32)
        _pool.max_pool2d(x, y, idx, KH, KW, sh, sw, ph, pw, dh, dw, nthreads())
    else:                   # values only (inference): row maxima shared between windows
        idx = None
        _pool.max_pool2d_values(x, y, KH, KW, sh, sw, ph, pw, dh, dw, nthreads())
    ctx = MaxPool2dCtx(idx if need_indices else None, x.shape)
    if not return_indices:
        return y, ctx
    out = empty((N, C, OH, OW), np.int64)
    if idx.dtype == np.uint8:
        _pool.indices_from_2x2(idx, out, W, nthreads())
    else:
        _pool.widen_indices(idx, out, nthreads())
    return (y, out), ctx


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


def unpool_output_size(layer, in_hw, kernel_size, stride, padding, output_size=None):
    """(OH, OW) of max unpooling an (H, W) plane, torch's rules: (in - 1)*stride -
    2*padding + kernel per dim, or output_size ((OH, OW), or (N, C, OH, OW) whose last
    two are taken), which must lie strictly within stride of that."""
    default = tuple((n - 1) * s - 2 * p + k
                    for n, k, s, p in zip(in_hw, kernel_size, stride, padding))
    if output_size is None:
        out = default
    else:
        try:
            out = tuple(int(v) for v in output_size)
        except (TypeError, ValueError):
            raise TypeError(f"{layer}: output_size must be a sequence of 2 or 4 ints, got "
                            f"{output_size!r}") from None
        if len(out) == 4:
            out = out[2:]
        if len(out) != 2:
            raise ValueError(f"{layer}: output_size must have 2 (H, W) or 4 (N, C, H, W) "
                             f"elements, got {tuple(output_size)}")
        for d, (o, n, s) in enumerate(zip(out, default, stride)):
            if not n - s < o < n + s:
                raise ValueError(f"{layer}: invalid output_size {tuple(output_size)}: "
                                 f"{'HW'[d]} must be between {n - s} and {n + s} "
                                 f"(exclusive), from (in - 1)*stride - 2*padding + kernel "
                                 f"= ({in_hw[d]} - 1)*{s} - 2*{padding[d]} + "
                                 f"{kernel_size[d]} = {n}")
    if min(out) < 0:
        raise ValueError(f"{layer}: output size {out} would be negative: (in - 1)*stride - "
                         f"2*padding + kernel with input {tuple(in_hw)}, kernel_size "
                         f"{kernel_size}, stride {stride}, padding {padding}")
    return out


def check_unpool_indices(layer, x, indices):
    """indices as a C-contiguous int64 array shaped like x (torch's rules: int64 only)."""
    if not isinstance(indices, np.ndarray):
        indices = np.asarray(getattr(indices, "data", indices))
    if indices.dtype != np.int64:
        raise TypeError(f"{layer}: expected int64 indices (as MaxPool2d(return_indices=True) "
                        f"gives), got dtype {indices.dtype}")
    if indices.shape != x.shape:
        raise ValueError(f"{layer}: expected indices of the input's shape {x.shape}, got "
                         f"shape {indices.shape}")
    return np.ascontiguousarray(indices)


def _bad_index_error(layer, indices, OH, OW, what=""):
    flat = indices.reshape(-1)
    first = int(flat[(flat < 0) | (flat >= OH * OW)][0])   # error path only
    return ValueError(f"{layer}: index {first} is outside the output plane of {OH}x{OW} "
                      f"(valid: 0 to {OH * OW - 1}){what}")


def max_unpool2d(x, indices, kernel_size, stride, padding=(0, 0), output_size=None,
                 layer="max_unpool2d"):
    """The partial inverse of max_pool2d: x (N, C, H, W) and int64 indices of its shape
    -> ``(y, ctx)``, y (N, C, OH, OW) zero but for y[n, c].flat[indices[n, c, i, j]] =
    x[n, c, i, j].  OH, OW from unpool_output_size.  Where indices repeat (overlapping
    pooling windows) the last in the plane's row-major order wins, for any thread
    count.  An index outside [0, OH*OW) raises ValueError."""
    indices = check_unpool_indices(layer, x, indices)
    N, C, H, W = x.shape
    if C * H * W == 0:          # torch refuses empty non-batch dims too
        raise ValueError(f"{layer}: expected non-empty (C, H, W), got input shape {x.shape}")
    OH, OW = unpool_output_size(layer, (H, W), kernel_size, stride, padding, output_size)
    y = empty((N, C, OH, OW), x.dtype)
    if _pool.max_unpool2d(x, indices, y, nthreads()):
        raise _bad_index_error(layer, indices, OH, OW)
    return y, MaxUnpool2dCtx(indices, (N, C, OH, OW), layer)


def max_unpool2d_backward(ctx, gy, needs=None):
    """(d x,): each input gets the gradient at its index, if its value is the one the
    forward kept (of repeated indices, the last); the indices get none."""
    if not wants(needs, 1)[0]:
        return (None,)
    gx = empty(ctx.indices.shape, gy.dtype)
    N, C, OH, OW = ctx.out_shape
    taken = empty((N * C, OH * OW), np.uint8)
    if _pool.max_unpool2d_backward(gy, ctx.indices, gx, taken, nthreads()):
        raise _bad_index_error(f"{ctx.layer}.backward", ctx.indices, OH, OW,
                               ": the indices were changed after the forward")
    return (gx,)
