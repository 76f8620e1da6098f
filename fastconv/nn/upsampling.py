"""Upsample (nearest, bilinear)."""
import math
import numbers

from .. import _shape
from .. import functional as F
from .module import Module


class Upsample(Module):
    """Resize (N, C, H, W) -> (N, C, H_out, W_out), torch.nn.Upsample's rules.

    Give ``size`` (int or pair) or ``scale_factor`` (number or pair; H_out =
    floor(H * scale)).  mode 'nearest' or 'bilinear'; align_corners (bilinear only,
    default False) maps corner pixel centres onto each other."""

    _leaf = True

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None):
        super().__init__()
        name = type(self).__name__
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"{name}: mode must be 'nearest' or 'bilinear', got {mode!r}")
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{name}: give exactly one of size or scale_factor "
                             f"(got size={size!r}, scale_factor={scale_factor!r})")
        if align_corners is not None and mode == "nearest":
            raise ValueError(f"{name}: align_corners option can only be set with the "
                             f"interpolating modes: bilinear")
        self.mode = mode
        self.align_corners = align_corners
        self.size = size
        self._size = None if size is None else _shape.pair(size, "size", name, 1)
        if scale_factor is not None:
            sf = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * 2
            if len(sf) != 2 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                                       and v > 0 for v in sf):
                raise ValueError(f"{name}: scale_factor must be a positive number or a pair of "
                                 f"them, got {scale_factor!r}")
            self.scale_factor = (float(scale_factor) if not isinstance(scale_factor, (tuple, list))
                                 else tuple(float(v) for v in scale_factor))
            self._scale = (float(sf[0]), float(sf[1]))
        else:
            self.scale_factor = None
            self._scale = None

    def _out_size(self, shape):
        name = type(self).__name__
        H, W = shape[2:]
        if self._size is not None:
            size = self._size
        else:
            size = (math.floor(H * self._scale[0]), math.floor(W * self._scale[1]))
            if min(size) < 1:
                raise ValueError(f"{name}: output size {size} from input {H}x{W} and "
                                 f"scale_factor={self.scale_factor} is empty")
        if min(H, W) < 1:
            raise ValueError(f"{name}: expected a non-empty plane, got input shape {shape}")
        return size

    def output_shape(self, input_shape):
        """(N, C, H_out, W_out) for an input of shape (N, C, H, W)."""
        shape = _shape.as_shape(type(self).__name__, input_shape, 4)
        return shape[:2] + tuple(self._out_size(shape))

    def forward(self, x):
        x = _shape.as_input(type(self).__name__, x, 4)
        size = self._out_size(x.shape)
        y, ctx = F.upsample(x, size, self._scale, self.mode, bool(self.align_corners))
        return self._remember(y, ctx)

    def _backward(self, ctx, gy, needs):
        return F.upsample_backward(ctx, gy, needs)

    def extra_repr(self):
        info = (f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None
                else f"size={self.size!r}")
        return info + f", mode={self.mode!r}"


class PixelShuffle(Module):
    """Sub-pixel upsampling (Shi et al. 2016): (N, C*r^2, H, W) -> (N, C, H*r, W*r),
    torch.nn.PixelShuffle.  After a convolution to C*r^2 channels it upsamples without
    the checkerboard artefacts of a strided transposed convolution."""

    _leaf = True
    _unbatched_ndim = 3

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = _shape.positive_int(upscale_factor, "upscale_factor",
                                                  type(self).__name__)

    def output_shape(self, input_shape):
        """(N, C / r^2, H*r, W*r)."""
        name, r = type(self).__name__, self.upscale_factor
        n, c, h, w = _shape.as_shape(name, input_shape, 4)
        if c % (r * r):
            raise ValueError(f"{name}: input channels {c} must be divisible by "
                             f"upscale_factor^2 = {r * r}")
        return (n, c // (r * r), h * r, w * r)

    def forward(self, x):
        x = _shape.as_input(type(self).__name__, x, 4)
        self.output_shape(x.shape)
        return self._remember(*F.pixel_shuffle(x, self.upscale_factor))

    def _backward(self, ctx, gy, needs):
        return F.pixel_shuffle_backward(ctx, gy, needs)

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """The inverse of PixelShuffle: (N, C, H*r, W*r) -> (N, C*r^2, H, W)."""

    _leaf = True
    _unbatched_ndim = 3

    def __init__(self, downscale_factor):
        super().__init__()
        self.downscale_factor = _shape.positive_int(downscale_factor, "downscale_factor",
                                                    type(self).__name__)

    def output_shape(self, input_shape):
        """(N, C*r^2, H / r, W / r)."""
        name, r = type(self).__name__, self.downscale_factor
        n, c, h, w = _shape.as_shape(name, input_shape, 4)
        if h % r or w % r:
            raise ValueError(f"{name}: input height and width ({h}, {w}) must be divisible "
                             f"by downscale_factor {r}")
        return (n, c * r * r, h // r, w // r)

    def forward(self, x):
        x = _shape.as_input(type(self).__name__, x, 4)
        self.output_shape(x.shape)
        return self._remember(*F.pixel_unshuffle(x, self.downscale_factor))

    def _backward(self, ctx, gy, needs):
        return F.pixel_unshuffle_backward(ctx, gy, needs)

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"
