"""Post-training int8 quantisation: ``quantize(model, batches)`` -> QuantizedModel.

Plan: the graph (graph.py) is run in float on the calibration batches, an observer per
value giving its u8 scale and zero point; then every convolution (dense or depthwise,
BatchNorm folded, ReLU / ReLU6 fused) and, unless kept in float, Linear becomes an int8
step (per-output-channel symmetric s8 weights packed once, the requantisation epilogue
of the _quant kernels); max pooling, global average pooling, flatten, ReLU and residual
adds run on u8 directly; any other layer runs in float32 with conversions around it.
Activations between int8 steps stay u8 in NHWC; the model takes and returns float32
NCHW like the float model."""
import json
import math
import threading

import numpy as np

from .. import nn
from .._runtime import get_num_threads
from .._kernels import _quant as Q
from ..functional._common import empty as _cached_empty

_current = threading.local()      # the arena of the forward running on this thread


class _Arena:
    """A QuantizedModel's activation buffers, kept between calls: a step's output takes
    a free buffer of its exact size, and a buffer is free again once no live value of
    the forward uses it (values die after their last use).  The same shapes come every
    call, so after the first nothing is allocated (a fresh multi-MiB array costs a page
    fault per 4 KiB: 20% of a 224x224 batch of 64) and the memory held is the forward's
    peak of live activations."""

    def __init__(self):
        self.free, self.owner, self.users = {}, {}, {}

    def take(self, shape, dtype):
        dt = np.dtype(dtype)
        nbytes = math.prod(shape) * dt.itemsize
        pool = self.free.get(nbytes)
        buf = pool.pop() if pool else np.empty(max(nbytes, 1), np.uint8)
        self.owner[id(buf)] = buf
        return buf[:nbytes].view(dt).reshape(shape)

    def _root(self, a):
        while isinstance(a, np.ndarray):
            if id(a) in self.owner:
                return a
            a = a.base
        return None

    def hold(self, value):
        """A new value: count it as a user of its buffer."""
        b = self._root(value.data if isinstance(value, QTensor) else value)
        if b is not None:
            self.users[id(b)] = self.users.get(id(b), 0) + 1

    def drop(self, value):
        """A dead value: its buffer is free once it has no other user."""
        b = self._root(value.data if isinstance(value, QTensor) else value)
        if b is not None:
            self.users[id(b)] -= 1
            if not self.users[id(b)]:
                del self.users[id(b)], self.owner[id(b)]
                self.free.setdefault(b.size, []).append(b)

    def reset(self):
        """After a forward: every buffer is free (the output was copied out)."""
        for b in self.owner.values():
            self.free.setdefault(b.size, []).append(b)
        self.owner, self.users = {}, {}


def _empty(shape, dtype):
    arena = getattr(_current, "arena", None)
    return arena.take(shape, dtype) if arena is not None else _cached_empty(shape, dtype)
from .graph import build_graph, first_training, run_float
from .observers import OBSERVERS, MinMaxObserver, qparams

__all__ = ["QTensor", "QuantizedModel", "quantize", "load_quantized"]

FORMAT = "fastconv-int8/1"


class QTensor:
    """u8 activations: data (N, H, W, C) NHWC, real = (data - zp) * scale; shape is the
    float tensor's, (N, C, H, W) or (N, C) for a flattened 1 x 1 map."""
    __slots__ = ("data", "scale", "zp", "shape")

    def __init__(self, data, scale, zp, shape):
        self.data, self.scale, self.zp, self.shape = data, np.float32(scale), int(zp), shape


def _to_float(v, nt):
    """A value as float32 in its float layout."""
    if not isinstance(v, QTensor):
        return v
    n, h, w, c = v.data.shape
    y = _empty((n, c, h, w), np.float32)
    Q.dequantize_nhwc(v.data, y, v.scale, v.zp, nt)
    return y.reshape(v.shape)


def _to_q(v, scale, zp, nt, channels=None):
    """A value as u8 NHWC with (scale, zp) (float32 arrays are quantised, to `channels`
    channels when given: the extra ones hold zp)."""
    if isinstance(v, QTensor):
        return v
    x = np.ascontiguousarray(v, np.float32)
    x4 = x.reshape(x.shape + (1,) * (4 - x.ndim))
    n, c, h, w = x4.shape
    y = _empty((n, h, w, channels or c), np.uint8)
    Q.quantize_nchw(x4, y, np.float32(1.0 / float(scale)), np.float32(zp), nt)
    return QTensor(y, scale, zp, x.shape)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _padding(m, in_hw, out_hw):
    """The top/left padding of a convolution (the bottom/right is implied by the output
    size); 'same' from the output size by TensorFlow's rule, 'valid' 0."""
    if not isinstance(m.padding, str):
        return _pair(m.padding)
    if m.padding == "valid":
        return (0, 0)
    k, s, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
    return tuple(max(0, ((out_hw[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 - in_hw[i]) // 2)
                 for i in range(2))


class _Step:
    """One node of the plan: run(env, nt) reads its inputs from env and returns its
    output value.  precision: 'int8' or 'float32'."""
    precision = "float32"

    def __init__(self, node):
        self.node, self.name, self.kind = node, node.name, node.kind


class _WeightStep(_Step):
    """A convolution (dense or depthwise) or Linear with s8 weights: the u8 input with
    the input's (scale, zp), the output u8 with out_q's or float32 (out_q None)."""
    precision = "int8"

    def __init__(self, node, in_q, out_q, in_shape, in_float=False):
        super().__init__(node)
        m = node.module
        if node.bn is not None:
            w, b = node.bn.folded(m.weight.data.astype(np.float64),
                                  None if m.bias is None else m.bias.data)
        else:
            w = m.weight.data.astype(np.float64)
            b = np.zeros(w.shape[0]) if m.bias is None else m.bias.data.astype(np.float64)
        w = np.asarray(w, np.float64)
        b = np.asarray(b, np.float64)
        cout = w.shape[0]
        if w.ndim == 2:                                   # Linear: a 1x1 convolution
            w = w.reshape(cout, -1, 1, 1)
        amax = np.abs(w).reshape(cout, -1).max(axis=1)
        sw = np.where(amax > 0, amax / 127.0, 1.0)
        wq = np.clip(np.rint(w / sw.reshape(-1, 1, 1, 1)), -127, 127).astype(np.int8)
        self.cout, self.kh, self.kw = cout, w.shape[2], w.shape[3]
        self.depthwise = isinstance(m, nn.Conv2d) and m.groups > 1
        sx, zx = in_q
        if self.depthwise:                                 # (K_h*K_w, C)
            self.wmat = np.ascontiguousarray(wq[:, 0].reshape(cout, -1).T)
            colsum = self.wmat.astype(np.int64).sum(axis=0)
        else:                                              # (K_h*K_w*C, C_out), (kh, kw, c)
            # a float input quantised here gets its channels padded to a multiple of 4
            # (zero weights): the kernel then gathers its rows without an im2col copy
            cin = wq.shape[1]
            self.cpad = (-cin) % 4 if in_float and (self.kh, self.kw) != (1, 1) else 0
            if self.cpad:
                wq = np.concatenate([wq, np.zeros((cout, self.cpad) + wq.shape[2:], np.int8)],
                                    axis=1)
            self.cin = cin + self.cpad
            mat = np.ascontiguousarray(wq.transpose(2, 3, 1, 0).reshape(-1, cout))
            colsum = mat.astype(np.int64).sum(axis=0)
            self.packed = Q.pack_weights(mat)
        self.comp = (-zx * colsum).astype(np.int32)
        self.in_q, self.out_q = in_q, out_q
        scale = float(sx) * sw
        lo, hi = (0.0 if node.act else -np.inf), (6.0 if node.act == "relu6" else np.inf)
        if out_q is None:
            self.mult, self.bias = scale.astype(np.float32), b.astype(np.float32)
            self.lo, self.hi = np.float32(lo), np.float32(hi)
        else:
            sy, zy = float(out_q[0]), out_q[1]
            self.mult = (scale / sy).astype(np.float32)
            self.bias = (b / sy + zy).astype(np.float32)
            self.lo = np.float32(max(0.0, np.rint(zy + lo / sy)) if node.act else 0.0)
            self.hi = np.float32(min(255.0, np.rint(zy + hi / sy)) if hi != np.inf else 255.0)
        self.module = m
        self.stride = self.dilation = (1, 1)
        self.pad, self.out_hw, self.in_hw = (0, 0), (1, 1), None
        if isinstance(m, nn.Conv2d):
            self.stride, self.dilation = _pair(m.stride), _pair(m.dilation)
        self.kernel = Q.QConv(self.wmat if self.depthwise else self.packed, self.depthwise,
                              cout if self.depthwise else self.cin, cout, self.kh, self.kw,
                              *self.stride, *self.dilation, zx, self.comp, self.mult,
                              self.bias, self.lo, self.hi)
        self.in_channels = None if self.depthwise or not self.cpad else self.cin

    def _geometry(self, h, w):
        """Output size and top/left padding for an h x w input (any size, not only the
        calibration's; the module's own formulas and checks)."""
        if (h, w) != self.in_hw:
            m = self.module
            out = tuple(m.output_shape((1, m.in_channels, h, w))[2:])
            self.out_hw, self.pad, self.in_hw = out, _padding(m, (h, w), out), (h, w)
        return self.out_hw

    def run(self, env, nt):
        x = env[self.node.inputs[0]]
        if not isinstance(x, QTensor):
            x = _to_q(x, *self.in_q, nt, channels=self.in_channels)
        d = x.data
        n, h, w = d.shape[:3]
        if self.node.kind == "conv":
            oh, ow = self.out_hw if (h, w) == self.in_hw else self._geometry(h, w)
        else:
            oh = ow = 1
        if self.out_q is None:
            y = _empty((n, oh, ow, self.cout), np.float32)
            self.kernel.run_f32(d, y, *self.pad, nt)
            shape = (n, self.cout) + ((oh, ow) if self.node.kind == "conv" else ())
            return np.ascontiguousarray(y.transpose(0, 3, 1, 2)).reshape(shape)
        y = _empty((n, oh, ow, self.cout), np.uint8)
        self.kernel.run_u8(d, y, *self.pad, nt)
        return QTensor(y, *self.out_q,
                       (n, self.cout, oh, ow) if self.node.kind == "conv" else (n, self.cout))


class _FollowStep(_Step):
    """Max pooling, global max / average pooling, flatten, ReLU / ReLU6: on u8 when the input
    is u8 (the scale passes through; global pooling returns float32), else float."""

    def __init__(self, node, on_u8):
        super().__init__(node)
        self.precision = "int8" if on_u8 else "float32"
        self.in_shape = self.out_shape = None

    def run(self, env, nt):
        x, n = env[self.node.inputs[0]], self.node
        if not isinstance(x, QTensor):
            if n.kind == "flatten":                  # as run_float's, without its setup
                return x.reshape(x.shape[0], -1)
            return _float_node(n, {n.inputs[0]: x})
        d = x.data
        if n.kind == "maxpool":
            if d.shape != self.in_shape:             # the module's checks, once per shape
                self.out_shape = tuple(n.module.output_shape(
                    (d.shape[0], d.shape[3]) + d.shape[1:3]))
                self.in_shape = d.shape
            out = self.out_shape
            k, s, p, dl = n.module._args
            y = _empty((d.shape[0],) + out[2:] + (d.shape[3],), np.uint8)
            Q.max_pool(d, y, *k, *s, *p, *dl, nt)
            return QTensor(y, x.scale, x.zp, out)
        if n.kind == "gmp":                   # global max: the scale passes through
            y = np.ascontiguousarray(d.max(axis=(1, 2), keepdims=True))
            return QTensor(y, x.scale, x.zp, (d.shape[0], d.shape[3], 1, 1))
        if n.kind == "gap":
            y = _empty((d.shape[0], d.shape[3]), np.float32)
            Q.global_avg_pool(d, y, x.scale, x.zp)
            return y.reshape(d.shape[0], d.shape[3], 1, 1)
        if n.kind == "flatten":
            if len(x.shape) == 2 or x.shape[2:] == (1, 1):
                return QTensor(d, x.scale, x.zp, (d.shape[0], d.shape[3]))
            return _to_float(x, nt).reshape(d.shape[0], -1)
        hi = 255 if n.kind == "relu" else int(min(255, np.rint(x.zp + 6.0 / x.scale)))
        return QTensor(np.clip(d, x.zp, hi).astype(np.uint8), x.scale, x.zp, x.shape)


class _AddStep(_Step):
    """Residual add (ReLU fused) on u8: both operands to u8, the result with out_q's."""
    precision = "int8"

    def __init__(self, node, in_qs, out_q):
        super().__init__(node)
        self.in_qs, self.out_q = in_qs, out_q

    def run(self, env, nt):
        a = _to_q(env[self.node.inputs[0]], *self.in_qs[0], nt)
        b = _to_q(env[self.node.inputs[1]], *self.in_qs[1], nt)
        sy, zy = self.out_q
        y = _empty(a.data.shape, np.uint8)
        Q.add(a.data.reshape(-1), b.data.reshape(-1), y.reshape(-1),
              np.float32(float(a.scale) / float(sy)), a.zp,
              np.float32(float(b.scale) / float(sy)), b.zp, np.float32(zy),
              np.float32(zy if self.node.act else 0),
              nt)
        if self.node.act == "relu6":
            y = np.minimum(y, np.uint8(min(255, np.rint(zy + 6.0 / float(sy)))))
        return QTensor(y, sy, zy, a.shape)


def _float_node(node, env):
    return run_float([node], node.output, None, env=env)


class _FloatStep(_Step):
    """A layer or op with no int8 kernel (or kept in float): float32 in and out."""

    def run(self, env, nt):
        local = {v: _to_float(env[v], nt) for v in self.node.inputs}
        return _float_node(self.node, local)


class QuantizedModel:
    """An int8 inference model: ``qm(x)`` with x float32 (N, C, H, W) -> float32 output,
    as the float model in eval mode.  ``steps`` list each node and its precision;
    ``qparams`` maps value numbers to u8 (scale, zero point); ``save(path)``."""

    training = False

    def __init__(self, model, input_shape, nodes, out, qp, options):
        self.model, self.input_shape = model, tuple(input_shape)
        self.nodes, self.out, self.qparams, self.options = nodes, out, qp, options
        self.steps = _plan(nodes, out, qp, options["float_layers"], input_shape)
        self.report = None
        self._arena, self._lock = _Arena(), threading.Lock()
        # values dropped after their last use, so the allocator's cache reuses them
        last = {}
        for i, s in enumerate(self.steps):
            for v in s.node.inputs:
                last[v] = i
        self._free = [[v for v, i2 in last.items() if i2 == i and v != out]
                      for i in range(len(self.steps))]

    def __call__(self, x):
        first = self.steps[0].name if self.steps else "input"
        x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"QuantizedModel: layer {first!r} takes float32 (or float64) "
                            f"input, got {x.dtype}")
        if x.ndim != 4 or x.shape[1] != self.input_shape[0]:
            raise ValueError(f"QuantizedModel: layer {first!r} expects (N, "
                             f"{self.input_shape[0]}, H, W) input, got {tuple(x.shape)}")
        return self.forward(np.ascontiguousarray(x, np.float32))

    def forward(self, x, visit=None):
        """x float32 (N, C, H, W) contiguous -> the output (a fresh array); visit(step,
        value) sees each step's output as it is made."""
        nt = max(1, get_num_threads())
        with self._lock:                  # one forward at a time: the arena is shared
            _current.arena = arena = self._arena
            try:
                env = {0: x}
                for s, free in zip(self.steps, self._free):
                    y = env[s.node.output] = s.run(env, nt)
                    arena.hold(y)
                    if visit is not None:
                        visit(s, y)
                    for v in free:
                        if v in env:
                            arena.drop(env.pop(v))
                out = np.array(_to_float(env[self.out], nt), copy=True)
            finally:
                _current.arena = None
                arena.reset()
        return out

    def eval(self):
        return self

    def empty_cache(self):
        """Free the activation buffers kept between calls (the peak of one forward's live
        activations; the next call allocates them again)."""
        with self._lock:
            self._arena = _Arena()

    def train(self, mode=True):
        """Inference only: nothing to switch (so code that toggles modes runs)."""
        return self

    def precisions(self):
        """[(layer name, kind, 'int8' or 'float32')] in order."""
        return [(s.name, s.kind, s.precision) for s in self.steps]

    def layer_precisions(self):
        """{layer name: 'int8' or 'float32'}, the layers folded into a step (BatchNorm,
        ReLU) included: what analysis.summary shows."""
        out = {}
        for s in self.steps:
            for name in [s.name] + s.node.fused:
                out[name] = s.precision
        return out

    def error_report(self, x):
        """Per-layer error of the int8 model against the float one on the batch x: each
        step's output SQNR in dB, cumulative (int8 all the way up to it) and local (the
        step alone, on the float model's own input: where the error comes from), and
        the cumulative relative error ||q - f|| / ||f||; a QuantReport (print it)."""
        x = np.ascontiguousarray(x, np.float32)
        ref = {0: x}
        run_float(self.nodes, self.out, x, visit=lambda n, y: ref.__setitem__(n.output, y))
        nt = max(1, get_num_threads())

        def sqnr_rel(v, f):
            f = np.asarray(f, np.float64)
            q = np.asarray(_to_float(v, nt), np.float64).reshape(f.shape)
            err, nf = np.linalg.norm(q - f), max(np.linalg.norm(f), 1e-30)
            return (np.inf if err == 0 else 20 * np.log10(nf / err)), err / nf

        rows = []

        def visit(s, v):
            cum, rel = sqnr_rel(v, ref[s.node.output])
            local = s.run({i: ref[i] for i in s.node.inputs}, nt)
            rows.append((s.name, s.kind, s.precision, float(cum),
                         float(sqnr_rel(local, ref[s.node.output])[0]), float(rel)))
        self.forward(x, visit)
        return QuantReport(rows)

    def save(self, path, metadata=None):
        """Write the model as .npz: the float state_dict (the int8 weights are a
        deterministic function of it) and the activations' u8 parameters, plus metadata
        (a dict of JSON-able values) under __quant__."""
        spec = {"format": FORMAT, "input_shape": list(self.input_shape),
                "qparams": {str(k): [float(s), int(z)] for k, (s, z) in self.qparams.items()},
                "options": self.options, "metadata": metadata or {}}
        arrays = {k: np.asarray(v) for k, v in self.model.state_dict().items()}
        arrays["__quant__"] = np.array(json.dumps(spec))
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)


class QuantReport:
    """rows: (layer, kind, precision, cumulative SQNR dB, local SQNR dB, relative
    error), in order."""

    def __init__(self, rows):
        self.rows = rows

    def __str__(self):
        lines = [f"{'layer':<28} {'kind':<8} {'precision':<9} {'SQNR dB':>8} {'local dB':>8} "
                 f"{'rel err':>8}"]
        for name, kind, prec, sqnr, local, rel in self.rows:
            lines.append(f"{name[:28]:<28} {kind:<8} {prec:<9} {sqnr:8.1f} {local:8.1f} "
                         f"{rel:8.4f}")
        lines.append("SQNR: 20 log10(|float| / |int8 - float|) of the layer's output, with "
                     "int8 up to it (cumulative) or on the float input (local)")
        return "\n".join(lines)

    __repr__ = __str__


def _int8_capable(node):
    m = node.module
    if node.kind == "conv":
        return m.padding_mode == "zeros" and (m.groups == 1 or (
            m.groups == m.in_channels == m.out_channels))
    return node.kind == "linear"


def _plan(nodes, out, qp, float_layers, input_shape):
    """The steps: which nodes run in int8 and what form (u8 or float32) each output
    takes.  float_layers: layer names, and 'first' / 'head' for the first and the last
    convolution or Linear."""
    weighted = [n for n in nodes if n.kind in ("conv", "linear")]
    keep = set(float_layers)
    if "first" in keep and weighted:
        keep.add(weighted[0].name)
    if "head" in keep and weighted:
        keep.add(weighted[-1].name)
    shapes = {0: (2,) + tuple(input_shape)}
    for n in nodes:
        shapes[n.output] = n.shape
    int8 = {id(n) for n in nodes if _int8_capable(n) and n.name not in keep}
    # a node's output is u8 when some consumer takes u8 (an int8 layer, an add, or a
    # pooling / flatten / ReLU step that follows its input's form)
    takes_u8 = set()
    for n in nodes:
        if id(n) in int8 or n.kind in ("add", "maxpool", "gap", "gmp", "flatten", "relu", "relu6"):
            takes_u8.update(n.inputs)
    # the u8 parameters each value is held with (absent: float32); a pooling, flatten
    # or ReLU step on u8 keeps its input's
    held = {}
    steps = []
    for n in nodes:
        def q_in(v):
            return held.get(v, qp[v])
        if id(n) in int8:
            out_q = qp[n.output] if n.output in takes_u8 and n.output != out else None
            steps.append(_WeightStep(n, q_in(n.inputs[0]), out_q, shapes[n.inputs[0]],
                                     in_float=n.inputs[0] not in held))
            if out_q is not None:
                held[n.output] = out_q
        elif n.kind == "add":
            steps.append(_AddStep(n, [q_in(v) for v in n.inputs], qp[n.output]))
            held[n.output] = qp[n.output]
        elif n.kind in ("maxpool", "gap", "gmp", "flatten", "relu", "relu6"):
            on_u8 = n.inputs[0] in held
            if on_u8 and n.kind == "flatten" and len(shapes[n.inputs[0]]) == 4 \
                    and tuple(shapes[n.inputs[0]][2:]) != (1, 1):
                on_u8 = False                 # NCHW order needs the float layout
            steps.append(_FollowStep(n, on_u8))
            if on_u8 and n.kind != "gap":
                held[n.output] = held[n.inputs[0]]
        else:
            steps.append(_FloatStep(n))
    return steps


def quantize(model, calibration_batches, observer="minmax", report=False,
             float_layers=("head",), _saved=None):
    """Post-training int8 quantisation of a float model in eval mode.

    calibration_batches: an iterable of float32 (N, C, H, W) arrays (or (x, y) pairs),
    at least one; observer: 'minmax' (MinMaxObserver, the default: on the trained camera
    classifier, whose max pools pick exactly the largest values, it keeps the logits at
    39 dB SQNR where the 99.99th percentile gives 16 dB) or 'percentile'
    (PercentileObserver; a max pool's input still gets its min/max), or an observer
    class; float_layers: layer names to keep in float32, 'first' and
    'head' naming the first and last convolution / Linear (default: the classifier head
    in float).  Returns a QuantizedModel; with report=True its ``report`` holds the
    per-layer error on the first calibration batch (QuantReport).

    Raises RuntimeError if a layer is in training mode, ValueError for no batches, and
    TypeError (naming the first layer) for a batch that is not float."""
    training = first_training(model)
    if training is not None:
        raise RuntimeError(f"quantize: layer {training!r} is in training mode; call "
                           f"model.eval() first (BatchNorm must use its running statistics)")
    obs_cls = OBSERVERS.get(observer, observer) if isinstance(observer, str) else observer
    if not callable(obs_cls):
        raise ValueError(f"quantize: observer must be one of {sorted(OBSERVERS)} or a "
                         f"class, got {observer!r}")
    batches = []
    if _saved is None:
        for b in calibration_batches if calibration_batches is not None else ():
            batches.append(b[0] if isinstance(b, (tuple, list)) else b)
        if not batches:
            raise ValueError("quantize: no calibration batches (give at least one "
                             "float32 (N, C, H, W) array)")
    first = next(iter(model.named_modules()))[0]
    sample = np.asarray(batches[0]) if batches else None
    input_shape = tuple(sample.shape[1:]) if sample is not None else _saved["input_shape"]
    nodes, out = build_graph(model, input_shape)
    lname = nodes[0].name if nodes else first
    if _saved is None:
        observers = {}

        def see(n, y):
            observers.setdefault(n.output, obs_cls()).observe(y)
        for i, b in enumerate(batches):
            b = np.asarray(b)
            if b.dtype not in (np.float32, np.float64):
                raise TypeError(f"quantize: layer {lname!r} takes float32 input; calibration "
                                f"batch {i} is {b.dtype}")
            if b.ndim != 4 or tuple(b.shape[1:2]) != tuple(input_shape[:1]):
                raise ValueError(f"quantize: layer {lname!r} expects (N, {input_shape[0]}, "
                                 f"H, W) batches; calibration batch {i} is {tuple(b.shape)}")
            b = b.astype(np.float32, copy=False)
            observers.setdefault(0, obs_cls()).observe(b)
            run_float(nodes, out, b, visit=see)
        # a max pool's input keeps its whole range: clipping the largest values (a
        # percentile range) would clip exactly the ones the max picks
        maxed = {n.inputs[0] for n in nodes if n.kind in ("maxpool", "gmp")}
        qp = {v: qparams(*(MinMaxObserver.range(o) if v in maxed and
                           isinstance(o, MinMaxObserver) else o.range()))
              for v, o in observers.items()}
    else:
        qp = {int(k): (np.float32(s), int(z)) for k, (s, z) in _saved["qparams"].items()}
    options = {"float_layers": list(float_layers),
               "observer": observer if isinstance(observer, str) else observer.__name__}
    qm = QuantizedModel(model, input_shape, nodes, out, qp, options)
    if report:
        qm.report = qm.error_report(np.asarray(batches[0], np.float32))
    return qm


def is_quantized_file(path):
    """Whether path is a .npz written by QuantizedModel.save."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return "__quant__" in z.files
    except Exception:             # not a readable .npz (BadZipFile, OSError...): not ours
        return False


def read_metadata(path):
    """The metadata dict save() stored in path."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["__quant__"])).get("metadata", {})
    except Exception as e:
        raise ValueError(f"{path!r} is not a readable fastconv int8 model: "
                         f"{type(e).__name__}: {e}") from None


def load_quantized(path, model):
    """A QuantizedModel from ``save``'s file: model is the float model's skeleton (the
    same architecture), whose weights are loaded from the file -> (qm, metadata)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            spec = json.loads(str(z["__quant__"]))
            state = {k: z[k] for k in z.files if k != "__quant__"}
    except Exception as e:        # truncated, corrupted, foreign: one clear error
        raise ValueError(f"{path!r} is not a readable fastconv int8 model: "
                         f"{type(e).__name__}: {e}") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ValueError(f"load_quantized: {path} is not a {FORMAT} file")
    model.load_state_dict(state)
    model.eval()
    qm = quantize(model, None, observer=spec["options"]["observer"],
                  float_layers=spec["options"]["float_layers"],
                  _saved={"qparams": spec["qparams"],
                            "input_shape": tuple(spec["input_shape"])})
    return qm, spec.get("metadata", {})
