"""Conv2d and ConvTranspose2d."""
import time

import numpy as np

from .. import _shape, autograd
from .. import functional as F
from .._grad import is_grad_enabled
from .._precision import bf16_enabled
from ..autograd import Tensor
from ..functional._common import RELU, RELU6
from . import _init
from .module import Module, Parameter


class _Runners(dict):
    """A layer's planned inference runners (closures): rebuilt on demand, so a pickled
    or copied layer carries an empty one."""

    def __reduce__(self):
        return type(self), ()


class _ConvBase(Module):
    _leaf = True
    _unbatched_ndim = 3
    _grad_params = ("weight", "bias")

    def _init_params(self, wshape, fan_in, bias):
        bound = _init.kaiming_uniform_bound(fan_in)
        self.weight = Parameter(_init.uniform(wshape, bound))
        if bias:
            self.bias = Parameter(_init.uniform((self.out_channels,), bound))
        else:
            self.register_parameter("bias", None)

    def reset_parameters(self):
        """Re-draw weight and bias with torch's default init."""
        w = self.weight.data
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        bound = _init.kaiming_uniform_bound(fan_in)
        self.weight.data = _init.uniform(w.shape, bound, w.dtype)
        if self.bias is not None:
            self.bias.data = _init.uniform(self.bias.shape, bound, self.bias.dtype)

    def _check_common(self, in_channels, out_channels, groups):
        name = type(self).__name__
        in_channels = _shape.positive_int(in_channels, "in_channels", name)
        out_channels = _shape.positive_int(out_channels, "out_channels", name)
        groups = _shape.positive_int(groups, "groups", name)
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels must be divisible by groups "
                             f"(in_channels={in_channels}, groups={groups})")
        if out_channels % groups:
            raise ValueError(f"{name}: out_channels must be divisible by groups "
                             f"(out_channels={out_channels}, groups={groups})")
        return in_channels, out_channels, groups

    def _input(self, x):
        name = type(self).__name__
        x = _shape.as_input(name, x, 4)
        _shape.check_channels(name, x, self.in_channels)
        return x

    def extra_repr(self):
        """torch's format: the non-default arguments only."""
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvBase):
    """2-D convolution (cross-correlation), torch.nn.Conv2d's signature and defaults.

    Input (N, C_in, H, W) -> output (N, C_out, H_out, W_out) with
    H_out = floor((H + 2*padding - dilation*(kernel_size - 1) - 1) / stride) + 1.
    ``padding`` is an int, a pair, 'valid' (0) or 'same' (output ceil(H / stride); for
    stride > 1 TensorFlow's rule, the odd pixel of padding going bottom/right).
    ``padding_mode``: 'zeros', 'reflect', 'replicate' or 'circular'.
    Weight (C_out, C_in/groups, kH, kW); bias (C_out,).  groups = C_in is depthwise."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros"):
        super().__init__()
        name = type(self).__name__
        self.in_channels, self.out_channels, self.groups = self._check_common(
            in_channels, out_channels, groups)
        self.kernel_size = _shape.pair(kernel_size, "kernel_size", name, 1)
        self.stride = _shape.pair(stride, "stride", name, 1)
        self.dilation = _shape.pair(dilation, "dilation", name, 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: invalid padding string '{padding}', should be one "
                                 f"of {{'valid', 'same'}}")
            self.padding = padding
        else:
            self.padding = _shape.pair(padding, "padding", name, 0)
        if padding_mode not in _shape.PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {list(_shape.PADDING_MODES)}, "
                             f"but got padding_mode='{padding_mode}'")
        self.padding_mode = padding_mode
        kh, kw = self.kernel_size
        self._init_params((self.out_channels, self.in_channels // self.groups, kh, kw),
                          (self.in_channels // self.groups) * kh * kw, bias)

    def _pads(self, h, w):
        """(top, bottom, left, right) for an input of h x w."""
        if self.padding == "valid":
            return 0, 0, 0, 0
        if self.padding == "same":
            (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
            return (*_shape.same_padding(h, kh, sh, dh), *_shape.same_padding(w, kw, sw, dw))
        ph, pw = self.padding
        return ph, ph, pw, pw

    def output_shape(self, input_shape):
        """(N, C_out, H_out, W_out) for an input of shape (N, C_in, H, W)."""
        name = type(self).__name__
        n, _, h, w = _shape.as_shape(name, input_shape, 4, self.in_channels)
        pt, pb, pl, pr = self._pads(h, w)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        return (n, self.out_channels,
                _shape.checked_conv_output(name, "height", h, kh, sh, (pt, pb), dh),
                _shape.checked_conv_output(name, "width", w, kw, sw, (pl, pr), dw))

    def forward(self, x):
        """x (N, C_in, H, W) -> (N, C_out, H_out, W_out)."""
        x = self._input(x)
        b = self.bias.data if self.bias is not None else None
        return self._remember(*self._conv(x, self.weight.data, b))

    def _conv(self, x, weight, bias):
        return F.conv2d(x, weight, bias, self.stride, self._pads(x.shape[2], x.shape[3]),
                        self.dilation, self.groups, self.padding_mode, type(self).__name__)

    def folded_forward(self, x, bn, relu=False, relu6=False):
        """Inference forward of ``bn(self(x))`` (then ReLU when relu, ReLU6 when relu6) in
        one convolution: bn, an eval-mode BatchNorm2d with running statistics, is folded
        into the weights and bias, and ReLU or ReLU6 into the kernel's epilogue (GEMM
        kernels clamp there; depthwise and Winograd ones clamp at 6 in a pass after).
        Keeps no activations.
        GEMM-planned convolutions take BatchNorm's factor in their epilogue, so the weights
        are not rewritten on every call (at one frame that pass costs as much as the
        convolution)."""
        w = self.weight.data
        scale, shift = bn.fold_factors(self.bias.data if self.bias is not None else None,
                                       w.dtype)
        d = self.__dict__
        plans = d.get("_folded_plans")
        if plans is None:
            plans = d["_folded_plans"] = _Runners()
            d["_weight_cache"] = {}
        a = x.data if isinstance(x, Tensor) else x
        # the runner for this input's shape (F.inference_plan: checked and planned once);
        # anything but a contiguous float array takes the checked path to build one
        plain = type(a) is np.ndarray and a.flags.c_contiguous
        run = plans.get(self._plan_key(a, w, relu, relu6)) if plain else None
        if run is None:
            a = self._input(a)
            if len(plans) >= 16:            # input sizes come and go: keep the recent ones
                plans.clear()
            run = plans[self._plan_key(a, w, relu, relu6)] = F.inference_plan(
                a.shape, a.dtype, w.shape, w.dtype, self.stride,
                self._pads(a.shape[2], a.shape[3]), self.dilation, self.groups,
                self.padding_mode, type(self).__name__,
                RELU6 if relu6 else RELU if relu else 0, bf16_enabled(), True)
        y = run(a, w, shift, scale, d["_weight_cache"])
        return Tensor(y) if isinstance(x, Tensor) else y

    def _plan_key(self, a, w, relu, relu6):
        return (a.shape, a.dtype, w.shape, w.dtype, relu, relu6, bf16_enabled(), self.stride,
                self.padding, self.dilation, self.groups)

    def _backward(self, ctx, gy, needs):
        return F.conv2d_backward(ctx, gy, needs)


class ConvTranspose2d(_ConvBase):
    """2-D transposed convolution, torch.nn.ConvTranspose2d's signature and defaults.

    Input (N, C_in, H, W) -> output (N, C_out, H_out, W_out) with
    H_out = (H - 1)*stride - 2*padding + dilation*(kernel_size - 1) + output_padding + 1.
    Weight (C_in, C_out/groups, kH, kW) as in torch; bias (C_out,).
    output_padding must be smaller than stride or dilation."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros"):
        super().__init__()
        name = type(self).__name__
        self.in_channels, self.out_channels, self.groups = self._check_common(
            in_channels, out_channels, groups)
        if isinstance(padding, str):
            raise ValueError(f"{name}: padding must be an int or a pair of ints, got '{padding}'")
        if padding_mode != "zeros":
            raise ValueError(f"{name}: only 'zeros' padding mode is supported, got '{padding_mode}'")
        self.padding_mode = padding_mode
        self.kernel_size = _shape.pair(kernel_size, "kernel_size", name, 1)
        self.stride = _shape.pair(stride, "stride", name, 1)
        self.padding = _shape.pair(padding, "padding", name, 0)
        self.dilation = _shape.pair(dilation, "dilation", name, 1)
        self.output_padding = _shape.pair(output_padding, "output_padding", name, 0)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise ValueError(f"{name}: output_padding must be smaller than either stride or "
                                 f"dilation, got output_padding={self.output_padding}, "
                                 f"stride={self.stride}, dilation={self.dilation}")
        kh, kw = self.kernel_size
        cg = self.out_channels // self.groups
        self._init_params((self.in_channels, cg, kh, kw), cg * kh * kw, bias)

    def output_shape(self, input_shape):
        """(N, C_out, H_out, W_out) for an input of shape (N, C_in, H, W)."""
        name = type(self).__name__
        n, _, h, w = _shape.as_shape(name, input_shape, 4, self.in_channels)
        return (n, self.out_channels) + tuple(
            _shape.checked_conv_transpose_output(name, dim, size, self.kernel_size[i],
                                                 self.stride[i], self.padding[i],
                                                 self.output_padding[i], self.dilation[i])
            for i, (dim, size) in enumerate((("height", h), ("width", w))))

    def forward(self, x):
        """x (N, C_in, H, W) -> (N, C_out, H_out, W_out)."""
        x = self._input(x)
        b = self.bias.data if self.bias is not None else None
        y, ctx = F.conv_transpose2d(x, self.weight.data, b, self.stride, self.padding,
                                    self.output_padding, self.groups, self.dilation,
                                    type(self).__name__)
        return self._remember(y, ctx)

    def _backward(self, ctx, gy, needs):
        return F.conv_transpose2d_backward(ctx, gy, needs)


def folded_conv_bn(conv, bn, x, relu=False, relu6=False):
    """``relu?(bn(conv(x)))`` (or relu6) as one convolution (BatchNorm in the epilogue) when that is
    what the layers would compute: both in eval mode, no gradients recorded, no trace
    running, running statistics kept, zero padding, a 4-d input.  Returns None otherwise
    (the caller runs the layers one by one).  Shows in the profiler as one entry."""
    if (conv.training or bn.training or is_grad_enabled() or autograd._tracer is not None
            or bn.running_mean is None or conv.padding_mode != "zeros" or np.ndim(x) != 4):
        return None
    prof = autograd._profiler
    if prof is None:
        return conv.folded_forward(x, bn, relu, relu6)
    t = time.perf_counter()
    y = conv.folded_forward(x, bn, relu, relu6)
    name = "Conv2d+BatchNorm2d" + ("+ReLU6" if relu6 else "+ReLU" if relu else "")
    if prof.detail:
        name += f"({conv.extra_repr()}) @{'x'.join(map(str, np.shape(y)[1:]))}"
    prof.add(name, "forward", time.perf_counter() - t)
    return y

