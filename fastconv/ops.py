"""Composable ops on Tensors (and plain arrays): what a forward written in Python needs
between layers.  On Tensors each call records one tape node; on arrays it is the
plain NumPy result.  Also reached as Tensor methods and operators (``a + b``,
``x[:, :16]``, ``x.mean((2, 3), keepdim=True)``)."""
from . import autograd
from .autograd import Tensor, apply, record
from .functional import compose as C

__all__ = ["add", "sub", "mul", "div", "sum", "mean", "reshape", "flatten", "permute",
           "getitem", "cat", "stack", "split", "chunk", "softmax", "log_softmax", "interpolate",
           "pad"]


def add(a, b):
    """a + b, broadcasting like torch."""
    return apply(C.add, C.add_backward, a, b, name="add")


def sub(a, b):
    """a - b, broadcasting like torch."""
    return apply(C.sub, C.sub_backward, a, b, name="sub")


def mul(a, b):
    """a * b, broadcasting like torch (e.g. a per-channel gate (N, C, 1, 1))."""
    return apply(C.mul, C.mul_backward, a, b, name="mul")


def div(a, b):
    """a / b, broadcasting like torch."""
    return apply(C.div, C.div_backward, a, b, name="div")


def sum(x, dim=None, keepdim=False):  # noqa: A001 - torch's name
    """Sum over dim (int, tuple, or None for all)."""
    return apply(C.sum, C.sum_backward, x, dim=dim, keepdim=keepdim, name="sum")


def mean(x, dim=None, keepdim=False):
    """Mean over dim (int, tuple, or None for all)."""
    return apply(C.mean, C.mean_backward, x, dim=dim, keepdim=keepdim, name="mean")


def reshape(x, *shape):
    """x viewed as shape (``view`` too)."""
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return apply(C.reshape, C.reshape_backward, x, shape=tuple(shape), name="reshape")


def flatten(x, start_dim=0, end_dim=-1):
    """Dims start_dim..end_dim multiplied into one, like torch.flatten."""
    shp = x.shape
    nd = len(shp)
    s, e = start_dim % max(nd, 1), end_dim % max(nd, 1)
    return reshape(x, tuple(shp[:s]) + (_prod(shp[s:e + 1]),) + tuple(shp[e + 1:]))


def _prod(v):
    out = 1
    for n in v:
        out *= int(n)
    return out


def permute(x, *dims):
    """x with its axes reordered."""
    dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
    return apply(C.permute, C.permute_backward, x, dims=tuple(dims), name="permute")


def getitem(x, index):
    """x[index]: channel slices, crops, integer indexing."""
    return apply(C.getitem, C.getitem_backward, x, index=index, name="getitem")


def _many(forward, backward, xs, name, **kw):
    xs = list(xs)
    arrays = [a.data if isinstance(a, Tensor) else a for a in xs]
    if autograd._profiler is not None:
        out, ctx = autograd.timed(forward, name, arrays, **kw)
    else:
        out, ctx = forward(arrays, **kw)
    if not any(isinstance(a, Tensor) for a in xs):
        return out
    return record(backward, ctx, xs, out, name, call=((xs,), kw))


def cat(tensors, dim=0):
    """Concatenate along dim (torch.cat): a U-Net decoder's skip connection."""
    return _many(C.cat, C.cat_backward, tensors, "cat", dim=dim)


def stack(tensors, dim=0):
    """Join along a new axis dim (torch.stack)."""
    return _many(C.stack, C.stack_backward, tensors, "stack", dim=dim)


def split(x, split_size_or_sections, dim=0):
    """torch.split: a tuple of pieces along dim."""
    return apply(C.split, C.split_backward, x, split_size_or_sections=split_size_or_sections,
                 dim=dim, name="split")


def chunk(x, chunks, dim=0):
    """torch.chunk: ``chunks`` near-equal pieces along dim."""
    return apply(C.chunk, C.chunk_backward, x, chunks=chunks, dim=dim, name="chunk")


def softmax(x, dim):
    """Softmax along dim."""
    return apply(C.softmax, C.softmax_backward, x, dim=dim, name="softmax")


def log_softmax(x, dim):
    """Log-softmax along dim."""
    return apply(C.log_softmax, C.log_softmax_backward, x, dim=dim, name="log_softmax")


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Resize (N, C, H, W) (torch.nn.functional.interpolate): the functional Upsample,
    'nearest' or 'bilinear', with ``size`` or a (fractional) ``scale_factor``."""
    from .nn import Upsample
    return Upsample(size, scale_factor, mode, align_corners)(x)


def pad(x, pad, mode="constant", value=0.0):
    """torch.nn.functional.pad of (N, C, H, W): pad = (left, right, top, bottom);
    'constant' (value; negative pads crop), 'reflect', 'replicate', 'circular'."""
    from .functional.pad import pad as _pad, pad_backward
    return apply(_pad, pad_backward, x, pads=tuple(pad), mode=mode, value=value, name="pad")
