"""Small output planes (under 64 pixels) run the convolution forward and the strided
backward-data as one GEMM over the batch's images side by side: against the NumPy
reference in float64, bitwise across thread counts, with groups, bias, ReLU, strides,
dilation and 1x1 kernels."""
import numpy as np
import pytest

from fastconv.functional import conv as FC
import reference as R
from helpers import at_thread_counts

CASES = [  # N, C, H, M, K, stride, pad, dilation, groups
    (5, 6, 5, 4, 3, 1, 1, 1, 1),
    (4, 8, 7, 6, 3, 2, 1, 1, 2),
    (3, 4, 3, 10, 1, 1, 0, 1, 1),      # 1x1 on 3x3 planes
    (6, 4, 8, 4, 1, 2, 0, 1, 1),       # 1x1 stride 2 (a ResNet downsample)
    (2, 6, 9, 6, 3, 2, 2, 2, 3),
    (7, 3, 4, 5, 2, 1, 0, 1, 1),
]


@pytest.mark.parametrize("case", CASES)
def test_stacked_forward_and_backward_match_reference(case):
    N, C, H, M, K, s, p, d, G = case
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((N, C, H, H))
    w = rng.standard_normal((M, C // G, K, K))
    b = rng.standard_normal(M)
    pads = (p, p, p, p)
    y, ctx = FC.conv2d(x, w, b, (s, s), pads, (d, d), G)
    assert y.shape[2] * y.shape[3] < 64
    np.testing.assert_allclose(y, R.conv2d(x, w, b, (s, s), pads, (d, d), G), rtol=1e-10,
                               atol=1e-10)
    yr, _ = FC.conv2d(x, w, b, (s, s), pads, (d, d), G, relu=True)
    np.testing.assert_array_equal(yr, np.maximum(y, 0))
    gy = rng.standard_normal(y.shape)
    gx, gw, gb = FC.conv2d_backward(ctx, gy)
    rx, rw, _ = R.conv2d_backward(x, w, gy, (s, s), pads, (d, d), G)
    np.testing.assert_allclose(gx, rx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, rw, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gb, gy.sum((0, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_stacked_paths_same_bits_at_any_thread_count(case):
    N, C, H, M, K, s, p, d, G = case
    rng = np.random.default_rng(1 + sum(case))
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((M, C // G, K, K)).astype(np.float32)
    def step():
        y, ctx = FC.conv2d(x, w, None, (s, s), (p, p, p, p), (d, d), G)
        return (y, *FC.conv2d_backward(ctx, np.ones_like(y))[:2])

    outs = at_thread_counts(step)
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)
