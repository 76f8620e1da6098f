"""Frozen inference: a model's eval forward as a flat program of prepared kernel calls.

    frozen = fastconv.freeze(model.eval(), (3, 224, 224))
    logits = frozen(frame)              # frame (N, 3, H, W) float32 -> as model(frame)

At one frame a network's layers are small and the Python around each kernel call (the
module tree, containers, argument checks, the weight cache's fingerprint) costs as much
as the kernel.  ``freeze`` traces the forward once (the tape's recorder, as
``export_onnx`` does), folds every BatchNorm into the convolution before it and fuses
ReLU / ReLU6 into the layer or residual add before it (quantization/graph.py, the graph
``quantize`` plans over), and plans and prepares each convolution once per input shape:
the algorithm, the weights in the form its kernel reads (Winograd's transform, or times
the BatchNorm factor), so a call is a loop over the steps, each a kernel call.

The model is copied: the frozen one keeps the weights it was frozen with (as
``torch.jit.freeze``); freeze again after training.  Python control flow that depends on
the data or on the spatial size is frozen at the traced values (as ONNX export); the
batch size and, for shape-independent forwards, the spatial size may change.  Float32
(or the model's float64); ``autocast`` does not apply (``quantize`` gives int8).
"""
import copy

import numpy as np

from . import ops
from ._grad import no_grad
from ._runtime import get_num_threads
from ._kernels import _elementwise
from .functional._common import RELU, RELU6, empty
from .functional.conv import frozen_conv2d
from .nn import Conv2d
from .quantization.graph import build_graph, call_module, call_op, first_training

__all__ = ["freeze", "FrozenModel"]

_ACT = {None: 0, "relu": RELU, "relu6": RELU6}


def _activate(y, act, nt):
    """ReLU / ReLU6 in place on a fresh contiguous array (NaN kept, as the layers)."""
    if act is not None:
        f = y.reshape(-1)
        if act == "relu":
            _elementwise.relu(f, f, nt)
        else:
            _elementwise.activation(f, f, 0, 0.0, nt)      # op 0: ReLU6
    return y


def _fresh(y):
    """y as an array the step may overwrite: a layer may hand back its input or a view."""
    return y if y.flags.c_contiguous and y.flags.writeable and y.base is None else \
        np.array(y, order="C")


class _ConvStep:
    """A Conv2d with its BatchNorm folded (scale and shift per channel, float64 folding
    as the eval path) and its activation fused: one runner per input shape and dtype."""

    def __init__(self, node):
        m = node.module
        self.module, self.name = m, node.name
        w = np.array(m.weight.data, copy=True)
        b = None if m.bias is None else np.array(m.bias.data, copy=True)
        if node.bn is not None:
            scale, shift = node.bn.fold_factors(b, w.dtype)
            self.scale, self.bias = np.array(scale, copy=True), np.array(shift, copy=True)
        else:
            self.scale, self.bias = None, b
        self.weight, self.relu = w, _ACT[node.act]
        self.runners = {}

    def __call__(self, nt, x):
        run = self.runners.get((x.shape, x.dtype))
        if run is None:
            run = self._plan(x)
        return run(x if x.flags.c_contiguous else np.ascontiguousarray(x), nt)

    def _plan(self, x):
        m = self.module
        if len(self.runners) >= 16:         # input sizes come and go: keep the recent ones
            self.runners.clear()
        x = m._input(x)                     # the layer's own checks (rank, channels)
        run = frozen_conv2d(x.shape, x.dtype, self.weight, self.bias, self.scale, m.stride,
                            m._pads(x.shape[2], x.shape[3]), m.dilation, m.groups,
                            m.padding_mode, self.name, self.relu)
        self.runners[(x.shape, x.dtype)] = run
        return run


class _AddStep:
    """A residual add (same shapes), its ReLU / ReLU6 in the same pass or right after."""

    def __init__(self, node):
        self.act = node.act

    def __call__(self, nt, a, b):
        if a.shape != b.shape or a.dtype != b.dtype:
            return _activate(_fresh(ops.add(a, b)), self.act, nt)
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        y = empty(a.shape, a.dtype)
        if self.act == "relu":
            _elementwise.add_relu(a.reshape(-1), b.reshape(-1), y.reshape(-1), nt)
            return y
        _elementwise.add(a.reshape(-1), b.reshape(-1), y.reshape(-1), nt)
        return _activate(y, self.act, nt)


class _LayerStep:
    """Any other layer or op, called as the traced forward called it (the frozen copy is
    in eval mode), its fused activation after it."""

    def __init__(self, node):
        self.node, self.act = node, node.act
        self.pick = node.pick

    def __call__(self, nt, *xs):
        n = self.node
        if n.kind == "flatten":
            y = xs[0].reshape(xs[0].shape[0], -1)
        elif n.kind == "op":
            y = call_op(ops, n, dict(zip(n.inputs, xs)), "freeze")
        elif n.kind == "bn":                # recorded as forward_relu(x, True): act holds it
            y = n.module(xs[0])
        else:
            y = call_module(n, dict(zip(n.inputs, xs)))
            if n.bn is not None:
                y = n.bn(y)
        if self.pick is not None:
            y = y[self.pick]
        return _activate(_fresh(y), self.act, nt) if self.act else y


def _step(node):
    if node.kind == "conv" and type(node.module) is Conv2d and node.pick is None:
        return _ConvStep(node)
    if node.kind == "add":
        return _AddStep(node)
    return _LayerStep(node)


class FrozenModel:
    """A model's eval forward as prepared steps (``fastconv.freeze``): ``frozen(x)``
    with x (N, C, H, W) (or (C, H, W), unbatched) -> the model's output.

    ``steps``: [(name, kind)] of the program in order, each naming the layers fused into
    it (e.g. ``('features.0.0', 'conv+bn+relu6')``).  Thread-safe: calls share only
    the prepared weights and plans."""

    training = False

    def __init__(self, model, input_shape, nodes, out):
        self.model, self.input_shape, self.out = model, tuple(input_shape), out
        self._steps = [(_step(n), n) for n in nodes]
        last = {}
        for i, (_, n) in enumerate(self._steps):
            for v in n.inputs:
                last[v] = i
        # values dropped after their last use: the allocator's cache reuses their memory
        self._program = [(s, tuple(n.inputs), n.output,
                          tuple(v for v in set(n.inputs) if last[v] == i and v != out))
                         for i, (s, n) in enumerate(self._steps)]
        self._dtype = next((p.data.dtype for p in model.parameters()), np.dtype(np.float32))
        self._first = nodes[0].name if nodes else "input"

    @property
    def steps(self):
        return [(n.name, n.kind + ("+bn" if n.bn is not None else "") +
                 (f"+{n.act}" if n.act else "")) for _, n in self._steps]

    def __repr__(self):
        return f"FrozenModel({type(self.model).__name__}, {len(self._steps)} steps, " \
               f"input (N, {', '.join(map(str, self.input_shape))})"

    def __call__(self, x):
        x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"FrozenModel: layer {self._first!r} takes float32 (or float64) "
                            f"input, got {x.dtype}")
        unbatched = x.ndim == len(self.input_shape)
        if unbatched:
            x = x[None]
        if x.ndim != len(self.input_shape) + 1 or x.shape[1] != self.input_shape[0]:
            raise ValueError(f"FrozenModel: layer {self._first!r} expects (N, "
                             f"{self.input_shape[0]}, H, W) or ({self.input_shape[0]}, H, W) "
                             f"input, got {tuple(np.shape(x) if not unbatched else x.shape[1:])}")
        x = np.ascontiguousarray(x, self._dtype)
        y = self.forward(x)
        return y[0] if unbatched else y

    def forward(self, x):
        """x (N, C, H, W) contiguous in the model's dtype -> the output."""
        nt = max(1, get_num_threads())
        env = {0: x}
        with no_grad():
            for step, ins, o, free in self._program:
                env[o] = step(nt, *[env[v] for v in ins])
                for v in free:
                    del env[v]
        return env[self.out]

    def eval(self):
        return self

    def train(self, mode=True):
        """Inference only: nothing to switch (code that toggles modes keeps running)."""
        if mode:
            raise RuntimeError("FrozenModel is inference only: freeze the trained model "
                               "again instead of training this one")
        return self


def freeze(model, input_shape):
    """``model``'s eval forward as a FrozenModel: traced once for inputs of input_shape
    ((C, H, W), or an example array (N, C, H, W) whose shape is taken), BatchNorm folded
    into the convolutions, ReLU / ReLU6 fused, every convolution planned and its weights
    prepared once per input shape.  The model is copied: later changes to it do not
    reach the frozen one.

    Raises RuntimeError if a layer is in training mode (call ``model.eval()``: BatchNorm
    must use its running statistics), TypeError for a forward whose result is not one
    array computed from its input."""
    training = first_training(model)
    if training is not None:
        raise RuntimeError(f"freeze: layer {training!r} is in training mode; call "
                           f"model.eval() first (BatchNorm must use its running statistics)")
    if isinstance(input_shape, np.ndarray):
        input_shape = input_shape.shape[1:]
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) < 1 or min(input_shape) < 1:
        raise ValueError(f"freeze: input_shape must be (C, H, W) of positive sizes, got "
                         f"{input_shape}")
    frozen = copy.deepcopy(model)
    nodes, out = build_graph(frozen, input_shape, training=False, caller="freeze")
    if out == 0:
        raise TypeError("freeze: the model returns its input unchanged: nothing to freeze")
    return FrozenModel(frozen, input_shape, nodes, out)
