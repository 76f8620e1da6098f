"""Gradients through any forward: a define-by-run tape of op and layer calls.

    x = fc.Tensor(images)                  # wrap the input: the one-line migration
    loss = crit(model(x), target)          # each layer call / op records one node
    loss.backward()                        # every parameter's .grad += d loss / d p

A forward written in plain Python with fastconv modules and ops records, per call,
the op's context and its inputs on a node of the output Tensor (not on the module,
so a module used twice gets both gradients).  ``backward`` visits the nodes in
reverse topological order, calls each op's ``op_backward(ctx, grad, needs)`` (the
one contract every functional op follows), frees its context at once and passes the
gradients on; leaves that require grad (Parameters) accumulate into ``.grad``.
Under ``fastconv.no_grad()`` nothing is recorded.

On plain ndarrays everything works as before (``y = m(x)``, ``m.backward(gy)``).
"""
import threading
import time

import numpy as np

from . import _shape
from ._grad import is_grad_enabled
from ._precision import recording

__all__ = ["Tensor", "apply", "tensor"]


class Node:
    """One recorded call: the op's backward, the context its forward kept, its inputs
    (Tensors, or None where an input was a plain array or not differentiable) and how
    many outputs it made."""

    __slots__ = ("backward", "ctx", "inputs", "n_out", "name", "thread", "done")

    def __init__(self, backward, ctx, inputs, n_out, name):
        self.backward, self.ctx, self.inputs = backward, ctx, inputs
        self.n_out, self.name = n_out, name
        self.thread = threading.get_ident()
        self.done = False


class Tensor:
    """An ndarray that remembers how it was made, so that ``backward`` can compute the
    gradients of whatever forward produced it.  ``.data`` (ndarray), ``.grad``
    (ndarray or None; kept for leaves that require grad), ``.requires_grad``.

    NumPy reads a Tensor as its data (``np.asarray(t)``), without a gradient."""

    __slots__ = ("data", "grad", "requires_grad", "_node", "_index")

    def __init__(self, data, requires_grad=False):
        self.data = data if isinstance(data, np.ndarray) else np.asarray(data)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._node = None
        self._index = 0

    # ------------------------------------------------------------ array-like
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    T = property(lambda self: self.permute(*range(self.ndim - 1, -1, -1)))

    def __len__(self):
        return len(self.data)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def numpy(self):
        """The data (no copy)."""
        return self.data

    def item(self):
        return self.data.item()

    def __float__(self):
        return float(self.data)

    def __repr__(self):
        grad = f", grad_fn={self._node.name}" if self._node is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        return f"Tensor({np.array2string(self.data, threshold=20)}{grad})"

    @property
    def is_leaf(self):
        return self._node is None

    def detach(self):
        """The same data, cut from the graph: no gradient flows through it."""
        return Tensor(self.data)

    def accumulate(self, g):
        """self.grad += g (a leaf's gradient), allocating it on first use."""
        if not self.requires_grad or g is None:
            return
        if self.grad is None:
            self.grad = np.array(g, dtype=self.data.dtype, copy=True).reshape(self.data.shape)
        else:
            self.grad += g.reshape(self.data.shape)

    def zero_grad(self, set_to_none=True):
        if set_to_none:
            self.grad = None
        elif self.grad is not None:
            self.grad[...] = 0

    # ------------------------------------------------------------ backward
    def backward(self, gradient=None):
        """Back-propagate from this Tensor: ``gradient`` (default 1 for a scalar) is
        d loss / d self; every leaf that requires grad gets d loss / d leaf added to
        its ``.grad``.  The graph's saved activations are released as it goes, so a
        second backward needs a new forward (like torch without retain_graph)."""
        if self._node is None:
            raise RuntimeError("backward: this Tensor was not computed from anything that "
                               "requires grad (a leaf, or its forward ran under "
                               "fastconv.no_grad())")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: a gradient is needed for a non-scalar output "
                                   f"of shape {self.data.shape}")
            gradient = np.ones(self.data.shape, self.data.dtype)
        g = _shape.as_grad("Tensor", gradient, self.data.shape, self.data.dtype)
        _run_backward(self._node, self._index, g)

    # ------------------------------------------------------------ ops
    def __add__(self, other):
        from . import ops
        return ops.add(self, other)

    def __radd__(self, other):
        from . import ops
        return ops.add(other, self)

    def __sub__(self, other):
        from . import ops
        return ops.sub(self, other)

    def __rsub__(self, other):
        from . import ops
        return ops.sub(other, self)

    def __mul__(self, other):
        from . import ops
        return ops.mul(self, other)

    def __rmul__(self, other):
        from . import ops
        return ops.mul(other, self)

    def __truediv__(self, other):
        from . import ops
        return ops.div(self, other)

    def __rtruediv__(self, other):
        from . import ops
        return ops.div(other, self)

    def __neg__(self):
        from . import ops
        return ops.mul(self, -1.0)

    def __getitem__(self, index):
        from . import ops
        return ops.getitem(self, index)

    def reshape(self, *shape):
        from . import ops
        return ops.reshape(self, *shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        from . import ops
        return ops.flatten(self, start_dim, end_dim)

    def permute(self, *dims):
        from . import ops
        return ops.permute(self, *dims)

    def sum(self, dim=None, keepdim=False):
        from . import ops
        return ops.sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        from . import ops
        return ops.mean(self, dim, keepdim)


def tensor(data, requires_grad=False):
    """A Tensor of an array (not copied), like ``torch.tensor``'s role on the tape."""
    return Tensor(data, requires_grad)


def _is_tensor(a):
    return isinstance(a, Tensor)


# fastconv.profiler.profile() sets this: a Profile whose add(name, phase, seconds)
# takes each call's time
_profiler = None

# analysis.summary and to_torch set this while they trace a forward: called with
# (module or None, name, args, kwargs, outputs) for every recorded call
_tracer = None


def record(backward, ctx, inputs, out, name, module=None, call=None):
    """Wrap out (an array, or a tuple of arrays) as Tensor(s) made by one node whose
    backward is ``backward(ctx, grads, needs)``, when gradients are enabled and some
    input requires one; else as plain, gradient-free Tensors.  module: the layer whose
    call this is (None for an op); call: the call's (args, kwargs) as the user gave
    them, for a tracer (default: inputs, no keywords)."""
    multi = isinstance(out, tuple)
    outs = out if multi else (out,)
    inputs = tuple([a if type(a) is Tensor or isinstance(a, Tensor) else None for a in inputs])
    track = False
    for a in inputs:
        if a is not None and a.requires_grad:
            track = is_grad_enabled()
            break
    node = Node(backward, ctx, inputs, len(outs), name) if track else None
    res = []
    new = Tensor.__new__
    for i, o in enumerate(outs):
        t = new(Tensor)            # __init__'s checks are not needed: o is ours
        t.data = o if isinstance(o, np.ndarray) else np.asarray(o)
        t.grad, t.requires_grad, t._node, t._index = None, track, node, i
        res.append(t)
    if _tracer is not None:
        args, kwargs = call if call is not None else (inputs, {})
        _tracer(module, name, args, kwargs, res)
    return tuple(res) if multi else res[0]


def timed(forward, name, *args, **kwargs):
    """forward(*args, **kwargs), its time added to the open profile."""
    t = time.perf_counter()
    res = forward(*args, **kwargs)
    _profiler.add(name or getattr(forward, "__name__", "op"), "forward", time.perf_counter() - t)
    return res


def apply(forward, backward, *args, name=None, **kwargs):
    """Run a functional op on args (Tensors or arrays): ``forward(*arrays, **kwargs)``
    returns (out, ctx).  With no Tensor among args, the plain output; otherwise Tensor(s)
    recorded on the tape with ``backward(ctx, grad_out, needs)``, needs covering args."""
    arrays = tuple([a.data if isinstance(a, Tensor) else a for a in args])
    for a in args:
        if isinstance(a, Tensor):
            break
    else:
        return (timed(forward, name, *arrays, **kwargs) if _profiler is not None
                else forward(*arrays, **kwargs))[0]
    with recording():           # the graph holds the inputs: keep no bf16 copies of them
        if _profiler is not None:
            out, ctx = timed(forward, name, *arrays, **kwargs)
        else:
            out, ctx = forward(*arrays, **kwargs)
    return record(backward, ctx, args, out, name or getattr(forward, "__name__", "op"),
                  call=(args, kwargs))


def tensors_in(args):
    """The Tensors among args, looking inside lists and tuples (cat's list), in order."""
    out = []
    for a in args:
        if isinstance(a, Tensor):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.extend(tensors_in(a))
    return out


def _topological(root):
    """Nodes reachable from root, each after every node that consumes its outputs."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for t in node.inputs:
            if t is not None and t._node is not None and id(t._node) not in seen:
                stack.append((t._node, False))
    return order[::-1]          # consumers first


# Gradient reducers (distributed.DistributedDataParallel) armed by a training forward:
# while a backward runs, each gets ready(leaf) once the leaf's gradient is complete (every
# node that consumes it ran), progress() between nodes, and backward_done() at the end.
_reducers = []


def _leaf_uses(nodes):
    """id(leaf) -> how many of nodes take it as an input (its gradient is complete when
    all have run)."""
    uses = {}
    for node in nodes:
        for t in node.inputs:
            if t is not None and t._node is None and t.requires_grad:
                uses[id(t)] = uses.get(id(t), 0) + 1
    return uses


def _consumed(node, uses, reducers):
    """node ran (or no gradient reached it): tell the reducers of leaves now complete."""
    for t in node.inputs:
        if t is not None and t._node is None and t.requires_grad:
            left = uses[id(t)] - 1
            uses[id(t)] = left
            if left == 0:
                for r in reducers:
                    r.ready(t)
    for r in reducers:
        r.progress()


def _run_backward(root, index, grad):
    reducers = list(_reducers)
    try:
        _backward_nodes(root, index, grad, reducers)
    except BaseException:
        for r in reducers:
            r.abandon()
        raise
    for r in reducers:
        r.backward_done()


def _backward_nodes(root, index, grad, reducers):
    nodes = _topological(root)
    me = threading.get_ident()
    for node in nodes:
        if node.done:
            raise RuntimeError(f"backward: the graph through {node.name} was already "
                               f"back-propagated and its activations released; run the "
                               f"forward again")
        if node.thread != me:
            raise RuntimeError(f"backward: {node.name}'s forward ran in another thread; run "
                               f"the forward and the backward in the same thread")
    uses = _leaf_uses(nodes) if reducers else None
    pending = {id(root): [None] * root.n_out}
    pending[id(root)][index] = grad
    for node in nodes:
        gouts = pending.pop(id(node), None)
        if gouts is None:              # no gradient reached this node
            if reducers:
                _consumed(node, uses, reducers)
            continue
        g = gouts[0] if node.n_out == 1 else tuple(gouts)
        needs = tuple(t is not None and t.requires_grad for t in node.inputs)
        if _profiler is not None:
            t = time.perf_counter()
            grads = node.backward(node.ctx, g, needs)
            _profiler.add(node.name, "backward", time.perf_counter() - t)
        else:
            grads = node.backward(node.ctx, g, needs)
        node.ctx, node.done = None, True        # free the activations at once
        for t, gi in zip(node.inputs, grads):
            if t is None or gi is None or not t.requires_grad:
                continue
            if t._node is None:
                t.accumulate(gi)
                continue
            slot = pending.setdefault(id(t._node), [None] * t._node.n_out)
            cur = slot[t._index]
            slot[t._index] = gi if cur is None else cur + gi
        if reducers:
            _consumed(node, uses, reducers)
        node.inputs = ()
