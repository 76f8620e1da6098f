"""Optimisers with PyTorch's update rules: SGD (momentum, Nesterov, weight decay),
Adam and AdamW.  The element-wise updates are fused ops of ``fastconv.functional``
(``sgd_``, ``adam_``), compiled and OpenMP-parallel."""
import math

import numpy as np

from .functional.optim import adam_, sgd_
from .nn.module import Parameter


def _real(v):
    """A finite number >= 0, as every optimiser setting is."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
        and math.isfinite(v) and v >= 0


class Optimizer:
    """Base: holds the parameter list, per-parameter state, ``zero_grad`` and
    ``state_dict`` / ``load_state_dict``."""

    # per-parameter state a subclass keeps: flat arrays of the parameter's size (read by
    # the compiled kernels, which do not check bounds) and integer counters; a
    # parameter has all of them (once stepped) or none
    _state_arrays = ()
    _state_counts = ()

    def __init__(self, params, defaults):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: expected Parameters, got {type(p).__name__}")
        for k, v in defaults.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
                raise ValueError(f"{type(self).__name__}: invalid {k}: {v} (must be >= 0)")
        self.defaults = dict(defaults)
        self.state = [dict() for _ in self.params]

    @property
    def lr(self):
        return self.defaults["lr"]

    @lr.setter
    def lr(self, value):
        self.defaults["lr"] = float(value)

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.zero_grad(set_to_none)

    def state_dict(self):
        """{'defaults': {...}, 'state': [{name: ndarray or number}, ...]} (copies)."""
        return {"defaults": dict(self.defaults),
                "state": [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                          for s in self.state]}

    def load_state_dict(self, state):
        """Restore a state_dict() of the same optimiser type over the same parameters.
        Everything is checked first (ValueError naming what does not fit), so on error
        the optimiser is unchanged."""
        self.defaults, self.state = self._parse_state(state)

    def _parse_state(self, state):
        """Checked copies (defaults, per-parameter state) of a state_dict(), changing
        nothing: the kernels index the state arrays without bounds checks."""
        name = f"{type(self).__name__}.load_state_dict"
        if not (isinstance(state, dict) and isinstance(state.get("defaults"), dict)
                and isinstance(state.get("state"), (list, tuple))):
            raise ValueError(f"{name}: expected {{'defaults': dict, 'state': list}}, got "
                             f"{state!r:.80}")
        defaults, entries = state["defaults"], state["state"]
        if len(entries) != len(self.params):
            raise ValueError(f"{name}: state has {len(entries)} entries for "
                             f"{len(self.params)} parameters")
        if set(defaults) != set(self.defaults):
            raise ValueError(f"{name}: expected the settings {sorted(self.defaults)}, got "
                             f"{sorted(map(str, defaults))}")
        new_defaults = {}
        for k, cur in self.defaults.items():
            v = defaults[k]
            if isinstance(cur, bool):
                ok = isinstance(v, (bool, np.bool_))
            elif isinstance(cur, tuple):
                ok = isinstance(v, (list, tuple)) and len(v) == len(cur) and all(map(_real, v))
                v = tuple(float(x) for x in v) if ok else v
            else:
                ok = _real(v)
                v = float(v) if ok else v
            if not ok:
                raise ValueError(f"{name}: setting {k!r} must be like {cur!r}, got {v!r:.80}")
            new_defaults[k] = v
        keys = set(self._state_arrays) | set(self._state_counts)
        new_state = []
        for i, (p, s) in enumerate(zip(self.params, entries)):
            if not isinstance(s, dict) or (s and set(s) != keys):
                raise ValueError(f"{name}: parameter {i}'s state must be {{}} or hold "
                                 f"{sorted(keys)}, got {s!r:.80}")
            out = {}
            for k, v in s.items():
                if k in self._state_counts:
                    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) \
                            or v < 0:
                        raise ValueError(f"{name}: parameter {i}'s {k!r} must be an integer "
                                         f">= 0, got {v!r:.80}")
                    out[k] = int(v)
                else:
                    if not (isinstance(v, np.ndarray) and v.dtype.kind == "f"
                            and v.size == p.data.size):
                        got = f"{v.dtype} {v.shape}" if isinstance(v, np.ndarray) else repr(v)[:80]
                        raise ValueError(f"{name}: parameter {i}'s {k!r} must be a float array "
                                         f"of {p.data.size} values, got {got}")
                    out[k] = np.array(v, dtype=p.data.dtype, order="C").reshape(-1)
            new_state.append(out)
        return new_defaults, new_state

    def _active(self):
        for p, s in zip(self.params, self.state):
            if p.grad is not None and p.requires_grad:
                if not (p.data.flags.c_contiguous and p.data.flags.writeable):
                    p.data = np.array(p.data, order="C")    # updated in place below
                yield p, np.ascontiguousarray(p.grad, p.data.dtype).reshape(-1), s


class SGD(Optimizer):
    """torch.optim.SGD(params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False)."""

    _state_arrays = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=float(lr), momentum=float(momentum),
                                      dampening=float(dampening),
                                      weight_decay=float(weight_decay), nesterov=bool(nesterov)))
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")

    def step(self):
        d = self.defaults
        for p, g, s in self._active():
            first = "momentum_buffer" not in s
            if d["momentum"] != 0 and first:
                s["momentum_buffer"] = np.empty_like(g)
            buf = s.get("momentum_buffer")
            sgd_(p.data.reshape(-1), g, buf, d["lr"], d["momentum"], d["dampening"],
                 d["weight_decay"], d["nesterov"], first)


class Adam(Optimizer):
    """torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
    weight decay is added to the gradient (L2)."""

    _decoupled = False
    _state_arrays = ("exp_avg", "exp_avg_sq")
    _state_counts = ("step",)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{type(self).__name__}: invalid betas {betas}")
        super().__init__(params, dict(lr=float(lr), betas=(float(betas[0]), float(betas[1])),
                                      eps=float(eps), weight_decay=float(weight_decay)))

    def step(self):
        d = self.defaults
        for p, g, s in self._active():
            if "step" not in s:
                s["step"] = 0
                s["exp_avg"] = np.zeros_like(g)
                s["exp_avg_sq"] = np.zeros_like(g)
            s["step"] += 1
            adam_(p.data.reshape(-1), g, s["exp_avg"], s["exp_avg_sq"], d["lr"], d["betas"][0],
                  d["betas"][1], d["eps"], d["weight_decay"], self._decoupled, s["step"])


class AdamW(Adam):
    """torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    decoupled weight decay (p *= 1 - lr*wd before the Adam step)."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)
