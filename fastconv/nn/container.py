"""Sequential and Residual."""

import numpy as np

from .. import autograd, functional as F
from .._grad import is_grad_enabled
from ..autograd import Tensor, apply
from .activation import ReLU, ReLU6
from .conv import Conv2d, folded_conv_bn
from .module import Module
from .normalization import BatchNorm2d, SyncBatchNorm


def _fusable(bn, act):
    return type(bn) in (BatchNorm2d, SyncBatchNorm) and type(act) in (ReLU, ReLU6)


def batch_norm_activation(bn, act, x):
    """``act(bn(x))``.  On the tape (x a Tensor, no trace running) a BatchNorm2d followed
    by ReLU or ReLU6 runs as one node: the activation inside the normalising pass, its
    mask inside BatchNorm's backward (a pass over the data and one over the gradient
    fewer; the same values).  Otherwise, and for any other pair, the two layers."""
    if isinstance(x, Tensor) and autograd._tracer is None and _fusable(bn, act):
        return bn.forward_relu(x) if type(act) is ReLU else bn.forward_relu6(x)
    return act(bn(x))


class Sequential(Module):
    """Modules run in order; indexable; state_dict keys '0.weight', ... as torch.
    backward runs the children's backwards in reverse."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {i} is not a Module: {type(m).__name__}")
            self.add_module(str(i), m)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(*mods[idx])
        try:
            return mods[idx]
        except (IndexError, TypeError):
            raise IndexError(f"Sequential: index {idx} out of range for {len(mods)} modules") \
                from None

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self)), module)
        return self

    def output_shape(self, input_shape):
        """The last module's output shape, through every module in turn."""
        for m in self._modules.values():
            input_shape = m.output_shape(input_shape)
        return tuple(input_shape)

    def forward(self, x):
        if not self.training and not is_grad_enabled() and autograd._tracer is None:
            x = self._inference(x)
        elif isinstance(x, Tensor) and autograd._tracer is None:
            x = self._taped(x)
        else:
            for m in self._modules.values():
                x = m(x)
        return self._remember(x if isinstance(x, Tensor) else np.asarray(x), True)

    def _inference(self, x):
        """Eval under no_grad: a Conv2d followed by an eval BatchNorm2d runs as one
        convolution with the BatchNorm in its epilogue (and a ReLU or ReLU6 after them too), saving
        a pass over each output; torch's layers give the same values to rounding.
        Tracing (summary, to_torch) sees every layer."""
        mods = list(self._modules.values())
        i, n = 0, len(mods)
        while i < n:
            m = mods[i]
            if i + 1 < n and type(m) is Conv2d and type(mods[i + 1]) is BatchNorm2d:
                after = type(mods[i + 2]) if i + 2 < n else None
                relu, relu6 = after is ReLU, after is ReLU6
                y = folded_conv_bn(m, mods[i + 1], x, relu, relu6)
                if y is not None:
                    x = y
                    i += 3 if relu or relu6 else 2
                    continue
            x = m(x)
            i += 1
        return x

    def _taped(self, x):
        """The modules on the tape, each BatchNorm2d-ReLU(6) pair as one node
        (batch_norm_activation)."""
        mods = list(self._modules.values())
        i, n = 0, len(mods)
        while i < n:
            m = mods[i]
            if i + 1 < n and _fusable(m, mods[i + 1]):
                x = batch_norm_activation(m, mods[i + 1], x)
                i += 2
                continue
            x = m(x)
            i += 1
        return x

    def _backward(self, ctx, g, needs):
        mods = list(self._modules.values())
        for i in range(len(mods) - 1, -1, -1):
            g = mods[i].backward(g, input_grad=needs[0] or i > 0)
        return (g,)


class Residual(Module):
    """y = body(x) + shortcut(x); the shortcut is the identity when None.
    state_dict keys 'body.*' and 'shortcut.*'."""

    def __init__(self, body, shortcut=None):
        super().__init__()
        if not isinstance(body, Module) or (shortcut is not None and not isinstance(shortcut, Module)):
            raise TypeError("Residual: body and shortcut must be Modules")
        self.body = body
        if shortcut is None:
            self.add_module("shortcut", None)
        else:
            self.shortcut = shortcut

    def output_shape(self, input_shape):
        """The body's output shape (the shortcut's must match)."""
        b = self.body.output_shape(input_shape)
        s = tuple(input_shape) if self.shortcut is None else self.shortcut.output_shape(input_shape)
        if tuple(b) != tuple(s):
            raise ValueError(f"Residual: body output shape {tuple(b)} does not match shortcut "
                             f"output shape {tuple(s)}")
        return tuple(b)

    def forward(self, x):
        b = self.body(x)
        s = self.shortcut(x) if self.shortcut is not None else (
            x if isinstance(x, Tensor) else np.asarray(x))
        if b.shape != s.shape:
            raise ValueError(f"Residual: body output shape {b.shape} does not match shortcut "
                             f"output shape {s.shape}")
        return self._remember(apply(F.add, F.add_backward, b, s), True)

    def _backward(self, ctx, g, needs):
        gb = self.body.backward(g)
        gs = self.shortcut.backward(g) if self.shortcut is not None else g
        return (F.add(gb, gs)[0],)
