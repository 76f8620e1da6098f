"""Moving weights in and out: plain ``.npz`` state_dicts, PyTorch files, and the
equivalent ``torch.nn`` module (torch is optional: imported on use, with a clear error
when missing).

``to_torch(model)`` builds the equivalent ``torch.nn`` module tree with the same
weights and the same state_dict keys, so a model trained here runs in PyTorch with
identical outputs.  ``export_torch`` / ``import_torch`` write and read ``torch.save``
files of the state_dict; ``save_state_dict`` / ``load_state_dict`` do the same with
NumPy's ``.npz`` (no torch needed).  Files are written atomically (a temporary file
renamed into place), so a crash never leaves a half-written file.
"""
import os
import tempfile

import numpy as np

from . import nn


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("this function needs PyTorch: pip install torch==2.13.0 "
                          "(the CPU build)") from None
    return torch


def _atomic_write(path, write):
    """write(file object) into a temporary file beside path, then rename it over path."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_state_dict(model, path):
    """Write model.state_dict() to a ``.npz`` file (atomically)."""
    state = model.state_dict()
    _atomic_write(path, lambda fh: np.savez(fh, **state))


def load_state_dict(model, path, strict=True):
    """Load a ``.npz`` state_dict written by save_state_dict (or numpy) into model."""
    with np.load(os.fspath(path), allow_pickle=False) as data:
        return model.load_state_dict({k: data[k] for k in data.files}, strict=strict)


def export_torch(model, path):
    """Write model's state_dict as a ``torch.save`` file that
    ``torch_model.load_state_dict(torch.load(path))`` accepts (same keys as torch)."""
    torch = _torch()
    state = torch_state_dict(model)
    _atomic_write(path, lambda fh: torch.save(state, fh))


def import_torch(model, path, strict=True):
    """Load a ``torch.save`` file holding a state_dict (or a whole nn.Module) into a
    fastconv model with the same structure."""
    torch = _torch()
    obj = torch.load(os.fspath(path), map_location="cpu", weights_only=False)
    if hasattr(obj, "state_dict") and not isinstance(obj, dict):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise TypeError(f"import_torch: {path} holds a {type(obj).__name__}, expected a "
                        f"state_dict or an nn.Module")
    return model.load_state_dict(obj, strict=strict)


def torch_state_dict(model):
    """model.state_dict() as torch tensors (a dict torch's load_state_dict accepts)."""
    torch = _torch()
    return {k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}


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
        from . import _torch_modules
        return _torch_modules.Residual(_convert(m.body, torch),
                                       None if m.shortcut is None else _convert(m.shortcut, torch))
    if getattr(type(m), "_torch_chain", False):
        from . import _torch_modules
        t = _torch_modules.Chain(type(m).__name__)
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
