"""Pooling parity with torch and finite differences."""
import os

import numpy as np
import pytest

import fastconv as fc
from fastconv import _shape
from helpers import assert_close, check_vs_torch, directional_check, torch_or_skip


def random_pool(rng, with_dilation):
    k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    s = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.8 else None
    d = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if with_dilation else (1, 1)
    lim = [ki // 2 for ki in k]
    p = tuple(int(rng.integers(0, li + 1)) for li in lim)
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(4, 14)),
             int(rng.integers(4, 14)))
    return k, s, p, d, bool(rng.random() < 0.5), shape


def _ok(k, s, p, d, ceil, shape):
    s = s or k
    return all(_shape.pool_output_size(shape[2 + i], k[i], s[i], p[i], d[i], ceil) >= 1
               for i in range(2))


MAXCFG, AVGCFG = [], []
_r = np.random.default_rng(7)
while len(MAXCFG) < 40:
    c = random_pool(_r, True)
    if _ok(*c):
        MAXCFG.append(c)
while len(AVGCFG) < 40:
    c = random_pool(_r, False)
    if _ok(*c):
        AVGCFG.append(c + (bool(_r.random() < 0.5), [None, None, 3][int(_r.integers(0, 3))]))


@pytest.mark.parametrize("cfg", MAXCFG, ids=[f"m{i}" for i in range(len(MAXCFG))])
def test_maxpool_matches_torch(cfg, rng):
    torch = torch_or_skip()
    k, s, p, d, ceil, shape = cfg
    m = fc.nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
    t = torch.nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
    check_vs_torch(m, t, rng.standard_normal(shape).astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize("cfg", AVGCFG, ids=[f"a{i}" for i in range(len(AVGCFG))])
def test_avgpool_matches_torch(cfg, rng):
    torch = torch_or_skip()
    k, s, p, _, ceil, shape, cip, div = cfg
    m = fc.nn.AvgPool2d(k, s, p, ceil, cip, div)
    t = torch.nn.AvgPool2d(k, s, p, ceil, cip, div)
    check_vs_torch(m, t, rng.standard_normal(shape).astype(np.float32), rtol=1e-5)


@pytest.mark.parametrize("out", [1, 2, 3, (5, 2), (7, 7), (4, None)])
@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 2, 9, 5), (1, 1, 1, 1)])
def test_adaptive_avgpool_matches_torch(out, shape, rng):
    torch = torch_or_skip()
    check_vs_torch(fc.nn.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out),
                   rng.standard_normal(shape).astype(np.float32), rtol=1e-5)


def test_maxpool_nan_propagates_like_torch():
    torch = torch_or_skip()
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    x[0, 0, 1, 1] = np.nan
    x[0, 1, 3, 3] = -np.inf
    check_vs_torch(fc.nn.MaxPool2d(2), torch.nn.MaxPool2d(2), x, rtol=0)


@pytest.mark.parametrize("i", range(6))
def test_pool_finite_differences(i, rng):
    k, s, p, d, ceil, shape = MAXCFG[i]
    directional_check(fc.nn.MaxPool2d(k, s, p, d, ceil_mode=ceil), rng.standard_normal(shape))
    k, s, p, _, ceil, shape, cip, div = AVGCFG[i]
    directional_check(fc.nn.AvgPool2d(k, s, p, ceil, cip, div), rng.standard_normal(shape))
    directional_check(fc.nn.AdaptiveAvgPool2d(3), rng.standard_normal(shape))


def test_global_average_pool_is_mean(rng):
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    assert_close(fc.nn.AdaptiveAvgPool2d(1)(x)[:, :, 0, 0], x.mean(axis=(2, 3)), 1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 10, 70), (1, 2, 7, 33), (1, 1, 4, 32)])
def test_maxpool_2x2_fast_path_nan_ties_odd_sizes_match_torch(shape, rng):
    """Wide rows run the vectorised 2x2 kernel; integer data makes ties, NaNs test
    torch's scan order; odd sizes leave a row/column no window covers."""
    torch = torch_or_skip()
    x = rng.integers(0, 4, shape).astype(np.float32)
    x.flat[rng.choice(x.size, x.size // 20, replace=False)] = np.nan
    x.flat[rng.choice(x.size, x.size // 20, replace=False)] = -np.inf
    check_vs_torch(fc.nn.MaxPool2d(2), torch.nn.MaxPool2d(2), x, rtol=0)
    check_vs_torch(fc.nn.AvgPool2d(2), torch.nn.AvgPool2d(2), np.nan_to_num(x, neginf=-1),
                   rtol=1e-6)


def naive_max_pool(x, k, s, p, d, ceil):
    """Loops over the taps that lie in the input: (y, argmax) per window, -inf and no
    argmax (-1) for a window wholly in padding; ties keep the first tap, as torch."""
    N, C, H, W = x.shape
    OH = _shape.pool_output_size(H, k[0], s[0], p[0], d[0], ceil)
    OW = _shape.pool_output_size(W, k[1], s[1], p[1], d[1], ceil)
    y = np.full((N, C, OH, OW), -np.inf)
    arg = np.full((N, C, OH, OW), -1)
    for oh in range(OH):
        for ow in range(OW):
            for i in range(k[0]):
                for j in range(k[1]):
                    h, w = oh * s[0] - p[0] + i * d[0], ow * s[1] - p[1] + j * d[1]
                    if 0 <= h < H and 0 <= w < W:
                        v = x[:, :, h, w]
                        better = (v > y[:, :, oh, ow]) | (arg[:, :, oh, ow] < 0)
                        y[:, :, oh, ow] = np.where(better, v, y[:, :, oh, ow])
                        arg[:, :, oh, ow] = np.where(better, h * W + w, arg[:, :, oh, ow])
    return y, arg


# Windows wholly in padding (dilation pushes every tap past a 1-pixel plane): the
# argmax pointed past the plane and the backward wrote outside its buffer (heap
# corruption).  The first two are issue 19's reproducers (the second is also the case
# the old fuzzer died on at seed 11, pool family, under AddressSanitizer); the third a
# ceil_mode case the new fuzzer's referee checks (torch's own backward corrupts the heap).
EMPTY_WINDOW_CASES = [
    ((3, 1, 1, 2), (2, 2), (2, 2), (1, 1), (2, 2), False),
    ((2, 4, 1, 8), (2, 3), (2, 3), (1, 1), (2, 2), False),
    ((3, 2, 1, 1), (4, 2), (3, 3), (2, 1), (2, 2), True),
]


@pytest.mark.parametrize("shape, k, s, p, d, ceil", EMPTY_WINDOW_CASES)
def test_maxpool_window_wholly_in_padding(shape, k, s, p, d, ceil, rng):
    x = rng.standard_normal(shape)
    ref_y, ref_arg = naive_max_pool(x, k, s, p, d, ceil)
    for dt in (np.float32, np.float64):
        y, (idx, _) = fc.functional.max_pool2d(x.astype(dt), k, s, p, d, ceil)
        assert np.isneginf(ref_y).any()             # the case has an empty window
        np.testing.assert_array_equal(y, ref_y.astype(dt))
        np.testing.assert_array_equal(idx, ref_arg)  # -1 there, never past the plane
        m = fc.nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
        gy = rng.standard_normal(ref_y.shape).astype(dt)
        m(x.astype(dt))
        gx = m.backward(gy)
        want = np.zeros(shape)
        flat = want.reshape(shape[0] * shape[1], -1)
        for pl, a, g in zip(np.repeat(np.arange(flat.shape[0]), ref_arg[0, 0].size),
                            ref_arg.reshape(-1), gy.reshape(-1)):
            if a >= 0:
                flat[pl, a] += g
        np.testing.assert_allclose(gx, want, rtol=1e-6, atol=1e-6)


def test_maxpool_empty_window_reproducer_exits_cleanly(tmp_path):
    """Issue 19's five lines in a fresh process: heap corruption aborted it at exit."""
    import subprocess
    import sys
    code = ("import numpy as np, fastconv as fc\n"
            "x = np.random.rand(3, 1, 1, 2).astype(np.float32)\n"
            "m = fc.nn.MaxPool2d(2, padding=1, dilation=2)\n"
            "y = m(x)\n"
            "g = m.backward(np.ones_like(y))\n"
            "for _ in range(200): m(np.random.rand(64, 8, 9, 9).astype(np.float32))\n"
            "assert np.isneginf(y).all() and not g.any()\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(fc.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    # (run outside the checkout: its uncompiled source would shadow an installed package)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("out", [1, 2, 3, (5, 2), (4, None)])
@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 2, 9, 5), (1, 1, 1, 1)])
def test_adaptive_max_pool_matches_torch(out, shape, rng):
    """AdaptiveMaxPool2d (and global max pooling at 1): windows, argmax routing of the
    gradient, integer data for ties and a NaN."""
    torch = torch_or_skip()
    x = rng.integers(0, 5, shape).astype(np.float32)
    if x.size > 3:
        x.flat[2] = np.nan
    check_vs_torch(fc.nn.AdaptiveMaxPool2d(out), torch.nn.AdaptiveMaxPool2d(out), x, rtol=0)
    directional_check(fc.nn.AdaptiveMaxPool2d(out), rng.standard_normal(shape))


def test_maxpool_without_indices_has_the_argmax_paths_bits(rng):
    """Inference (no argmax kept) pools separably, taps in vectorised loops: the values must
    be the argmax path's bit for bit - NaN wins, ties (signed zeros) keep the first tap,
    windows wholly in padding give -inf - over random geometries, ceil_mode included."""
    values = np.array([0.0, -0.0, 1.0, -1.0, np.nan, 2.0, -np.inf])
    cases = [(s, k, st, p, d, c) for s, k, st, p, d, c in EMPTY_WINDOW_CASES]
    while len(cases) < 120:
        k = tuple(int(v) for v in rng.integers(1, 5, 2))
        d = tuple(int(v) for v in rng.integers(1, 3, 2))
        p = (int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1)))
        shape = (2, 3) + tuple(int(v) for v in rng.integers(1, 13, 2))
        cases.append((shape, k, tuple(int(v) for v in rng.integers(1, 4, 2)), p, d,
                      bool(rng.integers(0, 2))))
    for shape, k, s, p, d, ceil in cases:
        for dt in (np.float32, np.float64):
            x = rng.choice(values, size=shape).astype(dt)
            try:
                (y, _), _ = fc.functional.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
            except ValueError:                      # no output for this geometry
                continue
            v, ctx = fc.functional.max_pool2d(x, k, s, p, d, ceil, need_indices=False)
            assert ctx.indices is None
            assert v.tobytes() == y.tobytes(), (shape, k, s, p, d, ceil, dt)
