"""A model's forward as a flat list of nodes, with BatchNorm folded into the
convolution before it and ReLU / ReLU6 fused into the layer (or residual add) before
them: what quantisation plans over, and what ``fastconv.freeze`` runs.

The forward is recorded once on the tape (``_torch_trace.record_calls``, the ONNX
exporter's recorder), in training mode on a batch of 2 so no eval-mode shortcut hides
a layer (ConvBlock's folded path), the running statistics put back afterwards.  Values
are numbered in the order they are made (0 is the input), so the same model gives the
same numbering every time (saved quantisation parameters refer to them)."""
import numpy as np

from .. import autograd, nn
from .._torch_trace import record_calls

__all__ = ["Node", "build_graph", "run_float", "call_op", "call_module", "first_training"]


class Node:
    """One step of the forward: kind (conv, linear, bn, relu, relu6, maxpool, gap, gmp,
    flatten, add, identity, module, op), the layer (module) or op (op, args, kwargs), the
    input value numbers, the output value number, and for conv / linear / add the fused
    BatchNorm (bn) and activation (act: None, 'relu' or 'relu6')."""

    def __init__(self, name, kind, module, inputs, output, shape, op=None):
        self.name, self.kind, self.module = name, kind, module
        self.inputs, self.output, self.shape = list(inputs), output, tuple(shape)
        self.op = op                      # (name, args, kwargs) of an op call
        self.bn, self.act = None, None
        self.fused = []                   # names of the layers folded into this one
        self.pick = None                  # of a call with several outputs: this one's index
        self.call = ((), {})              # the recorded (args, kwargs), Tensors for values

    def __repr__(self):
        extra = (" +bn" if self.bn is not None else "") + (f" +{self.act}" if self.act else "")
        return f"Node({self.name!r}, {self.kind}{extra}, {self.inputs} -> {self.output})"


def _kind(module, name, args, out):
    if module is None:
        if name == "add" and sum(isinstance(a, autograd.Tensor) for a in args) == 2 \
                and tuple(args[0].shape) == tuple(args[1].shape):
            return "add"
        if name == "reshape" and len(out.shape) == 2 and args[0].ndim >= 2 \
                and out.shape[0] == args[0].shape[0]:
            return "flatten"
        return "op"
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.BatchNorm2d):
        return "bn"
    if type(module) is nn.ReLU:
        return "relu"
    if type(module) is nn.ReLU6:
        return "relu6"
    if type(module) is nn.MaxPool2d and not module.return_indices:
        return "maxpool"
    if type(module) is nn.AdaptiveAvgPool2d and tuple(out.shape[2:]) == (1, 1):
        return "gap"
    if type(module) is nn.AdaptiveMaxPool2d and tuple(out.shape[2:]) == (1, 1) \
            and not getattr(module, "return_indices", False):
        return "gmp"
    if type(module) is nn.Flatten and len(out.shape) == 2:
        return "flatten"
    if type(module) in (nn.Dropout, nn.Identity):
        return "identity"
    return "module"


def build_graph(model, input_shape, training=True, caller="quantize"):
    """model's forward for inputs of input_shape (C, H, W) -> (nodes, output value).
    training: trace in training mode (quantize: no eval-mode shortcut can hide a layer),
    else in eval mode (fastconv.freeze: a forward that branches on self.training takes
    its inference branch; the layers' own eval shortcuts stand aside while tracing).
    A call with several outputs (split, chunk, return_indices) becomes a node per output
    (pick: which).  Raises TypeError (naming caller) for a forward whose result is not
    one array computed from its input."""
    names = {id(m): n for n, m in model.named_modules()}
    modules = dict(model.named_modules())
    dtype = next((p.data.dtype for p in model.parameters()), np.dtype(np.float32))
    x = np.random.default_rng(0).standard_normal((2,) + tuple(input_shape)).astype(
        dtype if dtype in (np.float32, np.float64) else np.float32)
    was_training = model.training
    model.train(training)
    try:
        calls, xt, out = record_calls(model, x)
    finally:
        model.train(was_training)
    vid, nodes, nops = {id(xt): 0}, [], 0
    def const(a):                   # a Tensor the forward made, not from its input: data
        if isinstance(a, autograd.Tensor) and id(a) not in vid:
            return a.data
        if isinstance(a, (list, tuple)):
            return type(a)(const(v) for v in a)
        return a

    for module, name, args, kwargs, outputs in calls:
        args = const(args)
        ins = [vid[id(a)] for a in autograd.tensors_in(args)]
        if module is not None:
            lname = names.get(id(module)) or f"{type(module).__name__}#{len(nodes)}"
        else:
            lname, nops = f"{name}#{nops}", nops + 1
        if len(outputs) != 1:
            for i, o in enumerate(outputs):
                node = Node(f"{lname or 'model'}[{i}]", "op" if module is None else "module",
                            module, ins, len(vid), o.shape,
                            op=(name, args, kwargs) if module is None else None)
                node.pick, node.call = i, (args, kwargs)
                vid[id(o)] = node.output
                nodes.append(node)
            continue
        o = outputs[0]
        kind = _kind(module, name, args, o)
        node = Node(lname or "model", kind, module, ins, len(vid), o.shape,
                    op=(name, args, kwargs) if module is None else None)
        node.call = (args, kwargs)
        if kind == "bn" and len(args) > 1 and args[1] is True:
            node.act = "relu"                  # BatchNorm2d.forward_relu (ConvBlock)
            sib = lname.rsplit(".", 1)[0] + ".relu" if "." in lname else None
            if sib in modules and type(modules[sib]) is nn.ReLU:
                node.fused.append(sib)         # the block's ReLU, applied by forward_relu
        vid[id(o)] = node.output
        nodes.append(node)
    if not isinstance(out, autograd.Tensor) or id(out) not in vid:
        raise TypeError(f"{caller}: the model must return one array computed from its input")
    return _fuse(nodes, vid[id(out)])


def _fuse(nodes, out):
    """Fold BatchNorm into the convolution before it, fuse ReLU / ReLU6 into conv,
    linear, add and folded BatchNorm, drop identities; -> (nodes, output value)."""
    alias = {}

    def real(v):
        while v in alias:
            v = alias[v]
        return v

    for n in nodes:
        n.inputs = [real(v) for v in n.inputs]
        if n.kind == "identity":
            alias[n.output] = n.inputs[0]
    nodes = [n for n in nodes if n.kind != "identity"]
    out = real(out)
    uses = {}
    for n in nodes:
        for v in n.inputs:
            uses[v] = uses.get(v, 0) + 1
    uses[out] = uses.get(out, 0) + 1
    producer = {n.output: n for n in nodes}
    kept = []
    for n in nodes:
        src = producer.get(n.inputs[0]) if n.inputs else None
        alone = src is not None and uses[n.inputs[0]] == 1 and len(n.inputs) == 1
        if n.kind == "bn" and alone and src.kind == "conv" and src.bn is None \
                and src.act is None and n.module.track_running_stats \
                and src.module.padding_mode == "zeros":
            src.bn, src.act = n.module, n.act
        elif n.kind in ("relu", "relu6") and alone and src.kind in ("conv", "linear", "add") \
                and src.act is None:
            src.act = n.kind
        else:
            kept.append(n)
            continue
        src.fused += [n.name] + n.fused
        src.output = n.output                 # the fused node now makes n's output
        producer[n.output] = src
    return kept, out


def _act(x, act):
    if act == "relu":
        return np.maximum(x, 0, dtype=x.dtype)
    if act == "relu6":
        return np.clip(x, 0, 6).astype(x.dtype, copy=False)
    return x


def run_float(nodes, out, x, visit=None, env=None):
    """The float forward of the graph (layers in eval mode, no gradients):
    x (N, C, H, W) -> output; visit(node, value) sees every node's output.  env: the
    values to start from instead of {0: x} (one node run alone)."""
    from .._grad import no_grad
    from .. import ops
    env = dict(env) if env is not None else {0: x}
    with no_grad():
        for n in nodes:
            xs = [env[v] for v in n.inputs]
            if n.kind in ("conv", "linear"):
                y = n.module(xs[0])
                if n.bn is not None:
                    y = n.bn(y)
                y = _act(y, n.act)
            elif n.kind == "bn":
                y = _act(n.module(xs[0]), n.act)
            elif n.kind == "add":
                y = _act(xs[0] + xs[1], n.act)
            elif n.kind == "flatten":
                y = xs[0].reshape(xs[0].shape[0], -1)
            elif n.kind == "op":
                y = call_op(ops, n, env)
            else:
                y = call_module(n, env)
            if n.pick is not None:
                y = y[n.pick]
            env[n.output] = y
            if visit is not None:
                visit(n, y)
    return env[out]


def substitute(n, env, args):
    """The recorded args with each Tensor replaced by the value it stands for (n's
    inputs, in order)."""
    it = iter(n.inputs)

    def sub(a):
        if isinstance(a, autograd.Tensor):
            return env[next(it)]
        if isinstance(a, (list, tuple)):
            return type(a)(sub(v) for v in a)
        return a
    return [sub(a) for a in args]


def _arrays(res):
    if isinstance(res, autograd.Tensor):
        return res.data
    if isinstance(res, (list, tuple)):
        return type(res)(_arrays(r) for r in res)
    return res


def call_op(ops, n, env, caller="quantize"):
    """An op of the recorded forward on arrays: its recorded arguments with the Tensors
    replaced by the values they stand for."""
    name, args, kwargs = n.op
    fn = getattr(ops, name, None)
    if fn is None:
        raise TypeError(f"{caller}: {n.name}: the op {name!r} has no float path here")
    return _arrays(fn(*substitute(n, env, args), **kwargs))


def call_module(n, env):
    """A layer of the recorded forward on arrays, with its recorded arguments."""
    args, kwargs = n.call
    return _arrays(n.module(*substitute(n, env, args), **kwargs))


def first_training(model):
    """The name of model's first module in training mode, or None (quantize and freeze
    plan the eval forward: BatchNorm must use its running statistics)."""
    for name, m in model.named_modules():
        if m.training:
            return name or type(m).__name__
    return None
