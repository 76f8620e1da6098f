"""Strided depthwise convolutions on the paths picked by plane width: rows of 16 and more
split into even and odd columns (stride 2), narrower rows in channel lanes; against the
float64 reference, forward and both gradients, float32 and float64, odd widths, several
paddings and kernel sizes, and bitwise across thread counts."""
import numpy as np
import pytest

from fastconv.functional import conv as FC
import reference as R
from helpers import at_thread_counts

CASES = [  # N, C, H, W, K, stride, pad
    (2, 5, 40, 33, 3, 2, 1),      # odd width: the even half is one longer
    (3, 4, 34, 40, 3, 2, 0),
    (2, 3, 36, 37, 5, 2, 2),
    (2, 6, 33, 32, 3, (2, 1), 1),  # stride 2 down, 1 across
    (4, 17, 20, 20, 3, 2, 1),     # 10-wide output rows: the channel lanes, 17 channels
    (2, 8, 31, 29, 3, 3, 1),
    (2, 4, 18, 40, 3, (1, 2), 1),  # stride 1 down, 2 across
    (1, 2, 130, 131, 3, 2, 1),    # forward: split in bands of output rows; backward too
                                  # large for its split rows on the stack: strided loop
    (1, 2, 45, 50, 7, 2, 3),      # 7x7: 21 input rows a band, the last band 7 rows
    (2, 3, 21, 47, 4, 2, 3),      # even kernel, padding past half of it
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_strided_depthwise_matches_reference(case, dtype):
    N, C, H, W, K, s, p = case
    s = s if isinstance(s, tuple) else (s, s)
    rng = np.random.default_rng(H * W + K)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((C, 1, K, K)).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    y, ctx = FC.conv2d(x, w, b, s, (p,) * 4, (1, 1), C)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    np.testing.assert_allclose(y, R.conv2d(x64, w64, b.astype(np.float64), s, (p,) * 4,
                                           (1, 1), C), rtol=tol, atol=tol)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx, gw, _ = FC.conv2d_backward(ctx, gy)
    rx, rw, _ = R.conv2d_backward(x64, w64, gy.astype(np.float64), s, (p,) * 4, (1, 1), C)
    np.testing.assert_allclose(gx, rx, rtol=tol, atol=tol)
    np.testing.assert_allclose(gw, rw, rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("case", CASES[:3] + CASES[4:5])
def test_strided_depthwise_same_bits_at_any_thread_count(case):
    N, C, H, W, K, s, p = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((C, 1, K, K)).astype(np.float32)
    def step():
        y, ctx = FC.conv2d(x, w, None, (s, s), (p,) * 4, (1, 1), C, relu=True)
        return (y, *FC.conv2d_backward(ctx, np.ones_like(y))[:2])

    outs = at_thread_counts(step)
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("W", [16, 33, 64])
def test_strided_depthwise_relu_keeps_nan_and_zeroes_negatives(W):
    """The fused ReLU of the stride-2 rows: max(v, 0) with NaN kept, as the strided loop
    and torch give."""
    rng = np.random.default_rng(W)
    x = rng.standard_normal((1, 16, 12, W)).astype(np.float32)
    x[0, 3, 5, 7] = np.nan
    w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    y, _ = FC.conv2d(x, w, None, (2, 2), (1,) * 4, (1, 1), 16, relu=True)
    ref = R.conv2d(x.astype(np.float64), w.astype(np.float64), None, (2, 2), (1,) * 4, (1, 1),
                   16)
    assert np.isnan(y[0, 3]).sum() == np.isnan(ref[0, 3]).sum() > 0
    np.testing.assert_allclose(y, np.where(np.isnan(ref), ref, np.maximum(ref, 0)),
                               rtol=1e-5, atol=1e-5)
    assert not (y < 0).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("W, pad", [(37, 1), (64, 2), (20, 0)])
def test_strided_depthwise_channel_multiplier(dtype, W, pad):
    """Two output channels per input channel (groups = C, out = 2C), stride 2: the first
    output channel's backward assigns the input gradient, the second adds to it."""
    N, C, H, K = 2, 3, 18, 3
    rng = np.random.default_rng(W + pad)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((2 * C, 1, K, K)).astype(dtype)
    y, ctx = FC.conv2d(x, w, None, (2, 2), (pad,) * 4, (1, 1), C)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    np.testing.assert_allclose(y, R.conv2d(x64, w64, None, (2, 2), (pad,) * 4, (1, 1), C),
                               rtol=tol, atol=tol)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx, gw, _ = FC.conv2d_backward(ctx, gy)
    rx, rw, _ = R.conv2d_backward(x64, w64, gy.astype(np.float64), (2, 2), (pad,) * 4, (1, 1),
                                  C)
    np.testing.assert_allclose(gx, rx, rtol=tol, atol=tol)
    np.testing.assert_allclose(gw, rw, rtol=tol * 10, atol=tol * 10)
