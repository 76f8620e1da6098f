"""Padding layers: ZeroPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d,
CircularPad2d (torch's names; padding an int or (left, right, top, bottom))."""
from .. import _shape
from .. import functional as F
from .module import Module


class _Pad2d(Module):
    _leaf = True
    _unbatched_ndim = 3
    _mode = "constant"

    def __init__(self, padding, value=0.0):
        super().__init__()
        name = type(self).__name__
        if isinstance(padding, (tuple, list)) and len(padding) == 4:
            self.padding = tuple(int(p) for p in padding)
        else:
            p = _shape.positive_int(padding, "padding", name, minimum=0)
            self.padding = (p, p, p, p)
        self.value = float(value)

    def output_shape(self, input_shape):
        """(N, C, H + top + bottom, W + left + right)."""
        n, c, h, w = _shape.as_shape(type(self).__name__, input_shape, 4)
        pl, pr, pt, pb = self.padding
        return (n, c, h + pt + pb, w + pl + pr)

    def forward(self, x):
        name = type(self).__name__
        x = _shape.as_input(name, x, 4)
        return self._remember(*F.pad(x, self.padding, self._mode, self.value, name))

    def _backward(self, ctx, gy, needs):
        return F.pad_backward(ctx, gy, needs)

    def extra_repr(self):
        return f"{self.padding}" + (f", value={self.value}" if self.value else "")


class ZeroPad2d(_Pad2d):
    """Pad with zeros."""

    def __init__(self, padding):
        super().__init__(padding)


class ConstantPad2d(_Pad2d):
    """Pad with a constant value."""


class ReflectionPad2d(_Pad2d):
    """Pad with the reflection of the input, not repeating the edge (padding < size)."""
    _mode = "reflect"

    def __init__(self, padding):
        super().__init__(padding)


class ReplicationPad2d(_Pad2d):
    """Pad by repeating the edge pixels."""
    _mode = "replicate"

    def __init__(self, padding):
        super().__init__(padding)


class CircularPad2d(_Pad2d):
    """Pad by wrapping around (padding <= size)."""
    _mode = "circular"

    def __init__(self, padding):
        super().__init__(padding)
