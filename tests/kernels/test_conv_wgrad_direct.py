"""Weight gradients computed directly (WeightGrad.DIRECT, wgrad_direct.c): 4 output
channels x 3 taps of FMAs straight over the padded input, no im2col.  Against the
float64 reference: output channels that are not a multiple of 4, every row tail (OW % 8),
kernel heights 1-5, dilation, asymmetric padding, one and several images; the same bits
at any thread count, and the generic kernel under FASTCONV_ISA=generic."""
import os
import subprocess
import sys

import numpy as np
import pytest

from fastconv import _conv_plan as plan
from fastconv.functional import conv as FC
import reference as R
from helpers import at_thread_counts

CASES = [  # N, C, H, W, M, KH, pads (t, b, l, r), dilation
    (2, 3, 30, 33, 16, 3, (1, 1, 1, 1), 1),
    (1, 5, 17, 29, 7, 3, (0, 2, 1, 0), 1),
    (3, 4, 9, 34, 5, 1, (0, 0, 1, 1), 1),
    (2, 6, 12, 36, 9, 5, (2, 2, 2, 2), 2),
    (2, 8, 20, 40, 4, 2, (1, 0, 1, 1), 1),
    (1, 2, 6, 9, 3, 3, (1, 1, 1, 1), 1),
]


def _run(case, force=True):
    N, C, H, W, M, KH, pads, d = case
    rng = np.random.default_rng(H * W + C + M)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((M, C, KH, 3)).astype(np.float32)
    y, ctx = FC.conv2d(x, w, None, (1, 1), pads, (d, d))
    gy = rng.standard_normal(y.shape).astype(np.float32)
    return x, w, gy, ctx


@pytest.fixture
def direct(monkeypatch):
    """Every weight gradient the direct kernel accepts goes through it (the planner takes
    it from 28 columns up only)."""
    pick = FC.weight_grad_algorithm

    def forced(g, forward, finite=True):
        if plan.accepts_direct_weight_grad(g) and forward not in plan.DEPTHWISE:
            return plan.WeightGrad.DIRECT
        return pick(g, forward, finite)
    monkeypatch.setattr(FC, "weight_grad_algorithm", forced)


@pytest.mark.parametrize("case", CASES)
def test_direct_weight_grad_matches_reference(case, direct):
    N, C, H, W, M, KH, pads, d = case
    x, w, gy, ctx = _run(case)
    assert FC.weight_grad_algorithm(ctx.conv.geom, ctx.conv.algorithm) is plan.WeightGrad.DIRECT
    _, gw, _ = FC.conv2d_backward(ctx, gy, (False, True, False))
    _, rw, _ = R.conv2d_backward(x.astype(np.float64), w.astype(np.float64),
                                 gy.astype(np.float64), (1, 1), pads, (d, d))
    np.testing.assert_allclose(gw, rw, rtol=0, atol=2e-5 * np.abs(rw).max())


@pytest.mark.parametrize("case", CASES[:4:3])
def test_direct_weight_grad_same_bits_at_any_thread_count(case, direct):
    x, w, gy, ctx = _run(case)
    a, b, c = at_thread_counts(lambda: FC.conv2d_backward(ctx, gy, (False, True, False))[1])
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_planner_takes_direct_weight_grad_on_wide_rows_only():
    g = plan.ConvGeometry(8, 16, 64, 64, 16, 3, 3, 1, 1, 1, 1, 1, 1)
    wg = plan.weight_grad_algorithm
    assert wg(g, plan.Algorithm.WINOGRAD4) is plan.WeightGrad.DIRECT
    assert wg(g._replace(H=20, W=20), plan.Algorithm.WINOGRAD4) is plan.WeightGrad.PADDED
    assert wg(g._replace(groups=2), plan.Algorithm.PADDED) is plan.WeightGrad.PADDED
    assert wg(g._replace(KH=5, KW=5, pt=2, pb=2, pl=2, pr=2), plan.Algorithm.PADDED) \
        is plan.WeightGrad.PADDED
    assert wg(g._replace(dtype=np.dtype(np.float64)), plan.Algorithm.WINOGRAD4) \
        is plan.WeightGrad.PADDED
    assert wg(g._replace(bf16=True), plan.Algorithm.WINOGRAD2) is not plan.WeightGrad.DIRECT


def test_direct_weight_grad_generic_kernel():
    """The portable kernel (FASTCONV_ISA=generic) in a fresh interpreter."""
    code = (
        "import numpy as np, fastconv as fc, reference as R\n"
        "from fastconv._kernels import _cpu\n"
        "from fastconv.functional import conv as FC\n"
        "assert _cpu.kernel_sets()['wgrad'] == 'generic'\n"
        "rng = np.random.default_rng(1)\n"
        "x = rng.standard_normal((2, 3, 11, 30)).astype(np.float32)\n"
        "w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)\n"
        "y, ctx = FC.conv2d(x, w, None, (1, 1), (1, 1, 1, 1))\n"
        "gy = rng.standard_normal(y.shape).astype(np.float32)\n"
        "g = ctx.conv.geom\n"
        "flat, image, _, PW, _ = FC._padded_source(x, g, 2)\n"
        "dw2 = np.empty((6, 27), np.float32)\n"
        "from fastconv._kernels import _conv\n"
        "_conv.direct_weight_grad3(gy, flat, image, 13, PW, dw2, 3, 1, 1, 2)\n"
        "_, rw, _ = R.conv2d_backward(x, w, gy, (1, 1), (1, 1, 1, 1))\n"
        "assert np.abs(dw2.reshape(rw.shape) - rw).max() <= 2e-5 * np.abs(rw).max()\n"
        "print('ok')\n")
    import fastconv
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, FASTCONV_ISA="generic",
               PYTHONPATH=os.pathsep.join([pkg_root, tests, os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
