"""ReLU6 in the depthwise kernels' store (a folded Conv-BN-ReLU6 at inference): on every
forward path (stride-1 padded planes, the stride-2 split rows, the general strided loop,
the channel lanes of narrow planes), with and without a folded BatchNorm factor, the
output is bitwise ReLU's output clamped at 6, NaN and +-Inf included."""
import numpy as np
import pytest

from fastconv.functional import conv as FC

CASES = [  # N, C, H, W, stride, pad
    (1, 16, 112, 112, 1, 1),      # padded stride-1 planes
    (2, 24, 40, 33, 2, 1),        # stride-2 split rows, odd width
    (3, 20, 9, 9, 1, 1),          # 9 wide: padded planes, one partial vector a row
    (2, 17, 6, 7, 1, 1),          # narrow planes: channels in lanes
    (2, 33, 12, 10, 2, 0),        # narrow strided: lanes
    (1, 5, 130, 131, 2, 1),       # too large for the split rows: the strided loop
    (2, 6, 20, 23, 3, 2),         # stride 3
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("scaled", [False, True])
def test_depthwise_relu6_is_relu_clamped(case, scaled):
    N, C, H, W, s, p = case
    rng = np.random.default_rng(N * C + H * W + s)
    x = (rng.standard_normal((N, C, H, W)) * 8).astype(np.float32)
    x[0, 0, 1, :3] = [np.nan, np.inf, -np.inf]
    w = rng.standard_normal((C, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32)
    kw = dict(stride=(s, s), padding=(p, p, p, p), groups=C)
    if scaled:
        kw.update(scale=(rng.random(C) + 0.5).astype(np.float32), weight_cache={})
    y6 = FC.conv2d(x, w, b, relu="relu6", **kw)[0]
    y1 = FC.conv2d(x, w, b, relu=True, **kw)[0]
    want = np.where(y1 >= 6, np.float32(6), y1)
    assert np.isnan(y6).any() and (y6 == 6).any() and (y6 == 0).any()
    assert np.array_equal(y6.view(np.uint32), want.view(np.uint32))
