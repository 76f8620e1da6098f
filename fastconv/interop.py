"""Moving models between fastconv and PyTorch (torch is optional: imported on use).

``to_torch(model)`` builds the equivalent ``torch.nn`` module tree with the same
weights and the same state_dict keys, so a model trained here runs in PyTorch with
identical outputs.  ``torch_state_dict`` / ``from_torch_state_dict`` convert weights
only.
"""
import numpy as np

from . import nn


def _torch():
    try:
        import torch
    except ImportError:                      # pragma: no cover - depends on the env
        raise ImportError("this function needs PyTorch: pip install torch==2.13.0 "
                          "(the CPU build)") from None
    return torch


def torch_state_dict(model):
    """model.state_dict() as torch tensors (a dict torch's load_state_dict accepts)."""
    torch = _torch()
    return {k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}


def _chain_class(torch):
    class Chain(torch.nn.Module):
        """Children applied in registration order (ConvBlock, DepthwiseSeparableConv, ...)."""

        def __init__(self, name):
            super().__init__()
            self._fc_name = name

        def forward(self, x):
            for m in self._modules.values():
                x = m(x)
            return x

        def _get_name(self):
            return self._fc_name
    return Chain


def _residual_class(torch):
    class Residual(torch.nn.Module):
        def __init__(self, body, shortcut):
            super().__init__()
            self.body = body
            self.shortcut = shortcut

        def forward(self, x):
            return self.body(x) + (x if self.shortcut is None else self.shortcut(x))
    return Residual


def _convert(m, torch):
    tnn = torch.nn
    if isinstance(m, nn.Conv2d):
        if m.padding == "same" and m.stride != (1, 1):
            raise ValueError("to_torch: torch refuses padding='same' with stride > 1 (fastconv "
                             "uses TensorFlow's rule); use explicit padding")
        return tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                          m.dilation, m.groups, m.bias is not None, m.padding_mode)
    if isinstance(m, nn.ConvTranspose2d):
        return tnn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                   m.padding, m.output_padding, m.groups, m.bias is not None,
                                   m.dilation)
    if isinstance(m, nn.BatchNorm2d):
        return tnn.BatchNorm2d(m.num_features, m.eps, m.momentum, m.affine,
                               m.track_running_stats,
                               bias=(m.bias is not None) if m.affine else True)
    simple = {
        nn.MaxPool2d: lambda: tnn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation,
                                            ceil_mode=m.ceil_mode),
        nn.AvgPool2d: lambda: tnn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                            m.count_include_pad, m.divisor_override),
        nn.AdaptiveAvgPool2d: lambda: tnn.AdaptiveAvgPool2d(m.output_size),
        nn.ReLU: lambda: tnn.ReLU(m.inplace),
        nn.Linear: lambda: tnn.Linear(m.in_features, m.out_features, m.bias is not None),
        nn.Flatten: lambda: tnn.Flatten(m.start_dim, m.end_dim),
        nn.Dropout: lambda: tnn.Dropout(m.p),
        nn.Identity: lambda: tnn.Identity(),
        nn.Upsample: lambda: tnn.Upsample(m.size, m.scale_factor, m.mode, m.align_corners),
    }
    for cls, make in simple.items():
        if type(m) is cls:
            return make()
    if isinstance(m, nn.Sequential):
        return tnn.Sequential(*[_convert(c, torch) for c in m])
    if isinstance(m, nn.Residual):
        return _residual_class(torch)(_convert(m.body, torch),
                                      None if m.shortcut is None else _convert(m.shortcut, torch))
    if getattr(type(m), "_torch_chain", False):
        t = _chain_class(torch)(type(m).__name__)
        for name, child in m.named_children():
            t.add_module(name, _convert(child, torch))
        return t
    raise TypeError(f"to_torch: no PyTorch equivalent known for {type(m).__name__}")


def to_torch(model):
    """The equivalent torch.nn module (same structure, keys, weights, train/eval mode)."""
    torch = _torch()
    t = _convert(model, torch)
    t.load_state_dict(torch_state_dict(model))
    t.train(model.training)
    return t
