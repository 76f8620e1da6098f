"""BatchNorm2d parity (train and eval, running statistics) and finite differences."""
import numpy as np
import pytest

import fastconv as fc
from helpers import check_vs_torch, directional_check, to_torch_state, torch_or_skip


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 4, 3, 3), (8, 2, 1, 1), (3, 5, 7, 1)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batchnorm_train_eval_matches_torch(shape, affine, momentum, rng):
    torch = torch_or_skip()
    c = shape[1]
    m = fc.nn.BatchNorm2d(c, eps=1e-3, momentum=momentum, affine=affine)
    t = torch.nn.BatchNorm2d(c, eps=1e-3, momentum=momentum, affine=affine)
    if affine:
        m.weight.data = rng.uniform(0.5, 1.5, c).astype(np.float32)
        m.bias.data = rng.standard_normal(c).astype(np.float32)
    t.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in m.state_dict().items()})
    for step in range(3):      # running stats evolve identically
        x = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
        check_vs_torch(m, t, x, rtol=2e-4, load=False, seed=step)
    assert int(m.num_batches_tracked) == 3
    check_vs_torch(m, t, rng.standard_normal(shape).astype(np.float32), rtol=2e-4, load=False,
                   train=False)


def test_batchnorm_without_running_stats_uses_batch_stats_in_eval(rng):
    torch = torch_or_skip()
    m = fc.nn.BatchNorm2d(3, track_running_stats=False)
    t = torch.nn.BatchNorm2d(3, track_running_stats=False)
    assert "running_mean" not in m.state_dict()
    check_vs_torch(m, t, rng.standard_normal((2, 3, 4, 4)).astype(np.float32), train=False)


def test_batchnorm_constant_channel_gives_beta_exactly():
    torch = torch_or_skip()
    x = np.full((2, 2, 3, 3), 7.0, np.float32)
    m = fc.nn.BatchNorm2d(2)
    m.bias.data[:] = [0.5, -1.0]
    y = m(x)
    np.testing.assert_array_equal(y, np.broadcast_to(np.array([0.5, -1.0], np.float32)
                                                      .reshape(1, 2, 1, 1), x.shape))
    t = torch.nn.BatchNorm2d(2)
    t.load_state_dict(to_torch_state(m))
    ty = t(torch.from_numpy(x)).detach().numpy()    # torch: beta up to rounding noise
    assert np.abs(ty - y).max() < 1e-3
    assert np.isfinite(m.backward(np.ones_like(y))).all()


@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_finite_differences(train, rng):
    m = fc.nn.BatchNorm2d(3)
    m.weight.data = rng.uniform(0.5, 1.5, 3).astype(np.float32)
    m.running_mean[...] = rng.standard_normal(3)
    m.train(train)
    directional_check(m, rng.standard_normal((2, 3, 4, 5)))


def test_batchnorm_single_value_per_channel_raises():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        fc.nn.BatchNorm2d(2)(np.ones((1, 2, 1, 1), np.float32))


def test_batchnorm_weight_without_bias_matches_torch(rng):
    torch = torch_or_skip()
    m, t = fc.nn.BatchNorm2d(3, bias=False), torch.nn.BatchNorm2d(3, bias=False)
    assert list(m.state_dict()) == list(t.state_dict())
    check_vs_torch(m, t, rng.standard_normal((2, 3, 4, 4)).astype(np.float32))


def bn_grad_float64(x, gy, eps=1e-5):
    """The training-mode input gradient of BatchNorm (no affine), in float64, per channel."""
    x, gy = x.astype(np.float64), gy.astype(np.float64)
    ax = (0, 2, 3)
    xh = (x - x.mean(ax, keepdims=True)) / np.sqrt(x.var(ax, keepdims=True) + eps)
    istd = 1 / np.sqrt(x.var(ax, keepdims=True) + eps)
    return istd * (gy - gy.mean(ax, keepdims=True) - xh * (gy * xh).mean(ax, keepdims=True))


@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (1, 2, 1, 2), (1, 4, 1, 3), (4, 2, 1, 1)])
def test_batchnorm_input_grad_with_few_values_per_channel(shape, rng):
    """With two values per channel the three terms of the input gradient cancel to
    eps / (var + eps) of their size; float32 rounding of the mean and of the two
    reductions used to cost 0.45% there (torch's float32 0.008%)."""
    for step in range(20):
        x = (rng.standard_normal(shape) * rng.choice([1e-2, 1e-1, 1]) +
             rng.choice([0, 1, 5])).astype(np.float32)
        gy = rng.standard_normal(shape).astype(np.float32)
        m = fc.nn.BatchNorm2d(shape[1], affine=False)
        m(x)                                    # a second training call, as in the report
        m(x)
        gx = m.backward(gy)
        want = bn_grad_float64(x, gy)
        assert np.abs(gx - want).max() <= 1e-6 * np.abs(want).max(), step


def test_batchnorm_input_grad_on_strided_input_matches_float64(rng):
    """A strided (1, 2, 1, 2) input: torch 2.13's float32 answer is 23% off here
    (float64 finite differences and torch on a contiguous copy agree with fastconv)."""
    big = rng.standard_normal((1, 2, 1, 4)).astype(np.float32)
    x = big[..., ::2]
    gy = rng.standard_normal(x.shape).astype(np.float32)
    m = fc.nn.BatchNorm2d(2, affine=False)
    m(x)
    gx = m.backward(gy)
    np.testing.assert_allclose(gx, bn_grad_float64(x, gy), rtol=1e-5, atol=1e-6)
    directional_check(fc.nn.BatchNorm2d(2, affine=False), x.astype(np.float64))


@pytest.mark.parametrize("train, track", [(True, True), (True, False), (False, False)])
def test_batchnorm_one_value_per_channel_raises_like_torch(train, track):
    """torch: "Expected more than 1 value per channel when training", also in eval
    without running statistics (batch statistics then)."""
    m = fc.nn.BatchNorm2d(3, track_running_stats=track).train(train)
    with pytest.raises(ValueError, match="BatchNorm2d: expected more than 1 value per channel"):
        m(np.ones((1, 3, 1, 1), np.float32))
    if not train:
        fc.nn.BatchNorm2d(3).eval()(np.ones((1, 3, 1, 1), np.float32))    # running stats: fine
