"""Losses: softmax cross-entropy, forward and backward."""
from typing import NamedTuple

import numpy as np

from .._kernels import _loss
from ._common import empty, empty_like, nthreads, wants


class CrossEntropyCtx(NamedTuple):
    probs: np.ndarray           # (N, C) softmax
    target: np.ndarray          # (N,) int64
    label_smoothing: float


def cross_entropy(logits, target, label_smoothing=0.0):
    """Mean softmax cross-entropy; ``(loss as a Python float, ctx)``.
    logits (N, C); target (N,) int64 in [0, C)."""
    N = logits.shape[0]
    probs = empty_like(logits)
    losses = empty(N)
    _loss.cross_entropy(logits, target, float(label_smoothing), probs, losses, nthreads())
    loss = float(np.sum(losses) / N) if N else float("nan")
    return loss, CrossEntropyCtx(probs, target, float(label_smoothing))


def cross_entropy_backward(ctx, grad_output=1.0, needs=None):
    """Gradients w.r.t. (logits, target): (d loss / d logits * grad_output, None)."""
    if not wants(needs, 2)[0]:
        return None, None
    probs, target, eps = ctx
    g = empty_like(probs)
    N = probs.shape[0]
    _loss.cross_entropy_backward(probs, target, eps, 1.0 / max(N, 1), g, nthreads())
    if grad_output != 1.0:
        g *= np.asarray(grad_output, g.dtype)
    return g, None
