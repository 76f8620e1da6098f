"""Weight gradients by the GEMM over a padded copy where the forward did not make one
(a Winograd forward on few channels; a gathered stride-1 forward on large planes), its
transposed packing eight rows at a time through registers: against the float64
reference, every tail of the 8x8 blocks, groups, dilation, and the same bits at any
thread count."""
import numpy as np
import pytest

from fastconv import _conv_plan as plan
from fastconv.functional import conv as FC
import reference as R
from helpers import at_thread_counts

CASES = [  # N, C, H, W, M, K, pad, dilation, groups, forward expected
    (2, 16, 19, 21, 16, 3, 1, 1, 1, plan.Algorithm.WINOGRAD2),
    (2, 24, 37, 35, 20, 3, (0, 2), 1, 1, plan.Algorithm.WINOGRAD4),   # F(2x2) on AVX-512
    (3, 5, 33, 34, 7, 3, 1, 1, 1, plan.Algorithm.GATHER),
    (2, 6, 36, 33, 4, 3, 2, 2, 2, plan.Algorithm.GATHER),
    (1, 2, 40, 41, 9, 5, 2, 1, 1, plan.Algorithm.GATHER),
]


def _run(case, dtype):
    N, C, H, W, M, K, p, d, G, _ = case
    rng = np.random.default_rng(H * W + C)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((M, C // G, K, K)).astype(dtype)
    pads = (p, p, p, p) if isinstance(p, int) else (p[0], p[1], p[0], p[1])
    y, ctx = FC.conv2d(x, w, None, (1, 1), pads, (d, d), G)
    gy = rng.standard_normal(y.shape).astype(dtype)
    return x, w, gy, pads, ctx


@pytest.fixture(autouse=True)
def gemm_only(monkeypatch):
    """These cases test the GEMM; where the planner would take the direct kernel (wide
    rows: test_conv_wgrad_direct.py), the GEMM still runs."""
    pick = FC.weight_grad_algorithm

    def gemm(g, forward, finite=True):
        wg = pick(g, forward, finite)
        return plan.WeightGrad.PADDED if wg is plan.WeightGrad.DIRECT else wg
    monkeypatch.setattr(FC, "weight_grad_algorithm", gemm)


@pytest.mark.parametrize("case", CASES)
def test_padded_weight_grad_matches_reference(case):
    N, C, H, W, M, K, p, d, G, forward = case
    x, w, gy, pads, ctx = _run(case, np.float32)
    ran = ctx.conv.algorithm
    assert ran is forward or (forward in plan.WINOGRAD and ran in plan.WINOGRAD)
    assert FC.weight_grad_algorithm(ctx.conv.geom, ran) is plan.WeightGrad.PADDED
    _, gw, _ = FC.conv2d_backward(ctx, gy, (False, True, False))
    _, rw, _ = R.conv2d_backward(x.astype(np.float64), w.astype(np.float64),
                                 gy.astype(np.float64), (1, 1), pads, (d, d), G)
    scale = np.abs(rw).max()
    np.testing.assert_allclose(gw, rw, rtol=0, atol=2e-5 * scale)


@pytest.mark.parametrize("case", CASES[::2])
def test_padded_weight_grad_same_bits_at_any_thread_count(case):
    x, w, gy, pads, ctx = _run(case, np.float32)
    a, b, c = at_thread_counts(lambda: FC.conv2d_backward(ctx, gy, (False, True, False))[1])
    assert np.array_equal(a, b) and np.array_equal(a, c)
