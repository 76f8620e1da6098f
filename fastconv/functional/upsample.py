"""Upsampling: nearest and bilinear resize, forward and backward, torch's index rules."""
from typing import NamedTuple, Tuple

import numpy as np

from .._kernels import _upsample
from ._common import empty, nthreads, wants


class UpsampleCtx(NamedTuple):
    x_shape: Tuple[int, ...]
    mode: str
    tables: tuple               # per-axis source indices (and weights for bilinear)


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
    """Resize x (N, C, H, W) to size (OH, OW); ``(y, ctx)``.  scale_factor (sh, sw) or
    None is used for the source-index arithmetic as torch does when it was given."""
    N, C, H, W = x.shape
    OH, OW = size
    sh, sw = scale_factor if scale_factor is not None else (None, None)
    y = empty((N, C, OH, OW), x.dtype)
    nt = nthreads()
    if mode == "nearest":
        tabs = (_nearest_index(H, OH, sh), _nearest_index(W, OW, sw))
        _upsample.nearest(x, y, *tabs, nt)
    else:
        dt = x.dtype.type
        h = _linear_index(H, OH, sh, align_corners, dt)
        w = _linear_index(W, OW, sw, align_corners, dt)
        tabs = h + w
        _upsample.bilinear(x, y, *tabs, empty((nt, H, OW), x.dtype), nt)
    return y, UpsampleCtx(x.shape, mode, tabs)


def upsample_backward(ctx, gy, needs=None):
    """(d x,): the adjoint of the forward's gather (a scatter-add per plane)."""
    if not wants(needs, 1)[0]:
        return (None,)
    xshape, mode, tabs = ctx
    gx = empty(xshape, gy.dtype)
    nt = nthreads()
    if mode == "nearest":
        _upsample.nearest_backward(gy, gx, *tabs, nt)
    else:
        _upsample.bilinear_backward(gy, gx, *tabs, empty((nt, xshape[2], gy.shape[3]), gy.dtype),
                                    nt)
    return (gx,)


class PixelShuffleCtx(NamedTuple):
    r: int
    inverse: bool


def pixel_shuffle(x, r):
    """(N, C*r*r, H, W) -> (N, C, H*r, W*r): sub-pixel upsampling (each r x r block of
    the output reads one pixel of r*r channels); ``(y, ctx)``."""
    N, Crr, H, W = x.shape
    C = Crr // (r * r)
    y = np.ascontiguousarray(x.reshape(N, C, r, r, H, W).transpose(0, 1, 4, 2, 5, 3))
    return y.reshape(N, C, H * r, W * r), PixelShuffleCtx(r, False)


def pixel_unshuffle(x, r):
    """(N, C, H*r, W*r) -> (N, C*r*r, H, W): the inverse of pixel_shuffle; ``(y, ctx)``."""
    N, C, Hr, Wr = x.shape
    H, W = Hr // r, Wr // r
    y = np.ascontiguousarray(x.reshape(N, C, H, r, W, r).transpose(0, 1, 3, 5, 2, 4))
    return y.reshape(N, C * r * r, H, W), PixelShuffleCtx(r, True)


def pixel_shuffle_backward(ctx, gy, needs=None):
    """(d x,): the inverse permutation of the gradient."""
    if not wants(needs, 1)[0]:
        return (None,)
    return ((pixel_shuffle if ctx.inverse else pixel_unshuffle)(gy, ctx.r)[0],)


pixel_unshuffle_backward = pixel_shuffle_backward
