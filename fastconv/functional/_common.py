"""Helpers every functional family shares: allocation, casts, reshapes."""
import numpy as np

from .._kernels import _memory, _norm
from .._runtime import get_num_threads as nthreads

empty = _memory.empty       # outputs of >= 1 MiB come from the caching allocator


def empty_like(a):
    return empty(a.shape, a.dtype)


def cast(a, dt):
    return a if a is None or a.dtype == dt else a.astype(dt)


def flat(a):
    return a.reshape(-1)


def per_channel(a):
    """(N, C, ...) -> (N, C, rest) without -1, so an empty batch reshapes too."""
    return a.reshape(a.shape[0], a.shape[1], int(np.prod(a.shape[2:], dtype=np.int64)))


def wants(needs, n):
    """`needs` (a sequence of bools, one per differentiable input, or None for all)
    as an n-tuple."""
    if needs is None:
        return (True,) * n
    if type(needs) is not tuple:                  # the tape and Module pass tuples of bools
        needs = tuple(bool(v) for v in needs)
    if len(needs) != n:
        raise ValueError(f"needs: expected {n} flags (one per input), got {len(needs)}")
    return needs


# a fused activation, as the kernels' epilogues take it: 0 none, 1 ReLU, 2 ReLU6
RELU, RELU6 = 1, 2


def relu_code(relu, layer):
    """False / True (or "relu") / "relu6" -> 0 / RELU / RELU6; anything else a
    ValueError naming the layer."""
    if isinstance(relu, str):
        if relu in ("relu", "relu6"):
            return RELU6 if relu == "relu6" else RELU
        raise ValueError(f"{layer}: relu must be False, True, 'relu' or 'relu6', got "
                         f"{relu!r}")
    return RELU if relu else 0


def channel_sum(g):
    """Sum of g (N, C, ...) over every axis but 1: bias gradients."""
    out = empty(g.shape[1], g.dtype)
    _norm.channel_sum(per_channel(g), out, nthreads())
    return out
