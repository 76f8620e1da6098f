"""The article's building blocks and the camera classifier.

Submodule names match the article's PyTorch code, so state_dict keys are identical
to the equivalent torch model's."""
from .. import autograd
from .._grad import is_grad_enabled
from ..nn import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, Module,
                 ReLU, Sequential, Upsample)


class ConvBlock(Module):
    """Conv2d(bias=False) -> BatchNorm2d -> ReLU: (N, in_ch, H, W) -> (N, out_ch, H', W')."""

    _torch_chain = True     # forward = children in order (fastconv.interop.to_torch)

    def __init__(self, in_ch, out_ch, kernel_size=3, stride=1, padding=1):
        super().__init__()
        self.conv = Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = BatchNorm2d(out_ch)
        self.relu = ReLU(inplace=True)

    def forward(self, x):
        """Training: conv, then BatchNorm and ReLU fused into one pass.  Inference
        (eval mode under no_grad): BatchNorm folded into the convolution's weights and
        bias, ReLU applied in the GEMM epilogue - one pass over the output in all."""
        if not self.training and not is_grad_enabled() and self.bn.track_running_stats \
                and self.conv.padding_mode == "zeros" and autograd._tracer is None:
            return self._remember(self.conv.folded_forward(x, self.bn, relu=True), None)
        return self._remember(self.bn.forward_relu(self.conv(x)), True)

    def _backward(self, ctx, g, needs):
        return (self.conv.backward(self.bn.backward(g), input_grad=needs[0]),)


class DepthwiseSeparableConv(Module):
    """Depthwise k x k conv (groups=in_ch) then 1x1 pointwise conv, both bias-free:
    in_ch*k*k + in_ch*out_ch weights instead of in_ch*out_ch*k*k."""

    _torch_chain = True     # forward = children in order (fastconv.interop.to_torch)

    def __init__(self, in_ch, out_ch, kernel_size=3, stride=1, padding=1):
        super().__init__()
        self.depthwise = Conv2d(in_ch, in_ch, kernel_size, stride=stride, padding=padding,
                                groups=in_ch, bias=False)
        self.pointwise = Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x):
        return self._remember(self.pointwise(self.depthwise(x)), True)

    def _backward(self, ctx, g, needs):
        return (self.depthwise.backward(self.pointwise.backward(g), input_grad=needs[0]),)


def Bottleneck(channels=256, mid=64):
    """ResNet bottleneck body: 1x1 reduce, BN, ReLU, 3x3, BN, ReLU, 1x1 expand, BN
    (Sequential indices 0..7), convolutions bias-free; 70,400 parameters at 256/64.
    Wrap in ``nn.Residual`` for the skip connection."""
    return Sequential(
        Conv2d(channels, mid, 1, bias=False), BatchNorm2d(mid), ReLU(inplace=True),
        Conv2d(mid, mid, 3, padding=1, bias=False), BatchNorm2d(mid), ReLU(inplace=True),
        Conv2d(mid, channels, 1, bias=False), BatchNorm2d(channels),
    )


class SmoothUpsample(Module):
    """Bilinear x2 upsampling then a 3x3 convolution: the checkerboard-free
    alternative to ConvTranspose2d(k=3, s=2).  (N, in_ch, H, W) -> (N, out_ch, 2H, 2W)."""

    _torch_chain = True     # forward = children in order (fastconv.interop.to_torch)

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.up = Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv = Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, x):
        return self._remember(self.conv(self.up(x)), True)

    def _backward(self, ctx, g, needs):
        return (self.up.backward(self.conv.backward(g), input_grad=needs[0]),)


def camera_classifier(num_classes=2, width=1.0, pool="avg"):
    """The article's person detector for a security camera (1,146,818 parameters at
    num_classes=2).  Input (N, 3, H, W), any H, W >= 16; output logits (N, num_classes).

    width scales every block's channels (64, 128, 256 at 1.0; 0.5 costs about a
    quarter of the multiply-adds, so the same time affords twice the input side);
    pool: the global pooling before the head, "avg" (the article's) or "max" (a small,
    far-away person lights a few cells of the last feature map, which an average
    over the whole frame dilutes).  The layer indices, and so the state_dict keys,
    are the same for every setting."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 4:
        raise ValueError(f"camera_classifier: width must be a number in (0, 4], got {width!r}")
    if pool not in ("avg", "max"):
        raise ValueError(f"camera_classifier: pool must be 'avg' or 'max', got {pool!r}")
    a, b, c = (max(1, int(round(k * width))) for k in (64, 128, 256))
    return Sequential(
        ConvBlock(3, a), ConvBlock(a, a), MaxPool2d(2, 2),
        ConvBlock(a, b), ConvBlock(b, b), MaxPool2d(2, 2),
        ConvBlock(b, c, stride=2), ConvBlock(c, c),
        AdaptiveAvgPool2d(1) if pool == "avg" else AdaptiveMaxPool2d(1), Flatten(),
        Linear(c, num_classes),
    )
