"""Ops to compose networks with: arithmetic with torch's broadcasting, reductions,
reshapes, concatenation and splitting, channel slicing, softmax.  Same contract as
every functional op: ``op(...) -> (out, ctx)``, ``op_backward(ctx, grad, needs)``.

These are memory-bound NumPy passes (one read and one write per element); the
compute-heavy layers have compiled kernels."""
import builtins
from typing import NamedTuple, Tuple

import numpy as np

from .._kernels import _memory
from ._common import empty, nthreads, wants


def _unbroadcast(g, shape):
    """Sum g over the axes broadcasting added or stretched, back to ``shape``."""
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape)
                                      if n == 1 and g.shape[i + lead] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape) if axes else g.reshape(shape)


def _result_dtype(a, b):
    dt = np.result_type(a, b)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"arithmetic: expected float32 or float64 operands, got "
                        f"{np.asarray(a).dtype} and {np.asarray(b).dtype}")
    return dt


class BinaryCtx(NamedTuple):
    a: object               # the operands a product/quotient's backward needs (else None)
    b: object
    a_shape: Tuple[int, ...]
    b_shape: Tuple[int, ...]


def _shape_of(v):
    return np.shape(v)


def _binary(name, a, b, fn, keep):
    try:
        dt = _result_dtype(a, b)
        out = fn(np.asarray(a, dtype=dt) if isinstance(a, np.ndarray) else a,
                 np.asarray(b, dtype=dt) if isinstance(b, np.ndarray) else b)
    except ValueError as e:
        raise ValueError(f"{name}: cannot broadcast shapes {_shape_of(a)} and {_shape_of(b)}: "
                         f"{e}") from None
    out = np.asarray(out, dtype=dt)
    return out, BinaryCtx(a if keep else None, b if keep else None, _shape_of(a), _shape_of(b))


def add(a, b):
    """a + b, broadcasting like torch; ``(out, ctx)``."""
    return _binary("add", a, b, np.add, False)


def add_backward(ctx, g, needs=None):
    na, nb = wants(needs, 2)
    return (_unbroadcast(g, ctx.a_shape) if na else None,
            _unbroadcast(g, ctx.b_shape) if nb else None)


def sub(a, b):
    """a - b, broadcasting like torch; ``(out, ctx)``."""
    return _binary("sub", a, b, np.subtract, False)


def sub_backward(ctx, g, needs=None):
    na, nb = wants(needs, 2)
    return (_unbroadcast(g, ctx.a_shape) if na else None,
            _unbroadcast(-g, ctx.b_shape) if nb else None)


def mul(a, b):
    """a * b, broadcasting like torch; ``(out, ctx)``."""
    return _binary("mul", a, b, np.multiply, True)


def mul_backward(ctx, g, needs=None):
    na, nb = wants(needs, 2)
    return (_unbroadcast(g * ctx.b, ctx.a_shape) if na else None,
            _unbroadcast(g * ctx.a, ctx.b_shape) if nb else None)


def div(a, b):
    """a / b, broadcasting like torch; ``(out, ctx)``."""
    return _binary("div", a, b, np.divide, True)


def div_backward(ctx, g, needs=None):
    na, nb = wants(needs, 2)
    return (_unbroadcast(g / ctx.b, ctx.a_shape) if na else None,
            _unbroadcast(-g * ctx.a / (ctx.b * ctx.b), ctx.b_shape) if nb else None)


class ReduceCtx(NamedTuple):
    shape: Tuple[int, ...]
    axes: Tuple[int, ...]
    keepdim: bool
    count: int


def _axes(dim, ndim, name):
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if not -ndim <= d < max(ndim, 1):
            raise ValueError(f"{name}: dim {d} out of range for a {ndim}-D input")
        out.append(d % max(ndim, 1))
    return tuple(sorted(set(out)))


def sum(x, dim=None, keepdim=False):  # noqa: A001 - torch's name
    """Sum over dim (int, tuple or None for all); ``(out, ctx)``."""
    axes = _axes(dim, x.ndim, "sum")
    out = np.asarray(x.sum(axis=axes, keepdims=keepdim))
    return out, ReduceCtx(x.shape, axes, keepdim, 1)


def sum_backward(ctx, g, needs=None):
    if not wants(needs, 1)[0]:
        return (None,)
    if g.size == 1:                               # a full reduction: one value everywhere
        return (np.full(ctx.shape, g.reshape(()) / ctx.count, dtype=g.dtype),)
    if not ctx.keepdim:
        g = np.expand_dims(g, ctx.axes)
    return (np.array(np.broadcast_to(g, ctx.shape) / ctx.count, dtype=g.dtype),)


def mean(x, dim=None, keepdim=False):
    """Mean over dim (int, tuple or None for all); ``(out, ctx)``."""
    axes = _axes(dim, x.ndim, "mean")
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    out = np.asarray(x.mean(axis=axes, keepdims=keepdim), dtype=x.dtype)
    return out, ReduceCtx(x.shape, axes, keepdim, count)


mean_backward = sum_backward


class ShapeCtx(NamedTuple):
    shape: Tuple[int, ...]
    aux: object = None


def reshape(x, shape):
    """x viewed as shape (one -1 allowed); ``(out, ctx)``."""
    try:
        out = x.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot view an input of shape {x.shape} "
                         f"({x.size} elements) as {tuple(shape)}") from None
    return out, ShapeCtx(x.shape)


def reshape_backward(ctx, g, needs=None):
    return (g.reshape(ctx.shape) if wants(needs, 1)[0] else None,)


def permute(x, dims):
    """x with its axes reordered (a copy, C-contiguous); ``(out, ctx)``."""
    dims = tuple(int(d) % max(x.ndim, 1) for d in dims)
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of {x.ndim} axes")
    return np.ascontiguousarray(x.transpose(dims)), ShapeCtx(x.shape, dims)


def permute_backward(ctx, g, needs=None):
    if not wants(needs, 1)[0]:
        return (None,)
    return (np.ascontiguousarray(g.transpose(np.argsort(ctx.aux))),)


def getitem(x, index):
    """x[index] (basic slicing and integer indexing: channel slices, crops); a copy."""
    out = np.array(x[index], copy=True)
    return out, ShapeCtx(x.shape, index)


def getitem_backward(ctx, g, needs=None):
    if not wants(needs, 1)[0]:
        return (None,)
    gx = np.zeros(ctx.shape, g.dtype)
    np.add.at(gx, ctx.aux, g) if _fancy(ctx.aux) else gx.__setitem__(ctx.aux, g)
    return (gx,)


def _fancy(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (list, np.ndarray)) for p in parts)


class CatCtx(NamedTuple):
    dim: int
    sizes: Tuple[int, ...]


def cat(xs, dim=0):
    """Concatenate arrays of one shape but along dim; ``(out, ctx)`` (U-Net skips)."""
    xs = list(xs)
    if not xs:
        raise ValueError("cat: expected a non-empty sequence of arrays")
    nd = xs[0].ndim
    if nd == 0 or not -nd <= dim < nd:
        raise ValueError(f"cat: dim {dim} is out of range for arrays of {nd} dimensions")
    d = dim % nd
    for i, a in enumerate(xs):
        if a.ndim != nd or a.shape[:d] + a.shape[d + 1:] != xs[0].shape[:d] + xs[0].shape[d + 1:]:
            raise ValueError(f"cat: array {i} has shape {a.shape}; every array must have shape "
                             f"{xs[0].shape} except along dim {dim}")
    dt = np.result_type(*xs)
    shape = list(xs[0].shape)
    shape[d] = builtins.sum(a.shape[d] for a in xs)
    out = empty(tuple(shape), dt)
    # each input is `outer` rows of size_i * inner values, landing side by side in out's
    # rows: one threaded copy per input
    outer, inner = _around(shape, d)
    row, off = shape[d] * inner * dt.itemsize, 0
    for a in xs:
        part = a.shape[d] * inner * dt.itemsize
        _memory.copy_rows(np.ascontiguousarray(a, dt), 0, part, out, off, row, part, outer,
                          nthreads())
        off += part
    return out, CatCtx(d, tuple(a.shape[d] for a in xs))


def _around(shape, d):
    """(values before axis d, values after it): the rows and row pieces of a cat."""
    return int(np.prod(shape[:d], dtype=np.int64)), int(np.prod(shape[d + 1:], dtype=np.int64))


def cat_backward(ctx, g, needs=None):
    needs = wants(needs, len(ctx.sizes))
    g = np.ascontiguousarray(g)
    shape = g.shape
    outer, inner = _around(shape, ctx.dim)
    row, off, grads = shape[ctx.dim] * inner * g.itemsize, 0, []
    for size, n in zip(ctx.sizes, needs):
        part = size * inner * g.itemsize
        if n:
            gi = empty(shape[:ctx.dim] + (size,) + shape[ctx.dim + 1:], g.dtype)
            _memory.copy_rows(g, off, row, gi, 0, part, part, outer, nthreads())
            grads.append(gi)
        else:
            grads.append(None)
        off += part
    return tuple(grads)


def stack(xs, dim=0):
    """Join arrays of one shape along a new axis dim; ``(out, ctx)``."""
    xs = list(xs)
    if not xs or any(a.shape != xs[0].shape for a in xs):
        raise ValueError(f"stack: expected arrays of one shape, got "
                         f"{[a.shape for a in xs]}")
    d = dim % (xs[0].ndim + 1)
    return np.stack(xs, axis=d), CatCtx(d, (1,) * len(xs))


def stack_backward(ctx, g, needs=None):
    needs = wants(needs, len(ctx.sizes))
    return tuple(np.ascontiguousarray(np.take(g, i, axis=ctx.dim)) if n else None
                 for i, n in enumerate(needs))


def split(x, split_size_or_sections, dim=0):
    """torch.split: chunks of split_size (the last smaller) or of the listed sizes;
    ``(tuple of arrays, ctx)``."""
    d = dim % max(x.ndim, 1)
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        if s < 1:
            raise ValueError(f"split: split_size must be >= 1, got {s}")
        sizes = [s] * (n // s) + ([n % s] if n % s else [])
    else:
        sizes = [int(v) for v in split_size_or_sections]
        if builtins.sum(sizes) != n or min(sizes, default=0) < 0:
            raise ValueError(f"split: sizes {sizes} must add up to {n} (dim {dim})")
    parts = np.split(x, np.cumsum(sizes)[:-1], axis=d)
    return tuple(np.ascontiguousarray(p) for p in parts), CatCtx(d, tuple(sizes))


def split_backward(ctx, gs, needs=None):
    if not wants(needs, 1)[0]:
        return (None,)
    gs = gs if isinstance(gs, tuple) else (gs,)
    ref = next(g for g in gs if g is not None)
    full = []
    for g, s in zip(gs, ctx.sizes):
        if g is None:
            shape = list(ref.shape)
            shape[ctx.dim] = s
            g = np.zeros(shape, ref.dtype)
        full.append(g)
    return (np.concatenate(full, axis=ctx.dim),)


def chunk(x, chunks, dim=0):
    """torch.chunk: ``chunks`` pieces of ceil(n / chunks) (fewer if n is small)."""
    n = x.shape[dim % max(x.ndim, 1)]
    if chunks < 1:
        raise ValueError(f"chunk: chunks must be >= 1, got {chunks}")
    return split(x, max(-(-n // chunks), 1), dim)


chunk_backward = split_backward


class SoftmaxCtx(NamedTuple):
    y: np.ndarray               # softmax, or log-softmax
    dim: int


def softmax(x, dim):
    """exp(x) / sum exp(x) along dim (max-shifted); ``(out, ctx)``."""
    z = x - x.max(axis=dim, keepdims=True)
    e = np.exp(z)
    y = e / e.sum(axis=dim, keepdims=True)
    return y, SoftmaxCtx(y, dim)


def softmax_backward(ctx, g, needs=None):
    if not wants(needs, 1)[0]:
        return (None,)
    y = ctx.y
    return (y * (g - (g * y).sum(axis=ctx.dim, keepdims=True)),)


def log_softmax(x, dim):
    """x - logsumexp(x) along dim; ``(out, ctx)``."""
    z = x - x.max(axis=dim, keepdims=True)
    y = z - np.log(np.exp(z).sum(axis=dim, keepdims=True))
    return y, SoftmaxCtx(y, dim)


def log_softmax_backward(ctx, g, needs=None):
    if not wants(needs, 1)[0]:
        return (None,)
    return (g - np.exp(ctx.y) * g.sum(axis=ctx.dim, keepdims=True),)
