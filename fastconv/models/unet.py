"""A small U-Net for masks, written as a plain forward (train it on the tape)."""
from .. import ops
from ..nn import BatchNorm2d, Conv2d, ConvTranspose2d, MaxPool2d, Module, ReLU, Sequential

__all__ = ["UNet", "unet"]


class _DoubleConv(Sequential):
    def __init__(self, cin, cout):
        super().__init__(Conv2d(cin, cout, 3, padding=1, bias=False), BatchNorm2d(cout),
                         ReLU(inplace=True), Conv2d(cout, cout, 3, padding=1, bias=False),
                         BatchNorm2d(cout), ReLU(inplace=True))


class UNet(Module):
    """A small U-Net for masks (Ronneberger et al. 2015): ``depth`` 2x2 max-pool
    downsamplings from ``width`` channels (doubling), 2x2 transposed-convolution
    upsamplings, each decoder stage concatenating the encoder's features of its size;
    (N, in_ch, H, W) -> per-pixel logits (N, classes, H, W), H and W divisible by
    2**depth."""

    def __init__(self, in_ch=3, classes=2, width=16, depth=3):
        super().__init__()
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.down = Sequential(*[_DoubleConv(in_ch if i == 0 else chans[i - 1], chans[i])
                                 for i in range(depth)])
        self.pool = MaxPool2d(2)
        self.bottom = _DoubleConv(chans[depth - 1], chans[depth])
        self.up = Sequential(*[ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2)
                               for i in reversed(range(depth))])
        self.dec = Sequential(*[_DoubleConv(2 * chans[i], chans[i]) for i in reversed(range(depth))])
        self.head = Conv2d(chans[0], classes, 1)
        self.depth = depth

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(ops.cat([up(x), skip], dim=1))
        return self.head(x)

    def output_shape(self, input_shape):
        n, _, h, w = (int(v) for v in input_shape)
        return (n, self.head.out_channels, h, w)


def unet(in_ch=3, classes=2, width=16, depth=3):
    """A small U-Net (see UNet)."""
    return UNet(in_ch, classes, width, depth)
