"""Winograd transforms on short tile rows.  A transform call writes whole 8-lane vectors
where its panel has room (the run's following slots, overwritten by a later run or left
unread by the GEMM) and reads edge rows through masks: tile rows of 1-9 tiles, blocks that
end mid-row, odd widths and asymmetric padding, forward, input and weight gradients,
against the float64 reference and with the same bits at any thread count."""
import numpy as np
import pytest

from fastconv import _conv_plan as plan
from fastconv.functional import conv as FC
import reference as R
from helpers import at_thread_counts

CASES = [  # N, C, M, H, W, pads (t, b, l, r)
    (5, 16, 20, 28, 28, (1, 1, 1, 1)),
    (3, 8, 12, 14, 13, (1, 1, 1, 1)),
    (7, 16, 16, 9, 30, (1, 0, 2, 1)),
    (2, 24, 8, 6, 5, (0, 0, 0, 0)),
    (16, 16, 16, 28, 28, (1, 1, 1, 1)),     # several blocks, ending mid-row
    (3, 8, 8, 36, 3, (2, 2, 2, 2)),
]
FORWARDS = [plan.Algorithm.WINOGRAD2, plan.Algorithm.WINOGRAD4]


@pytest.fixture
def winograd_weight_grad(monkeypatch):
    """The F(2x2) weight gradient for every Winograd forward (the planner prefers others
    for few channels on large planes)."""
    def forced(g, forward, finite=True):
        return plan.WeightGrad.WINOGRAD if forward in plan.WINOGRAD else \
            plan.weight_grad_algorithm(g, forward, finite)
    monkeypatch.setattr(FC, "weight_grad_algorithm", forced)


def _data(case):
    N, C, M, H, W, pads = case
    rng = np.random.default_rng(N * H + W * C + M)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((M, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    return x, w, pads, rng


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("algorithm", FORWARDS, ids=lambda a: a.value)
def test_short_tile_rows_match_reference(case, algorithm, winograd_weight_grad):
    x, w, pads, rng = _data(case)
    y, ctx = FC.conv2d(x, w, None, (1, 1), pads, algorithm=algorithm)
    assert ctx.conv.algorithm is algorithm
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx, gw, _ = FC.conv2d_backward(ctx, gy, (True, True, False))
    x64, w64, gy64 = (a.astype(np.float64) for a in (x, w, gy))
    ry = R.conv2d(x64, w64, None, (1, 1), pads)
    rx, rw, _ = R.conv2d_backward(x64, w64, gy64, (1, 1), pads)
    for got, ref, what in ((y, ry, "forward"), (gx, rx, "grad input"), (gw, rw, "grad weight")):
        np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5 * np.abs(ref).max(), err_msg=what)


@pytest.mark.parametrize("case", CASES[::4])
@pytest.mark.parametrize("algorithm", FORWARDS, ids=lambda a: a.value)
def test_short_tile_rows_same_bits_at_any_thread_count(case, algorithm, winograd_weight_grad):
    x, w, pads, rng = _data(case)
    gy = rng.standard_normal(FC.conv2d(x, w, None, (1, 1), pads)[0].shape).astype(np.float32)

    def run():
        y, ctx = FC.conv2d(x, w, None, (1, 1), pads, algorithm=algorithm)
        gx, gw, _ = FC.conv2d_backward(ctx, gy, (True, True, False))
        return np.concatenate([y.ravel(), gx.ravel(), gw.ravel()])
    a, b, c = at_thread_counts(run)
    assert np.array_equal(a, b) and np.array_equal(a, c)
