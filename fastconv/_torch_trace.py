"""to_torch for plain-forward models (branches, skips, shared layers): run the forward
once on the tape, record every layer call and op, and rebuild it as a torch.fx
GraphModule whose layers are the converted fastconv layers under the same names, so
its state_dict keys are the fastconv model's.

Like ``torch.jit.trace``, the graph is the one the example input took: Python control
flow that depends on the data or on the spatial size is frozen at the traced values;
the batch size stays free where a reshape keeps it."""
import operator

import numpy as np

from . import autograd
from ._grad import no_grad


def _op_table(torch):
    F = torch.nn.functional

    def reduce(fn):
        def call(x, ndim, dim=None, keepdim=False):
            dims = tuple(range(ndim)) if dim is None else dim
            return (fn, (x, dims, keepdim))
        return call

    def pad(x, ndim, pads, mode="constant", value=0.0):
        return (F.pad, (x, list(pads), mode) + ((float(value),) if mode == "constant" else ()))

    return {
        "add": lambda a, b: (operator.add, (a, b)),
        "sub": lambda a, b: (operator.sub, (a, b)),
        "mul": lambda a, b: (operator.mul, (a, b)),
        "div": lambda a, b: (operator.truediv, (a, b)),
        "sum": reduce(torch.sum),
        "mean": reduce(torch.mean),
        "permute": lambda x, ndim, dims: (torch.permute, (x, tuple(dims))),
        "getitem": lambda x, ndim, index: (operator.getitem, (x, index)),
        "cat": lambda xs, dim=0: (torch.cat, (list(xs), dim)),
        "stack": lambda xs, dim=0: (torch.stack, (list(xs), dim)),
        "split": lambda x, ndim, split_size_or_sections, dim=0:
            (torch.split, (x, split_size_or_sections, dim)),
        "chunk": lambda x, ndim, chunks, dim=0: (torch.chunk, (x, chunks, dim)),
        "softmax": lambda x, ndim, dim: (torch.softmax, (x, dim)),
        "log_softmax": lambda x, ndim, dim: (torch.log_softmax, (x, dim)),
        "pad": pad,
    }


class _Recorder:
    """Collects the tracer's calls: (module or None, name, args, kwargs, outputs)."""

    def __init__(self):
        self.calls = []

    def __call__(self, module, name, args, kwargs, outputs):
        self.calls.append((module, name, tuple(args), dict(kwargs), list(outputs)))


def _mirror(m, convert, torch):
    """A torch module tree with m's names: leaves converted, plain-forward modules as
    empty containers (their forward is the traced graph)."""
    try:
        return convert(m, torch)
    except TypeError:
        if not m._modules:
            raise
    holder = torch.nn.Module()
    for name, p in m._parameters.items():         # used by the forward directly
        holder.register_parameter(name, torch.nn.Parameter(torch.from_numpy(np.array(p.data)),
                                                           p.requires_grad))
    for name, b in m._buffers.items():
        holder.register_buffer(name, torch.from_numpy(np.array(b)))
    for name, child in m.named_children():
        holder.add_module(name, _mirror(child, convert, torch))
    return holder


def record_calls(model, x):
    """Run model on Tensor(x) without gradients, recording every layer call and op:
    -> (calls, the input Tensor, the output).  calls: (module or None, name, args,
    kwargs, outputs) in order.  Traced in the model's own mode (a forward may branch on
    self.training); the pass must not move BatchNorm's running statistics, so they are
    put back after it."""
    rec = _Recorder()
    prev, autograd._tracer = autograd._tracer, rec
    saved = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    try:
        with no_grad():
            xt = autograd.Tensor(np.asarray(x))
            out = model(xt)
    finally:
        autograd._tracer = prev
        model.load_state_dict(saved)
    return _link_arrays(rec.calls), xt, out


def _link_arrays(calls):
    """Plain arrays passed on from one call's outputs (MaxPool2d's indices, reported to
    the tracer as a Tensor output but handed to the user as an array) replaced in later
    calls' arguments by that output, so consumers see a value, not a constant."""
    made = {}

    def link(a):
        if isinstance(a, np.ndarray) and id(a) in made:
            return made[id(a)]
        if isinstance(a, (list, tuple)):
            return type(a)(link(v) for v in a)
        return a
    linked = []
    for module, name, args, kwargs, outputs in calls:
        linked.append((module, name, link(args), {k: link(v) for k, v in kwargs.items()},
                       outputs))
        for o in outputs:
            made.setdefault(id(o.data), o)
    return linked


def trace_to_torch(model, example_input, convert, torch):
    """model's forward on example_input (an array, or a shape to fill with zeros) as a
    torch.fx.GraphModule with model's submodule names; convert(m, torch) converts one
    layer (interop's table).  Raises TypeError for calls it cannot express."""
    import torch.fx as fx

    x = example_input
    if isinstance(x, (tuple, list)) and all(isinstance(v, (int, np.integer)) for v in x):
        x = np.zeros(tuple(int(v) for v in x), np.float32)
    names = {id(m): n for n, m in model.named_modules()}
    params = {id(p): n for n, p in model.named_parameters()}
    calls, xt, out = record_calls(model, x)

    root = _mirror(model, convert, torch)
    graph = fx.Graph()
    env = {id(xt): graph.placeholder("x")}
    ops = _op_table(torch)
    consts = [0]

    def arg(a):
        if isinstance(a, autograd.Tensor):
            if id(a) in env:
                return env[id(a)]
            if id(a) in params:             # a Parameter the forward uses directly
                return graph.get_attr(params[id(a)])
            return constant(a.data)         # made outside the tape (e.g. from .data)
        if isinstance(a, np.ndarray):
            return constant(a)
        if isinstance(a, (list, tuple)):
            return type(a)(arg(v) for v in a)
        if isinstance(a, np.generic):
            return a.item()
        return a

    def constant(arr):
        name = f"_const{consts[0]}"
        consts[0] += 1
        root.register_buffer(name, torch.from_numpy(np.array(arr)), persistent=False)
        return graph.get_attr(name)

    extra = [0]
    for module, name, args, kwargs, outputs in calls:
        if module is not None:
            target = names.get(id(module))
            if target is None:              # made inside forward (ops.interpolate)
                if any(True for _ in module.parameters()):
                    raise TypeError(f"to_torch: {type(module).__name__} was created inside "
                                    f"forward and has parameters; make it an attribute")
                target = f"_made{extra[0]}"
                extra[0] += 1
                root.add_module(target, convert(module, torch))
            node = graph.call_module(target, tuple(arg(a) for a in args),
                                     {k: arg(v) for k, v in kwargs.items()})
        elif name == "reshape":
            src, shape = args[0], tuple(outputs[0].shape)
            if len(shape) and src.ndim and shape[0] == src.shape[0]:
                shape = (-1,) + shape[1:]   # the batch stays free
            node = graph.call_function(torch.reshape, (arg(src), shape))
        elif name in ops:
            make = ops[name]
            if name in ("add", "sub", "mul", "div"):
                fn, fargs = make(*(arg(a) for a in args))
            elif name in ("cat", "stack"):
                fn, fargs = make(arg(args[0]), **kwargs)
            else:
                fn, fargs = make(arg(args[0]), args[0].ndim, *args[1:], **kwargs)
            node = graph.call_function(fn, fargs)
        else:
            raise TypeError(f"to_torch: no torch equivalent known for the op {name!r}")
        if len(outputs) == 1 and not _multi(module, name):
            env[id(outputs[0])] = node
        else:
            for i, t in enumerate(outputs):
                env[id(t)] = graph.call_function(operator.getitem, (node, i))
    graph.output(arg(out) if not isinstance(out, tuple) else tuple(arg(o) for o in out))
    gm = fx.GraphModule(root, graph, class_name=type(model).__name__)
    # layers the forward never called keep their place (and keys) too
    for qual, m in root.named_modules():
        try:
            gm.get_submodule(qual)
        except AttributeError:
            gm.add_submodule(qual, m)
    return gm


def _multi(module, name):
    """The call returns a tuple in torch (split, chunk, a pool with indices)."""
    return (module is None and name in ("split", "chunk")) or \
        getattr(module, "return_indices", False)
