"""BatchNorm2d parity (train and eval, running statistics) and finite differences."""
import copy

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


# ---------------------------------------------------------------- SyncBatchNorm (one process)

def _bn_pair(rng, cls_a, cls_b, c, **kw):
    a, b = cls_a(c, **kw), cls_b(c, **kw)
    if a.weight is not None:
        a.weight.data = rng.uniform(0.5, 1.5, c).astype(np.float32)
        a.bias.data = rng.standard_normal(c).astype(np.float32)
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
def test_sync_batchnorm_is_batchnorm_bit_for_bit(dtype, relu, rng):
    """In one process SyncBatchNorm computes exactly BatchNorm2d: outputs, gradients and
    running statistics, training steps then eval, with and without the fused ReLU."""
    s, b = _bn_pair(rng, fc.nn.SyncBatchNorm, fc.nn.BatchNorm2d, 5, momentum=None)
    if dtype == np.float64:
        s.double()
        b.double()
    for train in (True, True, False):
        s.train(train)
        b.train(train)
        x = (rng.standard_normal((3, 5, 6, 7)) * 2 + 1).astype(dtype)
        gy = rng.standard_normal(x.shape).astype(dtype)
        ys, yb = (s.forward_relu(x), b.forward_relu(x)) if relu else (s(x), b(x))
        assert np.array_equal(ys, yb)
        assert np.array_equal(s.backward(gy), b.backward(gy))
    for (k, v), (k2, v2) in zip(s.state_dict().items(), b.state_dict().items()):
        assert k == k2 and np.array_equal(v, v2), k
    assert np.array_equal(s.weight.grad, b.weight.grad)
    assert np.array_equal(s.bias.grad, b.bias.grad)


_r = np.random.default_rng(3)
SYNCCFG = [(tuple(int(v) for v in _r.integers(1, 5, int(_r.integers(2, 6)))),
            bool(_r.random() < 0.7), [0.1, 0.5, None][int(_r.integers(0, 3))],
            bool(_r.random() < 0.8)) for _ in range(12)]


@pytest.mark.parametrize("cfg", SYNCCFG, ids=[f"s{i}" for i in range(len(SYNCCFG))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sync_batchnorm_matches_torch(cfg, dtype, rng):
    """torch.nn.SyncBatchNorm on CPU outside a distributed job (its in-process fallback),
    inputs (N, C, *) of 2 to 5 dims: output, gradients, running statistics, then eval."""
    torch = torch_or_skip()
    shape, affine, momentum, track = cfg
    shape = (shape[0] + 1,) + shape[1:]            # more than one value per channel
    c = shape[1]
    m = fc.nn.SyncBatchNorm(c, 1e-4, momentum, affine, track)
    t = torch.nn.SyncBatchNorm(c, 1e-4, momentum, affine, track)
    if affine:
        m.weight.data = rng.uniform(0.5, 1.5, c).astype(np.float32)
        m.bias.data = rng.standard_normal(c).astype(np.float32)
    if dtype == np.float64:
        m.double()
        t.double()
    assert list(m.state_dict()) == list(t.state_dict())
    t.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in m.state_dict().items()})
    rtol = 2e-4 if dtype == np.float32 else 1e-9
    for step in range(2):
        x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
        check_vs_torch(m, t, x, rtol=rtol, load=False, seed=step)
    check_vs_torch(m, t, rng.standard_normal(shape).astype(dtype), rtol=rtol, load=False,
                   train=False)


@pytest.mark.parametrize("train", [True, False])
def test_sync_batchnorm_finite_differences(train, rng):
    m = fc.nn.SyncBatchNorm(3)
    m.weight.data = rng.uniform(0.5, 1.5, 3).astype(np.float32)
    m.running_mean[...] = rng.standard_normal(3)
    m.train(train)
    directional_check(m, rng.standard_normal((2, 3, 4, 5)))
    directional_check(fc.nn.SyncBatchNorm(4).train(train), rng.standard_normal((5, 4)))


def test_sync_batchnorm_bitwise_across_threads(rng):
    x = rng.standard_normal((4, 16, 40, 40)).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    out = []
    for t in (1, 2):
        fc.set_num_threads(t)
        m = fc.nn.SyncBatchNorm(16)
        out.append((m(x), m.backward(gy), m.weight.grad, m.bias.grad, m.running_var.copy()))
    fc.set_num_threads(2)
    for a, b in zip(*out):
        assert np.array_equal(a, b)


def test_sync_batchnorm_hooks_carry_a_cross_process_reduction(rng, monkeypatch):
    """The reduction hooks are enough for a multi-process SyncBatchNorm: two 'processes'
    (halves of a batch, run one after the other), whose hooks return the combined
    statistics and sums as an all-reduce would, reproduce BatchNorm2d on the whole batch
    (outputs, input gradient, running statistics; the parameter gradients add up)."""
    from fastconv.functional import norm as fnorm
    x = rng.standard_normal((6, 3, 4, 5)) * 2 + 1
    gy = rng.standard_normal(x.shape)
    halves = {"A": slice(0, 2), "B": slice(2, 6)}
    full = fc.nn.BatchNorm2d(3).double()
    full.weight.data = rng.uniform(0.5, 1.5, 3)
    y_full = full(x)
    gx_full = full.backward(gy)

    def proc(pg):
        m = fc.nn.SyncBatchNorm(3, process_group=pg).double()
        m.weight.data = full.weight.data.copy()
        return m

    def run(hook_stats, hook_sums):
        monkeypatch.setattr(fnorm, "sync_channel_stats", hook_stats)
        monkeypatch.setattr(fnorm, "sync_channel_sums", hook_sums)
        procs = {pg: proc(pg) for pg in halves}
        out = {pg: (procs[pg](x[sl]), procs[pg].backward(gy[sl])) for pg, sl in halves.items()}
        return procs, out

    local, partial = {}, {}
    # 1: what each process holds; eval synchronises nothing
    run(lambda c, m, v, process_group: local.setdefault(process_group, (c, m, v)),
        lambda a, b, process_group: (a, b))
    proc("A").eval()(x[halves["A"]])
    assert sorted(local) == ["A", "B"]
    n = sum(local[pg][0] for pg in halves)
    mean = sum(local[pg][0] * local[pg][1] for pg in halves) / n
    var = sum(local[pg][0] * (local[pg][2] + (local[pg][1] - mean) ** 2) for pg in halves) / n
    stats = lambda c, m, v, process_group: (n, mean, var)               # noqa: E731
    # 2: the backward's sums about the global statistics, per process
    run(stats, lambda a, b, process_group: partial.setdefault(process_group, (a, b)))
    total = tuple(sum(partial[pg][i] for pg in halves) for i in range(2))
    # 3: with both all-reduces
    procs, out = run(stats, lambda a, b, process_group: total)
    np.testing.assert_allclose(np.concatenate([out[pg][0] for pg in halves]), y_full,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([out[pg][1] for pg in halves]), gx_full,
                               rtol=1e-10, atol=1e-12)
    for pg in halves:
        np.testing.assert_allclose(procs[pg].running_mean, full.running_mean, rtol=1e-12)
        np.testing.assert_allclose(procs[pg].running_var, full.running_var, rtol=1e-12)
    np.testing.assert_allclose(sum(procs[pg].weight.grad for pg in halves), full.weight.grad,
                               rtol=1e-10)
    np.testing.assert_allclose(sum(procs[pg].bias.grad for pg in halves), full.bias.grad,
                               rtol=1e-10)


def test_convert_sync_batchnorm(rng):
    """Every BatchNorm2d in a tree becomes a SyncBatchNorm sharing its Parameters and
    running statistics, in the same train/eval mode; keys, outputs and gradients as
    before; torch's convert_sync_batchnorm on the torch twin gives the same keys."""
    torch = torch_or_skip()
    from fastconv.interop import to_torch
    net = fc.nn.Sequential(
        fc.nn.Conv2d(3, 4, 3, padding=1), fc.nn.BatchNorm2d(4), fc.nn.ReLU(),
        fc.nn.Residual(fc.nn.Sequential(fc.nn.Conv2d(4, 4, 3, padding=1, bias=False),
                                        fc.nn.BatchNorm2d(4, affine=False))),
        fc.nn.Sequential(fc.nn.BatchNorm2d(4, momentum=None, bias=False)))
    net[1].running_mean[...] = rng.standard_normal(4)
    net[4][0].eval()
    before = net.state_dict()
    params = {id(p) for p in net.parameters()}
    bn0, rm0 = net[1].weight, net[1].running_mean
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    ref = copy.deepcopy(net)
    out = fc.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    assert out is net
    kinds = [type(m).__name__ for m in net.modules()]
    assert "BatchNorm2d" not in kinds and kinds.count("SyncBatchNorm") == 3
    assert net[1].weight is bn0 and net[1].running_mean is rm0
    assert {id(p) for p in net.parameters()} == params
    assert net[4][0].training is False and net[1].training is True
    assert net[4][0].momentum is None and net[4][0].bias is None
    after = net.state_dict()
    assert list(after) == list(before)
    assert all(np.array_equal(after[k], before[k]) for k in before)
    gy = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    assert np.array_equal(net(x), ref(x))
    assert np.array_equal(net.backward(gy), ref.backward(gy))
    tnet = torch.nn.SyncBatchNorm.convert_sync_batchnorm(to_torch(ref))
    assert list(tnet.state_dict()) == list(after)
    assert isinstance(to_torch(net)[1], torch.nn.SyncBatchNorm)
    single = fc.nn.SyncBatchNorm.convert_sync_batchnorm(fc.nn.BatchNorm2d(2), "group")
    assert type(single) is fc.nn.SyncBatchNorm and single.process_group == "group"


def test_sync_batchnorm_errors():
    m = fc.nn.SyncBatchNorm(3)
    with pytest.raises(ValueError, match=r"SyncBatchNorm: expected a 2-D input \(N, C, \*\)"):
        m(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"SyncBatchNorm: expected input with 3 channels"):
        m(np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ValueError, match="SyncBatchNorm: expected more than 1 value per channel"):
        m(np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="SyncBatchNorm: expected a float32 or float64 array"):
        m(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="SyncBatchNorm: momentum must be in"):
        fc.nn.SyncBatchNorm(3, momentum=2)
    assert m.output_shape((2, 3, 4)) == (2, 3, 4)


@pytest.mark.parametrize("shape", [(6, 5, 1, 1), (6, 5, 5, 6), (40, 5, 3, 3), (70, 3, 6, 6),
                                   (6, 5, 8, 8), (3, 2, 33, 47)])
@pytest.mark.parametrize("relu", [False, True, "relu6"])
def test_batchnorm_small_planes_match_float64(shape, relu, rng):
    """Channels of at most 256 values run in double; the others a kernel call per channel
    whose lanes run on across its planes (planes of 9, tails of 36 % 32 values, flushes
    to double every 2048 values inside a channel: 70 planes of 36): forward (with the
    fused ReLU or ReLU6) and every gradient agree with a float64 run."""
    x = rng.standard_normal(shape).astype(np.float32) * 3 + 1
    gy = rng.standard_normal(x.shape).astype(np.float32)
    outs = {}
    for dt in (np.float32, np.float64):
        C = shape[1]
        bn = fc.nn.BatchNorm2d(C)
        bn.weight.data[:] = np.linspace(0.5, 1.5, C)
        bn.bias.data[:] = np.linspace(-0.2, 0.3, C)
        if dt == np.float64:
            bn.double()
        y = (bn.forward_relu6 if relu == "relu6" else bn.forward_relu if relu else bn)(
            x.astype(dt))
        gx = bn.backward(gy.astype(dt))
        outs[dt] = (y, gx, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var)
    for a, b in zip(outs[np.float32], outs[np.float64]):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)
