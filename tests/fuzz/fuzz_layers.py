"""Property-based fuzzing of every fastconv layer against PyTorch (hypothesis).

    python tests/fuzz/fuzz_layers.py [--examples 300] [--seed 0]

Draws a layer (constructor arguments valid or not) and an input (shape, dtype,
memory layout valid or not), and checks each call either
  * matches PyTorch: forward output, input gradient and every parameter gradient, and
    leaves the input unmodified, or
  * raises TypeError / ValueError / RuntimeError whose message names the layer.
Anything else - a different answer, another exception type, a crash or a hang - fails.
Run it in a subprocess (tests/test_fuzz.py does): a segfault then fails the test
instead of killing pytest.  Prints how many cases were tried, by outcome.
"""
import argparse
import collections
import sys

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings, seed as hseed, strategies as st

import fastconv as fc
from fastconv.interop import to_torch

DOCUMENTED = (TypeError, ValueError, RuntimeError)
COUNTS = collections.Counter()
DTYPES = [np.float32] * 6 + [np.float64] * 3 + [np.float16, np.int32,
          np.int64, np.bool_, np.complex64, np.uint8]

small = st.integers(0, 3)
kern = st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4)))


@st.composite
def conv_case(draw, transpose=False):
    c_in = draw(st.integers(1, 6))
    g = draw(st.sampled_from([1, 1, 2, 3, c_in]))
    c_out = draw(st.integers(1, 3)) * g if draw(st.booleans()) else draw(st.integers(1, 6))
    kw = dict(kernel_size=draw(kern), stride=draw(st.one_of(st.integers(1, 3),
                                                            st.tuples(st.integers(1, 3),
                                                                      st.integers(1, 3)))),
              dilation=draw(st.integers(1, 3)), groups=g, bias=draw(st.booleans()))
    if transpose:
        kw["padding"] = draw(small)
        kw["output_padding"] = draw(st.integers(0, 2))
        return fc.nn.ConvTranspose2d, (c_in, c_out), kw, c_in
    kw["padding"] = draw(st.one_of(small, st.sampled_from(["same", "valid"]),
                                   st.tuples(small, small)))
    kw["padding_mode"] = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate",
                                               "circular"]))
    return fc.nn.Conv2d, (c_in, c_out), kw, c_in


@st.composite
def pool_case(draw):
    kind = draw(st.sampled_from(["max", "avg", "adaptive"]))
    c = draw(st.integers(1, 4))
    if kind == "adaptive":
        return fc.nn.AdaptiveAvgPool2d, (draw(st.one_of(st.integers(1, 5),
                                                         st.tuples(st.integers(1, 5),
                                                                   st.integers(1, 5)))),), {}, c
    kw = dict(kernel_size=draw(kern), stride=draw(st.one_of(st.none(), st.integers(1, 3))),
              padding=draw(st.integers(0, 2)), ceil_mode=draw(st.booleans()))
    if kind == "max":
        kw["dilation"] = draw(st.integers(1, 2))
        return fc.nn.MaxPool2d, (), kw, c
    kw["count_include_pad"] = draw(st.booleans())
    return fc.nn.AvgPool2d, (), kw, c


@st.composite
def other_case(draw):
    kind = draw(st.sampled_from(["bn", "relu", "linear", "upsample", "flatten", "dropout"]))
    c = draw(st.integers(1, 5))
    if kind == "bn":
        return fc.nn.BatchNorm2d, (c,), dict(eps=draw(st.sampled_from([1e-5, 1e-3])),
                                             momentum=draw(st.sampled_from([0.1, 0.5, None])),
                                             affine=draw(st.booleans()),
                                             track_running_stats=draw(st.booleans())), c
    if kind == "relu":
        return fc.nn.ReLU, (), dict(inplace=draw(st.booleans())), c
    if kind == "linear":
        return fc.nn.Linear, (c, draw(st.integers(1, 5))), dict(bias=draw(st.booleans())), c
    if kind == "flatten":
        return fc.nn.Flatten, (), {}, c
    if kind == "dropout":
        return fc.nn.Dropout, (0.0,), {}, c
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    kw = dict(mode=mode)
    if draw(st.booleans()):
        kw["scale_factor"] = draw(st.sampled_from([1, 2, 3, 1.5, 2.0]))
    else:
        kw["size"] = draw(st.one_of(st.integers(1, 9), st.tuples(st.integers(1, 9),
                                                                 st.integers(1, 9))))
    if mode == "bilinear":
        kw["align_corners"] = draw(st.booleans())
    return fc.nn.Upsample, (), kw, c


@st.composite
def input_case(draw, channels, linear):
    n = draw(st.sampled_from([0, 1, 2, 3]))
    c = channels if draw(st.integers(0, 9)) else draw(st.integers(1, 7))
    if linear:
        shape = (n, c) if draw(st.integers(0, 9)) else (n, c, 2)
    else:
        h, w = draw(st.integers(0, 11)), draw(st.integers(0, 11))
        shape = (n, c, h, w) if draw(st.integers(0, 9)) else draw(
            st.sampled_from([(c, h, w), (n, c, h, w, 1), (n, c * h * w)]))
    dtype = draw(st.sampled_from(DTYPES))
    layout = draw(st.sampled_from(["c", "c", "c", "transposed", "strided", "readonly"]))
    return shape, dtype, layout, draw(st.integers(0, 2 ** 31))


def make_input(shape, dtype, layout, s):
    rng = np.random.default_rng(s)
    if layout == "strided":
        big = rng.standard_normal(tuple(d * 2 if i == len(shape) - 1 else d
                                        for i, d in enumerate(shape)))
        x = big[..., ::2]
    elif layout == "transposed" and len(shape) >= 2:
        x = rng.standard_normal(shape[::-1]).T
    else:
        x = rng.standard_normal(shape)
    if dtype == np.bool_:
        x = x > 0
    elif np.issubdtype(dtype, np.integer):
        x = (x * 3).astype(dtype)
    else:
        x = x.astype(dtype)
    if layout == "readonly":
        x.flags.writeable = False
    return x


def check_documented(e, cls):
    assert isinstance(e, DOCUMENTED), f"{cls.__name__}: undocumented {type(e).__name__}: {e}"
    assert cls.__name__ in str(e) or "Upsample" in str(e) and cls is fc.nn.Upsample, \
        f"{cls.__name__}: message does not name the layer: {e}"


def run_case(layer, inp):
    cls, args, kw, channels = layer
    try:
        m = cls(*args, **kw)
    except Exception as e:      # noqa: BLE001 - any exception is judged here
        check_documented(e, cls)
        COUNTS["constructor rejected"] += 1
        return
    shape, dtype, layout, s = inp
    x = make_input(shape, dtype, layout, s)
    x0 = np.array(x, copy=True)
    train = cls is not fc.nn.BatchNorm2d or s % 3 != 0
    m.train(train)
    if dtype == np.float64:
        m.double()                  # float64 checks run the whole layer in float64
    try:
        y = m(x)
    except Exception as e:      # noqa: BLE001
        check_documented(e, cls)
        assert np.array_equal(x, x0, equal_nan=True), f"{cls.__name__}: input modified"
        COUNTS["forward rejected"] += 1
        return
    assert x.dtype in (np.float32, np.float64), f"{cls.__name__} accepted dtype {x.dtype}"
    assert y.dtype == x.dtype, f"{cls.__name__}: {x.dtype} in, {y.dtype} out"
    inplace = cls is fc.nn.ReLU and kw.get("inplace")
    if not inplace:
        assert np.array_equal(x, x0, equal_nan=True), f"{cls.__name__}: input modified"
    try:
        t = to_torch(m)
    except ValueError as e:         # torch has no 'same' at stride > 1 (tests/test_conv.py
        assert "padding='same'" in str(e)      # checks TensorFlow's rule there)
        COUNTS["fastconv accepts, torch rejects (documented: 'same' at stride > 1)"] += 1
        return
    if dtype == np.float64:
        t = t.double()
    t.train(train)
    xt = torch.from_numpy(np.array(x0, copy=True)).requires_grad_(True)
    try:
        yt = t(xt.clone() if inplace else xt)
    except RuntimeError:
        COUNTS["fastconv accepts, torch rejects (documented: 'same' at stride > 1)"] += 1
        assert cls is fc.nn.Conv2d and kw["padding"] == "same", \
            f"{cls.__name__}{args}{kw} on {shape}: torch rejects what fastconv accepted"
        return
    tol = 1e-4 if dtype == np.float32 else 1e-10
    ref = yt.detach().numpy()
    assert y.shape == ref.shape, f"{cls.__name__}: shape {y.shape} vs torch {ref.shape}"
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol, err_msg=f"{cls.__name__} forward")
    gy = np.random.default_rng(s + 1).standard_normal(y.shape).astype(y.dtype)
    gx = m.backward(gy)
    if yt.numel():
        yt.backward(torch.from_numpy(gy))
    tgx = xt.grad.numpy() if xt.grad is not None else np.zeros(shape, dtype)
    assert gx.shape == tuple(shape), f"{cls.__name__}: grad shape {gx.shape}"
    np.testing.assert_allclose(gx, tgx, rtol=tol * 10, atol=tol * 10,
                               err_msg=f"{cls.__name__} grad input")
    tparams = dict(t.named_parameters())
    for name, p in m.named_parameters():
        tg = tparams[name].grad
        tg = np.zeros_like(p.data) if tg is None else tg.numpy()
        g = np.zeros_like(p.data) if p.grad is None else p.grad
        np.testing.assert_allclose(g, tg, rtol=tol * 10, atol=tol * 10,
                                   err_msg=f"{cls.__name__} grad {name}")
    COUNTS["matched torch"] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=300, help="cases per layer family")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)

    def family(layer):
        @hseed(args.seed)
        @settings(max_examples=args.examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), print_blob=True)
        @given(st.data())
        def prop(data):
            lay = data.draw(layer)
            inp = data.draw(input_case(lay[3], lay[0] is fc.nn.Linear))
            run_case(lay, inp)
            COUNTS["cases"] += 1
        return prop

    for name, layer in [("conv", conv_case()), ("conv_transpose", conv_case(transpose=True)),
                        ("pool", pool_case()), ("other", other_case())]:
        family(layer)()
        print(f"{name}: done", flush=True)
    total = COUNTS.pop("cases")
    print(f"fuzz: {total} cases tried, " + ", ".join(f"{v} {k}" for k, v in COUNTS.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
