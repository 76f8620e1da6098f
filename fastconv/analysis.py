"""See CNN design ideas in numbers: output sizes, parameter and multiply-add counts,
receptive fields (theoretical and effective) and checkerboard artefacts.

    >>> from fastconv import analysis, models
    >>> print(analysis.summary(models.camera_classifier(), (1, 3, 64, 64)))

Shapes come from each layer's ``output_shape`` (the formulas of ``fastconv._shape``);
a leaf module this file does not know is asked for its ``output_shape`` too, or, if
it has none, run once on zeros to learn it.
"""
import math

import numpy as np

from . import _shape, autograd
from ._conv_plan import Algorithm, ConvGeometry, choose_algorithm
from ._grad import no_grad
from .nn import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d, Dropout,
                 Flatten, Identity, Linear, MaxPool2d, Module, ReLU, Residual, Sequential,
                 Upsample)

conv_output_size = _shape.conv_output_size
conv_transpose_output_size = _shape.conv_transpose_output_size

__all__ = ["conv_output_size", "conv_transpose_output_size", "summary", "Summary",
           "receptive_field", "effective_receptive_field", "erf_spread", "checkerboard"]


class _RF:
    """Receptive field bookkeeping per spatial axis: size (input pixels one output sees)
    and jump (input pixels between neighbouring outputs)."""

    __slots__ = ("size", "jump")

    def __init__(self, size=(1, 1), jump=(1, 1)):
        # integers unless an upsampling layer made the jump fractional
        self.size = tuple(int(v) if float(v).is_integer() else v for v in size)
        self.jump = tuple(int(v) if float(v).is_integer() else v for v in jump)

    def through(self, k, s):
        """A window of k (effective) taps moved by stride s: RF grows by (k-1)*jump."""
        return _RF(tuple(r + (ki - 1) * j for r, ki, j in zip(self.size, k, self.jump)),
                   tuple(j * si for j, si in zip(self.jump, s)))


def _window(m):
    """(kernel, stride, dilation) pairs of a pooling layer, normalised as the layer does."""
    name = type(m).__name__
    k = _shape.pair(m.kernel_size, "kernel_size", name, 1)
    s = _shape.pair(m.stride, "stride", name, 1)
    d = _shape.pair(getattr(m, "dilation", 1), "dilation", name, 1)
    return k, s, d


def _leaf(m, shape, rf):
    """(output shape, parameters, multiply-adds, receptive field) of a known leaf; the
    shape comes from the layer's own ``output_shape``."""
    params = sum(p.data.size for p in m.parameters())
    if not isinstance(m, (Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d,
                          Upsample, BatchNorm2d, ReLU, Dropout, Identity, Flatten, Linear)):
        return None
    out = m.output_shape(shape)
    if isinstance(m, Conv2d):
        n, c = shape[:2]
        k = [d * (ki - 1) + 1 for ki, d in zip(m.kernel_size, m.dilation)]
        macs = int(np.prod(out)) * (c // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        return out, params, macs, rf.through(k, m.stride)
    if isinstance(m, ConvTranspose2d):
        n, c, h, w = shape
        macs = n * h * w * c * (m.out_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        # each output sees ceil(k_eff / s) inputs; outputs are 1/s input pixels apart
        k = [math.ceil((d * (ki - 1) + 1) / s) for ki, d, s in zip(m.kernel_size, m.dilation,
                                                                     m.stride)]
        grown = rf.through(k, (1, 1))
        return out, params, macs, _RF(grown.size, tuple(j / s for j, s in zip(rf.jump, m.stride)))
    if isinstance(m, (MaxPool2d, AvgPool2d)):
        k, s, d = _window(m)
        keff = [di * (ki - 1) + 1 for ki, di in zip(k, d)]
        return out, params, int(np.prod(out)) * k[0] * k[1], rf.through(keff, s)
    if isinstance(m, AdaptiveAvgPool2d):
        h, w = shape[2:]
        oh, ow = out[2:]
        k = (math.ceil(h / oh), math.ceil(w / ow))   # the widest window
        return out, params, int(np.prod(shape)), rf.through(k, (h // oh or 1, w // ow or 1))
    if isinstance(m, Upsample):
        h, w = shape[2:]
        oh, ow = out[2:]
        taps = (1, 1) if m.mode == "nearest" else (2, 2)
        grown = rf.through(taps, (1, 1))
        return out, params, 0, _RF(grown.size, (rf.jump[0] * h / oh, rf.jump[1] * w / ow))
    if isinstance(m, BatchNorm2d):
        return out, params, int(np.prod(shape)), rf
    if isinstance(m, Flatten):
        nd = len(shape)
        s, e = m.start_dim % nd, m.end_dim % nd
        if len(shape) == 4 and s <= 2 <= e:   # spatial axes merged: a later Linear sees all
            rf = rf.through((shape[2], shape[3]), (1, 1))
        return out, params, 0, rf
    if isinstance(m, Linear):
        return out, params, int(np.prod(shape[:-1])) * m.in_features * m.out_features, rf
    return out, params, 0, rf                       # ReLU, Dropout, Identity


class Summary:
    """Rows (one per leaf layer) and totals of ``summary``; ``str()`` gives the table.

    Each row: name, type, input_shape, output_shape, params, macs (multiply-adds), rf (theoretical
    receptive field, (h, w) input pixels), jump ((h, w) input pixels between outputs),
    activation_bytes (float32 output)."""

    def __init__(self, rows, input_shape):
        self.rows = rows
        self.input_shape = tuple(input_shape)
        self.total_params = sum(r["params"] for r in rows)
        self.total_macs = sum(r["macs"] for r in rows)
        self.total_activation_bytes = sum(r["activation_bytes"] for r in rows)
        self.receptive_field = rows[-1]["rf"] if rows else (1, 1)

    def __str__(self):
        def fmt_pair(p):
            p = tuple(int(v) if float(v).is_integer() else round(v, 3) for v in p)
            return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"
        head = ["layer", "type", "output shape", "params", "mult-adds", "RF", "jump", "act. KiB"]
        body = [[r["name"], r["type"], str(r["output_shape"]), f"{r['params']:,}",
                 f"{r['macs']:,}", fmt_pair(r["rf"]), fmt_pair(r["jump"]),
                 f"{r['activation_bytes'] / 1024:,.1f}"] for r in self.rows]
        if self.rows and "precision" in self.rows[0]:
            head = head + ["precision"]
            body = [b + [r["precision"]] for b, r in zip(body, self.rows)]
        widths = [max(len(x) for x in col) for col in zip(head, *body)]
        right = {3, 4, 5, 6, 7}

        def line(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths)))
        sep = "-" * (sum(widths) + 2 * (len(widths) - 1))
        out = [f"input {self.input_shape}", line(head), sep, *(line(b) for b in body), sep,
               f"total parameters:   {self.total_params:,}",
               f"total mult-adds:    {self.total_macs:,}",
               f"activations:        {self.total_activation_bytes / 2 ** 20:,.2f} MiB (float32)",
               f"receptive field:    {fmt_pair(self.receptive_field)} input pixels"]
        return "\n".join(out)

    __repr__ = __str__


def _walk(m, shape, rf, prefix, rows):
    """Propagate (shape, rf) through m, appending one row per leaf."""
    if isinstance(m, Residual):
        out, rf_b = _walk(m.body, shape, rf, f"{prefix}.body" if prefix else "body", rows)
        if m.shortcut is not None:
            _, rf_s = _walk(m.shortcut, shape, rf, f"{prefix}.shortcut" if prefix else "shortcut",
                            rows)
            rf_b = _RF(tuple(max(a, b) for a, b in zip(rf_b.size, rf_s.size)), rf_b.jump)
        return out, rf_b
    if isinstance(m, Sequential) or getattr(type(m), "_torch_chain", False):
        for name, child in m.named_children():
            shape, rf = _walk(child, shape, rf, f"{prefix}.{name}" if prefix else name, rows)
        return shape, rf
    if not m._leaf and any(True for _ in m.children()):
        return _trace(m, shape, rf, prefix, rows)
    got = _leaf(m, shape, rf)
    if got is None:                      # unknown leaf: its own output_shape, or a run
        try:
            out = m.output_shape(shape)
        except NotImplementedError:
            with no_grad():
                out = m(np.zeros(shape, np.float32)).shape
        got = (tuple(out), sum(p.data.size for p in m.parameters()), 0, rf)
    out, params, macs, rf = got
    rows.append(dict(name=prefix or type(m).__name__, type=type(m).__name__,
                     input_shape=tuple(int(v) for v in shape),
                     output_shape=tuple(int(v) for v in out), params=int(params),
                     macs=int(macs), rf=rf.size, jump=rf.jump,
                     activation_bytes=int(np.prod(out)) * 4))
    return tuple(out), rf


def _trace(model, shape, rf, prefix, rows):
    """A module with a plain forward (branches, concatenations, shared layers): run it
    once on zeros under no_grad and record every layer call and op on the way.  A
    layer's receptive field grows from the union (the largest) of its inputs' fields,
    so a field through branches covers every path."""
    names = {id(m): name for name, m in model.named_modules(prefix)}
    fields, keep, seen = {}, [], {}

    def hook(module, name, args, kwargs, outputs):
        keep.extend(outputs)              # ids stay unique while the trace runs
        inputs = autograd.tensors_in(args)
        # a broadcast (an SE gate's (N, C, 1, 1) times a map) is a per-position op on the
        # map: the field and jump come from the inputs of the output's spatial size (a
        # globally pooled gate's jump would otherwise scale every later layer's growth)
        if module is None and outputs and outputs[0].ndim == 4:
            same = [t for t in inputs if t.ndim == 4 and t.shape[2:] == outputs[0].shape[2:]]
            inputs = same or inputs
        ins = [fields.get(id(t), rf) for t in inputs]
        base = _RF(*(tuple(max(v) for v in zip(*(getattr(r, a) for r in ins)))
                     for a in ("size", "jump"))) if ins else rf
        out = base
        if module is not None:
            got = _leaf(module, tuple(inputs[0].shape), base)
            params = sum(p.data.size for p in module.parameters())
            out_shape, macs = tuple(outputs[0].shape), 0
            if got is not None:
                out_shape, params, macs, out = got
            row = names.get(id(module), type(module).__name__) or type(module).__name__
            seen[row] = seen.get(row, 0) + 1
            rows.append(dict(name=row if seen[row] == 1 else f"{row} (call {seen[row]})",
                             type=type(module).__name__,
                             input_shape=tuple(int(v) for v in inputs[0].shape),
                             output_shape=tuple(int(v) for v in out_shape),
                             params=int(params) if seen[row] == 1 else 0, macs=int(macs),
                             rf=out.size, jump=out.jump,
                             activation_bytes=int(np.prod(out_shape)) * 4))
        for t in outputs:
            fields[id(t)] = out

    prev, autograd._tracer = autograd._tracer, hook
    try:
        with no_grad():
            y = model(autograd.Tensor(np.zeros(shape, np.float32)))
    finally:
        autograd._tracer = prev
    return tuple(y.shape), fields.get(id(y), rf)


def _bf16_precision(m, shape):
    """What a layer multiplies in under autocast("bf16") for an input of shape."""
    if isinstance(m, Linear):
        return "bf16"
    if isinstance(m, (Conv2d, ConvTranspose2d)):
        if m.groups == m.in_channels and m.in_channels > 1:
            return "float32 (depthwise)"
        if isinstance(m, Conv2d) and len(shape) == 4:
            g = ConvGeometry.of(shape, m.weight.shape, m.stride, m._pads(shape[2], shape[3]),
                                m.dilation, m.groups, np.float32, True)
            if choose_algorithm(g) is Algorithm.WINOGRAD4:
                return "float32 (Winograd F(4x4))"
        return "bf16"
    return "float32"


def summary(model, input_shape, precision=None):
    """Per-layer table for ``model`` on an input of ``input_shape`` (N, C, H, W):
    name, type, output shape, parameters, multiply-adds, theoretical receptive field and
    jump, activation memory; with totals.  Returns a ``Summary`` (print it).

    precision="bf16" adds a precision column: what each layer multiplies in under
    ``fastconv.autocast("bf16")`` at this input size (bf16, or float32 for depthwise
    convolutions, Winograd F(4x4) layers and the memory-bound ones).  A
    ``fastconv.quantize`` model is summarised as its float model plus a precision
    column: the precision each layer runs in (int8, or float32 where it has no int8
    kernel or is kept in float; BatchNorm and ReLU folded into an int8 layer show int8)."""
    precisions = None
    if hasattr(model, "layer_precisions") and isinstance(getattr(model, "model", None),
                                                         Module):
        precisions = model.layer_precisions()
        model = model.model
    if not isinstance(model, Module):
        raise TypeError(f"summary: expected a fastconv Module, got {type(model).__name__}")
    if precision not in (None, "float32", "bf16"):
        raise ValueError(f"summary: precision must be None, 'float32' or 'bf16'; got "
                         f"{precision!r}")
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ValueError(f"summary: expected an input shape (N, C, H, W), got {input_shape}")
    rows = []
    _walk(model, input_shape, _RF(), "", rows)
    if precisions is not None:
        for r in rows:
            r["precision"] = precisions.get(r["name"], "-")
    elif precision is not None:
        modules = dict(model.named_modules())
        for r in rows:
            m = modules.get(r["name"].split(" (call ")[0])
            r["precision"] = "float32" if precision == "float32" or m is None else \
                _bf16_precision(m, r["input_shape"])
    return Summary(rows, input_shape)


def receptive_field(model, input_shape):
    """Theoretical receptive field (h, w) of one output of ``model``, in input pixels:
    for stacked stride-1 k x k layers RF = L(k-1) + 1, and every stride multiplies the
    growth of the layers after it (the jump)."""
    return summary(model, input_shape).receptive_field


def effective_receptive_field(model, input_shape, samples=8, seed=0, reinit=False):
    """Luo et al. (2016): the normalised |d out[centre] / d input| map, (H, W).

    A unit gradient at the centre position of the output feature map (all channels) is
    back-propagated on the tape (so any forward works: chains, skips, branches); the absolute input gradient is
    summed over channels, averaged over ``samples`` random inputs (and, with
    ``reinit``, freshly initialised weights), and scaled to a maximum of 1."""
    from . import _random
    from .nn import _init
    n, c, h, w = (int(v) for v in input_shape)
    rng = np.random.default_rng(seed)
    acc = np.zeros((h, w))
    saved = model.state_dict()
    # the tape carries the gradient to the input through any forward (branches, skips);
    # the weights' gradients are not wanted, so their .grad stays untouched
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in frozen:
        p.requires_grad = False
    try:
        for _ in range(samples):
            if reinit:
                _random.manual_seed(int(rng.integers(0, 2 ** 31)))
                for m in model.modules():
                    if isinstance(m, (Conv2d, ConvTranspose2d, Linear)):
                        fan_in = int(np.prod(m.weight.shape[1:]))
                        bound = _init.kaiming_uniform_bound(fan_in)
                        m.weight.data = _init.uniform(m.weight.shape, bound)
            x = autograd.Tensor(rng.standard_normal((n, c, h, w)).astype(np.float32),
                                requires_grad=True)
            y = model(x)
            if y.ndim != 4:
                raise ValueError(f"effective_receptive_field: the model's output must be a "
                                 f"feature map (N, C, H, W), got shape {y.shape}")
            g = np.zeros(y.shape, y.dtype)
            g[:, :, y.shape[2] // 2, y.shape[3] // 2] = 1.0
            y.backward(g)
            acc += np.abs(x.grad).sum(axis=(0, 1))
    finally:
        for p, flag in frozen:
            p.requires_grad = flag
        model.load_state_dict(saved)
    peak = acc.max()
    return acc / peak if peak > 0 else acc


def erf_spread(erf, mass=0.95):
    """Summarise an effective-RF map: centre of mass, standard deviation (h, w) and the
    half-width of the smallest centred square holding ``mass`` of the total."""
    erf = np.asarray(erf, np.float64)
    total = erf.sum()
    if total <= 0:
        raise ValueError("erf_spread: the map is all zeros")
    ys, xs = np.mgrid[:erf.shape[0], :erf.shape[1]]
    cy, cx = (erf * ys).sum() / total, (erf * xs).sum() / total
    sy = math.sqrt((erf * (ys - cy) ** 2).sum() / total)
    sx = math.sqrt((erf * (xs - cx) ** 2).sum() / total)
    cheb = np.maximum(np.abs(ys - round(cy)), np.abs(xs - round(cx)))
    radius = 0
    while erf[cheb <= radius].sum() < mass * total:
        radius += 1
    return dict(center=(cy, cx), sigma=(sy, sx), radius=radius)


def checkerboard(layer, in_channels, size=16, stride=2, seed=0):
    """Checkerboard measure of an upsampling layer: its response to a constant input,
    split by output phase (row mod stride, column mod stride) away from the borders.

    Returns dict(phase_means (stride x stride), variation = (max - min) / mean |y|):
    0 for a layer whose output has no period-``stride`` pattern (bilinear upsample +
    conv), large for ConvTranspose2d(k=3, s=2), whose phases sum different numbers of
    kernel taps (Odena et al., 2016)."""
    x = np.ones((1, in_channels, size, size), np.float32)
    with no_grad():
        y = np.asarray(layer(x), np.float64)[0].mean(axis=0)
    border = max(2, y.shape[0] // 8)
    inner = y[border:-border, border:-border]
    off = border % stride
    means = np.zeros((stride, stride))
    for a in range(stride):
        for b in range(stride):
            means[a, b] = inner[(a - off) % stride::stride, (b - off) % stride::stride].mean()
    scale = np.abs(inner).mean()
    return dict(phase_means=means, variation=float((means.max() - means.min()) / scale)
                if scale > 0 else 0.0)
