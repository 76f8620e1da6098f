"""Moving weights in and out: plain ``.npz`` state_dicts, PyTorch files, and the
equivalent ``torch.nn`` module (torch is optional: imported on use, with a clear error
when missing).

``to_torch(model)`` builds the equivalent ``torch.nn`` module tree with the same
weights and the same state_dict keys, so a model trained here runs in PyTorch with
identical outputs.  ``export_torch`` / ``import_torch`` write and read ``torch.save``
files of the state_dict; ``save_state_dict`` / ``load_state_dict`` do the same with
NumPy's ``.npz`` (no torch needed).  Files are written atomically (a temporary file
renamed into place), so a crash never leaves a half-written file.

Loading never runs code from a file: ``.npz`` files are read with
``allow_pickle=False`` and torch files with ``weights_only=True`` (tensors, dicts,
lists, numbers and strings only) unless the caller passes ``trusted=True``.  A file
is read and checked in full before the model changes, so a truncated, corrupted or
mismatched file raises ValueError naming it and leaves the model as it was.
"""
import os
import pickle
import tempfile
import zipfile

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


def _why(e):
    """One line saying what went wrong: e's message, after its type when that helps."""
    lines = str(e).strip().splitlines()
    if lines and isinstance(e, (OSError, ValueError)):
        return lines[0]
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def _read_npz(path, what):
    """{name: ndarray} of every array in a ``.npz`` file, read in full without
    unpickling anything (object arrays are refused).  Raises ValueError naming the
    file and the problem: missing, unreadable, truncated, corrupted, not an .npz."""
    path = os.fspath(path)
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError("expected an .npz archive, got a single .npy array")
        with f:
            arrays = {k: f[k] for k in f.files}
    # without pickles np.load runs nothing from the file, so whatever it raises means a
    # bad file (BadZipFile, zlib.error, tokenize.TokenError, MemoryError for a huge
    # header, ...)
    except Exception as e:
        raise ValueError(f"cannot read {what} {path!r}: {_why(e)}") from None
    for k, v in arrays.items():
        if not isinstance(v, np.ndarray):        # NpzFile returns other members as bytes
            raise ValueError(f"cannot read {what} {path!r}: entry {k!r} is not a .npy array")
    return arrays


def _load_into(model, state, path, strict):
    """model.load_state_dict(state, strict) with errors as ValueError naming the file;
    on any error the model is unchanged (everything is checked before anything is
    copied)."""
    try:
        return model.load_state_dict(state, strict=strict)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:   # RuntimeError: torch
        reason = e.args[0] if e.args else type(e).__name__
        raise ValueError(f"{os.fspath(path)!r} does not fit this {type(model).__name__}: "
                         f"{reason}") from None


def load_state_dict(model, path, strict=True):
    """Load a ``.npz`` state_dict written by save_state_dict (or numpy) into model.

    Never unpickles (object arrays are refused).  A missing, unreadable, truncated or
    corrupted file, or one whose keys, shapes or dtypes do not fit the model, raises
    ValueError naming the file, and the model is left unchanged.  Returns
    (missing_keys, unexpected_keys) like Module.load_state_dict."""
    return _load_into(model, _read_npz(path, "state_dict"), path, strict)


def export_torch(model, path):
    """Write model's state_dict as a ``torch.save`` file that
    ``torch_model.load_state_dict(torch.load(path))`` accepts (same keys as torch)."""
    torch = _torch()
    state = torch_state_dict(model)
    _atomic_write(path, lambda fh: torch.save(state, fh))


def _weights_only_reason(e):
    """The telling part of torch's long weights_only error, e.g. 'Unsupported global:
    GLOBAL torch.nn.modules.linear.Linear'."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    text = " ".join(text.split("Check the documentation of torch.load")[0].split())
    return text.split(" was not an allowed global")[0]


def import_torch(model, path, strict=True, trusted=False):
    """Load a ``torch.save`` file holding a state_dict into a fastconv model with the
    same structure.

    The file is read with ``torch.load(weights_only=True)``: tensors, dicts, lists,
    numbers and strings only, so loading it cannot run code.  A whole pickled
    ``nn.Module`` needs ``trusted=True``, which unpickles the file as is and so
    **executes any code in it**: use it only for files from a source you trust, or
    better convert them once with ``torch.save(module.state_dict(), path)``.

    Any problem (unreadable, truncated or corrupted file, Python objects without
    trusted=True, keys, shapes or dtypes that do not fit) raises ValueError naming
    the file, and the model is left unchanged."""
    torch = _torch()
    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):      # torch.save's zip: torch does not check its CRCs
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
            if bad is not None:
                raise ValueError(f"corrupted: bad CRC-32 for {bad!r}")
        obj = torch.load(path, map_location="cpu", weights_only=not trusted)
    # weights_only runs nothing from the file, so whatever torch raises means a bad
    # file (UnpicklingError, RuntimeError from the zip reader, KeyError, EOFError, ...)
    except Exception as e:
        reason = _weights_only_reason(e) if isinstance(e, pickle.UnpicklingError) else _why(e)
        if not trusted and "Unsupported global" in reason:
            raise ValueError(
                f"import_torch: refusing {path!r}: it holds pickled Python objects, not only "
                f"tensors ({reason}), and unpickling them would run code from the file. "
                f"Where the model was saved, save its weights instead: "
                f"torch.save(model.state_dict(), path); or, only if you trust the file's "
                f"source, pass trusted=True") from None
        raise ValueError(f"import_torch: cannot read {path!r}: {reason}") from None
    if trusted and isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise ValueError(f"import_torch: {path!r} holds a {type(obj).__name__}, expected "
                         f"a state_dict (a dict of tensors)")
    return _load_into(model, obj, path, strict)


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
    if isinstance(m, nn.SyncBatchNorm):     # torch's runs on CPU outside a distributed job
        return tnn.SyncBatchNorm(m.num_features, m.eps, m.momentum, m.affine,
                                 m.track_running_stats,
                                 bias=(m.bias is not None) if m.affine else True)
    if isinstance(m, nn.BatchNorm2d):
        return tnn.BatchNorm2d(m.num_features, m.eps, m.momentum, m.affine,
                               m.track_running_stats,
                               bias=(m.bias is not None) if m.affine else True)
    if isinstance(m, nn.InstanceNorm2d):
        return tnn.InstanceNorm2d(m.num_features, m.eps, m.momentum, m.affine,
                                  m.track_running_stats)
    if isinstance(m, nn.GroupNorm):
        return tnn.GroupNorm(m.num_groups, m.num_channels, m.eps, m.affine)
    if isinstance(m, nn.LayerNorm):
        return tnn.LayerNorm(m.normalized_shape, m.eps, m.elementwise_affine,
                             bias=m.bias is not None)
    simple = {
        nn.MaxPool2d: lambda: tnn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation,
                                            return_indices=m.return_indices,
                                            ceil_mode=m.ceil_mode),
        # (takes (x, indices): a torch Sequential cannot hold it, but the layer converts)
        nn.MaxUnpool2d: lambda: tnn.MaxUnpool2d(m.kernel_size, m.stride, m.padding),
        nn.AvgPool2d: lambda: tnn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                            m.count_include_pad, m.divisor_override),
        nn.AdaptiveAvgPool2d: lambda: tnn.AdaptiveAvgPool2d(m.output_size),
        nn.AdaptiveMaxPool2d: lambda: tnn.AdaptiveMaxPool2d(m.output_size),
        nn.ReLU: lambda: tnn.ReLU(m.inplace),
        nn.Linear: lambda: tnn.Linear(m.in_features, m.out_features, m.bias is not None),
        nn.Flatten: lambda: tnn.Flatten(m.start_dim, m.end_dim),
        nn.Dropout: lambda: tnn.Dropout(m.p),
        nn.Identity: lambda: tnn.Identity(),
        nn.Upsample: lambda: tnn.Upsample(m.size, m.scale_factor, m.mode, m.align_corners),
        nn.PixelShuffle: lambda: tnn.PixelShuffle(m.upscale_factor),
        nn.PixelUnshuffle: lambda: tnn.PixelUnshuffle(m.downscale_factor),
        nn.Dropout2d: lambda: tnn.Dropout2d(m.p),
        nn.ReLU6: lambda: tnn.ReLU6(m.inplace),
        nn.LeakyReLU: lambda: tnn.LeakyReLU(m.negative_slope, m.inplace),
        nn.ELU: lambda: tnn.ELU(m.alpha, m.inplace),
        nn.SiLU: lambda: tnn.SiLU(m.inplace),
        nn.GELU: lambda: tnn.GELU(m.approximate),
        nn.Sigmoid: lambda: tnn.Sigmoid(),
        nn.Tanh: lambda: tnn.Tanh(),
        nn.Hardswish: lambda: tnn.Hardswish(m.inplace),
        nn.Hardsigmoid: lambda: tnn.Hardsigmoid(m.inplace),
        nn.Mish: lambda: tnn.Mish(m.inplace),
        nn.PReLU: lambda: tnn.PReLU(m.num_parameters),
        nn.ZeroPad2d: lambda: tnn.ZeroPad2d(m.padding),
        nn.ConstantPad2d: lambda: tnn.ConstantPad2d(m.padding, m.value),
        nn.ReflectionPad2d: lambda: tnn.ReflectionPad2d(m.padding),
        nn.ReplicationPad2d: lambda: tnn.ReplicationPad2d(m.padding),
        nn.CircularPad2d: lambda: tnn.CircularPad2d(m.padding),
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


def to_torch(model, example_input=None):
    """The equivalent torch.nn module (same keys, weights, train/eval mode).

    Chains (layers, Sequential, Residual, the article's blocks) convert module for
    module.  A model with a plain forward (skips, branches, shared layers: resnet18,
    unet, your own) is traced: pass ``example_input`` (an (N, C, H, W) array or just
    its shape); the result is a ``torch.fx.GraphModule`` whose ``.code`` is the
    forward and whose layers keep fastconv's names.  As with ``torch.jit.trace``,
    control flow is frozen at the example's path; the batch size stays free."""
    torch = _torch()
    try:
        t = _convert(model, torch)
    except TypeError as e:
        if not model._modules:
            raise
        if example_input is None:
            raise TypeError(f"to_torch: {type(model).__name__} has a plain forward; pass "
                            f"example_input (an input array or its shape, e.g. "
                            f"(1, 3, 64, 64)) to trace it") from e
        from ._torch_trace import trace_to_torch
        t = trace_to_torch(model, example_input, _convert, torch)
    t.load_state_dict(torch_state_dict(model))
    t.train(model.training)
    return t
