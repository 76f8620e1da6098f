"""Winograd on few tiles (a single frame): blocks of one panel, split by output-channel
panels across threads.  Every thread count must give the one-thread bits, and the result
must be the convolution (float64 reference, no torch)."""
import numpy as np
import pytest

import fastconv as fc
from fastconv._conv_plan import Algorithm
from fastconv.functional import conv2d
from helpers import at_thread_counts
from reference import conv2d as conv2d_ref

CASES = [  # (N, C, H, W, M): tiles from under one panel to a few blocks
    (1, 16, 64, 64, 24), (1, 64, 32, 32, 64), (1, 8, 7, 9, 13), (2, 32, 20, 12, 40),
    (1, 128, 16, 16, 136), (1, 3, 30, 30, 8)]


@pytest.mark.parametrize("algorithm", [Algorithm.WINOGRAD2, Algorithm.WINOGRAD4])
@pytest.mark.parametrize("N,C,H,W,M", CASES)
def test_winograd_frame_bits_do_not_depend_on_threads(algorithm, N, C, H, W, M):
    rng = np.random.default_rng(C * M + H)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((M, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    outs = at_thread_counts(lambda: conv2d(x, w, b, (1, 1), (1, 1, 1, 1), relu=True,
                                           algorithm=algorithm)[0], (1, 2, 3, 4, 16))
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])
    ref = np.maximum(conv2d_ref(x.astype(np.float64), w.astype(np.float64), b, pads=(1, 1, 1, 1)), 0)
    tol = 2e-4 if algorithm is Algorithm.WINOGRAD2 else 2e-3
    np.testing.assert_allclose(outs[0], ref, atol=tol, rtol=tol)


def test_winograd_frame_bf16_bits_do_not_depend_on_threads():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 32, 24, 24)).astype(np.float32)
    w = (rng.standard_normal((40, 32, 3, 3)) / 17).astype(np.float32)
    def run():
        with fc.autocast("bf16"):
            return conv2d(x, w, None, (1, 1), (1, 1, 1, 1), algorithm=Algorithm.WINOGRAD2)[0]

    outs = at_thread_counts(run)
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])
