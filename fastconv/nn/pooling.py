"""MaxPool2d, MaxUnpool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d."""
import numpy as np

from .. import _shape
from .. import functional as F
from .._grad import is_grad_enabled
from .. import autograd
from ..autograd import Tensor
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
    the last window must start inside the input or left padding.  Padding is -inf.
    Unbatched (C, H, W) works too.

    return_indices=True: the call returns ``(y, indices)``, indices int64 of y's shape,
    each window's argmax as the flat offset h*W + w into its (n, c) input plane (torch's;
    -1 for a window wholly in padding, where torch's points past the plane): what
    MaxUnpool2d takes.  On a fastconv.Tensor, y is a Tensor and indices a plain ndarray
    (not differentiable)."""

    _leaf = True
    _unbatched_ndim = 3

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = \
            kernel_size, (kernel_size if stride is None else stride), padding, dilation
        self.return_indices = bool(return_indices)
        self.ceil_mode = bool(ceil_mode)
        self._args = _pool_args(type(self).__name__, kernel_size, stride, padding, dilation)

    def output_shape(self, input_shape):
        """(N, C, H_out, W_out) for an input of shape (N, C, H, W) (with return_indices,
        the indices have it too)."""
        name = type(self).__name__
        n, c, h, w = _shape.as_shape(name, input_shape, 4)
        k, s, p, d = self._args
        return (n, c) + tuple(_shape.checked_pool_output(name, dim, size, k[i], s[i], p[i], d[i],
                                                         self.ceil_mode)
                              for i, (dim, size) in enumerate((("height", h), ("width", w))))

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C, H_out, W_out), or (y, indices) with return_indices."""
        name = type(self).__name__
        x = _shape.as_input(name, x, 4)
        k, s, p, d = self._args
        out, ctx = F.max_pool2d(x, k, s, p, d, self.ceil_mode, is_grad_enabled(), name,
                                self.return_indices)
        if self.return_indices:
            return self._remember(out[0], ctx), out[1]
        return self._remember(out, ctx)

    def _record(self, fn, x, *args, **kwargs):
        """On the tape only y is recorded; the indices stay a plain int64 array."""
        if not self.return_indices:
            return super()._record(fn, x, *args, **kwargs)
        kept = []

        def y_only(xd):
            y, indices = fn(xd)
            kept.append(indices)
            return y
        tracer = autograd._tracer
        if tracer is None:
            return super()._record(y_only, x), kept[0]
        # a trace sees one call with both outputs, the indices as a value (MaxUnpool2d's
        # argument later: record_calls links the array to it), not as a constant
        autograd._tracer = None
        try:
            y = super()._record(y_only, x)
        finally:
            autograd._tracer = tracer
        tracer(self, type(self).__name__, (x,), {}, [y, autograd.Tensor(kept[0])])
        return y, kept[0]

    def _call_unbatched(self, x, *args, **kwargs):
        if not self.return_indices:
            return super()._call_unbatched(x, *args, **kwargs)
        if isinstance(x, Tensor):
            from ..ops import reshape
            y, indices = self(reshape(x, (1,) + tuple(x.shape)))
            return reshape(y, tuple(y.shape[1:])), indices[0]
        y, indices = self(np.asarray(x)[None])
        self.__dict__["_unbatched"] = True      # backward takes and gives unbatched arrays
        return y[0], indices[0]

    def _backward(self, ctx, gy, needs):
        return F.max_pool2d_backward(ctx, gy, needs)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxUnpool2d(Module):
    """The partial inverse of MaxPool2d, torch.nn.MaxUnpool2d's signature and rules:
    ``forward(x, indices, output_size=None)`` with x (N, C, H, W) (or unbatched
    (C, H, W)) and int64 indices of its shape (MaxPool2d(return_indices=True)'s) ->
    y (N, C, OH, OW), zero but for y[n, c].flat[indices[n, c, i, j]] = x[n, c, i, j].

    OH = (H - 1)*stride - 2*padding + kernel_size (likewise OW), unless output_size
    ((OH, OW), or a shape (N, C, OH, OW)) picks another size strictly within stride of
    it (what MaxPool2d's rounding lost).  Where indices repeat (overlapping pooling
    windows) the last in each plane's row-major order wins, whatever the thread count,
    and only that input gets a gradient (the exact derivative: torch's backward gives
    every input the gradient at its index).  Indices of the wrong dtype, shape or
    outside the output plane raise TypeError / ValueError naming the layer.  torch's
    MaxUnpool2d takes two inputs, so a Sequential cannot hold it (nor here)."""

    _leaf = True
    _unbatched_ndim = 3

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = type(self).__name__
        k = _shape.pair(kernel_size, "kernel_size", name, 1)
        self.kernel_size = k
        self.stride = k if stride is None else _shape.pair(stride, "stride", name, 1)
        self.padding = _shape.pair(padding, "padding", name, 0)

    def output_shape(self, input_shape, output_size=None):
        """(N, C, OH, OW) for an input (and indices) of shape (N, C, H, W)."""
        name = type(self).__name__
        n, c, h, w = _shape.as_shape(name, input_shape, 4)
        return (n, c) + F.unpool_output_size(name, (h, w), self.kernel_size, self.stride,
                                             self.padding, output_size)

    def forward(self, x, indices, output_size=None):
        """x, indices (N, C, H, W) -> (N, C, OH, OW)."""
        name = type(self).__name__
        x = _shape.as_input(name, x, 4)
        y, ctx = F.max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding,
                                output_size, name)
        return self._remember(y, ctx)

    def _call_unbatched(self, x, indices, output_size=None):
        indices = np.asarray(getattr(indices, "data", indices))
        if indices.ndim != 3:
            raise ValueError(f"{type(self).__name__}: expected indices of the input's shape "
                             f"{tuple(x.shape)}, got shape {indices.shape}")
        return super()._call_unbatched(x, indices[None], output_size)

    def _backward(self, ctx, gy, needs):
        return F.max_unpool2d_backward(ctx, gy, needs)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


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
