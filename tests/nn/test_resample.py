"""PixelShuffle / PixelUnshuffle, Dropout2d and interpolate: torch parity and float64
finite differences."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from helpers import check_vs_torch, directional_check, torch_or_skip


@pytest.mark.parametrize("r, shape", [(2, (2, 12, 3, 5)), (3, (1, 9, 2, 2)), (1, (1, 2, 3, 3))])
def test_pixel_shuffle_and_unshuffle_match_torch(r, shape, rng):
    torch = torch_or_skip()
    x = rng.standard_normal(shape).astype(np.float32)
    check_vs_torch(nn.PixelShuffle(r), torch.nn.PixelShuffle(r), x, rtol=0)
    y = nn.PixelShuffle(r)(x)
    check_vs_torch(nn.PixelUnshuffle(r), torch.nn.PixelUnshuffle(r), y, rtol=0)
    np.testing.assert_array_equal(nn.PixelUnshuffle(r)(y), x)
    directional_check(nn.PixelShuffle(r), x.astype(np.float64))


def test_pixel_shuffle_errors():
    with pytest.raises(ValueError, match="divisible by upscale_factor"):
        nn.PixelShuffle(2)(np.zeros((1, 6, 2, 2), np.float32))
    with pytest.raises(ValueError, match="divisible by downscale_factor"):
        nn.PixelUnshuffle(2)(np.zeros((1, 1, 3, 4), np.float32))


def test_dropout2d_zeroes_whole_channels_and_scales(rng):
    fc.manual_seed(3)
    m = nn.Dropout2d(0.5)
    x = rng.standard_normal((8, 16, 4, 4)).astype(np.float32) + 5
    y = m(x)
    zero = (y == 0).all(axis=(2, 3))
    assert 0 < zero.mean() < 1
    np.testing.assert_allclose(y[~zero], 2 * x[~zero],
                               rtol=1e-6)
    g = m.backward(np.ones_like(y))
    np.testing.assert_array_equal(g == 0, y == 0)
    assert np.array_equal(nn.Dropout2d(0.5).eval()(x), x)


@pytest.mark.parametrize("kw", [dict(scale_factor=1.5, mode="bilinear"), dict(size=(5, 7)),
                                dict(scale_factor=0.5, mode="bilinear", align_corners=True)])
def test_interpolate_on_the_tape_matches_torch(kw, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, 6, 4)).astype(np.float32)
    xt = fc.Tensor(x, requires_grad=True)
    y = fc.ops.interpolate(xt, **kw)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(gy)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.interpolate(tx, **kw)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-5, atol=1e-5)
