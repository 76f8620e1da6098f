"""Optimisers against torch.optim over several steps."""
import numpy as np
import pytest

import fastconv as fc
from helpers import assert_close, torch_or_skip

CASES = [("SGD", dict(lr=0.1)), ("SGD", dict(lr=0.05, momentum=0.9)),
         ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)),
         ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=1e-3)),
         ("Adam", dict()), ("Adam", dict(lr=1e-2, betas=(0.8, 0.9), weight_decay=1e-2)),
         ("AdamW", dict()), ("AdamW", dict(lr=3e-3, weight_decay=0.1, eps=1e-6))]


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}{i}" for i, (n, _) in enumerate(CASES)])
def test_optimizer_matches_torch(name, kw, rng):
    torch = torch_or_skip()
    w0 = rng.standard_normal((5, 7)).astype(np.float32)
    p = fc.nn.Parameter(w0.copy())
    tp = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = getattr(fc.optim, name)([p], **kw)
    topt = getattr(torch.optim, name)([tp], **kw)
    for _ in range(5):
        g = rng.standard_normal(w0.shape).astype(np.float32)
        p.grad = g.copy()
        tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        assert_close(p.data, tp.detach().numpy(), 1e-5)


def test_optimizer_state_dict_roundtrip(rng):
    p = fc.nn.Parameter(np.ones(3, np.float32))
    opt = fc.optim.AdamW([p], lr=0.1)
    p.grad = np.ones(3, np.float32)
    opt.step()
    sd = opt.state_dict()
    q = fc.nn.Parameter(p.data.copy())
    opt2 = fc.optim.AdamW([q], lr=0.1)
    opt2.load_state_dict(sd)
    p.grad = q.grad = np.full(3, 0.5, np.float32)
    opt.step()
    opt2.step()
    np.testing.assert_array_equal(p.data, q.data)


def test_optimizer_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        fc.optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="invalid lr"):
        fc.optim.SGD([fc.nn.Parameter(np.ones(1))], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        fc.optim.SGD([fc.nn.Parameter(np.ones(1))], lr=0.1, nesterov=True)
