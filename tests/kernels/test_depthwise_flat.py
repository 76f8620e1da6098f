"""Stride-1 depthwise convolutions whose rows keep their width (OW == W, 6 columns and
up; the forward not on rows of 16 or 32; at most 4096 values a plane) run each plane as
one flat run of vectors, reading x (and, backward, dy) in place past the plane's ends
with the out-of-plane lanes masked.  Forward and backward against the NumPy reference
(bias, ReLU, ReLU6, dilation, channel multipliers, asymmetric vertical padding), NaN/Inf
in neighbouring planes never leaking in, the arrays' first and last planes (read
through a copy), and bitwise across thread counts."""
import numpy as np
import pytest

from fastconv.functional import conv as FC
from fastconv._conv_plan import Algorithm
import reference as R
from helpers import assert_same_non_finite, at_thread_counts

CASES = [  # N, C, mult, H, W, (KH, KW), (pt, pb, pl, pr), dilation
    (1, 5, 1, 7, 7, (3, 3), (1, 1, 1, 1), 1),
    (2, 9, 1, 14, 14, (3, 3), (1, 1, 1, 1), 1),
    (1, 3, 1, 8, 8, (5, 5), (2, 2, 2, 2), 1),
    (3, 6, 2, 6, 9, (3, 3), (0, 2, 2, 0), 1),
    (1, 2, 1, 12, 12, (3, 3), (2, 2, 2, 2), 2),
    (2, 7, 1, 10, 6, (3, 1), (1, 0, 0, 0), 1),
    (1, 4, 3, 11, 13, (1, 5), (0, 0, 2, 2), 1),
    (2, 13, 1, 9, 17, (3, 3), (3, 1, 1, 1), 1),
    (2, 5, 1, 28, 28, (3, 3), (1, 1, 1, 1), 1),
    (1, 3, 1, 40, 30, (5, 5), (2, 2, 2, 2), 1),
    (2, 4, 1, 16, 16, (3, 3), (1, 1, 1, 1), 1),
]


def _case(case, seed):
    N, C, mult, H, W, (KH, KW), pads, d = case
    rng = np.random.default_rng(seed + 31 * N + 7 * C + H * W)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((C * mult, 1, KH, KW)).astype(np.float32)
    b = rng.standard_normal(C * mult).astype(np.float32)
    return x, w, b, pads, (d, d), C


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("relu", [False, True, "relu6"])
def test_flat_forward_matches_reference(case, relu):
    x, w, b, pads, dil, C = _case(case, 1)
    x *= 4                          # values past 6: the ReLU6 clamp is exercised
    y, _ = FC.conv2d(x, w, b, (1, 1), pads, dil, C, relu=relu,
                     algorithm=Algorithm.DEPTHWISE_S1)
    assert y.shape[3] == x.shape[3]
    ref = R.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), (1, 1),
                   pads, dil, C)
    if relu:
        ref = np.maximum(ref, 0)
    if relu == "relu6":
        ref = np.minimum(ref, 6)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_flat_forward_keeps_non_finite_values_in_their_plane(case):
    """NaN and Inf on every plane's border rows and columns: the lanes that read a
    neighbouring plane (or wrap to the next row) are cleared, so each output is NaN or
    infinite exactly where the reference's is."""
    x, w, b, pads, dil, C = _case(case, 2)
    x[:, ::2, 0, :] = np.nan
    x[:, 1::2, -1, :] = np.inf
    x[:, ::3, :, -1] = -np.inf
    y, _ = FC.conv2d(x, w, b, (1, 1), pads, dil, C)
    with np.errstate(invalid="ignore"):
        ref = R.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                       (1, 1), pads, dil, C)
    assert_same_non_finite(y, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_flat_forward_same_bits_at_any_thread_count(case):
    x, w, b, pads, dil, C = _case(case, 3)
    outs = at_thread_counts(lambda: FC.conv2d(x, w, b, (1, 1), pads, dil, C)[0])
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])


def test_flat_forward_first_and_last_planes_of_the_array():
    """The array's first and last planes (whose taps would read before its start or
    past its end: they run through a zero-margined copy) in a view at either end of a
    NaN-filled block: any unmasked read outside the planes would show as NaN."""
    rng = np.random.default_rng(4)
    for H in (6, 7, 15):
        block = np.full(4096, np.nan, np.float32)
        for start in (0, 4096 - 2 * H * H):
            x = block[start:start + 2 * H * H].reshape(1, 2, H, H)
            x[...] = rng.standard_normal((1, 2, H, H))
            w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
            y, _ = FC.conv2d(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 2,
                             algorithm=Algorithm.DEPTHWISE_S1)
            ref = R.conv2d(x.astype(np.float64), w.astype(np.float64), None, (1, 1),
                           (1, 1, 1, 1), (1, 1), 2)
            np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False), (False, True, False)])
def test_flat_backward_matches_reference(case, needs):
    x, w, b, pads, dil, C = _case(case, 5)
    y, ctx = FC.conv2d(x, w, b, (1, 1), pads, dil, C)
    gy = np.random.default_rng(6).standard_normal(y.shape).astype(np.float32)
    got = FC.conv2d_backward(ctx, gy, needs)
    ref = R.conv2d_backward(x, w, gy, (1, 1), pads, dil, C)
    for g, r, need in zip(got, ref, needs):
        if need:
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)
        else:
            assert g is None


@pytest.mark.parametrize("case", CASES)
def test_flat_backward_same_bits_at_any_thread_count(case):
    x, w, b, pads, dil, C = _case(case, 7)

    def step():
        y, ctx = FC.conv2d(x, w, b, (1, 1), pads, dil, C)
        return FC.conv2d_backward(ctx, np.cos(y))

    outs = at_thread_counts(step)
    for got in outs[1:]:
        for a, ref in zip(got, outs[0]):
            np.testing.assert_array_equal(a, ref)


def test_flat_backward_first_and_last_planes_of_the_array():
    """x and dy as views at either end of NaN-filled blocks: the input gradient reads
    dy, the weight gradient x and dy, past the planes' ends; any unmasked lane there
    would turn a gradient NaN."""
    rng = np.random.default_rng(8)
    for H in (6, 9, 15):
        for start in (0, 4096 - 2 * H * H):
            xb, gb = np.full(4096, np.nan, np.float32), np.full(4096, np.nan, np.float32)
            x = xb[start:start + 2 * H * H].reshape(1, 2, H, H)
            gy = gb[start:start + 2 * H * H].reshape(1, 2, H, H)
            x[...] = rng.standard_normal(x.shape)
            gy[...] = rng.standard_normal(gy.shape)
            w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
            _, ctx = FC.conv2d(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 2,
                               algorithm=Algorithm.DEPTHWISE_S1)
            gx, gw, _ = FC.conv2d_backward(ctx, gy, (True, True, False))
            rx, rw, _ = R.conv2d_backward(x, w, gy, (1, 1), (1, 1, 1, 1), (1, 1), 2)
            np.testing.assert_allclose(gx, rx, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(gw, rw, rtol=1e-4, atol=1e-4)
