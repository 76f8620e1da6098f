"""LayerNorm and InstanceNorm2d (on the GroupNorm kernel): torch parity, finite
differences, errors."""
import numpy as np
import pytest

import fastconv as fc
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


# ---------------------------------------------------------------- track_running_stats=True

_r = np.random.default_rng(5)
TRACKCFG = [((int(_r.integers(1, 4)), int(_r.integers(1, 5)), int(_r.integers(1, 6)),
              int(_r.integers(2, 6))), bool(_r.random() < 0.5),
             [0.1, 0.5, None, 1.0][int(_r.integers(0, 4))], [1e-5, 1e-3][int(_r.integers(0, 2))])
            for _ in range(16)]


@pytest.mark.parametrize("cfg", TRACKCFG, ids=[f"t{i}" for i in range(len(TRACKCFG))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_instance_norm_running_stats_match_torch(cfg, dtype, rng):
    """Training: instance statistics, running statistics updated from their batch average
    (momentum=None: torch's factor 0); eval: the running statistics normalise (1x1 planes
    allowed there).  Output, input and parameter gradients, and the buffers each step."""
    torch = torch_or_skip()
    shape, affine, momentum, eps = cfg
    c = shape[1]
    m = nn.InstanceNorm2d(c, eps, momentum, affine, track_running_stats=True)
    t = torch.nn.InstanceNorm2d(c, eps, momentum, affine, track_running_stats=True)
    if affine:
        m.weight.data = rng.uniform(0.5, 1.5, c).astype(np.float32)
        m.bias.data = rng.standard_normal(c).astype(np.float32)
    m.running_mean[...] = rng.standard_normal(c)
    m.running_var[...] = rng.uniform(0.5, 2, c)
    if dtype == np.float64:
        m.double()
        t.double()
    assert list(m.state_dict()) == list(t.state_dict())
    t.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in m.state_dict().items()})
    rtol = 5e-5 if dtype == np.float32 else 1e-10
    for step in range(3):
        x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
        check_vs_torch(m, t, x, rtol=rtol, load=False, seed=step)
    if momentum is None:
        assert int(m.num_batches_tracked) == 0     # torch never counts for InstanceNorm
    for eval_shape in (shape, (2, c, 1, 1), (c, 3, 2)):
        x = rng.standard_normal(eval_shape).astype(dtype)
        check_vs_torch(m, t, x, rtol=rtol, load=False, train=False)


@pytest.mark.parametrize("train", [True, False])
def test_instance_norm_running_stats_finite_differences(train, rng):
    m = nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
    m.weight.data = rng.uniform(0.5, 1.5, 3).astype(np.float32)
    m.bias.data = rng.standard_normal(3).astype(np.float32)
    m.running_mean[...] = rng.standard_normal(3)
    m.running_var[...] = rng.uniform(0.5, 2, 3)
    m.train(train)
    directional_check(m, rng.standard_normal((2, 3, 4, 5)))


def test_instance_norm_running_stats_bitwise_across_threads(rng):
    x = rng.standard_normal((4, 16, 33, 33)).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    out = []
    for t in (1, 2):
        fc.set_num_threads(t)
        m = nn.InstanceNorm2d(16, affine=True, track_running_stats=True)
        res = []
        for train in (True, False):
            m.train(train)
            res += [m(x), m.backward(gy), m.running_mean.copy(), m.running_var.copy()]
        out.append(res + [m.weight.grad, m.bias.grad])
    fc.set_num_threads(2)
    for a, b in zip(*out):
        assert np.array_equal(a, b)


def test_instance_norm_running_stats_empty_batch_and_errors():
    m = nn.InstanceNorm2d(2, track_running_stats=True)
    assert m(np.zeros((0, 2, 3, 3), np.float32)).shape == (0, 2, 3, 3)
    np.testing.assert_array_equal(m.running_mean, 0)    # torch's become NaN
    np.testing.assert_array_equal(m.running_var, 1)
    with pytest.raises(ValueError, match="InstanceNorm2d: expected more than 1 spatial element"):
        m(np.zeros((2, 2, 1, 1), np.float32))
    with pytest.raises(ValueError, match="InstanceNorm2d: expected input with 2 channels"):
        m.eval()(np.zeros((2, 3, 4, 4), np.float32))
    assert "running_mean" not in nn.InstanceNorm2d(2).state_dict()
    assert "track_running_stats=True" in repr(m)
