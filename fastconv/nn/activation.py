"""ReLU and the other activations, Dropout, Dropout2d, Identity, Flatten."""
import numpy as np

from .. import _shape
from .. import functional as F
from .._random import generator
from .module import Module, Parameter


def _any_input(layer, x):
    """Validate an activation of any rank (float32/float64), C-contiguous."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    return _shape.as_input(layer, x, x.ndim, "(N, ...)")


class _SameShape(Module):
    """An element-wise layer: the output has the input's shape."""

    _leaf = True

    def output_shape(self, input_shape):
        """The input shape."""
        return tuple(int(v) for v in input_shape)

    def _apply(self, x, op, op_inplace):
        """(y, ctx) of op(x), or with inplace=True on an array op_inplace(x) written into
        x itself (a non-contiguous input gets the result copied back)."""
        name = type(self).__name__
        if not (self.inplace and isinstance(x, np.ndarray)):
            return op(_any_input(name, x))
        if not x.flags.writeable:
            raise ValueError(f"{name}(inplace=True): the input array is read-only")
        orig = x
        y, ctx = op_inplace(_any_input(name, x))
        if y is not orig:
            orig[...] = y
            y = orig
        return y, ctx


class ReLU(_SameShape):
    """max(x, 0) element-wise, any shape; NaN propagates as in torch.

    inplace=True overwrites the input array (which must be writeable)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, x):
        return self._remember(*self._apply(x, F.relu, lambda v: F.relu(v, inplace=True)))

    def _backward(self, ctx, gy, needs):
        return F.relu_backward(ctx, gy, needs)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Dropout(_SameShape):
    """Zero each element with probability p during training, scaling the rest by
    1/(1 - p); the identity in eval.  Masks come from fastconv.manual_seed's
    generator and do not depend on the thread count."""

    def __init__(self, p=0.5):
        super().__init__()
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1:
            raise ValueError(f"Dropout: dropout probability has to be between 0 and 1, but got {p}")
        self.p = float(p)

    def forward(self, x):
        x = _any_input(type(self).__name__, x)
        if not self.training or self.p == 0:
            return self._remember(x, None)
        y, ctx = F.dropout(x, self.p, generator().integers(0, 2 ** 63))
        return self._remember(y, ctx)

    def _backward(self, ctx, gy, needs):
        return (gy,) if ctx is None else F.dropout_backward(ctx, gy, needs)

    def extra_repr(self):
        return f"p={self.p}, inplace=False"


class Dropout2d(_SameShape):
    """Zero whole channels of (N, C, H, W) with probability p during training, scaling
    the rest by 1/(1 - p) (torch.nn.Dropout2d); the identity in eval.  Masks come from
    fastconv.manual_seed's generator."""

    _unbatched_ndim = 3

    def __init__(self, p=0.5):
        super().__init__()
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1:
            raise ValueError(f"Dropout2d: dropout probability has to be between 0 and 1, but "
                             f"got {p}")
        self.p = float(p)

    def forward(self, x):
        x = _shape.as_input(type(self).__name__, x, 4)
        if not self.training or self.p == 0:
            return self._remember(x, None)
        return self._remember(*F.dropout2d(x, self.p, generator()))

    def _backward(self, ctx, gy, needs):
        return (gy,) if ctx is None else F.dropout2d_backward(ctx, gy, needs)

    def extra_repr(self):
        return f"p={self.p}, inplace=False"


class Identity(_SameShape):
    """Returns its input unchanged (any shape)."""

    def forward(self, x):
        x = _any_input(type(self).__name__, x)
        return self._remember(x, True)

    def _backward(self, ctx, gy, needs):
        return (gy,)


class Flatten(Module):
    """Flatten dims start_dim..end_dim: (N, C, H, W) -> (N, C*H*W) by default."""

    _leaf = True

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def output_shape(self, input_shape):
        """input_shape with dims start_dim..end_dim multiplied into one."""
        shape = tuple(int(v) for v in input_shape)
        nd = len(shape)
        s = self.start_dim + nd if self.start_dim < 0 else self.start_dim
        e = self.end_dim + nd if self.end_dim < 0 else self.end_dim
        if not (0 <= s < max(nd, 1) and 0 <= e < max(nd, 1)) or s > e:
            raise ValueError(f"{type(self).__name__}: start_dim={self.start_dim}, "
                             f"end_dim={self.end_dim} out of range for a {nd}-D input of shape "
                             f"{shape}")
        return shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:]

    def forward(self, x):
        x = _any_input(type(self).__name__, x)
        return self._remember(x.reshape(self.output_shape(x.shape)), x.shape)

    def _backward(self, xshape, gy, needs):
        return (gy.reshape(xshape),)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class _Elementwise(_SameShape):
    """An element-wise activation with a compiled forward and backward (any shape).
    _param names the one number a subclass takes (its constructor argument)."""

    _op = ""
    _param = None

    def __init__(self, inplace=False, **param):
        super().__init__()
        self.inplace = bool(inplace)
        for k, v in param.items():
            setattr(self, k, float(v))

    def _alpha(self):
        return getattr(self, self._param) if self._param else 0.0

    def forward(self, x):
        op, a = self._op, self._alpha()
        return self._remember(*self._apply(x, lambda v: F.activation(v, op, a),
                                           lambda v: F.activation(v, op, a, out=v)))

    def _backward(self, ctx, gy, needs):
        return F.activation_backward(ctx, gy, needs)

    def extra_repr(self):
        parts = [f"{self._param}={self._alpha()}"] if self._param else []
        return ", ".join(parts + (["inplace=True"] if self.inplace else []))


class ReLU6(_Elementwise):
    """min(max(x, 0), 6) (MobileNetV2)."""
    _op = "relu6"


class LeakyReLU(_Elementwise):
    """x where x > 0, else negative_slope * x."""
    _op, _param = "leaky_relu", "negative_slope"

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__(inplace, negative_slope=negative_slope)


class ELU(_Elementwise):
    """x where x > 0, else alpha * (exp(x) - 1)."""
    _op, _param = "elu", "alpha"

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__(inplace, alpha=alpha)


class SiLU(_Elementwise):
    """x * sigmoid(x) (swish)."""
    _op = "silu"


class GELU(_Elementwise):
    """x * Phi(x), Phi the standard normal CDF; approximate='tanh' uses torch's tanh
    formula."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self._op = "gelu" if approximate == "none" else "gelu_tanh"

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x))."""
    _op = "sigmoid"

    def __init__(self):
        super().__init__()


class Tanh(_Elementwise):
    """tanh(x)."""
    _op = "tanh"

    def __init__(self):
        super().__init__()


class Hardswish(_Elementwise):
    """x * relu6(x + 3) / 6 (MobileNetV3)."""
    _op = "hardswish"


class Hardsigmoid(_Elementwise):
    """relu6(x + 3) / 6 (MobileNetV3's squeeze-and-excitation gate)."""
    _op = "hardsigmoid"


class Mish(_Elementwise):
    """x * tanh(softplus(x))."""
    _op = "mish"


class PReLU(_SameShape):
    """x where x > 0, else a * x with a learned slope: one (num_parameters=1) or one per
    channel (axis 1), initialised to ``init``; torch.nn.PReLU, weight key ``weight``."""

    _grad_params = ("weight",)

    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        n = _shape.positive_int(num_parameters, "num_parameters", type(self).__name__)
        self.num_parameters = n
        self.weight = Parameter(np.full(n, init, np.float32))

    def forward(self, x):
        name = type(self).__name__
        x = _any_input(name, x)
        channels = x.shape[1] if x.ndim > 1 else 1
        if self.num_parameters not in (1, channels):
            raise ValueError(f"{name}: num_parameters={self.num_parameters} must be 1 or the "
                             f"input's channels ({channels}), got input shape {x.shape}")
        return self._remember(*F.prelu(x, self.weight.data))

    def _backward(self, ctx, gy, needs):
        return F.prelu_backward(ctx, gy, needs)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"
