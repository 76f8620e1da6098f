"""Optimisers with PyTorch's update rules: SGD (momentum, Nesterov, weight decay),
Adam and AdamW.  The element-wise updates run in compiled kernels."""
import numpy as np

from ._kernels import _optim
from ._threads import get_num_threads
from .nn.module import Parameter


class Optimizer:
    """Base: holds the parameter list, per-parameter state, ``zero_grad`` and
    ``state_dict`` / ``load_state_dict``."""

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
        if len(state["state"]) != len(self.params):
            raise ValueError(f"{type(self).__name__}.load_state_dict: state has "
                             f"{len(state['state'])} entries for {len(self.params)} parameters")
        self.defaults.update(state["defaults"])
        self.state = [{k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v)
                       for k, v in s.items()} for s in state["state"]]

    def _active(self):
        for p, s in zip(self.params, self.state):
            if p.grad is not None and p.requires_grad:
                if not (p.data.flags.c_contiguous and p.data.flags.writeable):
                    p.data = np.array(p.data, order="C")    # updated in place below
                yield p, np.ascontiguousarray(p.grad, p.data.dtype).reshape(-1), s


class SGD(Optimizer):
    """torch.optim.SGD(params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False)."""

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=float(lr), momentum=float(momentum),
                                      dampening=float(dampening),
                                      weight_decay=float(weight_decay), nesterov=bool(nesterov)))
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")

    def step(self):
        d = self.defaults
        nt = get_num_threads()
        for p, g, s in self._active():
            first = "momentum_buffer" not in s
            if d["momentum"] != 0 and first:
                s["momentum_buffer"] = np.empty_like(g)
            buf = s.get("momentum_buffer")
            _optim.sgd(p.data.reshape(-1), g, buf, d["lr"], d["momentum"], d["dampening"],
                       d["weight_decay"], d["nesterov"], first, nt)


class Adam(Optimizer):
    """torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
    weight decay is added to the gradient (L2)."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{type(self).__name__}: invalid betas {betas}")
        super().__init__(params, dict(lr=float(lr), betas=(float(betas[0]), float(betas[1])),
                                      eps=float(eps), weight_decay=float(weight_decay)))

    def step(self):
        d = self.defaults
        nt = get_num_threads()
        for p, g, s in self._active():
            if "step" not in s:
                s["step"] = 0
                s["exp_avg"] = np.zeros_like(g)
                s["exp_avg_sq"] = np.zeros_like(g)
            s["step"] += 1
            _optim.adam(p.data.reshape(-1), g, s["exp_avg"], s["exp_avg_sq"], d["lr"],
                        d["betas"][0], d["betas"][1], d["eps"], d["weight_decay"],
                        self._decoupled, s["step"], nt)


class AdamW(Adam):
    """torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    decoupled weight decay (p *= 1 - lr*wd before the Adam step)."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)
