"""GroupNorm: torch parity (output, input and parameter gradients, float32 and float64),
float64 finite differences, thread-count determinism, errors."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from helpers import check_vs_torch, directional_check, torch_or_skip

CASES = [(2, 6, (3, 6, 5, 4)), (1, 4, (2, 4, 3, 3)), (4, 4, (2, 4, 3, 2)), (3, 12, (1, 12, 7, 2)),
         (2, 8, (4, 8, 6))]


@pytest.mark.parametrize("groups, channels, shape", CASES)
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_matches_torch(groups, channels, shape, affine, rng):
    torch = torch_or_skip()
    m = nn.GroupNorm(groups, channels, eps=1e-4, affine=affine)
    if affine:
        m.weight.data = rng.uniform(0.5, 1.5, channels).astype(np.float32)
        m.bias.data = rng.standard_normal(channels).astype(np.float32)
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    check_vs_torch(m, torch.nn.GroupNorm(groups, channels, eps=1e-4, affine=affine), x, rtol=2e-5)
    m64 = nn.GroupNorm(groups, channels, eps=1e-4, affine=affine).double()
    check_vs_torch(m64, torch.nn.GroupNorm(groups, channels, eps=1e-4, affine=affine).double(),
                   x.astype(np.float64), rtol=1e-10)


@pytest.mark.parametrize("groups, channels, shape", CASES[:3])
def test_group_norm_finite_differences(groups, channels, shape, rng):
    m = nn.GroupNorm(groups, channels)
    m.weight.data = rng.uniform(0.5, 1.5, channels).astype(np.float32)
    m.bias.data = rng.standard_normal(channels).astype(np.float32)
    directional_check(m, rng.standard_normal(shape))


def test_group_norm_bitwise_identical_across_threads(rng):
    x = rng.standard_normal((4, 16, 9, 9)).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    out = []
    for t in (1, 2, 3):
        fc.set_num_threads(t)
        m = nn.GroupNorm(4, 16)
        y = m(x)
        out.append((y, m.backward(gy), m.weight.grad, m.bias.grad))
    fc.set_num_threads(2)
    for o in out[1:]:
        for a, b in zip(o, out[0]):
            assert np.array_equal(a, b)


def test_group_norm_of_one_value_groups_is_exact(rng):
    """A group of one value normalises to 0 (the output is the bias) and passes no
    gradient: exactly, where torch's float32 leaves rounding noise."""
    m = nn.GroupNorm(4, 4)
    m.bias.data = rng.standard_normal(4).astype(np.float32)
    y = m(rng.standard_normal((3, 4, 1, 1)).astype(np.float32))
    np.testing.assert_array_equal(y, np.broadcast_to(m.bias.data.reshape(1, 4, 1, 1), y.shape))
    assert not m.backward(rng.standard_normal(y.shape).astype(np.float32)).any()


def test_group_norm_errors():
    with pytest.raises(ValueError, match="GroupNorm: num_channels must be divisible by num_groups"):
        nn.GroupNorm(3, 8)
    with pytest.raises(ValueError, match=r"GroupNorm: expected input with 8 channels"):
        nn.GroupNorm(2, 8)(np.zeros((2, 4, 3, 3), np.float32))
    with pytest.raises(ValueError, match="GroupNorm: expected more than 1 value per group"):
        nn.GroupNorm(4, 4)(np.zeros((1, 4, 1, 1), np.float32))
    with pytest.raises(TypeError, match="GroupNorm: expected a float32 or float64 array"):
        nn.GroupNorm(2, 8)(np.zeros((2, 8, 3, 3), np.int32))
