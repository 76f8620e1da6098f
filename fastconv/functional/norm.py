"""Normalisation: batch_norm (and SyncBatchNorm's reduction hooks), group_norm, layer_norm,
forward and backward."""
from typing import NamedTuple, Optional

import numpy as np

from .. import _group
from .._kernels import _memory, _norm
from .._precision import Bf16Saved, keep, restore
from ._common import RELU, empty, empty_like, flat, nthreads, per_channel, relu_code, wants
from .activation import (ACTIVATIONS, ActivationCtx, ReluCtx, activation_backward,
                         relu_backward)


# channels of at most this many values get their statistics and gradients in double (two
# values cancel to eps / (var + eps) of the terms; a few more still lose digits in float32)
EXACT_BELOW = _norm.EXACT_BELOW
# planes below this many values: the bf16 kernels' callers widen them whole
SMALL_PLANE = _norm.SMALL_PLANE_VALUES


class BatchNormCtx(NamedTuple):
    x: np.ndarray
    mean: np.ndarray            # (C,) float64: the batch's (training) or the running mean
    var: Optional[np.ndarray]   # (C,) float64 biased batch variance (training), else None
    invstd: np.ndarray          # (C,) float64
    gamma: np.ndarray           # (C,) float64 (ones without affine)
    training: bool
    y: Optional[np.ndarray]     # the output when ReLU was fused (its mask), else None
    count: int = 0              # values per channel behind the statistics (all processes')
    sync: bool = False          # SyncBatchNorm: the backward's sums go through sync_channel_sums
    process_group: object = None
    relu: int = 0               # the fused activation: 0, RELU or RELU6 (_common.relu_code)
    act_affine: tuple = None    # float32 (scale, shift) the forward applied before it: its
                                # mask is recomputed from x (y is not kept), or None


# ------------------------------------------------------------------ SyncBatchNorm's reductions
# The two places where SyncBatchNorm's per-channel reductions cross processes, over
# ``process_group`` (None: the default group of ``fastconv.distributed.init()``).  In a
# single process they return their arguments, so SyncBatchNorm computes bit for bit what
# BatchNorm2d does.  Across processes every rank gathers every rank's values and sums them
# in rank order, so all ranks hold the same bits whatever the MPI library's algorithm.

def sync_channel_stats(count, mean, var, process_group=None):
    """This process's per-channel statistics -> the whole group's: count values per
    channel, their mean and biased variance ((C,) float64).  Returns (count, mean, var).

    The combination stays two-pass, which a sum / sum-of-squares all-reduce is not (it
    cancels): the global mean M = sum_p count_p mean_p / N, then the centred sum of
    squares sum_p count_p (var_p + (mean_p - M)**2), in rank order."""
    group = _group.resolve(process_group)
    if group is None:
        return count, mean, var
    C = len(mean)
    rows = group.allgather(np.concatenate([[float(count)], mean, var]))
    counts, means, vars_ = rows[:, 0], rows[:, 1:C + 1], rows[:, C + 1:]
    total = 0.0
    acc = np.zeros(C)
    for r in range(len(rows)):
        total += counts[r]
        acc += counts[r] * means[r]
    if total == 0:
        return 0, mean, var
    m = acc / total
    acc = np.zeros(C)
    for r in range(len(rows)):
        acc += counts[r] * (vars_[r] + (means[r] - m) ** 2)
    return int(total), m, acc / total


def sync_channel_sums(sum_dy, sum_dy_xhat, process_group=None):
    """The backward's per-channel sums of dy and dy * xhat ((C,) float64, the caller's
    copies) -> their sums over the group, in rank order, for the input gradient."""
    group = _group.resolve(process_group)
    if group is None:
        return sum_dy, sum_dy_xhat
    both = group.sum(np.concatenate([sum_dy, sum_dy_xhat]))
    return both[:len(sum_dy)], both[len(sum_dy):]


def batch_norm_fold(weight, bias, running_mean, running_var, eps, conv_bias=None,
                    dtype=np.float32, cache=None):
    """An eval BatchNorm after a convolution as one per-channel affine map:
    ``(scale, shift)`` (C,) in dtype with bn(conv(x)) = conv(x) * scale + shift, computed
    in float64 (conv_bias, the convolution's own bias, folded into shift).  weight, bias,
    conv_bias may be None.

    cache: a dict the caller keeps (a layer's).  The factors are then returned from it,
    read-only, while every input holds the bytes they were computed from (one memcmp
    per call: at one frame the fold costs as much as a small convolution); any in-place
    change recomputes them."""
    dtype = np.dtype(dtype)
    arrays = (weight, bias, running_mean, running_var, conv_bias)
    key = (dtype, float(eps))
    if cache is not None:
        hit = cache.get("fold")
        if hit is not None and hit[0] == key and _memory.same_contents(hit[1], arrays):
            return hit[2]
    C = running_mean.shape[0]
    w, b, mean, var, cb = [None if a is None else np.ascontiguousarray(a, dtype)
                           for a in arrays]
    scale, shift = np.empty(C, dtype), np.empty(C, dtype)
    _norm.fold_factors(scale, shift, mean, var, w, b, float(eps), cb)
    if cache is not None:
        scale.setflags(write=False)
        shift.setflags(write=False)
        kept = tuple(None if a is None else np.ascontiguousarray(a).tobytes() for a in arrays)
        cache["fold"] = (key, kept, (scale, shift))
    return scale, shift


def batch_norm(x, weight, bias, eps, running_mean=None, running_var=None, training=True,
               relu=False, sync=False, process_group=None):
    """BatchNorm over every axis but 1, per channel.  x (N, C, *) ((N, C, H, W) or
    (N, C) ...); weight, bias (C,) or None.  Returns ``(y, ctx)``.

    training: batch statistics (ctx.mean, ctx.var and ctx.count: the caller updates its
    running statistics from them).  Otherwise running_mean / running_var normalise.
    relu=True (or "relu") fuses max(., 0) into the normalising pass, relu="relu6" the
    clamp to [0, 6]; the backward masks where the activation passed nothing.
    sync=True (SyncBatchNorm) passes the statistics and the backward's sums through
    sync_channel_stats / sync_channel_sums over process_group."""
    code = relu_code(relu, "batch_norm")
    dt = x.dtype
    C = x.shape[1]
    x3 = per_channel(x)
    nt = nthreads()
    count = x3.shape[0] * x3.shape[2]
    if training:
        mean, var = empty(C), empty(C)
        _norm.channel_stats(x3, mean, var, nt)
        if sync:
            count, mean, var = sync_channel_stats(count, mean, var, process_group)
        invstd = 1.0 / np.sqrt(var + eps)
    else:
        mean, var = running_mean.astype(np.float64), None
        invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    gamma = np.ones(C) if weight is None else weight.astype(np.float64)
    beta = np.zeros(C) if bias is None else bias.astype(np.float64)
    y = empty_like(x)
    scale, shift = (gamma * invstd).astype(dt), beta.astype(dt)
    _norm.channel_affine(x3, per_channel(y), mean.astype(dt), scale, shift, code, nt)
    # under autocast("bf16") the input (and a fused activation's output) are kept as bf16
    xk = keep(x)
    # a float32 activation's mask is recomputed from x in the backward (the forward's own
    # float32 arithmetic: the same mask) instead of keeping y: one array less to keep and
    # one pass less to read.  Channels of few values keep y: their backward, in double,
    # masks first (below)
    from_x = code and dt == np.float32 and xk is x and x3.shape[0] * x3.shape[2] > EXACT_BELOW
    return y, BatchNormCtx(xk, mean, var, invstd, gamma, bool(training),
                           keep(y) if code and not from_x else None, count, bool(sync),
                           process_group, code, (scale, shift) if from_x else None)


def batch_norm_backward(ctx, gy, needs=None):
    """Gradients w.r.t. (x, weight, bias); weight and bias gradients in float64."""
    need_x, need_w, need_b = wants(needs, 3)
    x, mean, _, invstd, gamma, training, y, cnt, sync, group, code, act = ctx
    # bf16-kept x and y (autocast) are read a plane at a time by the _bf16 kernels; small
    # planes are widened whole
    exact = x.shape[0] * int(np.prod(x.shape[2:])) <= EXACT_BELOW
    bits = type(x) is Bf16Saved and x.shape[2:] and np.prod(x.shape[2:]) >= SMALL_PLANE and \
        not exact and (y is None or type(y) is Bf16Saved)
    if not bits:
        x, y = restore(x), restore(y)
    dt = x.dtype
    C = x.shape[1]
    nt = nthreads()
    if y is not None and (dt != np.float32 or exact):
        # fused activation in float64, or channels of few values (whose double loops would
        # branch on the mask): mask first, in the activations' own vectorised kernels
        gy = relu_backward(ReluCtx(y), gy)[0] if code == RELU else \
            activation_backward(ActivationCtx(flat(y), flat(y), ACTIVATIONS["relu6"], 0.0),
                                gy)[0]
        y, code = None, 0
    g3 = per_channel(gy)
    x3 = per_channel(x.bits.reshape(x.shape)) if bits else per_channel(x)
    y3 = None if y is None else per_channel(y.bits.reshape(y.shape)) if bits else per_channel(y)
    sum_dy, sum_dy_xhat = np.empty(C), np.empty(C)
    if bits:
        _norm.bn_backward_reduce_bf16(x3, g3, y3, mean, invstd, sum_dy, sum_dy_xhat, nt,
                                      code)
    else:
        _norm.bn_backward_reduce(x3, g3, y3, mean, invstd, sum_dy, sum_dy_xhat, nt, code,
                                 *(act or (None, None)), exact=exact)
    gx = None
    if need_x:
        if training and cnt > 0:
            # SyncBatchNorm: the input gradient needs the group's sums; the parameter
            # gradients stay this process's (as torch's: data parallelism reduces them)
            s_dy, s_dy_xhat = sync_channel_sums(sum_dy.copy(), sum_dy_xhat.copy(), group) \
                if sync else (sum_dy, sum_dy_xhat)
            b, k = s_dy / cnt, s_dy_xhat / cnt
        else:
            b = k = np.zeros(C)
        gx = empty(x.shape, dt)
        # few values per channel: the terms cancel, so evaluate them in double
        if bits:
            _norm.bn_backward_apply_bf16(x3, g3, y3, mean, gamma * invstd, b, invstd * k,
                                         per_channel(gx), cnt <= EXACT_BELOW, nt, code)
        else:
            _norm.bn_backward_apply(x3, g3, y3, mean, gamma * invstd, b, invstd * k,
                                    per_channel(gx), cnt <= EXACT_BELOW, nt, code,
                                    *(act or (None, None)))
    return gx, sum_dy_xhat if need_w else None, sum_dy if need_b else None



class GroupNormCtx(NamedTuple):
    x: np.ndarray               # (N, C, HW)
    shape: tuple                # x's shape
    gamma: np.ndarray           # (C,) in x's dtype (ones without affine)
    mean: np.ndarray            # (N, G) float64
    invstd: np.ndarray          # (N, G) float64


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each image's channel groups (Wu & He 2018): x (N, C, *) with
    C % num_groups == 0; weight, bias (C,) or None.  Batch-independent (no running
    statistics).  Returns ``(y, ctx)``."""
    N, C = x.shape[:2]
    dt = x.dtype
    x3 = per_channel(x)
    gamma = np.ones(C, dt) if weight is None else np.ascontiguousarray(weight, dt)
    beta = np.zeros(C, dt) if bias is None else np.ascontiguousarray(bias, dt)
    mean, invstd = np.zeros((N, num_groups)), np.zeros((N, num_groups))
    y = empty_like(x)
    _norm.group_norm(x3, gamma, beta, float(eps), per_channel(y), mean, invstd, nthreads())
    return y, GroupNormCtx(x3, x.shape, gamma, mean, invstd)


def group_norm_backward(ctx, gy, needs=None):
    """Gradients w.r.t. (x, weight, bias)."""
    need_x, need_w, need_b = wants(needs, 3)
    N, C = ctx.shape[:2]
    gx = empty(ctx.shape, gy.dtype) if need_x else None
    dgamma, dbeta = np.zeros((N, C)), np.zeros((N, C))
    _norm.group_norm_backward(ctx.x, per_channel(gy), ctx.gamma, ctx.mean, ctx.invstd,
                              per_channel(gx) if need_x else np.empty((0, 0, 0), gy.dtype),
                              dgamma, dbeta, need_x, nthreads())
    return (gx, dgamma.sum(axis=0).astype(gy.dtype) if need_w else None,
            dbeta.sum(axis=0).astype(gy.dtype) if need_b else None)


class LayerNormCtx(NamedTuple):
    gn: GroupNormCtx            # the normalisation, one group per row
    xhat: np.ndarray            # (rows, D): the normalised input (for the weight gradient)
    weight: Optional[np.ndarray]
    shape: tuple


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """torch.nn.functional.layer_norm: normalise over the trailing ``normalized_shape``
    dims of x, then weight * xhat + bias elementwise (weight, bias of that shape or
    None).  Runs on the GroupNorm kernel, one group per row.  ``(y, ctx)``."""
    D = int(np.prod(normalized_shape, dtype=np.int64))
    rows = x.size // D if D else 0
    x3 = np.ascontiguousarray(x).reshape(rows, 1, D)
    xhat, gn = group_norm(x3, 1, None, None, eps)
    xhat = xhat.reshape(rows, D)
    y = xhat if weight is None else xhat * weight.reshape(1, D).astype(x.dtype)
    if bias is not None:
        y = y + bias.reshape(1, D).astype(x.dtype)
    return np.ascontiguousarray(y).reshape(x.shape), LayerNormCtx(gn, xhat, weight, x.shape)


def layer_norm_backward(ctx, gy, needs=None):
    """Gradients w.r.t. (x, weight, bias)."""
    need_x, need_w, need_b = wants(needs, 3)
    rows, D = ctx.xhat.shape
    g2 = gy.reshape(rows, D)
    gw = (g2 * ctx.xhat).sum(axis=0).reshape(ctx.weight.shape) \
        if need_w and ctx.weight is not None else None
    gb = g2.sum(axis=0).reshape(ctx.weight.shape if ctx.weight is not None else (D,)) \
        if need_b else None
    gx = None
    if need_x:
        gxhat = g2 if ctx.weight is None else g2 * ctx.weight.reshape(1, D).astype(gy.dtype)
        gx = group_norm_backward(ctx.gn, np.ascontiguousarray(gxhat).reshape(rows, 1, D),
                                 (True, False, False))[0].reshape(ctx.shape)
    return gx, gw, gb
