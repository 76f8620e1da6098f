"""The gather's tap table on small planes (rows of at most 8 pixels) packs a stride-1
convolution whose rows keep the input's width as masked contiguous slices of each plane
(gemm_impl.h, gather_table, float32): against the NumPy reference with groups, dilation,
asymmetric padding and stacked images; NaN/Inf in neighbouring planes and outside the
arrays never reaching a sum; and bitwise across thread counts."""
import numpy as np
import pytest

from fastconv.functional import conv as FC
from fastconv._conv_plan import Algorithm, ConvGeometry, _flat_table_gather
import reference as R
from helpers import assert_same_non_finite, at_thread_counts

CASES = [  # N, C, M, H, W, K, (pt, pb, pl, pr), dilation, groups
    (1, 16, 16, 8, 8, 3, (1, 1, 1, 1), 1, 1),
    (3, 8, 12, 5, 7, 3, (1, 1, 1, 1), 1, 1),
    (2, 6, 6, 8, 6, 5, (2, 2, 2, 2), 1, 2),
    (2, 4, 8, 7, 8, 3, (0, 2, 3, 1), 2, 1),
    (4, 3, 5, 4, 4, 3, (1, 1, 1, 1), 1, 1),
]


def _data(case, seed):
    N, C, M, H, W, K, pads, d, groups = case
    rng = np.random.default_rng(seed + N + 3 * C + 7 * M)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((M, C // groups, K, K)).astype(np.float32)
    return x, w, pads, (d, d), groups


@pytest.mark.parametrize("case", CASES)
def test_table_gather_matches_reference(case):
    x, w, pads, dil, groups = _data(case, 1)
    g = ConvGeometry.of(x.shape, w.shape, (1, 1), pads, dil, groups, x.dtype)
    assert g.OW == g.W and _flat_table_gather(g)
    y, _ = FC.conv2d(x, w, None, (1, 1), pads, dil, groups, algorithm=Algorithm.GATHER)
    ref = R.conv2d(x, w, None, (1, 1), pads, dil, groups)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_table_gather_keeps_non_finite_values_in_their_plane(case):
    x, w, pads, dil, groups = _data(case, 2)
    x[:, ::2, 0, :] = np.nan
    x[:, 1::2, -1, :] = np.inf
    x[:, :, :, -1] = -np.inf
    # inside a NaN-filled block: reads past the array would show as NaN
    block = np.full(x.size + 4096, np.nan, np.float32)
    xv = block[2048:2048 + x.size].reshape(x.shape)
    xv[...] = x
    y, _ = FC.conv2d(xv, w, None, (1, 1), pads, dil, groups, algorithm=Algorithm.GATHER)
    with np.errstate(invalid="ignore"):
        ref = R.conv2d(x, w, None, (1, 1), pads, dil, groups)
    assert_same_non_finite(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_table_gather_same_bits_at_any_thread_count(case):
    x, w, pads, dil, groups = _data(case, 3)
    outs = at_thread_counts(lambda: FC.conv2d(x, w, None, (1, 1), pads, dil, groups,
                                              algorithm=Algorithm.GATHER)[0])
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])
