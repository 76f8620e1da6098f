"""Losses: CrossEntropyLoss, NLLLoss, BCEWithLogitsLoss, MSELoss, L1Loss, SmoothL1Loss.

``loss = crit(input, target)`` returns a Python float (reduction 'mean' or 'sum') or
an array ('none'); ``crit.backward(grad_output=1.0)`` returns d loss / d input.  On a
``fastconv.Tensor`` input the loss is a Tensor recorded on the tape: ``loss.backward()``.
"""
import numbers

import numpy as np

from .. import _shape
from .. import functional as F
from ..functional.loss import REDUCTIONS
from .module import Module


class _Loss(Module):
    _leaf = True        # on a Tensor: the loss is a Tensor with a tape node

    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of "
                             f"{list(REDUCTIONS)}, got {reduction!r}")
        self.reduction = reduction

    def _finish(self, loss, ctx):
        self._remember(np.asarray(loss), ctx)
        return loss

    def backward(self, grad_output=1.0):
        """d loss / d input (the input's shape), times grad_output (a scalar, or the
        loss's shape for reduction='none')."""
        ctx, g = self._take_ctx(grad_output)
        return self._backward(ctx, g, (True,))[0]

    def _weight(self, weight, what="weight"):
        if weight is None:
            return None
        if isinstance(weight, numbers.Number):
            raise TypeError(f"{type(self).__name__}: {what} must be an array, got {weight!r}"
                            + ("; pass label_smoothing by keyword"
                               if isinstance(self, CrossEntropyLoss) else ""))
        w = np.asarray(weight)
        if w.dtype.kind not in "fiu":
            raise TypeError(f"{type(self).__name__}: {what} must be numeric, got {w.dtype}")
        return np.ascontiguousarray(w, np.float32)     # a buffer, float32 as torch's

    def _pair(self, x, target):
        """input and target of one float dtype and one shape (element-wise losses)."""
        name = type(self).__name__
        x = _shape.as_input(name, x, np.ndim(x), "(N, *)")
        t = np.asarray(target)
        if t.dtype.kind not in "fiub":
            raise TypeError(f"{name}: target must be numeric, got dtype {t.dtype}")
        if t.shape != x.shape:
            raise ValueError(f"{name}: target shape {t.shape} must equal the input's {x.shape}")
        return x, np.ascontiguousarray(t, x.dtype)

    def extra_repr(self):
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


class _ClassLoss(_Loss):
    """Cross-entropy family: input (N, C) or (N, C, d1, ...) or (C,), class indices."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.register_buffer("weight", self._weight(weight))
        self.ignore_index = int(ignore_index)

    def _check(self, x, target):
        name = type(self).__name__
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        x = _shape.as_input(name, x, max(x.ndim, 1), "(N, C, ...)")
        t = np.asarray(target)
        if t.dtype.kind not in "iu":
            raise TypeError(f"{name}: target must hold integer class indices, got dtype "
                            f"{t.dtype}")
        unbatched = x.ndim == 1
        if unbatched:                               # (C,) with a scalar target, as torch
            x, t = x[None], t.reshape(1) if t.ndim == 0 else t
        want = (x.shape[0],) + x.shape[2:]
        if t.shape != want:
            raise ValueError(f"{name}: expected target of shape {want} for input of shape "
                             f"{x.shape}, got {t.shape}")
        C = x.shape[1]
        if self.weight is not None and self.weight.shape != (C,):
            raise ValueError(f"{name}: weight must have shape ({C},) for {C} classes, got "
                             f"{self.weight.shape}")
        counted = t[t != self.ignore_index]
        if counted.size and (counted.min() < 0 or counted.max() >= C):
            raise ValueError(f"{name}: target values must be in [0, {C}) (or ignore_index "
                             f"{self.ignore_index}), got values in [{counted.min()}, "
                             f"{counted.max()}]")
        return np.ascontiguousarray(x), np.ascontiguousarray(t, np.int64), unbatched

    def forward(self, x, target):
        x, t, unbatched = self._check(x, target)
        loss, ctx = self._op(x, t)
        if unbatched and self.reduction == "none":
            loss = loss[0]
        return self._finish(loss, (ctx, unbatched))

    def _backward(self, ctx, g, needs):
        ctx, unbatched = ctx
        if unbatched and self.reduction == "none":
            g = np.reshape(g, (1,))
        gx = self._op_backward(ctx, g, (needs[0], False))[0]
        return (gx[0] if unbatched and gx is not None else gx,)


class CrossEntropyLoss(_ClassLoss):
    """Softmax cross-entropy, torch.nn.CrossEntropyLoss's rules: logits (N, C) or
    (N, C, H, W) (per-pixel classes) and integer targets (N,) or (N, H, W); ``weight``
    per class, targets equal to ``ignore_index`` ignored, ``label_smoothing``, and
    ``reduction`` 'mean' (divided by the counted targets' weights), 'sum' or 'none'."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(weight, ignore_index, reduction)
        if not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], "
                             f"got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def _op(self, x, t):
        return F.cross_entropy(x, t, self.label_smoothing, self.weight, self.ignore_index,
                               self.reduction)

    _op_backward = staticmethod(F.cross_entropy_backward)

    def extra_repr(self):
        s = super().extra_repr()
        if self.label_smoothing:
            s = ", ".join(filter(None, [s, f"label_smoothing={self.label_smoothing}"]))
        return s


class NLLLoss(_ClassLoss):
    """Negative log-likelihood of log-probabilities (N, C, ...) at integer targets,
    torch.nn.NLLLoss's weight / ignore_index / reduction rules."""

    def _op(self, x, t):
        return F.nll_loss(x, t, self.weight, self.ignore_index, self.reduction)

    _op_backward = staticmethod(F.nll_loss_backward)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits (sigmoid inside, computed stably): the natural
    loss for person / no person.  ``pos_weight`` (one per class, the last axis) scales
    the positive term, e.g. negatives / positives for rare positives; ``weight``
    rescales each element (broadcast)."""

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        self.register_buffer("weight", self._weight(weight))
        self.register_buffer("pos_weight", self._weight(pos_weight, "pos_weight"))

    def forward(self, logits, target):
        x, y = self._pair(logits, target)
        for what, w in (("weight", self.weight), ("pos_weight", self.pos_weight)):
            if w is not None:
                try:
                    np.broadcast_shapes(w.shape, x.shape)
                except ValueError:
                    raise ValueError(f"BCEWithLogitsLoss: {what} of shape {w.shape} does not "
                                     f"broadcast to the input's {x.shape}") from None
        return self._finish(*F.bce_with_logits(x, y, self.weight, self.pos_weight,
                                               self.reduction))

    def _backward(self, ctx, g, needs):
        return F.bce_with_logits_backward(ctx, g, (needs[0], False))[:1]


class MSELoss(_Loss):
    """Mean squared error (x - y)^2, torch.nn.MSELoss."""

    def forward(self, x, target):
        return self._finish(*F.mse_loss(*self._pair(x, target), self.reduction))

    def _backward(self, ctx, g, needs):
        return F.mse_loss_backward(ctx, g, (needs[0], False))[:1]


class L1Loss(_Loss):
    """Mean absolute error |x - y|, torch.nn.L1Loss."""

    def forward(self, x, target):
        return self._finish(*F.l1_loss(*self._pair(x, target), self.reduction))

    def _backward(self, ctx, g, needs):
        return F.l1_loss_backward(ctx, g, (needs[0], False))[:1]


class SmoothL1Loss(_Loss):
    """Huber-like loss, torch.nn.SmoothL1Loss: quadratic below beta, linear above."""

    def __init__(self, reduction="mean", beta=1.0):
        super().__init__(reduction)
        if not isinstance(beta, numbers.Real) or beta < 0:
            raise ValueError(f"SmoothL1Loss: beta must be >= 0, got {beta!r}")
        self.beta = float(beta)

    def forward(self, x, target):
        return self._finish(*F.smooth_l1_loss(*self._pair(x, target), self.beta,
                                              self.reduction))

    def _backward(self, ctx, g, needs):
        return F.smooth_l1_loss_backward(ctx, g, (needs[0], False))[:1]
