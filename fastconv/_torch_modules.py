"""torch.nn wrappers for fastconv's composite blocks, at module level so that whole
converted models pickle (torch.save(module)).  Imported only by interop, with torch."""
import torch


class Chain(torch.nn.Module):
    """Children applied in registration order (ConvBlock, DepthwiseSeparableConv, ...);
    repr shows the fastconv block's name."""

    def __init__(self, name):
        super().__init__()
        self._fc_name = name

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def _get_name(self):
        return self._fc_name


class Residual(torch.nn.Module):
    """body(x) + shortcut(x), the shortcut the identity when None."""

    def __init__(self, body, shortcut):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))
