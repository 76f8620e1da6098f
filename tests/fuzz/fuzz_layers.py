"""Property-based fuzzing of every fastconv layer against PyTorch (hypothesis).

    python tests/fuzz/fuzz_layers.py [--examples 300] [--seed 0] [--families pool,other]
    python tests/fuzz/fuzz_layers.py --replay CASE      (one recorded case, e.g. a crash)

Draws a layer (constructor arguments valid or not) and an input (shape, dtype,
memory layout valid or not), and checks each call either
  * matches PyTorch: forward output, input gradient and every parameter gradient, and
    leaves the input unmodified, or
  * raises TypeError / ValueError / RuntimeError whose message names the layer.
Where the gradients disagree with torch's, a float64 finite-difference referee
settles it along the direction of the disagreement: fastconv right and torch wrong is
counted and listed as "torch disagrees, fastconv verified"; anything else fails.
Anything else - a different answer, another exception type, a crash or a hang - fails.

Run it in a subprocess (tests/test_fuzz.py does; tests/fuzz/run_sanitized.py runs many
seeds against an AddressSanitizer build): a segfault then fails the run instead of
killing pytest.  --case-file PATH writes each case to PATH before it runs, so the case
that killed the process can be replayed.  Prints how many cases were tried, by outcome.
"""
import argparse
import ast
import collections
import copy
import sys

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings, seed as hseed, strategies as st

import fastconv as fc
from fastconv.interop import to_torch

DOCUMENTED = (TypeError, ValueError, RuntimeError)
COUNTS = collections.Counter()
VERIFIED = []                   # (case, what) where torch disagreed and the referee sided with us
DTYPES = [np.float32] * 12 + [np.float64] * 6 + [np.float16, np.int32,
          np.int64, np.bool_, np.complex64, np.uint8]

small = st.integers(0, 3)
kern = st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4)),
                 st.integers(5, 7))         # kernels larger than small planes plus padding
strides = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))
dilations = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))


@st.composite
def conv_case(draw, transpose=False):
    c_in = draw(st.integers(1, 6))
    g = draw(st.sampled_from([1, 1, 2, 3, c_in]))
    c_out = draw(st.integers(1, 3)) * g if draw(st.booleans()) else draw(st.integers(1, 6))
    kw = dict(kernel_size=draw(kern), stride=draw(strides), dilation=draw(dilations),
              groups=g, bias=draw(st.booleans()))
    if transpose:
        kw["padding"] = draw(st.one_of(small, st.tuples(small, small)))
        kw["output_padding"] = draw(st.integers(0, 2))
        return "ConvTranspose2d", (c_in, c_out), kw, c_in
    kw["padding"] = draw(st.one_of(small, st.sampled_from(["same", "valid"]),
                                   st.tuples(small, small)))
    kw["padding_mode"] = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate",
                                               "circular"]))
    return "Conv2d", (c_in, c_out), kw, c_in


@st.composite
def pool_case(draw):
    kind = draw(st.sampled_from(["max", "max", "avg", "adaptive", "unpool"]))
    c = draw(st.integers(1, 4))
    if kind == "unpool":            # any kernel, stride, padding: torch checks none of them
        return "MaxUnpool2d", (draw(kern),), dict(stride=draw(st.one_of(st.none(), strides)),
                                                  padding=draw(st.one_of(
                                                      small, st.tuples(small, small)))), c
    if kind == "adaptive":
        name = draw(st.sampled_from(["AdaptiveAvgPool2d", "AdaptiveMaxPool2d"]))
        return name, (draw(st.one_of(st.integers(1, 5),
                                                    st.tuples(st.integers(1, 5),
                                                              st.integers(1, 5)))),), {}, c
    k = draw(kern)
    kh, kw_ = (k, k) if isinstance(k, int) else k
    if draw(st.integers(0, 4)):     # mostly padding <= kernel / 2, which torch requires
        pad = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw_ // 2)))
    else:
        pad = draw(st.one_of(st.integers(0, 3), st.tuples(small, small)))
    kw = dict(kernel_size=k, stride=draw(st.one_of(st.none(), strides)), padding=pad,
              ceil_mode=draw(st.booleans()))
    if kind == "max":
        kw["dilation"] = draw(dilations)
        kw["return_indices"] = draw(st.booleans())
        return "MaxPool2d", (), kw, c
    kw["count_include_pad"] = draw(st.booleans())
    if draw(st.integers(0, 4)) == 0:
        kw["divisor_override"] = draw(st.integers(1, 5))
    return "AvgPool2d", (), kw, c


@st.composite
def other_case(draw):
    kind = draw(st.sampled_from(["bn", "bn", "relu", "linear", "upsample", "flatten",
                                 "dropout", "gn", "pad", "shuffle", "act", "ln", "in"]))
    c = draw(st.integers(1, 5))
    if kind == "act":
        name = draw(st.sampled_from(["ReLU6", "LeakyReLU", "ELU", "SiLU", "GELU", "Sigmoid",
                                     "Tanh", "Hardswish", "Hardsigmoid", "Mish", "PReLU"]))
        if name == "PReLU":
            return name, (draw(st.sampled_from([1, c])),), {}, c
        return name, (), {}, c
    if kind == "gn":
        g = draw(st.integers(1, 3))
        ch = g * draw(st.integers(1, 2)) if draw(st.integers(0, 9)) else c    # or invalid
        return "GroupNorm", (g, ch), dict(eps=draw(st.sampled_from([1e-5, 1e-3])),
                                          affine=draw(st.booleans())), ch
    if kind == "ln":
        return "LayerNorm", (draw(st.sampled_from([c, (c, 3), 3])),), \
            dict(elementwise_affine=draw(st.booleans())), c
    if kind == "in":
        return "InstanceNorm2d", (c,), dict(affine=draw(st.booleans()),
                                            track_running_stats=draw(st.booleans()),
                                            momentum=draw(st.sampled_from([0.1, 0.5, None]))), c
    if kind == "pad":
        name = draw(st.sampled_from(["ZeroPad2d", "ConstantPad2d", "ReflectionPad2d",
                                     "ReplicationPad2d", "CircularPad2d"]))
        pad = draw(st.one_of(st.integers(0, 3), st.tuples(small, small, small, small)))
        return name, ((pad, 0.5) if name == "ConstantPad2d" else (pad,)), {}, c
    if kind == "shuffle":
        r = draw(st.integers(1, 3))
        if draw(st.booleans()):
            return "PixelShuffle", (r,), {}, c * r * r
        return "PixelUnshuffle", (r,), {}, c
    if kind == "bn":
        return draw(st.sampled_from(["BatchNorm2d", "SyncBatchNorm"])), (c,), dict(eps=draw(st.sampled_from([1e-5, 1e-3])),
                                         momentum=draw(st.sampled_from([0.1, 0.5, None])),
                                         affine=draw(st.booleans()),
                                         track_running_stats=draw(st.booleans())), c
    if kind == "relu":
        return "ReLU", (), dict(inplace=draw(st.booleans())), c
    if kind == "linear":
        return "Linear", (c, draw(st.integers(1, 5))), dict(bias=draw(st.booleans())), c
    if kind == "flatten":
        return "Flatten", (), {}, c
    if kind == "dropout":
        return "Dropout", (0.0,), {}, c
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    kw = dict(mode=mode)
    if draw(st.booleans()):
        kw["scale_factor"] = draw(st.sampled_from([1, 2, 3, 1.5, 2.0, 0.5]))
    else:
        kw["size"] = draw(st.one_of(st.integers(1, 9), st.tuples(st.integers(1, 9),
                                                                 st.integers(1, 9))))
    if mode == "bilinear":
        kw["align_corners"] = draw(st.booleans())
    return "Upsample", (), kw, c


FAMILIES = {"conv": conv_case(), "conv_transpose": conv_case(transpose=True),
            "pool": pool_case(), "other": other_case()}
# 1-pixel and empty planes are where edge arithmetic goes wrong: draw them often
side = st.one_of(st.integers(1, 3), st.integers(1, 11), st.integers(1, 11), st.integers(0, 11))


@st.composite
def input_case(draw, channels, linear):
    n = draw(st.sampled_from([0, 1, 1, 2, 3]))
    c = channels if draw(st.integers(0, 9)) else draw(st.integers(1, 7))
    if linear:
        shape = (n, c) if draw(st.integers(0, 9)) else (n, c, 2)
    else:
        h, w = draw(side), draw(side)
        shape = (n, c, h, w) if draw(st.integers(0, 9)) else draw(
            st.sampled_from([(c, h, w), (n, c, h, w, 1), (n, c * h * w)]))
    dtype = draw(st.sampled_from(DTYPES))
    layout = draw(st.sampled_from(["c", "c", "c", "transposed", "strided", "readonly"]))
    train = draw(st.integers(0, 2)) != 0
    return shape, np.dtype(dtype).name, layout, draw(st.integers(0, 2 ** 31)), train


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


def check_documented(e, name):
    assert isinstance(e, DOCUMENTED), f"{name}: undocumented {type(e).__name__}: {e}"
    assert name in str(e) or "Upsample" in str(e) and name == "Upsample", \
        f"{name}: message does not name the layer: {e}"


def directional(m64, x, gy, name, d, extra=()):
    """d . (gradient of sum(gy * layer(x)) w.r.t. `name`), by float64 central differences
    of fastconv's float64 forward (itself checked against torch's in other cases).
    m64: the layer as it was before the forward, in float64; name: "input" or a
    parameter's name; d: a direction shaped like it."""
    x64, gy64 = x.astype(np.float64), gy.astype(np.float64)
    target = x64 if name == "input" else dict(m64.named_parameters())[name].data
    base = target.copy()
    h = 1e-6 * max(1.0, float(np.abs(base).max())) / max(float(np.abs(d).max()), 1e-300)
    vals = []
    for sgn in (1, -1):
        target[...] = base + sgn * h * d
        with fc.no_grad():
            out = m64(x64, *extra)
            out = out[0] if isinstance(out, tuple) else out     # (y, indices)
        # a max-pool window wholly in padding gives -inf whatever x is: it carries no
        # gradient, and -inf * gy would make the sum NaN
        vals.append(float(np.sum(np.where(np.isfinite(out), out, 0) * gy64)))
    target[...] = base
    return (vals[0] - vals[1]) / (2 * h)


def referee(m64, x, gy, grads_fc, grads_t, extra=()):
    """Settle gradient disagreements: {name: True when fastconv's gradient is right}.

    With torch's answer (grads_t), along d = g_fastconv - g_torch, where the two answers
    differ by |d|^2: fastconv is right when the finite difference lies within a tenth
    of that gap from its answer and at least half of it from torch's.  Without one
    (grads_t None: torch could not run), along g_fastconv plus a random direction:
    fastconv is right when the finite difference matches it to 1e-4 relative."""
    verdict = {}
    rng = np.random.default_rng(0)
    for name, gf in grads_fc.items():
        gf = gf.astype(np.float64)
        if grads_t is None:
            d = gf + rng.standard_normal(gf.shape)
            fd = directional(m64, x, gy, name, d, extra)
            scale = np.linalg.norm(gf) * np.linalg.norm(d) + 1e-8 * np.linalg.norm(d)
            verdict[name] = abs(float(np.sum(gf * d)) - fd) <= 1e-4 * scale
            continue
        d = gf - grads_t[name].astype(np.float64)
        gap = float(np.sum(d * d))
        if not gap > 0:             # NaN somewhere: nothing to settle
            verdict[name] = False
            continue
        fd = directional(m64, x, gy, name, d, extra)
        verdict[name] = (abs(float(np.sum(gf * d)) - fd) <= 0.1 * gap
                         and abs(float(np.sum(grads_t[name] * d)) - fd) >= 0.5 * gap)
    return verdict


def empty_max_window(name, x, y):
    """A max-pool output of -inf from a finite input: a window wholly in padding.  Torch
    2.13's backward writes outside its buffer there (heap corruption), so torch's
    gradient is not run and the referee checks fastconv's."""
    return name == "MaxPool2d" and y.size and np.isneginf(y).any() and np.isfinite(x).all()


def unpool_extra(m, x, s):
    """MaxUnpool2d's (indices, output_size) for input x, drawn from the case's seed: mostly
    valid indices (repeats included) for the default or a nearby output size; sometimes
    int32 indices, indices of another shape, or one index outside the output plane."""
    rng = np.random.default_rng(s + 7)
    mode = int(rng.integers(0, 12))
    size = None
    if mode >= 8 and x.ndim in (3, 4):
        size = [(x.shape[-2] - 1) * m.stride[0] - 2 * m.padding[0] + m.kernel_size[0],
                (x.shape[-1] - 1) * m.stride[1] - 2 * m.padding[1] + m.kernel_size[1]]
        size = tuple(int(v + rng.integers(-st_, st_ + 1)) for v, st_ in zip(size, m.stride))
    try:
        oh, ow = m.output_shape((1, 1) + tuple(x.shape[-2:]), size)[2:] \
            if x.ndim in (3, 4) else (1, 1)
    except Exception:           # noqa: BLE001 - the forward reports it
        oh, ow = 1, 1
    plane = max(oh * ow, 1)
    idx = rng.integers(0, plane if rng.integers(0, 2) else min(plane, 3), x.shape)
    if mode == 0:
        idx = idx.astype(np.int32)
    elif mode == 1 and idx.size:
        idx.flat[int(rng.integers(0, idx.size))] = [plane, -1, 2 ** 40][int(rng.integers(0, 3))]
    elif mode == 2:
        idx = idx[..., :-1] if idx.ndim and idx.shape[-1] else idx[None]
    return idx, size


def run_case(layer, inp):
    """One fuzz case: construct, forward, compare with torch, backward, compare."""
    name, args, kw, channels = layer
    shape, dtype, layout, s, train = inp
    cls = getattr(fc.nn, name)
    try:
        m = cls(*args, **kw)
    except Exception as e:      # noqa: BLE001 - any exception is judged here
        check_documented(e, name)
        COUNTS["constructor rejected"] += 1
        return
    dtype = np.dtype(dtype)
    x = make_input(shape, dtype, layout, s)
    x0 = np.array(x, copy=True)
    m.train(train)
    if dtype == np.float64:
        m.double()                  # float64 checks run the whole layer in float64
    before = copy.deepcopy(m)       # the referee's float64 twin, running stats untouched
    extra = unpool_extra(m, x, s) if name == "MaxUnpool2d" else ()
    try:
        y = m(x, *extra)
    except Exception as e:      # noqa: BLE001
        check_documented(e, name)
        assert np.array_equal(x, x0, equal_nan=True), f"{name}: input modified"
        COUNTS["forward rejected"] += 1
        return
    idx = None
    if isinstance(y, tuple):        # MaxPool2d(return_indices=True)
        y, idx = y
        assert idx.dtype == np.int64 and idx.shape == y.shape, f"{name}: indices {idx.dtype}"
    assert x.dtype in (np.float32, np.float64), f"{name} accepted dtype {x.dtype}"
    assert y.dtype == x.dtype, f"{name}: {x.dtype} in, {y.dtype} out"
    inplace = name == "ReLU" and kw.get("inplace")
    if not inplace:
        assert np.array_equal(x, x0, equal_nan=True), f"{name}: input modified"
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
    textra = (torch.from_numpy(extra[0]), extra[1]) if extra else ()
    try:
        yt = t(xt.clone() if inplace else xt, *textra)
    except IndexError:
        # torch 2.13's affine InstanceNorm2d indexes into an empty batch's statistics
        assert name == "InstanceNorm2d" and x0.size == 0 and y.size == 0, \
            f"{name}{args}{kw} on {shape}: torch raised IndexError"
        COUNTS["torch fails on an empty batch (InstanceNorm2d), fastconv returns it empty"] += 1
        return
    except RuntimeError:
        COUNTS["fastconv accepts, torch rejects (documented: 'same' at stride > 1)"] += 1
        assert name == "Conv2d" and kw["padding"] == "same", \
            f"{name}{args}{kw} on {shape}: torch rejects what fastconv accepted"
        return
    if isinstance(yt, tuple):
        yt, it = yt
        # a window wholly in padding has no argmax: -1 here, past the plane in torch
        hole = np.isneginf(y) & np.isfinite(x0).all()
        assert np.array_equal(idx[~hole], it.numpy()[~hole]) and (idx[hole] == -1).all(), \
            f"{name}{args}{kw} on {shape}: indices differ from torch's"
    tol = 1e-4 if dtype == np.float32 else 1e-10
    ref = yt.detach().numpy()
    if name == "PixelUnshuffle" and y.size == 0 and ref.shape == x0.shape != y.shape:
        # torch 2.13 returns an empty input unchanged; fastconv follows the formula
        assert y.shape == m.output_shape(x0.shape), f"{name}: shape {y.shape}"
        COUNTS["torch returns an empty input unchanged (PixelUnshuffle), fastconv verified"] += 1
        return
    assert y.shape == ref.shape, f"{name}: shape {y.shape} vs torch {ref.shape}"
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol, err_msg=f"{name} forward")
    gy = np.random.default_rng(s + 1).standard_normal(y.shape).astype(y.dtype)
    gx = m.backward(gy)
    assert gx.shape == tuple(shape), f"{name}: grad shape {gx.shape}"
    grads_fc = {"input": gx}
    grads_fc.update((n, np.zeros_like(p.data) if p.grad is None else p.grad)
                    for n, p in m.named_parameters())
    if empty_max_window(name, x0, y):
        grads_t = None
    else:
        if yt.numel():
            yt.backward(torch.from_numpy(gy))
        grads_t = {"input": xt.grad.numpy() if xt.grad is not None else np.zeros(shape, dtype)}
        for n, p in t.named_parameters():
            grads_t[n] = np.zeros(p.shape, dtype) if p.grad is None else p.grad.numpy()
    # torch could not run: the referee checks every gradient; else only the ones that differ
    bad = dict(grads_fc) if grads_t is None else {
        n: g for n, g in grads_fc.items()
        if not np.allclose(g, grads_t[n], rtol=tol * 10, atol=tol * 10, equal_nan=True)}
    if not bad:
        COUNTS["matched torch"] += 1
        return
    m64 = before.double()
    m64.train(train)
    verdict = referee(m64, x0, gy, bad, grads_t, extra)
    wrong = [n for n, ok in verdict.items() if not ok]
    assert not wrong, (f"{name}{args}{kw} on {shape} {dtype} {layout}: gradient of {wrong} "
                       + ("differs from torch's and the float64 referee does not confirm "
                          "fastconv's" if grads_t is not None else
                          "fails the float64 referee (torch cannot run this case)"))
    what = ("torch disagrees, fastconv verified" if grads_t is not None else
            "torch crashes (max-pool window wholly in padding), fastconv verified")
    COUNTS[what] += 1
    VERIFIED.append((what, repr((layer, inp)), sorted(bad)))


def record(path, layer, inp):
    if path:
        with open(path, "w") as f:
            f.write(repr((layer, inp)) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=300, help="cases per layer family")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--families", default=",".join(FAMILIES),
                    help=f"comma-separated subset of {', '.join(FAMILIES)}")
    ap.add_argument("--case-file", help="write each case here before running it")
    ap.add_argument("--replay", help="run the one case recorded in this file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.replay:
        with open(args.replay) as f:
            layer, inp = ast.literal_eval(f.read().strip())
        run_case(layer, inp)
        print(f"replayed {args.replay}: " + "; ".join(f"{v} {k}" for k, v in COUNTS.items()))
        return 0

    def family(layer):
        @hseed(args.seed)
        @settings(max_examples=args.examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), print_blob=True)
        @given(st.data())
        def prop(data):
            lay = data.draw(layer)
            inp = data.draw(input_case(lay[3], lay[0] == "Linear"))
            record(args.case_file, lay, inp)
            run_case(lay, inp)
            COUNTS["cases"] += 1
        return prop

    for name in args.families.split(","):
        if name not in FAMILIES:
            ap.error(f"unknown family {name!r}; choose from {', '.join(FAMILIES)}")
        family(FAMILIES[name])()
        print(f"{name}: done", flush=True)
    total = COUNTS.pop("cases")
    print(f"fuzz: {total} cases tried; " + "; ".join(f"{v} {k}" for k, v in COUNTS.items()))
    for what, case, names in VERIFIED:
        print(f"  {what}: gradient of {', '.join(names)} in {case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
