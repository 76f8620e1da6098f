"""Depthwise forward on tiny planes (output rows under 8 pixels) runs 16 channels in the
vector lanes: against the NumPy reference, with partial channel blocks, strides,
padding, dilation, bias and the fused ReLU, and bitwise across thread counts."""
import numpy as np
import pytest

from fastconv.functional import conv as FC
import reference as R
from helpers import at_thread_counts

CASES = [  # N, C, H, K, stride, pad, dilation
    (3, 5, 4, 3, 1, 1, 1),
    (2, 16, 2, 3, 1, 1, 1),
    (2, 21, 7, 3, 2, 1, 1),
    (4, 40, 6, 3, 1, 2, 2),
    (1, 33, 5, 5, 1, 2, 1),
    (2, 17, 3, 3, 2, 0, 1),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_lanes_forward_matches_reference(case, relu):
    N, C, H, K, s, p, d = case
    rng = np.random.default_rng(sum(case) + relu)
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((C, 1, K, K)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32)
    y, _ = FC.conv2d(x, w, b, (s, s), (p, p, p, p), (d, d), C, relu=relu)
    assert y.shape[3] < 8
    ref = R.conv2d(x, w, b, (s, s), (p, p, p, p), (d, d), C)
    if relu:
        ref = np.maximum(ref, 0)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_lanes_forward_same_bits_at_any_thread_count(case):
    N, C, H, K, s, p, d = case
    rng = np.random.default_rng(7 + sum(case))
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((C, 1, K, K)).astype(np.float32)
    outs = at_thread_counts(lambda: FC.conv2d(x, w, None, (s, s), (p, p, p, p), (d, d), C)[0])
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False), (False, True, True)])
def test_lanes_backward_matches_reference(case, needs):
    N, C, H, K, s, p, d = case
    rng = np.random.default_rng(3 + sum(case))
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((C, 1, K, K)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32)
    y, ctx = FC.conv2d(x, w, b, (s, s), (p, p, p, p), (d, d), C)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx, gw, gb = FC.conv2d_backward(ctx, gy, needs)
    rx, rw, rb = R.conv2d_backward(x, w, gy, (s, s), (p, p, p, p), (d, d), C)
    for got, ref, need in zip((gx, gw, gb), (rx, rw, rb), needs):
        if need:
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
        else:
            assert got is None


@pytest.mark.parametrize("case", CASES)
def test_lanes_backward_same_bits_at_any_thread_count(case):
    N, C, H, K, s, p, d = case
    rng = np.random.default_rng(11 + sum(case))
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((C, 1, K, K)).astype(np.float32)
    def step():
        y, ctx = FC.conv2d(x, w, None, (s, s), (p, p, p, p), (d, d), C)
        return FC.conv2d_backward(ctx, np.ones_like(y))[:2]

    outs = at_thread_counts(step)
    for got in outs[1:]:
        for a, b in zip(got, outs[0]):
            np.testing.assert_array_equal(a, b)
