"""Fused optimiser updates, element-wise over a flat parameter, in place (``_`` as
torch's in-place ops): PyTorch's update rules and arithmetic order."""
from .._kernels import _optim
from ._common import nthreads


def sgd_(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    """torch.optim.SGD's step on p (flat, contiguous, updated in place).

    d = g + wd*p; buf = d if first else momentum*buf + (1 - dampening)*d;
    d = d + momentum*buf if nesterov else buf (when momentum > 0); p -= lr*d.
    buf (flat, like p; updated in place) may be None when momentum is 0."""
    _optim.sgd(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first, nthreads())


def adam_(p, g, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """torch.optim.Adam's step (decoupled=False: L2 added to the gradient) or AdamW's
    (decoupled: p *= 1 - lr*wd first) on p; the moments are updated in place.
    step counts from 1."""
    _optim.adam(p, g, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled, step,
                nthreads())
