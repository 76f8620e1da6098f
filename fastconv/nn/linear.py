"""Linear (fully-connected) layer."""
from .. import _shape
from .. import functional as F
from . import _init
from .module import Module, Parameter


class Linear(Module):
    """y = x W^T + b.  Input (*, in_features) -> (*, out_features).
    Weight (out_features, in_features); bias (out_features,); torch's init."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        name = type(self).__name__
        self.in_features = _shape.positive_int(in_features, "in_features", name)
        self.out_features = _shape.positive_int(out_features, "out_features", name)
        bound = _init.kaiming_uniform_bound(self.in_features)
        self.weight = Parameter(_init.uniform((self.out_features, self.in_features), bound))
        if bias:
            self.bias = Parameter(_init.uniform((self.out_features,), bound))
        else:
            self.register_parameter("bias", None)

    def output_shape(self, input_shape):
        """(*, out_features) for an input of shape (*, in_features)."""
        name = type(self).__name__
        shape = _shape.as_shape(name, input_shape, max(len(tuple(input_shape)), 1),
                                layout="(N, in_features)")
        if shape[-1] != self.in_features:
            raise ValueError(f"{name}: expected input with {self.in_features} features, shape "
                             f"(N, {self.in_features}), got shape {shape}")
        return shape[:-1] + (self.out_features,)

    def forward(self, x):
        """x (N, in_features) (or (*, in_features)) -> (N, out_features)."""
        name = type(self).__name__
        if hasattr(x, "ndim") and x.ndim >= 1:
            x = _shape.as_input(name, x, x.ndim, "(N, in_features)")
        else:
            x = _shape.as_input(name, x, 2, "(N, in_features)")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{name}: expected input with {self.in_features} features, shape "
                             f"(N, {self.in_features}), got shape {x.shape}")
        lead = x.shape[:-1]
        b = self.bias.data if self.bias is not None else None
        y, ctx = F.linear(x.reshape(-1, self.in_features), self.weight.data, b)
        return self._remember(y.reshape(lead + (self.out_features,)), ctx)

    _leaf = True
    _grad_params = ("weight", "bias")

    def _backward(self, ctx, gy, needs):
        lead = gy.shape[:-1]
        gx, gw, gb = F.linear_backward(ctx, gy.reshape(-1, self.out_features), needs)
        return None if gx is None else gx.reshape(lead + (self.in_features,)), gw, gb

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
