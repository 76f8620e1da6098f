"""The compiled kernels against the pure-NumPy reference tier (tests/reference.py):
no torch needed.  float64 runs to 1e-10; every convolution algorithm the planner
accepts runs in float32 to the float32 tolerance."""
import numpy as np
import pytest

import fastconv as fc
import reference as ref
from fastconv import functional as F
from fastconv._conv_plan import Algorithm, ConvGeometry, accepts
from helpers import assert_close


def conv_configs(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        C = int(rng.choice([1, 2, 4, 6]))
        groups = int(rng.choice([1, 2, C])) if C % 2 == 0 else 1
        M = groups * int(rng.integers(1, 3))
        K = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        s = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pads = tuple(int(rng.integers(0, 3)) for _ in range(4))
        shape = (int(rng.integers(1, 3)), C, int(rng.integers(3, 10)), int(rng.integers(3, 10)))
        g = ConvGeometry.of(shape, (M, C // groups) + K, s, pads, d, groups)
        if g.OH >= 1 and g.OW >= 1:
            out.append((shape, (M, C // groups) + K, s, pads, d, groups))
    return out


CONV = conv_configs(30, 5)


@pytest.mark.parametrize("cfg", CONV, ids=[f"c{i}" for i in range(len(CONV))])
def test_conv2d_matches_reference(cfg, rng):
    shape, wshape, s, pads, d, groups = cfg
    x, w = rng.standard_normal(shape), rng.standard_normal(wshape)
    b = rng.standard_normal(wshape[0])
    want = ref.conv2d(x, w, b, s, pads, d, groups)
    gy = rng.standard_normal(want.shape)
    gx_r, gw_r, gb_r = ref.conv2d_backward(x, w, gy, s, pads, d, groups)
    g32 = ConvGeometry.of(shape, wshape, s, pads, d, groups)
    for dt, algos in ((np.float64, [None]),
                      (np.float32, [a for a in Algorithm if accepts(a, g32)])):
        tol = 1e-10 if dt == np.float64 else 2e-5
        for a in algos:
            y, ctx = F.conv2d(x.astype(dt), w.astype(dt), b.astype(dt), s, pads, d, groups,
                              algorithm=a)
            assert_close(y, want, tol, f"forward {a}")
            gx, gw, gb = F.conv2d_backward(ctx, gy.astype(dt))
            assert_close(gx, gx_r, tol, f"grad input {a}")
            assert_close(gw, gw_r, tol, f"grad weight {a}")
            assert_close(gb, gb_r, tol, f"grad bias {a}")


@pytest.mark.parametrize("i", range(8))
def test_conv_transpose2d_matches_reference(i):
    rng = np.random.default_rng(i)
    C, groups = int(rng.choice([2, 4])), int(rng.choice([1, 2]))
    Mg = int(rng.integers(1, 3))
    k, s, d = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(1, 3))
    p = int(rng.integers(0, (k - 1) * d // 2 + 1))
    op = int(rng.integers(0, max(s, d)))
    x = rng.standard_normal((2, C, 5, 4))
    w = rng.standard_normal((C, Mg, k, k))
    m = fc.nn.ConvTranspose2d(C, Mg * groups, k, s, p, op, groups, True, d).double()
    m.weight.data, m.bias.data = w, rng.standard_normal(Mg * groups)
    assert_close(m(x), ref.conv_transpose2d(x, w, m.bias.data, (s, s), (p, p), (op, op),
                                            (d, d), groups), 1e-10)


@pytest.mark.parametrize("i", range(12))
def test_pools_match_reference(i):
    rng = np.random.default_rng(100 + i)
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    s = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    p = (int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1)))
    d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    ceil = bool(i % 2)
    x = rng.standard_normal((2, 3, int(rng.integers(1, 9)), int(rng.integers(1, 9))))
    try:
        want, dx_of = ref.max_pool2d(x, k, s, p, d, ceil)
    except ValueError:
        return
    if want.size == 0:
        return
    for dt in (np.float64, np.float32):
        m = fc.nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
        y = m(x.astype(dt))
        gy = rng.standard_normal(y.shape)
        assert_close(y, want, 1e-6)
        assert_close(m.backward(gy.astype(dt)), dx_of(gy), 1e-6)
    for cip in (True, False):
        want, dx_of = ref.avg_pool2d(x, k, s, p, ceil, cip)
        m = fc.nn.AvgPool2d(k, s, p, ceil, cip).double()
        y = m(x)
        gy = rng.standard_normal(y.shape)
        assert_close(y, want, 1e-10)
        assert_close(m.backward(gy), dx_of(gy), 1e-10)


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (2, 2, 1, 3), (8, 1, 2, 2)])
def test_batch_norm_matches_reference(shape, rng):
    x = rng.standard_normal(shape) * 2 + 1
    m = fc.nn.BatchNorm2d(shape[1], eps=1e-3).double()
    m.weight.data = rng.standard_normal(shape[1])
    m.bias.data = rng.standard_normal(shape[1])
    want, mean, var, dx_of = ref.batch_norm_train(x, m.weight.data, m.bias.data, 1e-3)
    y = m(x)
    gy = rng.standard_normal(shape)
    gx = m.backward(gy)
    dx, dg, db = dx_of(gy)
    assert_close(y, want, 1e-10)
    assert_close(gx, dx, 1e-10)
    assert_close(m.weight.grad, dg, 1e-10)
    assert_close(m.bias.grad, db, 1e-10)
    n = x.size / shape[1]
    assert_close(m.running_mean, 0.1 * mean, 1e-12)
    assert_close(m.running_var, 0.9 + 0.1 * var * n / (n - 1), 1e-12)
