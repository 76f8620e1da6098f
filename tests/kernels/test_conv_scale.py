"""Inference convolutions with a per-channel factor (a BatchNorm folded into the
epilogue, not into the weights): every algorithm the planner can force, against the
float64 reference of conv(x, w) * scale + bias, with and without ReLU."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from fastconv._conv_plan import Algorithm, ConvGeometry, accepts
from fastconv.functional import conv as FC
import reference as R

GEOMS = [  # N, C, H, M, K, stride, pad, groups
    (9, 16, 4, 24, 3, 1, 1, 1),       # taps, gather
    (2, 16, 12, 20, 3, 1, 1, 1),      # Winograd F(2x2), padded, gather
    (1, 32, 5, 300, 1, 1, 0, 1),      # 1x1 on one frame: the few-column GEMM
    (1, 24, 3, 40, 3, 1, 1, 1),       # 3x3 on one frame's 3x3 plane
    (3, 8, 9, 8, 3, 2, 1, 8),         # depthwise: scale folded into the weights
    # the epilogue fused into the micro-kernel's store (AVX2): two K blocks (the second's
    # tiles add to the first's before it), edge tiles both ways; B read in place (1x1,
    # few rows) and packed (3x3)
    (1, 300, 6, 70, 1, 1, 0, 1),
    (2, 40, 7, 50, 3, 1, 1, 1),
    # few rows, but B's rows 4 KB apart (a 32x32 plane): B packed, not read in place
    (1, 20, 32, 40, 1, 1, 0, 1),
]
CASES = [(i, a) for i, (N, C, H, M, K, s, p, G) in enumerate(GEOMS)
         for a in Algorithm if accepts(a, ConvGeometry(N, C, H, H, M, K, K, s, s, p, p, p, p,
                                                       1, 1, G))]


@pytest.mark.parametrize("i, algorithm", CASES, ids=[f"g{i}-{a.value}" for i, a in CASES])
@pytest.mark.parametrize("relu", [False, True, "relu6"])
def test_scaled_conv_matches_reference(i, algorithm, relu):
    N, C, H, M, K, s, p, G = GEOMS[i]
    rng = np.random.default_rng(i)
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((M, C // G, K, K)) / np.sqrt(C // G * K * K)).astype(np.float32)
    b = (rng.standard_normal(M) * (4 if relu == "relu6" else 1)).astype(np.float32)
    scale = rng.uniform(-2, 2, M).astype(np.float32)
    y, ctx = FC.conv2d(x, w, b, (s, s), (p,) * 4, (1, 1), G, relu=relu, algorithm=algorithm,
                       scale=scale)
    assert ctx is None                               # inference only: nothing to backward
    ref = R.conv2d(x.astype(np.float64), w.astype(np.float64), None, (s, s), (p,) * 4,
                   (1, 1), G) * scale.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1)
    if relu == "relu6":
        ref = np.clip(ref, 0, 6)
        assert (y == 6).any() and (y == 0).any()
    elif relu:
        ref = np.maximum(ref, 0)
    tol = 5e-5 if algorithm in (Algorithm.WINOGRAD4, Algorithm.WINOGRAD2) else 2e-5
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("N, size", [(1, 32), (8, 16), (1, 8), (1, 6)])
def test_eval_conv_bn_relu_folds_like_the_separate_layers(N, size):
    # the eval Sequential runs Conv-BN-ReLU as one convolution; the unfused layers agree
    rng = np.random.default_rng(N)
    conv, bn = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
    bn.running_mean[...] = rng.standard_normal(32)
    bn.running_var[...] = rng.uniform(0.5, 2, 32)
    bn.weight.data[...] = rng.standard_normal(32)
    bn.bias.data[...] = rng.standard_normal(32)
    seq = nn.Sequential(conv, bn, nn.ReLU())
    seq.eval()
    x = rng.standard_normal((N, 16, size, size)).astype(np.float32)
    with fc.no_grad():
        fused = seq(x)
        apart = np.maximum(bn(conv(x)), 0)
    np.testing.assert_allclose(fused, apart, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine, conv_bias", [(True, True), (True, False), (False, True)])
def test_batch_norm_fold_matches_the_formula(dtype, affine, conv_bias):
    rng = np.random.default_rng(7)
    C = 13
    g, b = (rng.standard_normal(C).astype(dtype) for _ in range(2)) if affine else (None, None)
    mean = rng.standard_normal(C).astype(dtype)
    var = rng.uniform(0.1, 3, C).astype(dtype)
    cb = rng.standard_normal(C).astype(dtype) if conv_bias else None
    scale, shift = fc.functional.batch_norm_fold(g, b, mean, var, 1e-3, cb, dtype)
    assert scale.dtype == dtype and shift.dtype == dtype
    s64 = (1.0 if g is None else g.astype(np.float64)) / np.sqrt(var.astype(np.float64) + 1e-3)
    t64 = (0.0 if b is None else b.astype(np.float64)) - mean * s64
    if cb is not None:
        t64 = t64 + cb * s64
    np.testing.assert_allclose(scale, np.broadcast_to(s64, (C,)), rtol=1e-6)
    np.testing.assert_allclose(shift, t64, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="channel count"):
        fc.functional.batch_norm_fold(None, None, mean, var[:-1], 1e-3)


def test_resnet_eval_folds_its_blocks_and_agrees_with_the_layers():
    rng = np.random.default_rng(11)
    model = fc.models.resnet18(num_classes=3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = rng.standard_normal(m.num_features) * 0.1
            m.running_var[...] = rng.uniform(0.5, 2, m.num_features)
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
    model.eval()
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    apart = np.asarray(model(x))                    # gradients on: every layer runs alone
    with fc.no_grad(), fc.profiler.profile() as prof:
        fused = model(x)
    names = prof.by_name()
    assert names["Conv2d+BatchNorm2d+ReLU"][2] == 9      # stem + the first conv of 8 blocks
    assert names["Conv2d+BatchNorm2d"][2] == 8 + 3       # second convs + downsamples
    assert "BatchNorm2d" not in names
    assert "add" not in names and "ReLU" not in names    # the residual add-ReLU: one pass
    np.testing.assert_allclose(fused, apart, rtol=1e-4, atol=1e-4)


def test_add_relu_in_place():
    a = np.array([1.0, -2.0, np.nan, 0.5, -0.0], np.float32)
    b = np.array([-3.0, 1.0, 1.0, 0.25, 0.0], np.float32)
    out = fc.functional.add_relu_(a, b)
    assert out is a
    np.testing.assert_array_equal(a, [0.0, 0.0, np.nan, 0.75, 0.0])
    with pytest.raises(ValueError, match="add_relu_"):
        fc.functional.add_relu_(a, b[:3])


def _count_calls(monkeypatch, name):
    """A list that grows by one per call of functional.conv's `name` (a cache's builder)."""
    calls, real = [], getattr(FC, name)
    monkeypatch.setattr(FC, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


@pytest.mark.parametrize("algorithm", [Algorithm.WINOGRAD2, Algorithm.WINOGRAD4])
def test_winograd_weight_cache_reuses_and_notices_every_change(algorithm, monkeypatch):
    """Inference keeps Winograd's transformed weights in the layer's cache: reused while the
    weight and the scale are the same bytes, rebuilt after any in-place change, and the
    result always equals the uncached convolution bit for bit."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 8, 14, 14)).astype(np.float32)
    w = rng.standard_normal((12, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    scale = rng.uniform(0.5, 2, 12).astype(np.float32)
    builds = _count_calls(monkeypatch, "_winograd_weights")
    cache = {}

    def run():
        return FC.conv2d(x, w, b, (1, 1), (1,) * 4, relu=True, algorithm=algorithm,
                         scale=scale, weight_cache=cache)[0]

    def uncached():
        return FC.conv2d(x, w, b, (1, 1), (1,) * 4, relu=True, algorithm=algorithm,
                         scale=scale)[0]

    y0 = run()
    np.testing.assert_array_equal(y0, uncached())
    np.testing.assert_array_equal(run(), y0)
    assert len(builds) == 1 + 1 + 0                 # the cached run, the uncached one, a hit
    w[3, 2, 1, 1] += 1e-3                           # in place, same array
    y1 = run()
    assert len(builds) == 3 and not np.array_equal(y1, y0)
    np.testing.assert_array_equal(y1, uncached())
    scale[7] *= 1.5                                 # a BatchNorm statistic moved
    y2 = run()
    assert len(builds) == 5
    np.testing.assert_array_equal(y2, uncached())
    np.testing.assert_array_equal(run(), y2)
    assert len(builds) == 6


def test_weight_cache_keeps_each_precision_and_algorithm(monkeypatch):
    """A layer run alternately in float32 and under bf16 (or with two algorithms) keeps
    each prepared form: no rebuild on every switch, and each equals its uncached run."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    scale = rng.uniform(0.5, 2, 16).astype(np.float32)
    builds = _count_calls(monkeypatch, "_winograd_weights")
    cache = {}

    def run(bf16, algorithm=Algorithm.WINOGRAD2, weight_cache=cache):
        with fc.autocast("bf16", enabled=bf16):
            return FC.conv2d(x, w, None, (1, 1), (1,) * 4, algorithm=algorithm, scale=scale,
                             weight_cache=weight_cache)[0]

    ys = {}
    for _ in range(3):
        for bf16 in (False, True):
            for algorithm in (Algorithm.WINOGRAD2, Algorithm.WINOGRAD4):
                ys.setdefault((bf16, algorithm), []).append(run(bf16, algorithm))
    assert len(builds) == 4 and len(cache) == 4
    for (bf16, algorithm), got in ys.items():
        for y in got:
            np.testing.assert_array_equal(y, run(bf16, algorithm, None))


def test_layer_weight_cache_follows_training_and_load_state_dict():
    fc.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                        nn.ReLU())
    x = np.random.default_rng(1).standard_normal((1, 16, 40, 40)).astype(np.float32)
    net.eval()
    with fc.no_grad():
        before = net(x)
    assert any(k[0] == "winograd" for k in net[0].__dict__["_weight_cache"])   # planned
    opt = fc.optim.SGD(net.parameters(), lr=1e-3)
    net.train()
    out = net(fc.Tensor(x))
    out.sum().backward()
    opt.step()
    net.eval()
    ref = np.asarray(net(x))                        # gradients enabled: unfolded, uncached
    with fc.no_grad():
        after = net(x)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, ref, rtol=1e-4, atol=1e-4)
    state = {k: v.copy() for k, v in net.state_dict().items()}
    state["0.weight"] *= 0.5
    net.load_state_dict(state)
    ref = np.asarray(net(x))
    with fc.no_grad():
        np.testing.assert_allclose(net(x), ref, rtol=1e-4, atol=1e-4)


def test_depthwise_scaled_weight_cache_reuses_and_notices_changes(monkeypatch):
    """A depthwise kernel has no factor in its epilogue: inference scales a copy of the
    weights, kept in the layer's cache while weight and scale are the same bytes."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 24, 6, 6)).astype(np.float32)
    w = rng.standard_normal((24, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    scale = rng.uniform(0.5, 2, 24).astype(np.float32)
    builds = _count_calls(monkeypatch, "_scaled")
    cache = {}

    def run(c):
        return FC.conv2d(x, w, b, (1, 1), (1,) * 4, groups=24, relu=True, scale=scale,
                         weight_cache=c)[0]

    y0 = run(cache)
    np.testing.assert_array_equal(run(cache), y0)
    assert len(builds) == 1
    np.testing.assert_array_equal(run(None), y0)            # uncached: the same bits
    assert len(builds) == 2
    w[5, 0, 2, 2] -= 0.25
    y1 = run(cache)
    assert len(builds) == 3 and not np.array_equal(y1, y0)
    np.testing.assert_array_equal(y1, run(None))
    scale[0] = 3.0
    np.testing.assert_array_equal(run(cache), run(None))
    assert len(builds) == 6


def test_batchnorm_fold_cache_follows_every_input():
    """BatchNorm2d.fold_factors keeps its factors (read-only) while its parameters,
    statistics, eps and the conv bias are the same bytes; any change recomputes them,
    always equal to an uncached fold."""
    rng = np.random.default_rng(7)
    bn = nn.BatchNorm2d(10).eval()
    bn.running_mean[:] = rng.standard_normal(10)
    bn.running_var[:] = rng.uniform(0.5, 2, 10)
    cb = rng.standard_normal(10).astype(np.float32)

    def fresh():
        return fc.functional.batch_norm_fold(bn.weight.data, bn.bias.data, bn.running_mean,
                                             bn.running_var, bn.eps, cb)

    s0, t0 = bn.fold_factors(cb)
    assert not s0.flags.writeable and not t0.flags.writeable
    s1, t1 = bn.fold_factors(cb)
    assert s1 is s0 and t1 is t0                            # a hit
    for change in (lambda: bn.running_var.__setitem__(3, 9.0),
                   lambda: bn.running_mean.__setitem__(0, -1.0),
                   lambda: bn.weight.data.__setitem__(9, 0.5),
                   lambda: bn.bias.data.__setitem__(1, 2.0),
                   lambda: cb.__setitem__(4, 7.0),
                   lambda: setattr(bn, "eps", 1e-3)):
        before = bn.fold_factors(cb)
        change()
        after = bn.fold_factors(cb)
        assert after[0] is not before[0]
        for a, r in zip(after, fresh()):
            np.testing.assert_array_equal(a, r)
    assert bn.fold_factors(None)[1] is not bn.fold_factors(cb)[1]
    s64 = bn.fold_factors(cb, np.float64)[0]
    assert s64.dtype == np.float64
    np.testing.assert_array_equal(s64.astype(np.float32), bn.fold_factors(cb)[0])


def test_same_contents():
    from fastconv._kernels import _memory
    a = np.arange(12, dtype=np.float32)
    kept = (a.tobytes(), None)
    assert _memory.same_contents(kept, (a, None))
    assert not _memory.same_contents(kept, (a, a))
    assert not _memory.same_contents(kept, (a[:11], None))
    assert not _memory.same_contents(kept, (a,))
    b = a.copy()
    b[5] = np.nan
    assert not _memory.same_contents(kept, (b, None))
    nan = np.full(3, np.nan, np.float32)                    # bytes, not values: NaN matches
    assert _memory.same_contents((nan.tobytes(),), (nan,))
    assert not _memory.same_contents((a[::2].copy().tobytes(),), (a[::2],))   # strided


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_same_contents_of_large_buffers_over_threads(threads):
    # from 4 MiB the comparison runs in 1 MiB chunks over the threads: a change in any
    # chunk, the last partial one included, is found
    from fastconv._kernels import _memory
    a = np.arange((9 << 20) // 4 + 5, dtype=np.float32)
    kept = (a.tobytes(),)
    assert _memory.same_contents(kept, (a,), threads)
    for i in (0, (1 << 20) // 4 - 1, (5 << 20) // 4 + 7, a.size - 1):
        b = a.copy()
        b[i] += 1
        assert not _memory.same_contents(kept, (b,), threads)
    assert not _memory.same_contents(kept, (a[:-1],), threads)


@pytest.mark.parametrize("relu", [1, 2])
@pytest.mark.parametrize("C, M, H", [(16, 40, 9), (8, 24, 30), (32, 300, 5), (5, 17, 7),
                                     (64, 20, 2)])
def test_gemm_epilogue_is_multiply_then_add_then_relu(C, M, H, relu):
    """The GEMM epilogue (vectorised per ISA, run once a block's tiles are stored) gives
    the bits of float32 (c * scale) + bias, then v <= 0 ? 0 : v (relu 2: then v >= 6 ?
    6 : v), NaN kept, on every column, the tails of 16 and the few-column paths
    included."""
    from fastconv._kernels import _conv
    rng = np.random.default_rng(C * M + H)
    x = rng.standard_normal((1, C, H, H)).astype(np.float32)
    x[0, 1, H - 1, H // 2] = np.nan
    w2 = rng.standard_normal((M, C)).astype(np.float32)
    scale = rng.uniform(0.5, 2, M).astype(np.float32)
    bias = (rng.standard_normal(M) * 4).astype(np.float32)
    plain, y = np.empty((1, M, H, H), np.float32), np.empty((1, M, H, H), np.float32)
    _conv.unfold_gemm(x, w2, None, plain, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 2)
    _conv.unfold_gemm(x, w2, bias, y, 1, 1, 1, 1, 1, 0, 0, 1, 1, relu, 2, False, scale)
    v = plain * scale.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)
    expect = np.where(v <= 0, np.float32(0), v)
    if relu == 2:
        expect = np.where(expect >= 6, np.float32(6), expect)
        assert (expect == 6).any()
    assert np.isnan(expect).any()
    np.testing.assert_array_equal(y, expect)


def test_conv2d_rejects_an_unknown_activation():
    x = np.ones((1, 2, 4, 4), np.float32)
    w = np.ones((3, 2, 1, 1), np.float32)
    with pytest.raises(ValueError, match="relu must be"):
        FC.conv2d(x, w, None, (1, 1), (0,) * 4, relu="gelu")
