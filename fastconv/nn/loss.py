"""CrossEntropyLoss."""
import numpy as np

from .. import _shape
from .. import functional as F
from .module import Module


class CrossEntropyLoss(Module):
    """Mean softmax cross-entropy over the batch, torch's label_smoothing rule.

    ``loss = crit(logits, target)``: logits (N, C) float, target (N,) int class
    indices; returns a Python float.  ``crit.backward()`` returns d loss / d logits."""

    def __init__(self, label_smoothing=0.0):
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], "
                             f"got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits, target):
        name = type(self).__name__
        logits = _shape.as_input(name, logits, 2, "(N, C)")
        target = np.asarray(target)
        if target.dtype.kind not in "iu":
            raise TypeError(f"{name}: target must hold integer class indices, got dtype "
                            f"{target.dtype}")
        if target.shape != (logits.shape[0],):
            raise ValueError(f"{name}: expected target of shape ({logits.shape[0]},) for logits "
                             f"of shape {logits.shape}, got {target.shape}")
        C = logits.shape[1]
        if target.size and (target.min() < 0 or target.max() >= C):
            raise ValueError(f"{name}: target values must be in [0, {C}), got values in "
                             f"[{target.min()}, {target.max()}]")
        loss, ctx = F.cross_entropy(logits, np.ascontiguousarray(target, np.int64),
                                    self.label_smoothing)
        self._remember(np.float64(loss), ctx)
        return loss

    _leaf = True        # on a Tensor: the loss is a 0-d Tensor with a tape node

    def backward(self, grad_output=1.0):
        """d loss / d logits, shape (N, C), times the scalar grad_output."""
        ctx, g = self._take_ctx(grad_output)
        return self._backward(ctx, g, (True,))[0]

    def _backward(self, ctx, g, needs):
        return F.cross_entropy_backward(ctx, float(g), (needs[0], False))[:1]

    def extra_repr(self):
        return f"label_smoothing={self.label_smoothing}" if self.label_smoothing else ""
