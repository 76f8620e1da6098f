"""pad: constant, reflect, replicate and circular padding of the last two axes."""
from typing import NamedTuple, Tuple

import numpy as np

from .. import _shape
from .._kernels import _pad
from ._common import empty, nthreads, wants

MODES = {"constant": "zeros", "reflect": "reflect", "replicate": "replicate",
         "circular": "circular"}


class PadCtx(NamedTuple):
    x_shape: Tuple[int, ...]
    pt: int
    pl: int
    code: int


def pad(x, pads, mode="constant", value=0.0, layer="pad"):
    """x (N, C, H, W) padded by pads = (left, right, top, bottom), torch.nn.functional.pad's
    order; negative constant pads crop.  ``(y, ctx)``."""
    if mode not in MODES:
        raise ValueError(f"{layer}: mode must be one of {list(MODES)}, got {mode!r}")
    pl, pr, pt, pb = (int(p) for p in pads)
    N, C, H, W = x.shape
    if mode != "constant":
        if min(pads) < 0:
            raise ValueError(f"{layer}: {mode} padding must be >= 0, got {tuple(pads)}")
        _shape.check_conv_planes(layer, x.shape, MODES[mode], any(pads))
        _shape.check_padding_fits(layer, MODES[mode], (pt, pb, pl, pr), H, W)
    OH, OW = H + pt + pb, W + pl + pr
    if OH < 0 or OW < 0:
        raise ValueError(f"{layer}: padding {tuple(pads)} crops a {H}x{W} plane to {OH}x{OW}")
    code = _shape.padding_mode_code(MODES[mode])
    y = empty((N, C, OH, OW), x.dtype)
    _pad.pad2d(x, y, pt, pl, code, nthreads())
    if mode == "constant" and value != 0:
        for sl in (np.s_[:, :, :max(pt, 0)], np.s_[:, :, OH - max(pb, 0):],
                   np.s_[:, :, :, :max(pl, 0)], np.s_[:, :, :, OW - max(pr, 0):]):
            y[sl] = value
    return y, PadCtx(x.shape, pt, pl, code)


def pad_backward(ctx, gy, needs=None):
    """(d x,): each output's gradient folded back onto the pixel it copied."""
    if not wants(needs, 1)[0]:
        return (None,)
    gx = empty(ctx.x_shape, gy.dtype)
    _pad.pad2d_backward(gy, gx, ctx.pt, ctx.pl, ctx.code, nthreads())
    return (gx,)
