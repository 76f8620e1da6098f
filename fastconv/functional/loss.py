"""Losses, forward and backward, torch's definitions and reductions.

Each returns ``(loss, ctx)``: loss a Python float for reduction 'mean'/'sum', an array
for 'none'.  ``*_backward(ctx, grad_output=1.0, needs)`` returns the gradients w.r.t.
(input, target).  Cross-entropy runs compiled (the plain classification case, and
per-pixel logits with weight, ignore_index, smoothing and any reduction in one pass
that also checks and counts the targets); the other losses are vectorised NumPy in
float64."""
from typing import NamedTuple, Optional

import numpy as np

from .._kernels import _loss
from ._common import empty, empty_like, nthreads, wants

REDUCTIONS = ("mean", "sum", "none")


class CrossEntropyCtx(NamedTuple):
    probs: np.ndarray           # (N, C) softmax (the compiled case)
    target: np.ndarray          # (N,) int64
    label_smoothing: float


class LossCtx(NamedTuple):
    """The general losses: their local derivatives, ready to scale by grad_output."""
    grad: Optional[np.ndarray]          # d loss / d input (reduced: for grad_output 1)
    grad_target: Optional[np.ndarray]   # d loss / d target, or None
    reduction: str
    layout: tuple                       # how to put a per-row grad back: (shape, moved)


def _reduce(per, denom, reduction):
    if reduction == "none":
        return per
    total = float(per.sum())
    if reduction == "mean":
        return total / denom if denom else float("nan")
    return total


def cross_entropy(logits, target, label_smoothing=0.0, weight=None, ignore_index=-100,
                  reduction="mean"):
    """Softmax cross-entropy of logits (N, C) or (N, C, d1, ...) (class axis 1) against
    integer class indices target (N,) or (N, d1, ...).  weight (C,): per-class weights;
    targets equal to ignore_index count for nothing; 'mean' divides by the summed
    weights of the counted targets, as torch."""
    N, C = logits.shape[:2]
    if C == 0:
        raise ValueError(f"cross_entropy: expected logits with at least one class (axis 1), "
                         f"got shape {logits.shape}")
    # (the kernel indexes by target: only when no target is ignore_index, whose value
    # may lie outside [0, C))
    if (logits.ndim == 2 and weight is None and reduction == "mean"
            and not np.any(target == ignore_index)):
        if target.size and (target.min() < 0 or target.max() >= C):   # never index outside
            _bad_targets(target, C, ignore_index)
        probs = empty_like(logits)
        losses = empty(N)
        _loss.cross_entropy(logits, target, float(label_smoothing), probs, losses, nthreads())
        loss = float(np.sum(losses) / N) if N else float("nan")
        return loss, CrossEntropyCtx(probs, target, float(label_smoothing))
    # the general case (per-pixel logits, weight, ignore_index, any reduction): compiled,
    # pixel maths in float64; the targets checked, weighted and counted in the same pass
    t = target.reshape(N, -1)
    if t.dtype != np.int64 or not t.flags.c_contiguous:
        t = np.ascontiguousarray(t, np.int64)
    w = np.ones(C) if weight is None else np.ascontiguousarray(weight, np.float64)
    x3 = np.ascontiguousarray(logits).reshape(N, C, -1)
    per = empty(t.shape)
    grad = empty_like(x3)
    total, denom, bad = _loss.cross_entropy_pixels(x3, t, w, int(ignore_index),
                                                   float(label_smoothing), per, grad, nthreads())
    if bad:
        _bad_targets(target, C, ignore_index)
    if reduction == "mean":         # every target ignored: loss nan, gradient 0 (torch's)
        if denom and denom != 1.0:
            grad *= np.asarray(1.0 / denom, grad.dtype)
        loss = total / denom if denom else float("nan")
    else:
        loss = total if reduction == "sum" else per.reshape(target.shape).astype(logits.dtype)
    return loss, LossCtx(grad.reshape(logits.shape), None, reduction, (logits.shape, False))


def _bad_targets(target, C, ignore_index):
    counted = target[target != ignore_index]
    raise ValueError(f"cross_entropy: target values must be in [0, {C}) or "
                     f"ignore_index, got [{counted.min()}, {counted.max()}]")


def cross_entropy_backward(ctx, grad_output=1.0, needs=None):
    """Gradients w.r.t. (logits, target): (d loss / d logits * grad_output, None)."""
    if not wants(needs, 2)[0]:
        return None, None
    if isinstance(ctx, CrossEntropyCtx):
        probs, target, eps = ctx
        g = empty_like(probs)
        N = probs.shape[0]
        _loss.cross_entropy_backward(probs, target, eps, 1.0 / max(N, 1), g, nthreads())
        if np.ndim(grad_output) or grad_output != 1.0:
            g *= np.asarray(grad_output, g.dtype)
        return g, None
    return _rows_back(ctx, grad_output), None


def _rows_back(ctx, grad_output):
    """A per-row (class-last) gradient scaled by grad_output, in the input's layout
    (a gradient kept in the input's layout: scaled per position)."""
    shape, moved = ctx.layout
    go = np.asarray(grad_output, ctx.grad.dtype)
    if not moved:
        if ctx.reduction == "none" and go.ndim:
            return ctx.grad * go.reshape((shape[0], 1) + tuple(shape[2:]))
        return ctx.grad * go
    g = ctx.grad * (go.reshape(-1, 1) if ctx.reduction == "none" else go)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.ascontiguousarray(np.moveaxis(g.reshape(moved), -1, 1))


def nll_loss(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities logp (N, C, ...) at target indices."""
    C = logp.shape[1]
    x = np.moveaxis(logp, 1, -1).reshape(-1, C)
    t = target.reshape(-1)
    valid = t != ignore_index
    if valid.any() and (t[valid].min() < 0 or t[valid].max() >= C):
        raise ValueError(f"nll_loss: target values must be in [0, {C}) or ignore_index")
    tt = np.where(valid, t, 0)
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    wt = w[tt] * valid
    rows = np.arange(len(t))
    per = -x[rows, tt].astype(np.float64) * wt
    grad = np.zeros(x.shape)
    grad[rows, tt] = -wt
    denom = wt.sum()
    if reduction == "mean":
        grad /= denom
    loss = _reduce(per.reshape(target.shape).astype(logp.dtype), denom, reduction)
    return loss, LossCtx(grad.astype(logp.dtype), None, reduction, (logp.shape, True))


def nll_loss_backward(ctx, grad_output=1.0, needs=None):
    """Gradients w.r.t. (logp, target)."""
    return (_rows_back(ctx, grad_output) if wants(needs, 2)[0] else None), None


def _elementwise_loss(x, y, per, dx, dy, reduction):
    denom = per.size
    if reduction == "mean":
        dx, dy = dx / max(denom, 1), dy / max(denom, 1)
        loss = float(per.sum()) / denom if denom else float("nan")
    else:
        loss = per.astype(x.dtype) if reduction == "none" else float(per.sum())
    return loss, LossCtx(dx.astype(x.dtype), dy.astype(x.dtype), reduction, (x.shape, False))


def _elementwise_back(ctx, grad_output, needs):
    need_x, need_y = wants(needs, 2)
    go = np.asarray(grad_output, ctx.grad.dtype)
    return (ctx.grad * go if need_x else None, ctx.grad_target * go if need_y else None)


def bce_with_logits(x, y, weight=None, pos_weight=None, reduction="mean"):
    """Binary cross-entropy of sigmoid(x) against y in [0, 1], computed stably from the
    logits: -w [pos_weight * y * log s(x) + (1 - y) log(1 - s(x))]."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    w = 1.0 if weight is None else weight.astype(np.float64)
    pw = 1.0 if pos_weight is None else pos_weight.astype(np.float64)
    log_s = -np.logaddexp(0.0, -x64)            # log sigmoid(x)
    log_1s = -np.logaddexp(0.0, x64)            # log (1 - sigmoid(x))
    per = -w * (pw * y64 * log_s + (1 - y64) * log_1s)
    s = np.exp(log_s)
    dx = w * (s * (1 - y64 + pw * y64) - pw * y64)
    dy = -w * (pw * log_s - log_1s)
    return _elementwise_loss(x, y, np.broadcast_to(per, x.shape), np.broadcast_to(dx, x.shape),
                             np.broadcast_to(dy, x.shape), reduction)


def mse_loss(x, y, reduction="mean"):
    """(x - y)^2."""
    d = x.astype(np.float64) - y
    return _elementwise_loss(x, y, d * d, 2 * d, -2 * d, reduction)


def l1_loss(x, y, reduction="mean"):
    """|x - y|."""
    d = x.astype(np.float64) - y
    return _elementwise_loss(x, y, np.abs(d), np.sign(d), -np.sign(d), reduction)


def smooth_l1_loss(x, y, beta=1.0, reduction="mean"):
    """0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (d = x - y)."""
    d = x.astype(np.float64) - y
    a = np.abs(d)
    small = a < beta
    per = np.where(small, 0.5 * d * d / (beta if beta else 1), a - 0.5 * beta)
    dx = np.where(small, d / (beta if beta else 1), np.sign(d))
    return _elementwise_loss(x, y, per, dx, -dx, reduction)


bce_with_logits_backward = mse_loss_backward = l1_loss_backward = smooth_l1_loss_backward = \
    _elementwise_back
