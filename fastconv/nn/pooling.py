"""MaxPool2d, AvgPool2d, AdaptiveAvgPool2d."""
from .. import _shape
from .. import functional as F
from .._grad import is_grad_enabled
from .module import Module


def _pool_args(layer, kernel_size, stride, padding, dilation):
    k = _shape.pair(kernel_size, "kernel_size", layer, 1)
    s = k if stride is None else _shape.pair(stride, "stride", layer, 1)
    p = _shape.pair(padding, "padding", layer, 0)
    d = _shape.pair(dilation, "dilation", layer, 1)
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(f"{layer}: pad should be smaller than or equal to half of kernel size, "
                         f"but got padding={padding}, kernel_size={kernel_size}")
    return k, s, p, d


class MaxPool2d(Module):
    """Max pooling, torch.nn.MaxPool2d's signature (stride defaults to kernel_size).

    (N, C, H, W) -> (N, C, H_out, W_out), H_out = floor or ceil of
    (H + 2*padding - dilation*(kernel_size - 1) - 1) / stride, plus 1; with ceil_mode
    the last window must start inside the input or left padding.  Padding is -inf."""

    _leaf = True
    _unbatched_ndim = 3

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = \
            kernel_size, (kernel_size if stride is None else stride), padding, dilation
        self.ceil_mode = bool(ceil_mode)
        self._args = _pool_args(type(self).__name__, kernel_size, stride, padding, dilation)

    def output_shape(self, input_shape):
        """(N, C, H_out, W_out) for an input of shape (N, C, H, W)."""
        name = type(self).__name__
        n, c, h, w = _shape.as_shape(name, input_shape, 4)
        k, s, p, d = self._args
        return (n, c) + tuple(_shape.checked_pool_output(name, dim, size, k[i], s[i], p[i], d[i],
                                                         self.ceil_mode)
                              for i, (dim, size) in enumerate((("height", h), ("width", w))))

    def forward(self, x):
        name = type(self).__name__
        x = _shape.as_input(name, x, 4)
        k, s, p, d = self._args
        y, ctx = F.max_pool2d(x, k, s, p, d, self.ceil_mode, is_grad_enabled(), name)
        return self._remember(y, ctx)

    def _backward(self, ctx, gy, needs):
        return F.max_pool2d_backward(ctx, gy, needs)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Average pooling, torch.nn.AvgPool2d's signature and divisor rules.

    count_include_pad: zero padding counts in the divisor; divisor_override replaces
    the divisor.  Output size as MaxPool2d with dilation 1."""

    _leaf = True
    _unbatched_ndim = 3

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        name = type(self).__name__
        self.kernel_size, self.stride, self.padding = \
            kernel_size, (kernel_size if stride is None else stride), padding
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        if divisor_override is not None:
            divisor_override = _shape.positive_int(divisor_override, "divisor_override", name)
        self.divisor_override = divisor_override
        self._args = _pool_args(name, kernel_size, stride, padding, 1)

    output_shape = MaxPool2d.output_shape         # dilation 1: the same formula

    def forward(self, x):
        name = type(self).__name__
        x = _shape.as_input(name, x, 4)
        k, s, p, _ = self._args
        y, ctx = F.avg_pool2d(x, k, s, p, self.ceil_mode, self.count_include_pad,
                              self.divisor_override, name)
        return self._remember(y, ctx)

    def _backward(self, ctx, gy, needs):
        return F.avg_pool2d_backward(ctx, gy, needs)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (int, pair, None entries keep the input
    size); output cell i covers rows [floor(i*H/OH), ceil((i+1)*H/OH)).
    AdaptiveAvgPool2d(1) is global average pooling: (N, C, H, W) -> (N, C, 1, 1)."""

    _leaf = True
    _unbatched_ndim = 3

    def __init__(self, output_size):
        super().__init__()
        name = type(self).__name__
        self.output_size = output_size
        if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
            self._size = tuple(None if v is None else _shape.positive_int(v, "output_size", name)
                               for v in output_size)
        else:
            v = _shape.positive_int(output_size, "output_size", name)
            self._size = (v, v)

    def output_shape(self, input_shape):
        """(N, C, OH, OW) for an input of shape (N, C, H, W)."""
        n, c, h, w = _shape.as_shape(type(self).__name__, input_shape, 4)
        return (n, c, h if self._size[0] is None else self._size[0],
                w if self._size[1] is None else self._size[1])

    def forward(self, x):
        name = type(self).__name__
        x = _shape.as_input(name, x, 4)
        y, ctx = F.adaptive_avg_pool2d(x, self._size, name)
        return self._remember(y, ctx)

    def _backward(self, ctx, gy, needs):
        return F.adaptive_avg_pool2d_backward(ctx, gy, needs)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(AdaptiveAvgPool2d):
    """Max pooling to a fixed output size (int, pair, None entries keep the input size),
    torch.nn.AdaptiveMaxPool2d's windows; AdaptiveMaxPool2d(1) is global max pooling.
    NaN propagates and ties keep the first element, as torch."""

    def forward(self, x):
        name = type(self).__name__
        x = _shape.as_input(name, x, 4)
        y, ctx = F.adaptive_max_pool2d(x, self._size, is_grad_enabled(), name)
        return self._remember(y, ctx)

    def _backward(self, ctx, gy, needs):
        return F.adaptive_max_pool2d_backward(ctx, gy, needs)
