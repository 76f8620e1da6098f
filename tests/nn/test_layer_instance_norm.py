"""LayerNorm and InstanceNorm2d (on the GroupNorm kernel): torch parity, finite
differences, errors."""
import numpy as np
import pytest

from fastconv import nn
from helpers import check_vs_torch, directional_check, torch_or_skip


@pytest.mark.parametrize("normalized, shape", [((4, 5, 6), (3, 4, 5, 6)), ((6,), (3, 4, 5, 6)),
                                               ((5, 6), (2, 5, 6)), (7, (4, 7))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_torch(normalized, shape, affine, rng):
    torch = torch_or_skip()
    m = nn.LayerNorm(normalized, eps=1e-4, elementwise_affine=affine)
    t = torch.nn.LayerNorm(normalized, eps=1e-4, elementwise_affine=affine)
    if affine:
        m.weight.data = rng.uniform(0.5, 1.5, m.weight.shape).astype(np.float32)
        m.bias.data = rng.standard_normal(m.bias.shape).astype(np.float32)
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    check_vs_torch(m, t, x, rtol=5e-5)
    directional_check(nn.LayerNorm(normalized, eps=1e-4), x.astype(np.float64))


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (3, 6, 2, 2), (3, 5, 4)])
def test_instance_norm_matches_torch(affine, shape, rng):
    torch = torch_or_skip()
    c = shape[-3]
    m = nn.InstanceNorm2d(c, affine=affine)
    if affine:
        m.weight.data = rng.uniform(0.5, 1.5, c).astype(np.float32)
        m.bias.data = rng.standard_normal(c).astype(np.float32)
    x = (rng.standard_normal(shape) * 3 - 1).astype(np.float32)
    check_vs_torch(m, torch.nn.InstanceNorm2d(c, affine=affine), x, rtol=5e-5)
    directional_check(nn.InstanceNorm2d(c, affine=True), x.astype(np.float64))


def test_norm_errors():
    with pytest.raises(ValueError, match=r"LayerNorm: expected input with shape \[\*, 4, 5\]"):
        nn.LayerNorm((4, 5))(np.zeros((2, 5, 4), np.float32))
    with pytest.raises(ValueError, match="InstanceNorm2d: momentum must be in"):
        nn.InstanceNorm2d(3, momentum=1.5, track_running_stats=True)
    with pytest.raises(ValueError, match="InstanceNorm2d: expected a 4-D input"):
        nn.InstanceNorm2d(3)(np.zeros((2, 3, 4, 4, 1), np.float32))
