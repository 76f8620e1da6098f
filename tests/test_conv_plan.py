"""The convolution planner: its rules, and every algorithm forced through the plan
against torch (forward, input gradient, weight and bias gradients) on every geometry
of a random set that it accepts."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import _conv_plan as plan
from fastconv._conv_plan import Algorithm, ConvGeometry
from fastconv.functional import conv2d, conv2d_backward
from helpers import assert_close, torch_or_skip


def random_geometries(n, seed):
    """Geometries of every kind: depthwise, grouped, 3x3 stride 1, strided, dilated,
    asymmetric padding, 1x1, 1-pixel planes."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        C = int(rng.choice([1, 3, 4, 8, 16, 20]))
        groups = int(rng.choice([1, 1, 2, C])) if C % 2 == 0 else int(rng.choice([1, C]))
        M = groups * int(rng.integers(1, 3)) if groups > 1 else int(rng.choice([2, 8, 16, 24]))
        K = int(rng.choice([1, 3, 3, 3, 5]))
        s = (int(rng.choice([1, 1, 2])), int(rng.choice([1, 1, 2])))
        d = (int(rng.choice([1, 1, 2])),) * 2
        pads = tuple(int(rng.integers(0, K)) for _ in range(4))
        H, W = int(rng.integers(1, 14)), int(rng.integers(1, 14))
        g = ConvGeometry(int(rng.integers(1, 3)), C, H, W, M, K, K, *s, *pads, *d, groups)
        if g.OH >= 1 and g.OW >= 1:
            out.append(g)
    return out


GEOMS = random_geometries(60, 11) + [
    ConvGeometry(2, 16, 12, 12, 16, 3, 3, 1, 1, 1, 1, 1, 1),           # Winograd F(2x2)
    ConvGeometry(1, 16, 34, 36, 20, 3, 3, 1, 1, 1, 1, 1, 1),           # Winograd F(4x4) sized
    ConvGeometry(2, 8, 9, 7, 8, 3, 3, 1, 1, 0, 2, 1, 0, 1, 1, 8),      # depthwise, asymmetric
    ConvGeometry(1, 6, 5, 5, 12, 3, 3, 2, 2, 1, 1, 1, 1, 2, 2, 6),     # depthwise x2, strided
    ConvGeometry(2, 3, 23, 21, 8, 7, 7, 2, 2, 3, 3, 3, 3),             # a 7x7 stride-2 stem
    ConvGeometry(1, 4, 17, 13, 8, 3, 3, 3, 3, 1, 0, 2, 1),             # stride 3, uneven pads
]
CASES = [(i, a) for i, g in enumerate(GEOMS) for a in Algorithm if plan.accepts(a, g)]


def test_every_algorithm_is_exercised():
    assert {a for _, a in CASES} == set(Algorithm)


@pytest.mark.parametrize("i, algorithm", CASES, ids=[f"g{i}-{a.value}" for i, a in CASES])
def test_forced_algorithm_matches_torch(i, algorithm):
    torch = torch_or_skip()
    g = GEOMS[i]
    rng = np.random.default_rng(i)
    dt = np.float32
    x = rng.standard_normal((g.N, g.C, g.H, g.W)).astype(dt)
    w = (rng.standard_normal((g.M, g.Cg, g.KH, g.KW)) / np.sqrt(g.Cg * g.KH * g.KW)).astype(dt)
    b = rng.standard_normal(g.M).astype(dt)
    y, ctx = conv2d(x, w, b, (g.sh, g.sw), g.pads, (g.dh, g.dw), g.groups, algorithm=algorithm)
    assert ctx.conv.algorithm is algorithm
    gy = rng.standard_normal(y.shape).astype(dt)
    gx, gw, gb = conv2d_backward(ctx, gy)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tF = torch.nn.functional
    ty = tF.conv2d(tF.pad(tx, (g.pl, g.pr, g.pt, g.pb)), tw, tb, (g.sh, g.sw), 0, (g.dh, g.dw),
                   g.groups)
    ty.backward(torch.from_numpy(gy))
    rtol = 2e-5 if algorithm is Algorithm.WINOGRAD4 else 1e-5
    assert_close(y, ty.detach().numpy(), rtol, "forward")
    assert_close(gx, tx.grad.numpy(), rtol, "grad input")
    assert_close(gw, tw.grad.numpy(), rtol, "grad weight")
    assert_close(gb, tb.grad.numpy(), rtol, "grad bias")


def test_float64_takes_no_float32_only_path():
    g = ConvGeometry(2, 16, 12, 12, 16, 3, 3, 1, 1, 1, 1, 1, 1, dtype="float64")
    assert plan.choose_algorithm(g) is Algorithm.PADDED
    assert not plan.accepts(Algorithm.WINOGRAD2, g)
    assert plan.choose_algorithm(g._replace(groups=16, M=16)) is Algorithm.DEPTHWISE


def test_planner_rules():
    wino = ConvGeometry(8, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 1)
    assert plan.choose_algorithm(wino) is Algorithm.WINOGRAD4
    assert plan.choose_algorithm(wino._replace(H=14, W=14)) is Algorithm.WINOGRAD2
    assert plan.choose_algorithm(wino, finite=False) is Algorithm.PADDED   # NaN/Inf: no Winograd
    assert plan.choose_algorithm(wino._replace(C=3)) is Algorithm.GATHER  # K = 27 < 64
    assert plan.choose_algorithm(wino._replace(sh=2, sw=2)) is Algorithm.GATHER
    assert plan.choose_algorithm(wino._replace(KH=1, KW=1, pt=0, pb=0, pl=0, pr=0)) \
        is Algorithm.GATHER
    dw = wino._replace(groups=64)
    assert plan.choose_algorithm(dw) is Algorithm.DEPTHWISE_S1
    assert plan.choose_algorithm(dw._replace(sh=2)) is Algorithm.DEPTHWISE
    # backward choices follow the forward
    assert plan.weight_grad_algorithm(wino._replace(C=128), Algorithm.WINOGRAD4) \
        is plan.WeightGrad.WINOGRAD
    assert plan.weight_grad_algorithm(wino._replace(C=256, M=256), Algorithm.WINOGRAD4) \
        is plan.WeightGrad.GATHER
    # few channels on large planes: straight over a padded copy (rows of 28 and more; the
    # GEMM over it from 16); on small ones, Winograd's
    few = wino._replace(C=32)
    assert plan.weight_grad_algorithm(few, Algorithm.WINOGRAD4) is plan.WeightGrad.DIRECT
    assert plan.weight_grad_algorithm(few._replace(H=20, W=20), Algorithm.WINOGRAD4) \
        is plan.WeightGrad.PADDED
    assert plan.weight_grad_algorithm(wino._replace(H=8, W=8), Algorithm.WINOGRAD2) \
        is plan.WeightGrad.WINOGRAD
    # a gathered stride-1 forward on large planes too; strided ones keep the gather
    assert plan.weight_grad_algorithm(wino._replace(C=3), Algorithm.GATHER) \
        is plan.WeightGrad.DIRECT
    assert plan.weight_grad_algorithm(wino._replace(C=3, KH=5, KW=5, pt=2, pb=2, pl=2, pr=2),
                                      Algorithm.GATHER) is plan.WeightGrad.PADDED
    assert plan.weight_grad_algorithm(wino._replace(C=3, sh=2, sw=2), Algorithm.GATHER) \
        is plan.WeightGrad.GATHER
    assert plan.weight_grad_algorithm(wino._replace(KH=1, KW=1, pt=0, pb=0, pl=0, pr=0),
                                      Algorithm.GATHER) is plan.WeightGrad.GATHER
    assert plan.input_grad_algorithm(wino, Algorithm.WINOGRAD4) is plan.InputGrad.FLIPPED
    assert plan.input_grad_algorithm(wino._replace(C=3), Algorithm.GATHER) is plan.InputGrad.FOLD


def test_planner_rules_with_prepared_weights():
    """Inference with the weights' transform cached: one frame's small planes go to
    Winograd too (the per-call transform no longer counts), 4x4 planes do not."""
    frame = ConvGeometry(1, 256, 8, 8, 256, 3, 3, 1, 1, 1, 1, 1, 1)
    assert plan.choose_algorithm(frame) not in plan.WINOGRAD
    assert plan.choose_algorithm(frame, prepared=True) is Algorithm.WINOGRAD2
    assert plan.choose_algorithm(frame._replace(H=4, W=4), prepared=True) not in plan.WINOGRAD
    assert plan.choose_algorithm(frame._replace(H=14, W=14), prepared=True) is Algorithm.WINOGRAD4
    assert plan.choose_algorithm(frame._replace(C=64, M=64, H=14, W=14), prepared=True) \
        is Algorithm.WINOGRAD2
    assert plan.choose_algorithm(frame, finite=False, prepared=True) not in plan.WINOGRAD
    assert plan.choose_algorithm(frame._replace(sh=2, sw=2), prepared=True) not in plan.WINOGRAD


def test_strided_takes_the_gather_padded_only_when_forced():
    stem = ConvGeometry(1, 3, 224, 224, 64, 7, 7, 2, 2, 3, 3, 3, 3)
    assert plan.accepts(Algorithm.PADDED, stem)
    assert plan.choose_algorithm(stem) is Algorithm.GATHER
    assert plan.choose_algorithm(stem, prepared=True) is Algorithm.GATHER
    s2 = ConvGeometry(1, 64, 56, 56, 128, 3, 3, 2, 2, 1, 1, 1, 1)
    assert plan.choose_algorithm(s2, prepared=True) is Algorithm.GATHER
    assert not plan.accepts(Algorithm.PADDED, s2._replace(sw=1))
    assert not plan.accepts(Algorithm.PADDED, s2._replace(dh=2, dw=2))


def test_bf16_prefers_f2_with_bf16_products_except_few_channels_on_large_planes():
    g = ConvGeometry(16, 128, 32, 32, 128, 3, 3, 1, 1, 1, 1, 1, 1)
    assert plan.choose_algorithm(g) is Algorithm.WINOGRAD4
    assert plan.choose_algorithm(g._replace(bf16=True)) is Algorithm.WINOGRAD2
    small = g._replace(C=64, M=64, H=64, W=64, bf16=True)
    assert plan.choose_algorithm(small) is Algorithm.WINOGRAD4
    assert plan.choose_algorithm(small._replace(H=32, W=32)) is Algorithm.WINOGRAD2
    big = g._replace(N=1, C=256, M=256, H=16, W=16)
    assert plan.choose_algorithm(big, prepared=True) is Algorithm.WINOGRAD4
    assert plan.choose_algorithm(big._replace(bf16=True), prepared=True) is Algorithm.WINOGRAD2


def test_forcing_an_algorithm_that_does_not_accept_the_geometry_raises():
    x = np.zeros((1, 4, 8, 8), np.float32)
    w = np.zeros((4, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match="winograd4.*does not accept"):
        conv2d(x, w, None, (2, 2), (1, 1, 1, 1), algorithm="winograd4")


def test_module_forward_runs_what_the_planner_chose(rng):
    m = fc.nn.Conv2d(16, 16, 3, padding=1)
    x = rng.standard_normal((1, 16, 40, 40)).astype(np.float32)
    m(x)
    g = ConvGeometry.of(x.shape, m.weight.shape, (1, 1), (1, 1, 1, 1))
    assert m._ctx.conv.algorithm is plan.choose_algorithm(g)


@pytest.mark.parametrize("isa, side28", [("avx2", Algorithm.WINOGRAD4),
                                         ("avx512", Algorithm.WINOGRAD2),
                                         ("generic", Algorithm.WINOGRAD2)])
def test_f4_crossover_follows_the_transform_vector_width(isa, side28, monkeypatch):
    """AVX2's 8-tile transforms fill from 20x20 planes; AVX-512's 16 want 32x32."""
    monkeypatch.setattr(plan, "running_isa", lambda: isa)
    g = ConvGeometry(16, 64, 28, 28, 64, 3, 3, 1, 1, 1, 1, 1, 1)
    assert plan.choose_algorithm(g) is side28
    assert plan.choose_algorithm(g._replace(H=14, W=14)) is Algorithm.WINOGRAD2
    assert plan.choose_algorithm(g._replace(H=32, W=32)) is Algorithm.WINOGRAD4
    # too few tiles to fill the vectors: F(2x2) whatever the plane
    assert plan.choose_algorithm(g._replace(N=2, H=24, W=24)) is Algorithm.WINOGRAD2


@pytest.mark.parametrize("isa", ["avx2", "avx512", "generic"])
def test_64_channel_weight_grad_follows_the_transforms(isa, monkeypatch):
    """64x64 channels on planes under 64x64: on AVX2, whose transforms write whole
    vectors, Winograd's own weight gradient; elsewhere, and from 64x64 planes or with
    fewer channels, the direct one."""
    monkeypatch.setattr(plan, "running_isa", lambda: isa)
    g = ConvGeometry(16, 64, 28, 28, 64, 3, 3, 1, 1, 1, 1, 1, 1)
    wg = plan.weight_grad_algorithm
    assert wg(g, Algorithm.WINOGRAD4) is (plan.WeightGrad.WINOGRAD if isa == "avx2"
                                          else plan.WeightGrad.DIRECT)
    assert wg(g, Algorithm.WINOGRAD4, finite=False) is plan.WeightGrad.DIRECT
    assert wg(g._replace(H=64, W=64), Algorithm.WINOGRAD4) is plan.WeightGrad.DIRECT
    assert wg(g._replace(C=32), Algorithm.WINOGRAD4) is plan.WeightGrad.DIRECT
