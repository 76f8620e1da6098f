"""Parameter and Module: the torch.nn-like base of every layer.

A layer's ``forward`` computes its output and, unless under ``fastconv.no_grad()``,
keeps the context its ``backward`` needs (the last forward only).  ``backward(gy)``
returns the gradient w.r.t. that forward's input and ADDS parameter gradients to
``p.grad``.
"""
import threading
import time
from collections import OrderedDict

import numpy as np

from .. import _shape, autograd
from .._grad import is_grad_enabled
from .._precision import recording
from ..autograd import Tensor, record

_NOT_RUN = object()     # backward before any forward
_NO_GRAD = object()     # last forward ran under no_grad
_USED = object()        # the last forward's context was consumed by a backward
_TAPED = object()       # the last forward was recorded on the tape (Tensor input)


class Parameter(Tensor):
    """A trainable array: ``.data`` (ndarray) and ``.grad`` (ndarray or None); a leaf
    Tensor of the tape.

    ``requires_grad=False`` freezes it: backward then leaves ``.grad`` alone."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        super().__init__(np.ascontiguousarray(data), requires_grad)

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: registers parameters, buffers and sub-modules by attribute."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_ctx", _NOT_RUN)
        object.__setattr__(self, "_out_shape", None)
        object.__setattr__(self, "_out_dtype", None)

    # ------------------------------------------------------------ registration
    # Registered parameters, buffers and sub-modules live in their ordered registries
    # (traversal, state_dict) and are mirrored into the instance __dict__, so that
    # attribute reads in forward/backward are plain lookups (no __getattr__ detour).
    def _register(self, store, name, value):
        for other in (self._parameters, self._buffers, self._modules):
            if other is not store:
                other.pop(name, None)
        store[name] = value
        self.__dict__[name] = value

    def _set_buffer(self, name, value):
        self._buffers[name] = value
        self.__dict__[name] = value

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("Module.__init__() must be called before assigning attributes")
        if isinstance(value, (Parameter, Module)):
            self._register(self._parameters if isinstance(value, Parameter) else self._modules,
                           name, value)
        elif name in self._parameters or name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to '{name}' of "
                                f"{type(self).__name__}: expected a Parameter/Module or None")
            self._register(self._parameters if name in self._parameters else self._modules,
                           name, None)
        elif name in self._buffers:
            self._set_buffer(name, value)
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                return s[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self.__dict__.pop(name, None)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Register a Parameter (or None, e.g. a missing bias) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: expected a Parameter or None, got {type(param)}")
        self._register(self._parameters, name, param)

    def register_buffer(self, name, array):
        """Register a non-trainable array (or None) saved in state_dict (running stats)."""
        self._register(self._buffers, name, array)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: expected a Module, got {type(module)}")
        self._register(self._modules, name, module)

    # ------------------------------------------------------------ traversal
    def children(self):
        return (m for m in self._modules.values() if m is not None)

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, m in self.named_children():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix=""):
        seen = set()
        for mname, m in self.named_modules(prefix):
            for pname, p in m._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self, prefix=""):
        for mname, m in self.named_modules(prefix):
            for bname, b in m._buffers.items():
                if b is not None:
                    yield (f"{mname}.{bname}" if mname else bname), b

    def buffers(self):
        return (b for _, b in self.named_buffers())

    # ------------------------------------------------------------ modes
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            p.zero_grad(set_to_none)

    def to(self, dtype):
        """Cast floating parameters and buffers to dtype (np.float32 or np.float64)."""
        dtype = np.dtype(dtype)
        if dtype not in _shape.FLOAT_DTYPES:
            raise TypeError(f"{type(self).__name__}.to: expected float32 or float64, got {dtype}")
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    p.data = p.data.astype(dtype)
                    p.grad = None if p.grad is None else p.grad.astype(dtype)
            for k, b in m._buffers.items():
                if b is not None and b.dtype.kind == "f":
                    m._set_buffer(k, b.astype(dtype))
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    # ------------------------------------------------------------ state
    def state_dict(self):
        """name -> ndarray copy, with torch's key names (buffers included)."""
        out = OrderedDict()
        for mname, m in self.named_modules():
            pre = f"{mname}." if mname else ""
            for k, p in m._parameters.items():
                if p is not None:
                    out[pre + k] = p.data.copy()
            for k, b in m._buffers.items():
                if b is not None:
                    out[pre + k] = np.array(b, copy=True)
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (or anything np.asarray takes, e.g. torch tensors) into this module.

        Shape mismatch or a non-numeric dtype -> ValueError naming the key; with strict,
        missing or unexpected keys -> KeyError listing them.  Every entry is checked
        before any is copied, so on error the module is unchanged.  Returns
        (missing_keys, unexpected_keys)."""
        targets = {}
        for mname, m in self.named_modules():
            pre = f"{mname}." if mname else ""
            for k, p in m._parameters.items():
                if p is not None:
                    targets[pre + k] = (m, k, True)
            for k, b in m._buffers.items():
                if b is not None:
                    targets[pre + k] = (m, k, False)
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        staged = []
        for key, (m, k, is_param) in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if isinstance(value, Tensor):
                value = value.data
            elif hasattr(value, "detach"):          # torch tensor: no autograd, on CPU
                value = value.detach().cpu().numpy()
            arr = np.asarray(value)
            cur = m._parameters[k].data if is_param else m._buffers[k]
            if arr.dtype.kind not in "biuf":        # no strings, objects, complex numbers
                raise ValueError(f"{type(self).__name__}.load_state_dict: '{key}' must hold "
                                 f"real numbers, got dtype {arr.dtype}")
            if arr.shape != cur.shape:
                raise ValueError(f"{type(self).__name__}.load_state_dict: shape mismatch for "
                                 f"'{key}': expected {cur.shape}, got {arr.shape}")
            staged.append((m, k, is_param, np.array(arr, dtype=cur.dtype, copy=True)))
        for m, k, is_param, arr in staged:       # all checked first: nothing half-loaded
            if is_param:
                m._parameters[k].data = arr
            else:
                m._set_buffer(k, arr)
        return missing, unexpected

    # ------------------------------------------------------------ forward/backward
    # A layer (one op per call) sets this: called on a Tensor it records one tape node.
    # Other modules (containers, user models) run their forward with the Tensors.
    _leaf = False

    # Layers that take an unbatched input like torch (a batch of one; (C, H, W) for the
    # 2-D layers) set this to the unbatched rank.
    _unbatched_ndim = None

    def __call__(self, *args, **kwargs):
        if self._unbatched_ndim is not None and args and (
                args[0].ndim if hasattr(args[0], "ndim") else np.ndim(args[0])) == \
                self._unbatched_ndim:
            return self._call_unbatched(*args, **kwargs)
        self.__dict__["_unbatched"] = False
        if self._leaf and args and isinstance(args[0], Tensor):
            return self._record(self.forward, *args, **kwargs)
        return self.forward(*args, **kwargs)

    def _call_unbatched(self, x, *args, **kwargs):
        """Run on x[None] and drop the batch axis again (torch's unbatched inputs)."""
        if isinstance(x, Tensor):
            from ..ops import reshape
            y = self(reshape(x, (1,) + tuple(x.shape)), *args, **kwargs)
            return reshape(y, tuple(y.shape[1:]))
        y = self(np.asarray(x)[None], *args, **kwargs)
        self.__dict__["_unbatched"] = True      # backward takes and gives unbatched arrays
        return y[0]

    def _record(self, fn, x, *args, **kwargs):
        """fn(x.data, *args) (fn: a forward that ends in _remember), recorded on the
        tape as one node whose backward is this layer's _backward over (x, *params):
        the context lives on the node, not on the module."""
        name = type(self).__name__
        prof = autograd._profiler
        # the graph holds the input arrays: nothing to gain by keeping bf16 copies
        with recording():
            if prof is not None:
                if prof.detail:         # one row per configuration and input size
                    name = f"{name}({self.extra_repr()}) @{'x'.join(map(str, x.shape[1:]))}"
                t = time.perf_counter()
                y = fn(x.data, *args, **kwargs)
                prof.add(name, "forward", time.perf_counter() - t)
            else:
                y = fn(x.data, *args, **kwargs)
        ctx = self.__dict__["_ctx"]
        self.__dict__["_ctx"] = _TAPED
        params = [self._parameters.get(n) for n in self._grad_params]
        # (under no_grad record makes a plain Tensor and keeps no context)
        return record(self._backward, ctx, (x, *params), y, name, self, ((x, *args), kwargs))

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def output_shape(self, input_shape):
        """The output shape for an input of ``input_shape``, from the shape formulas
        alone (no data, no kernels): layers define it; a module whose forward runs its
        children in order (``_torch_chain``) chains theirs."""
        if getattr(self, "_torch_chain", False):
            for m in self.children():
                input_shape = m.output_shape(input_shape)
            return tuple(input_shape)
        raise NotImplementedError(f"{type(self).__name__}.output_shape is not implemented")

    def _remember(self, y, ctx):
        """Keep ctx for backward (unless no_grad) and the output's shape; return y.
        A Tensor output (a container run on the tape) keeps nothing here."""
        d = self.__dict__
        if isinstance(y, Tensor):
            d["_ctx"] = _TAPED
            return y
        if not is_grad_enabled():       # no backward can follow: nothing else to keep
            d["_ctx"] = _NO_GRAD
            return y
        d["_ctx"] = ctx
        d["_out_shape"] = y.shape
        d["_out_dtype"] = y.dtype
        d["_ctx_thread"] = threading.get_ident()
        return y

    def _take_ctx(self, grad_output):
        """Check that a backward may run; return (ctx, validated grad_output)."""
        name = type(self).__name__
        ctx = self._ctx
        if ctx is _NOT_RUN:
            raise RuntimeError(f"{name}.backward called before any forward")
        if ctx is _NO_GRAD:
            raise RuntimeError(f"{name}.backward: the last forward ran under fastconv.no_grad(), "
                               f"which keeps no activations; run the forward again with "
                               f"gradients enabled")
        if ctx is _TAPED:
            raise RuntimeError(f"{name}.backward: the last forward ran on a fastconv.Tensor and "
                               f"was recorded on the tape; call .backward() on the loss instead")
        if ctx is _USED:
            raise RuntimeError(f"{name}.backward: the last forward's activations were released "
                               f"by an earlier backward; run the forward again")
        if self.__dict__.get("_ctx_thread") != threading.get_ident():
            # another Python thread ran a forward on this module in between: its context
            # replaced ours, and using it would give silently wrong gradients
            raise RuntimeError(f"{name}.backward: the last forward on this module ran in "
                               f"another thread; a module keeps one forward's activations, so "
                               f"give each thread its own model (or copy the weights)")
        g = _shape.as_grad(name, grad_output, self._out_shape, self._out_dtype)
        self.__dict__["_ctx"] = _USED       # free the activations as soon as they are used
        return ctx, g

    # The parameters a layer's op takes after its input, in the op's order: backward
    # adds the op's gradients for them to their .grad (the one place that does).
    _grad_params = ()

    def backward(self, grad_output, input_grad=True):
        """Gradient w.r.t. the input of the last forward; parameter grads are added.

        input_grad=False skips the input gradient where a layer can (the first layer of
        a network: nothing consumes it) and returns None.  Like torch, a backward
        releases the forward's saved activations: a second backward needs a new forward."""
        if type(self)._backward is Module._backward:
            raise RuntimeError(f"{type(self).__name__} is written as a plain forward, which has "
                               f"no explicit backward: run it on a fastconv.Tensor and call "
                               f".backward() on the loss (fastconv.autograd)")
        unbatched = self.__dict__.get("_unbatched", False)
        if unbatched:
            grad_output = np.asarray(grad_output)[None]
        ctx, g = self._take_ctx(grad_output)
        params = [self._parameters.get(n) for n in self._grad_params]
        needs = (bool(input_grad),) + tuple(p is not None and p.requires_grad for p in params)
        grads = self._backward(ctx, g, needs)
        for p, gp in zip(params, grads[1:]):
            if p is not None:
                p.accumulate(gp)
        if autograd._reducers:          # a distributed reducer overlaps their reduction
            for r in autograd._reducers:
                for p in params:
                    if p is not None and p.requires_grad:
                        r.ready(p)
                r.progress()
        if not input_grad:
            return None
        return grads[0][0] if unbatched and grads[0] is not None else grads[0]

    def _backward(self, ctx, grad_output, needs):
        """Gradients w.r.t. (input, *_grad_params) of the forward that saved ctx, None
        where needs (one bool each) says False: a layer's op_backward."""
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    # ------------------------------------------------------------ repr
    def extra_repr(self):
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        lines = [extra] if extra else []
        for n, m in self._modules.items():
            lines.append(f"({n}): " + repr(m).replace("\n", "\n  "))
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
