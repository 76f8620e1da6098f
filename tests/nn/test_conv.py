"""Conv2d / ConvTranspose2d parity with torch over seeded random configurations."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import _shape
from helpers import assert_close, check_vs_torch, directional_check, torch_or_skip


def random_conv_config(rng):
    groups = int(rng.choice([1, 1, 1, 2, 3]))
    cin = groups * int(rng.integers(1, 4))
    cout = groups * int(rng.integers(1, 4))
    depthwise = rng.random() < 0.2
    if depthwise:
        groups, cin = cin, cin
        cout = cin * int(rng.integers(1, 3))
    k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    s = (int(rng.integers(1, 4)), int(rng.integers(1, 3)))
    d = (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
    r = rng.random()
    if r < 0.15:
        pad = "same"
    elif r < 0.25:
        pad = "valid"
    elif r < 0.6:
        pad = int(rng.integers(0, 3))
    else:
        pad = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    mode = str(rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"]))
    n = int(rng.integers(1, 4))
    h = int(rng.integers(1, 12)) + (k[0] - 1) * d[0]
    w = int(rng.integers(1, 12)) + (k[1] - 1) * d[1]
    h, w = max(h, 4), max(w, 4)
    bias = bool(rng.random() < 0.6)
    return dict(cin=cin, cout=cout, k=k, s=s, d=d, pad=pad, mode=mode, groups=groups, n=n, h=h,
                w=w, bias=bias)


def torch_conv_reference(torch, cfg, m):
    """torch module computing the same thing; for 'same' with stride > 1 (refused by
    torch) pad explicitly with TensorFlow's rule, then convolve unpadded."""
    tF = torch.nn.functional
    if cfg["pad"] == "same" and cfg["s"] != (1, 1):
        class SameStrided(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = torch.nn.Parameter(torch.zeros(m.weight.shape, dtype=torch.float32))
                self.bias = (torch.nn.Parameter(torch.zeros(m.out_channels)) if cfg["bias"]
                             else None)

            def forward(self, x):
                H, W = x.shape[2:]
                pt, pb = _shape.same_padding(H, cfg["k"][0], cfg["s"][0], cfg["d"][0])
                pl, pr = _shape.same_padding(W, cfg["k"][1], cfg["s"][1], cfg["d"][1])
                tmode = "constant" if cfg["mode"] == "zeros" else cfg["mode"]
                x = tF.pad(x, (pl, pr, pt, pb), mode=tmode)
                return tF.conv2d(x, self.weight, self.bias, cfg["s"], 0, cfg["d"], cfg["groups"])
        return SameStrided()
    return torch.nn.Conv2d(cfg["cin"], cfg["cout"], cfg["k"], cfg["s"], cfg["pad"], cfg["d"],
                           cfg["groups"], cfg["bias"], cfg["mode"])


def _valid(cfg):
    """Skip configurations torch rejects (reflect pad >= size, empty output)."""
    H, W = cfg["h"], cfg["w"]
    if cfg["pad"] == "same":
        pads = (*_shape.same_padding(H, cfg["k"][0], cfg["s"][0], cfg["d"][0]),
                *_shape.same_padding(W, cfg["k"][1], cfg["s"][1], cfg["d"][1]))
    elif cfg["pad"] == "valid":
        pads = (0, 0, 0, 0)
    else:
        p = cfg["pad"] if isinstance(cfg["pad"], tuple) else (cfg["pad"], cfg["pad"])
        pads = (p[0], p[0], p[1], p[1])
    if cfg["mode"] in ("reflect", "circular") and (max(pads[:2]) >= H or max(pads[2:]) >= W):
        return False
    oh = _shape.conv_output_size(H, cfg["k"][0], cfg["s"][0], pads[:2], cfg["d"][0])
    ow = _shape.conv_output_size(W, cfg["k"][1], cfg["s"][1], pads[2:], cfg["d"][1])
    return oh >= 1 and ow >= 1


CONFIGS = []
_r = np.random.default_rng(2024)
while len(CONFIGS) < 60:
    c = random_conv_config(_r)
    if _valid(c):
        CONFIGS.append(c)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[f"c{i}" for i in range(len(CONFIGS))])
def test_conv2d_matches_torch(cfg, rng):
    torch = torch_or_skip()
    m = fc.nn.Conv2d(cfg["cin"], cfg["cout"], cfg["k"], cfg["s"], cfg["pad"], cfg["d"],
                     cfg["groups"], cfg["bias"], cfg["mode"])
    t = torch_conv_reference(torch, cfg, m)
    x = rng.standard_normal((cfg["n"], cfg["cin"], cfg["h"], cfg["w"])).astype(np.float32)
    check_vs_torch(m, t, x)


@pytest.mark.parametrize("shape", [(1, 64, 9, 7), (3, 16, 20, 20), (2, 3, 33, 17)])
@pytest.mark.parametrize("layer", ["conv3x3", "conv1x1", "depthwise", "strided", "stem"])
def test_conv2d_common_layers(shape, layer, rng):
    torch = torch_or_skip()
    n, c, h, w = shape
    args = {"conv3x3": (c, 32, 3, 1, 1, 1, 1), "conv1x1": (c, 24, 1, 1, 0, 1, 1),
            "depthwise": (c, c, 3, 1, 1, 1, c), "strided": (c, 40, 3, 2, 1, 1, 1),
            "stem": (c, 16, 7, 2, 3, 1, 1)}[layer]
    m = fc.nn.Conv2d(*args, bias=layer == "conv1x1")
    t = torch.nn.Conv2d(*args, bias=layer == "conv1x1")
    check_vs_torch(m, t, rng.standard_normal(shape).astype(np.float32))


def random_convT_config(rng):
    groups = int(rng.choice([1, 1, 2, 3]))
    cin, cout = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    p = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    op = tuple(int(rng.integers(0, max(si, di))) for si, di in zip(s, d))
    return dict(cin=cin, cout=cout, k=k, s=s, p=p, op=op, groups=groups, d=d,
                bias=bool(rng.random() < 0.6), n=int(rng.integers(1, 4)),
                h=int(rng.integers(1, 9)), w=int(rng.integers(1, 9)))


TCONFIGS = []
_r = np.random.default_rng(99)
while len(TCONFIGS) < 40:
    c = random_convT_config(_r)
    if all(_shape.conv_transpose_output_size(c[a], c["k"][i], c["s"][i], c["p"][i], c["op"][i],
                                             c["d"][i]) >= 1 for i, a in enumerate(("h", "w"))):
        TCONFIGS.append(c)


@pytest.mark.parametrize("cfg", TCONFIGS, ids=[f"t{i}" for i in range(len(TCONFIGS))])
def test_conv_transpose2d_matches_torch(cfg, rng):
    torch = torch_or_skip()
    a = (cfg["cin"], cfg["cout"], cfg["k"], cfg["s"], cfg["p"], cfg["op"], cfg["groups"],
         cfg["bias"], cfg["d"])
    m = fc.nn.ConvTranspose2d(*a)
    t = torch.nn.ConvTranspose2d(*a)
    x = rng.standard_normal((cfg["n"], cfg["cin"], cfg["h"], cfg["w"])).astype(np.float32)
    check_vs_torch(m, t, x)


@pytest.mark.parametrize("cfg", CONFIGS[:12], ids=[f"c{i}" for i in range(12)])
def test_conv2d_finite_differences(cfg, rng):
    m = fc.nn.Conv2d(cfg["cin"], cfg["cout"], cfg["k"], cfg["s"], cfg["pad"], cfg["d"],
                     cfg["groups"], cfg["bias"], cfg["mode"])
    directional_check(m, rng.standard_normal((cfg["n"], cfg["cin"], cfg["h"], cfg["w"])))


@pytest.mark.parametrize("cfg", TCONFIGS[:8], ids=[f"t{i}" for i in range(8)])
def test_conv_transpose2d_finite_differences(cfg, rng):
    m = fc.nn.ConvTranspose2d(cfg["cin"], cfg["cout"], cfg["k"], cfg["s"], cfg["p"], cfg["op"],
                              cfg["groups"], cfg["bias"], cfg["d"])
    directional_check(m, rng.standard_normal((cfg["n"], cfg["cin"], cfg["h"], cfg["w"])))


def test_same_padding_keeps_size_and_strided_same_is_ceil(rng):
    x = rng.standard_normal((1, 2, 15, 10)).astype(np.float32)
    assert fc.nn.Conv2d(2, 3, 4, padding="same")(x).shape == (1, 3, 15, 10)
    assert fc.nn.Conv2d(2, 3, 3, stride=2, padding="same")(x).shape == (1, 3, 8, 5)
    assert fc.nn.Conv2d(2, 3, (3, 5), stride=(4, 3), dilation=2, padding="same")(x).shape \
        == (1, 3, 4, 4)


def test_float64_input_returns_float64(rng):
    m = fc.nn.Conv2d(2, 3, 3)
    y = m(rng.standard_normal((1, 2, 5, 5)))
    assert y.dtype == np.float64
    gx = m.backward(np.ones_like(y))
    assert gx.dtype == np.float64 and m.weight.grad.dtype == np.float32


def test_non_contiguous_and_readonly_inputs_are_not_modified(rng):
    base = rng.standard_normal((2, 3, 8, 16)).astype(np.float32)
    x = base[:, :, :, ::2]
    x_ro = np.ascontiguousarray(x)
    x_ro.setflags(write=False)
    before = base.copy()
    m = fc.nn.Conv2d(3, 4, 3, padding=1)
    y1 = m(x)
    y2 = m(x_ro)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(base, before)


def test_param_grads_accumulate(rng):
    m = fc.nn.Conv2d(2, 2, 3)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    y = m(x)
    m.backward(np.ones_like(y))
    g1 = m.weight.grad.copy()
    m(x)
    m.backward(np.ones_like(y))
    assert_close(m.weight.grad, 2 * g1, 1e-6)


def test_frozen_parameter_gets_no_grad(rng):
    m = fc.nn.Conv2d(2, 2, 3)
    m.weight.requires_grad = False
    y = m(rng.standard_normal((1, 2, 5, 5)).astype(np.float32))
    m.backward(np.ones_like(y))
    assert m.weight.grad is None and m.bias.grad is not None


def _with_float64_twin(c, cout, pad, bias):
    """A float32 3x3 Conv2d and a float64 copy with the same weights (the reference)."""
    m = fc.nn.Conv2d(c, cout, 3, padding=pad, bias=bias)
    m64 = fc.nn.Conv2d(c, cout, 3, padding=pad, bias=bias)
    m64.load_state_dict(m.state_dict())
    m64.double()
    return m, m64


@pytest.mark.parametrize("shape,pad,bias", [((2, 16, 9, 7), 1, True), ((1, 32, 1, 1), 1, False),
                                            ((3, 16, 33, 70), 1, True), ((1, 24, 5, 40), 0, True),
                                            ((2, 16, 6, 6), 2, False), ((1, 64, 4, 3), (0, 2), True)])
def test_winograd_3x3_matches_float64_and_torch(shape, pad, bias, rng):
    """3x3 stride-1 float32 layers with >= 16 channels run Winograd F(2x2, 3x3): odd
    sizes (partial tiles), tiny planes, every padding, forward and backward."""
    torch = torch_or_skip()
    c = shape[1]
    m, m64 = _with_float64_twin(c, 20, pad, bias)
    t = torch.nn.Conv2d(c, 20, 3, padding=pad, bias=bias)
    x = rng.standard_normal(shape).astype(np.float32)
    check_vs_torch(m, t, x)
    assert_close(m(x), m64(x.astype(np.float64)), 1e-5, "winograd vs float64")


@pytest.mark.parametrize("shape,cout,pad,bias", [((3, 16, 33, 40), 20, 1, True),
                                                  ((2, 24, 32, 70), 26, 2, False),
                                                  ((3, 32, 35, 37), 16, (0, 2), True),
                                                  ((1, 64, 64, 64), 64, 1, False)])
def test_winograd_f4x4_planes_match_float64_and_torch(shape, cout, pad, bias, rng):
    """Planes of 32x32 and more (with >= 256 tiles) take Winograd F(4x4, 3x3), whose
    weights go straight into the micro-kernel's panels: partial tiles at the right and
    bottom, output channels that do not fill a panel, every padding."""
    from fastconv._conv_plan import Algorithm
    c = shape[1]
    m, m64 = _with_float64_twin(c, cout, pad, bias)
    x = rng.standard_normal(shape).astype(np.float32)
    y = m(x)
    assert m._ctx.conv.algorithm is Algorithm.WINOGRAD4, "expected the F(4x4, 3x3) path"
    assert_close(y, m64(x.astype(np.float64)), 1e-5, "winograd F(4x4) vs float64")
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = m.backward(gy)
    assert_close(gx, m64.backward(gy.astype(np.float64)), 1e-5, "grad input vs float64")
    assert_close(m.weight.grad, m64.weight.grad, 1e-5, "grad weight vs float64")
    t = torch_or_skip().nn.Conv2d(c, cout, 3, padding=pad, bias=bias)
    check_vs_torch(m, t, x)


def test_winograd_f4x4_folded_relu_inference(rng):
    """Eval-mode ConvBlock folds BatchNorm into the F(4x4, 3x3) weights and applies bias
    and ReLU in the output transform."""
    blk = fc.models.ConvBlock(16, 24)
    blk.bn.running_mean[:] = rng.standard_normal(24).astype(np.float32)
    blk.bn.running_var[:] = rng.uniform(0.5, 2, 24).astype(np.float32)
    blk.eval()
    x = rng.standard_normal((3, 16, 40, 48)).astype(np.float32)
    with fc.no_grad():
        y = blk(x)
    ref = blk.double()
    with fc.no_grad():
        r = ref(x.astype(np.float64))
    assert (y >= 0).all()
    assert_close(y, r, 1e-5, "folded conv-bn-relu")


@pytest.mark.parametrize("shape,cout,pad", [((3, 16, 33, 70), 20, 1), ((2, 64, 17, 9), 32, 0),
                                             ((20, 16, 30, 30), 24, (2, 1)), ((1, 32, 1, 1), 16, 1)])
def test_winograd_weight_grad_matches_float64(shape, cout, pad, rng):
    """The weight gradient of a Winograd layer runs the F(2x2, 3x3) transforms too, summed
    over several tile chunks: against the float64 (direct) gradient, no torch needed."""
    m, m64 = _with_float64_twin(shape[1], cout, pad, True)
    x = rng.standard_normal(shape).astype(np.float32)
    y = m(x)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    m.backward(gy)
    m64(x.astype(np.float64))
    m64.backward(gy.astype(np.float64))
    assert_close(m.weight.grad, m64.weight.grad, 1e-5, "winograd weight grad vs float64")
    assert_close(m.bias.grad, m64.bias.grad, 1e-5, "bias grad")


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_non_finite_output_grad_reaches_weight_grad_like_torch(value, rng):
    """Winograd's gradient transform subtracts neighbours (Inf - Inf = NaN): a non-finite
    output gradient takes the direct weight gradient, so NaN/Inf land where torch's do."""
    torch = torch_or_skip()
    m = fc.nn.Conv2d(16, 16, 3, padding=1, bias=False)
    t = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    x = np.abs(rng.standard_normal((2, 16, 8, 8))).astype(np.float32)
    y = m(x)
    gy = np.zeros_like(y)
    gy[0, 2, 3, 4] = value
    m.backward(gy)
    t(torch.from_numpy(x)).backward(torch.from_numpy(gy))
    tg = t.weight.grad.numpy()
    np.testing.assert_array_equal(np.isnan(m.weight.grad), np.isnan(tg))
    np.testing.assert_array_equal(np.isinf(m.weight.grad), np.isinf(tg))
    np.testing.assert_array_equal(m.weight.grad[np.isfinite(tg)], tg[np.isfinite(tg)])


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_non_finite_inputs_propagate_like_torch(value, rng):
    """Winograd's transforms would turn an Inf into NaN; non-finite inputs take the
    direct path, so NaN/Inf land exactly where torch puts them."""
    torch = torch_or_skip()
    m = fc.nn.Conv2d(16, 8, 3, padding=1)
    t = torch.nn.Conv2d(16, 8, 3, padding=1)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    x = rng.standard_normal((2, 16, 9, 9)).astype(np.float32)
    x[1, 3, 4, 5] = value
    y = m(x)
    ty = t(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ty))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(ty))
    np.testing.assert_array_equal(y[np.isinf(ty)], ty[np.isinf(ty)])
