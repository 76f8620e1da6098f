"""Shared test helpers: the torch-parity check and float64 finite differences."""
import numpy as np
import pytest

import fastconv as fc


def torch_or_skip():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    return torch


def assert_close(actual, expected, rtol=1e-4, what=""):
    """Non-finite entries must match exactly (NaN where NaN, same infinities); finite
    ones within rtol * max|expected| (sums of many terms carry absolute error
    proportional to the largest term, not to each element)."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    fin = np.isfinite(e)
    assert np.array_equal(np.isnan(a), np.isnan(e)), f"{what}: NaN pattern differs"
    assert np.array_equal(a[np.isinf(e)], e[np.isinf(e)]), f"{what}: infinities differ"
    if not fin.any():
        return
    scale = max(np.max(np.abs(e[fin])), 1e-6)
    err = np.max(np.abs(a[fin] - e[fin]))
    assert err <= rtol * scale, f"{what}: max abs err {err:.3g} > {rtol} * {scale:.3g}"


def to_torch_state(module):
    torch = torch_or_skip()
    return {k: torch.from_numpy(np.array(v)) for k, v in module.state_dict().items()}


def check_vs_torch(fc_mod, t_mod, x, rtol=1e-4, load=True, gy=None, train=True, seed=0):
    """Run fc_mod and t_mod (same weights) on x; compare the output, the input
    gradient and every parameter gradient for a random output gradient."""
    torch = torch_or_skip()
    if load:
        t_mod.load_state_dict(to_torch_state(fc_mod))
    fc_mod.train(train)
    t_mod.train(train)
    fc_mod.zero_grad()
    t_mod.zero_grad()
    y = fc_mod(x)
    tx = torch.tensor(x, requires_grad=True)
    ty = t_mod(tx)
    assert_close(y, ty.detach().numpy(), rtol, "forward")
    if gy is None:
        gy = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    gx = fc_mod.backward(gy)
    ty.backward(torch.from_numpy(gy))
    assert_close(gx, tx.grad.numpy(), rtol, "grad input")
    tparams = dict(t_mod.named_parameters())
    for name, p in fc_mod.named_parameters():
        tp = tparams[name]
        assert p.grad is not None, f"{name}: no gradient"
        assert_close(p.grad, tp.grad.numpy(), rtol, f"grad {name}")
    for name, b in fc_mod.named_buffers():
        tb = dict(t_mod.named_buffers())[name]
        assert_close(b, tb.numpy(), rtol, f"buffer {name}")
    return y, gx


def directional_check(mod, x, eps=1e-6, rtol=1e-5, seed=0):
    """float64 central differences of f = sum(m(x) * gy) along a random direction in
    (x, params) versus the analytic <grad, direction>."""
    rng = np.random.default_rng(seed)
    mod.double()
    x = x.astype(np.float64)
    params = list(mod.parameters())

    def f(x_):
        fc.manual_seed(seed)               # same dropout mask every call
        return float(np.sum(mod(x_) * gy))

    fc.manual_seed(seed)
    y = mod(x)
    gy = rng.standard_normal(y.shape)
    mod.zero_grad()
    gx = mod.backward(gy)
    vx = rng.standard_normal(x.shape)
    vps = [rng.standard_normal(p.data.shape) for p in params]
    analytic = float(np.sum(gx * vx)) + sum(float(np.sum(p.grad * v)) for p, v in zip(params, vps))
    base = [p.data.copy() for p in params]
    for p, b, v in zip(params, base, vps):
        p.data = b + eps * v
    fp = f(x + eps * vx)
    for p, b, v in zip(params, base, vps):
        p.data = b - eps * v
    fm = f(x - eps * vx)
    for p, b in zip(params, base):
        p.data = b
    numeric = (fp - fm) / (2 * eps)
    assert abs(numeric - analytic) <= rtol * max(1.0, abs(analytic)), \
        f"finite difference {numeric} vs analytic {analytic}"


def at_thread_counts(fn, counts=(1, 2, 3)):
    """[fn() run with each OpenMP thread count], the caller's count restored after."""
    import fastconv as fc
    n0, outs = fc.get_num_threads(), []
    try:
        for nt in counts:
            fc.set_num_threads(nt)
            outs.append(fn())
    finally:
        fc.set_num_threads(n0)
    return outs


def assert_same_non_finite(actual, expected, rtol=1e-4, atol=1e-4):
    """NaN, +Inf and -Inf exactly where expected has them, the finite values close."""
    import numpy as np
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected))
    fin = np.isfinite(expected)
    np.testing.assert_allclose(actual[fin], expected[fin], rtol=rtol, atol=atol)
