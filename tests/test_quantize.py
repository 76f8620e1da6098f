"""int8 post-training quantisation: the _quant kernels against a NumPy integer reference
(exact), on every ISA path (a child interpreter per FASTCONV_ISA), bitwise equal across
paths and thread counts; quantised models against their float models; the errors."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv as fc
from fastconv._kernels import _cpu
from fastconv._kernels import _quant as Q
from fastconv.models import camera_classifier, mobilenet_v2, resnet18


# ------------------------------------------------------------------ NumPy reference

def ref_epilogue(acc, comp, mult, bias, lo, hi, u8):
    """qgemm.h's epilogue in NumPy float32, the same operations in the same order."""
    v = (acc + comp).astype(np.float32) * mult
    v = v + bias
    v = np.where(v > np.float32(lo), v, np.float32(lo))
    v = np.where(v < np.float32(hi), v, np.float32(hi))
    return np.rint(v).astype(np.uint8) if u8 else v.astype(np.float32)


def ref_conv_acc(x, w, stride, pad, dil, out_hw, zp, depthwise=False):
    """int64 sums of a convolution on u8 NHWC x, w (KH, KW, C, Cout) (depthwise:
    (KH, KW, C)), padding filled with zp."""
    n, h, wd, c = x.shape
    kh, kw = w.shape[:2]
    (sh, sw), (ph, pw), (dh, dw), (oh, ow) = stride, pad, dil, out_hw
    big = np.full((n, ph + h + sh * oh + dh * kh, pw + wd + sw * ow + dw * kw, c), zp, np.int64)
    big[:, ph:ph + h, pw:pw + wd] = x
    acc = 0
    for i in range(kh):
        for j in range(kw):
            patch = big[:, i * dh:i * dh + sh * oh:sh, j * dw:j * dw + sw * ow:sw][:, :oh, :ow]
            if depthwise:
                acc = acc + patch * w[i, j].astype(np.int64)
            else:
                acc = acc + np.einsum("nhwc,co->nhwo", patch, w[i, j].astype(np.int64))
    return acc


def random_case(rng, depthwise=False):
    """A random convolution geometry and operands (odd channel counts, tails, strides,
    padding, dilation, the 1x1 direct path)."""
    while True:
        n, c = int(rng.integers(1, 3)), int(rng.integers(1, 40))
        co = c if depthwise else int(rng.integers(1, 70))
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        sh, sw = (int(v) for v in rng.integers(1, 3, 2))
        ph, pw = (int(v) for v in rng.integers(0, 2, 2))
        dh, dw = (int(v) for v in rng.integers(1, 3, 2))
        if not depthwise and rng.random() < 0.3:           # the direct 1x1 path
            kh = kw = sh = sw = dh = dw = 1
            ph = pw = 0
            c = 4 * int(rng.integers(1, 10))
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if oh >= 1 and ow >= 1:
            break
    x = rng.integers(0, 256, (n, h, w, c)).astype(np.uint8)
    wt = rng.integers(-128, 128, (kh, kw, c) if depthwise else (kh, kw, c, co)).astype(np.int8)
    zp = int(rng.integers(0, 256))
    colsum = wt.astype(np.int64).reshape(-1, co).sum(0)
    comp = (-zp * colsum).astype(np.int32)
    mult = (rng.random(co) * 1e-3).astype(np.float32)
    bias = (rng.standard_normal(co) * 10 + 100).astype(np.float32)
    u8 = bool(rng.random() < 0.5)
    lo, hi = (float(rng.integers(0, 60)), 255.0) if u8 else (-1e30, 1e30)
    if not u8 and rng.random() < 0.5:
        lo, hi = 0.0, 200.0
    return dict(x=x, w=wt, stride=(sh, sw), pad=(ph, pw), dil=(dh, dw), out=(oh, ow), zp=zp,
                comp=comp, mult=mult, bias=bias, lo=lo, hi=hi, u8=u8, co=co)


def run_case(k, depthwise=False, n_threads=2):
    """The kernel's output for a random_case."""
    n = k["x"].shape[0]
    y = np.zeros((n,) + k["out"] + (k["co"],), np.uint8 if k["u8"] else np.float32)
    args = (*k["w"].shape[:2], *k["stride"], *k["pad"], *k["dil"], *k["out"], k["zp"],
            k["comp"], k["mult"], k["bias"], k["lo"], k["hi"])
    kw = {"y8": y} if k["u8"] else {"yf": y}
    if depthwise:
        Q.dwconv(k["x"], np.ascontiguousarray(k["w"].reshape(-1, k["co"])), *args,
                 n_threads=n_threads, **kw)
    else:
        packed = Q.pack_weights(np.ascontiguousarray(k["w"].reshape(-1, k["co"])))
        Q.conv(k["x"], packed, k["co"], *args, n_threads=n_threads, **kw)
    return y


def ref_case(k, depthwise=False):
    acc = ref_conv_acc(k["x"], k["w"], k["stride"], k["pad"], k["dil"], k["out"], k["zp"],
                       depthwise)
    return ref_epilogue(acc, k["comp"], k["mult"], k["bias"], k["lo"], k["hi"], k["u8"])


def check_kernels(seed, cases=60):
    """Every random case bit-exact against the reference; -> a digest of all outputs."""
    rng = np.random.default_rng(seed)
    h = hashlib.sha256()
    for i in range(cases):
        dw = i % 4 == 3
        k = random_case(rng, depthwise=dw)
        y, r = run_case(k, dw), ref_case(k, dw)
        assert y.dtype == r.dtype and y.shape == r.shape
        assert np.array_equal(y.view(np.uint8), r.view(np.uint8)), (i, dw, k["x"].shape,
                                                                    k["w"].shape, k["stride"])
        h.update(y.tobytes())
    return h.hexdigest()


def small_model(seed=0):
    """A narrow camera classifier with non-trivial BatchNorm statistics, eval mode."""
    fc.manual_seed(seed)
    m = camera_classifier(width=0.25)
    randomise_bn(m, seed)
    return m.eval()


def randomise_bn(m, seed):
    rng = np.random.default_rng(seed)
    for mod in m.modules():
        if isinstance(mod, fc.nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean[...] = rng.standard_normal(c) * 0.1
            mod.running_var[...] = rng.random(c) + 0.5
            mod.weight.data[...] = rng.random(c) + 0.5
            mod.bias.data[...] = rng.standard_normal(c) * 0.1


def batches(shape, n=3, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def save_small_quantized(path):
    """The small model quantised with every layer in int8, saved (the calibration runs
    the float model, whose bits differ between ISA paths: a saved model fixes the
    activation parameters, so the int8 forward can be compared bit for bit)."""
    qm = fc.quantize(small_model(), batches((4, 3, 32, 32)), float_layers=())
    qm.save(path)


def model_digest(path):
    """The saved quantised model's output bytes for fixed inputs, hashed."""
    qm, _ = fc.quantization.load_quantized(path, camera_classifier(width=0.25))
    assert all(p == "int8" for _, k, p in qm.precisions() if k != "flatten")
    return hashlib.sha256(qm(batches((3, 3, 32, 32), 1, seed=7)[0]).tobytes()).hexdigest()


# ------------------------------------------------------------------ kernels

def test_conv_and_depthwise_match_integer_reference_exactly():
    check_kernels(0, cases=120)


def test_pack_layout_pads_k_and_columns_with_zeros():
    name, mr, nr = Q.kernel_info()
    w = np.arange(1, 7 * 5 + 1, dtype=np.int8).reshape(7, 5)     # K=7, Cout=5
    p = Q.pack_weights(w)
    assert p.size == 8 * nr                                      # K rounded to 8, nr cols
    quads = p.reshape(2, nr, 4)                                  # (K/4, columns, 4)
    assert np.array_equal(quads[0, :5], w[:4].T)
    assert np.array_equal(quads[1, :5, :3], w[4:7].T)
    assert not quads[1, :, 3].any() and not quads[:, 5:].any()


def test_pooling_add_and_conversions_match_reference():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (2, 9, 11, 5)).astype(np.uint8)
    # max pool 3x3 stride 2 padding 1: padding never wins
    y = np.empty((2, 5, 6, 5), np.uint8)
    Q.max_pool(x, y, 3, 3, 2, 2, 1, 1, 1, 1, 2)
    big = np.zeros((2, 11, 13, 5), np.int64)
    big[:, 1:10, 1:12] = x
    ref = np.max([big[:, i:i + 10:2, j:j + 12:2] for i in range(3) for j in range(3)], axis=0)
    assert np.array_equal(y, ref)
    g = np.empty((2, 5), np.float32)
    Q.global_avg_pool(x, g, np.float32(0.5), 7)
    k = np.float32(0.5) / np.float32(99)
    assert np.array_equal(g, ((x.astype(np.int64).sum((1, 2)) - 7 * 99).astype(np.float32) * k))
    a, b = x.reshape(-1), rng.integers(0, 256, x.size).astype(np.uint8)
    out = np.empty_like(a)
    Q.add(a, b, out, np.float32(0.7), 3, np.float32(1.3), 200, np.float32(10), np.float32(10), 2)
    v = (a.astype(np.int32) - 3).astype(np.float32) * np.float32(0.7)
    v = v + (b.astype(np.int32) - 200).astype(np.float32) * np.float32(1.3)
    v = v + np.float32(10)
    assert np.array_equal(out, np.rint(np.clip(v, 10, 255)).astype(np.uint8))
    f = rng.standard_normal((2, 3, 4, 5)).astype(np.float32) * 3
    q = np.empty((2, 4, 5, 3), np.uint8)
    Q.quantize_nchw(f, q, np.float32(20.0), np.float32(128), 2)
    want = np.rint(np.clip(f * np.float32(20) + np.float32(128), 0, 255)).astype(np.uint8)
    assert np.array_equal(q, want.transpose(0, 2, 3, 1))
    q5 = np.empty((2, 4, 5, 5), np.uint8)                  # channels padded with zp
    Q.quantize_nchw(f, q5, np.float32(20.0), np.float32(128), 2)
    assert np.array_equal(q5[..., :3], q) and (q5[..., 3:] == 128).all()
    back = np.empty_like(f)
    Q.dequantize_nhwc(q, back, np.float32(0.05), 128, 2)
    assert np.array_equal(back, (want.astype(np.int32) - 128).astype(np.float32) * np.float32(0.05))


def test_prepared_conv_rejects_mismatched_arrays():
    # a layer's QConv checks every call's arrays against what it was built for: a wrong
    # shape raises instead of writing past the output
    rng = np.random.default_rng(2)
    w = rng.integers(-127, 128, (9 * 8, 16)).astype(np.int8)
    packed = Q.pack_weights(w)
    comp, mult = np.zeros(16, np.int32), np.ones(16, np.float32)
    k = Q.QConv(packed, False, 8, 16, 3, 3, 1, 1, 1, 1, 0, comp, mult, mult, 0.0, 255.0)
    x = np.zeros((1, 5, 5, 8), np.uint8)
    k.run_u8(x, np.empty((1, 5, 5, 16), np.uint8), 1, 1)
    with pytest.raises(ValueError, match="channels"):
        k.run_u8(np.zeros((1, 5, 5, 4), np.uint8), np.empty((1, 5, 5, 16), np.uint8), 1, 1)
    with pytest.raises(ValueError, match="channels"):
        k.run_u8(x, np.empty((1, 5, 5, 8), np.uint8), 1, 1)
    with pytest.raises(ValueError, match="batch"):
        k.run_f32(x, np.empty((2, 5, 5, 16), np.float32), 1, 1)
    with pytest.raises(ValueError, match="do not fit"):
        Q.QConv(packed[:-1], False, 8, 16, 3, 3, 1, 1, 1, 1, 0, comp, mult, mult, 0, 255)
    with pytest.raises(ValueError, match="one value per output channel"):
        Q.QConv(packed, False, 8, 16, 3, 3, 1, 1, 1, 1, 0, comp[:8], mult, mult, 0, 255)
    with pytest.raises(ValueError, match="output is 5 x 5"):
        Q.conv(x, packed, 16, 3, 3, 1, 1, 1, 1, 1, 1, 5, 5, 0, comp, mult, mult, 0, 255,
               y8=np.empty((1, 4, 5, 16), np.uint8))


def test_vectorised_rows_match_reference_at_every_width():
    # rows longer than the kernels' 256-pixel chunk and wider than a vector, halves
    # (round to even), NaN and infinities: the vector loops agree with the scalar rule
    rng = np.random.default_rng(11)
    f = (rng.standard_normal((1, 3, 2, 300)) * 4).astype(np.float32)
    f[0, 0, 0, :40] = np.arange(40, dtype=np.float32) / 2 - 2      # k + 0.5 exactly
    f[0, 1, 0, :4] = [np.nan, np.inf, -np.inf, 1e30]
    q = np.empty((1, 2, 300, 4), np.uint8)
    Q.quantize_nchw(f, q, np.float32(1.0), np.float32(3.0), 1)
    with np.errstate(invalid="ignore"):
        v = np.nan_to_num(f + np.float32(3.0), nan=0.0)
        want = np.rint(np.clip(v, 0, 255)).astype(np.uint8)
    assert np.array_equal(q[..., :3], want.transpose(0, 2, 3, 1))
    assert (q[..., 3] == 3).all()
    assert q[0, 0, 1, 0] == 2 and q[0, 0, 3, 0] == 2 and q[0, 0, 5, 0] == 4   # 1.5, 2.5, 3.5
    x = rng.integers(0, 256, (2, 13, 40, 37)).astype(np.uint8)
    for k, s, p, d in [(2, 2, 0, 1), (3, 1, 1, 2), (3, 2, 1, 1)]:
        oh = (13 + 2 * p - d * (k - 1) - 1) // s + 1
        ow = (40 + 2 * p - d * (k - 1) - 1) // s + 1
        y = np.empty((2, oh, ow, 37), np.uint8)
        Q.max_pool(x, y, k, k, s, s, p, p, d, d, 2)
        big = np.zeros((2, 13 + 2 * p, 40 + 2 * p, 37), np.int64)
        big[:, p:p + 13, p:p + 40] = x
        ref = np.max([big[:, i * d:i * d + s * (oh - 1) + 1:s, j * d:j * d + s * (ow - 1) + 1:s]
                      for i in range(k) for j in range(k)], axis=0)
        assert np.array_equal(y, ref), (k, s, p, d)


def test_kernels_bitwise_equal_across_thread_counts():
    rng = np.random.default_rng(5)
    for _ in range(10):
        k = random_case(rng)
        k["x"] = np.repeat(k["x"], 3, axis=0)        # enough work for several tiles
        assert np.array_equal(run_case(k, n_threads=1).view(np.uint8),
                              run_case(k, n_threads=2).view(np.uint8))


def _paths():
    """FASTCONV_ISA values this CPU can run, with the int8 kernel each one picks."""
    feats = set(_cpu.features())
    out = ["generic"]
    if "avx2" in feats:
        out.append("avx2")
    if "avx512bw" in feats:
        out.append("avx512f")                        # AVX-512 without VNNI
    if "avx512_vnni" in feats or "avx512vnni" in feats:
        out.append("avx512")
    return out


EXPECTED_KERNEL = {"generic": "generic", "avx2": "avx2", "avx512f": "avx512bw",
                   "avx512": "avx512_vnni"}


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512f", "avx512"])
def test_every_isa_path_exact_and_same_bits(isa, tmp_path):
    """A fresh interpreter per FASTCONV_ISA (the dispatch table is filled once per
    process): the kernels exact against the reference there, and the kernels' and a
    quantised model's output bits the same as in this process."""
    if isa not in _paths():
        pytest.skip(f"CPU lacks the {isa} path")
    here = os.path.dirname(os.path.abspath(__file__))
    path = str(tmp_path / "q.npz")
    save_small_quantized(path)
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from fastconv._kernels import _quant as Q\n"
            "import test_quantize as t\n"
            "print(Q.kernel_info()[0], t.check_kernels(11, 40), t.model_digest(%r))\n"
            % (here, path))
    import fastconv
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = dict(os.environ, FASTCONV_ISA=isa,
               PYTHONPATH=os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120, cwd=here)
    assert r.returncode == 0, r.stderr
    name, kdigest, mdigest = r.stdout.split()
    assert name == EXPECTED_KERNEL[isa]
    assert kdigest == check_kernels(11, 40)
    assert mdigest == model_digest(path)


# ------------------------------------------------------------------ models

def _sqnr(f, q):
    return 20 * np.log10(np.linalg.norm(f) / max(np.linalg.norm(q - f), 1e-30))


@pytest.mark.parametrize("name", ["camera", "resnet18", "mobilenet_v2", "unet"])
def test_quantized_model_close_to_float(name):
    """Every convolution int8 (the head float; the U-Net's upsampling and
    concatenations in float between int8 convolutions): the output within 25 dB SQNR
    of the float model's (about 5% relative error)."""
    fc.manual_seed(0)
    m = {"camera": lambda: camera_classifier(width=0.5), "resnet18": lambda: resnet18(10),
         "mobilenet_v2": lambda: mobilenet_v2(10, 0.35),
         "unet": lambda: fc.models.unet(3, 2, width=8)}[name]()    # upsampling, cat: float
    randomise_bn(m, 0)
    m.eval()
    cal = batches((8, 3, 32, 32), 2)
    qm = fc.quantize(m, cal)
    prec = dict((n, p) for n, _, p in qm.precisions())
    convs = [n for n, mod in m.named_modules() if isinstance(mod, fc.nn.Conv2d)]
    assert all(prec[c] == "int8" for c in convs[:-1] if c in prec)      # [-1]: a head
    x = batches((16, 3, 32, 32), 1, seed=9)[0]
    with fc.no_grad():
        f = m(x)
    q = qm(x)
    assert q.dtype == np.float32 and q.shape == f.shape
    assert _sqnr(f, q) > 25, _sqnr(f, q)


def test_model_bitwise_equal_across_threads_and_after_save_load(tmp_path):
    m = small_model()
    qm = fc.quantize(m, batches((4, 3, 32, 32)), report=True)
    x = batches((5, 3, 32, 32), 1, seed=3)[0]
    prev = fc.get_num_threads()
    try:
        fc.set_num_threads(1)
        y1 = qm(x)
        fc.set_num_threads(2)
        y2 = qm(x)
    finally:
        fc.set_num_threads(prev)
    assert np.array_equal(y1, y2)
    path = str(tmp_path / "q.npz")
    qm.save(path, metadata={"classes": ["a", "b"]})
    assert fc.quantization.is_quantized_file(path)
    qm2, meta = fc.quantization.load_quantized(path, camera_classifier(width=0.25))
    assert meta == {"classes": ["a", "b"]}
    assert np.array_equal(qm2(x), y2)
    rows = qm.report.rows
    assert [r[0] for r in rows] == [s.name for s in qm.steps] and "SQNR" in str(qm.report)


def test_layer_without_int8_kernel_falls_back_to_float():
    fc.manual_seed(0)
    m = fc.nn.Sequential(fc.nn.Conv2d(3, 8, 3, padding=1), fc.nn.ReLU(),
                         fc.nn.AvgPool2d(2), fc.nn.Conv2d(8, 8, 3, padding=1, groups=2),
                         fc.nn.Conv2d(8, 4, 1)).eval()
    cal = batches((4, 3, 16, 16), 2)
    qm = fc.quantize(m, cal, float_layers=())
    assert qm.precisions() == [("0", "conv", "int8"), ("2", "module", "float32"),
                               ("3", "conv", "float32"), ("4", "conv", "int8")]
    with fc.no_grad():
        f = m(cal[0])
    assert _sqnr(f, qm(cal[0])) > 25


def test_observers():
    from fastconv.quantization import MinMaxObserver, PercentileObserver, qparams
    x = np.concatenate([np.linspace(0, 1, 100000), [50.0]]).astype(np.float32)
    mm, pc = MinMaxObserver(), PercentileObserver(percentile=99.9)
    mm.observe(x)
    pc.observe(x)
    assert mm.range() == (0.0, 50.0)
    assert 0.9 < pc.range()[1] < 1.01            # the outlier is clipped
    s, z = qparams(-1.0, 3.0)
    assert z == 64 and abs(float(s) - 4 / 255) < 1e-7
    assert qparams(0.0, 6.0)[1] == 0


# ------------------------------------------------------------------ errors

def test_errors_name_the_layer():
    m = small_model()
    m.train()
    with pytest.raises(RuntimeError, match="training mode"):
        fc.quantize(m, batches((2, 3, 32, 32)))
    m.eval()
    m[3].train()
    with pytest.raises(RuntimeError, match="'3'"):
        fc.quantize(m, batches((2, 3, 32, 32)))
    m.eval()
    with pytest.raises(ValueError, match="no calibration batches"):
        fc.quantize(m, [])
    with pytest.raises(TypeError, match=r"'0\.conv'.*int64"):
        fc.quantize(m, [np.zeros((2, 3, 32, 32), np.int64)])
    qm = fc.quantize(m, batches((2, 3, 32, 32)))
    with pytest.raises(TypeError, match=r"'0\.conv'.*uint8"):
        qm(np.zeros((1, 3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"'0\.conv'"):
        qm(np.zeros((1, 4, 32, 32), np.float32))


# ------------------------------------------------------------------ command line

def test_cli_quantize_then_predict(tmp_path, capsys):
    """train a tiny checkpoint, quantize it, predict with both: the same decisions on
    the samples, p(person) within 0.05, and the int8 file's metadata is the checkpoint's."""
    pytest.importorskip("PIL")
    from fastconv.__main__ import main
    out = tmp_path / "run"
    assert main(["train", "--synthetic-size", "64", "--image-size", "16", "--epochs", "1",
                 "--batch-size", "16", "--out", str(out), "--no-progress"]) == 0
    ck = str(out / "checkpoint.npz")
    q8 = str(tmp_path / "q8.npz")
    assert main(["quantize", ck, "--calibration", "32", "-o", q8, "--report",
                 "--validate"]) == 0
    o = capsys.readouterr().out
    assert "SQNR" in o and "validation accuracy" in o and "wrote" in o
    from fastconv.quantization.model import read_metadata
    from fastconv.train import load_checkpoint
    assert read_metadata(q8)["classes"] == load_checkpoint(ck)[0]["classes"]
    outs = []
    for path in (ck, q8):
        assert main(["predict", path, str(out / "samples"), "--threshold", "0.5"]) == 0
        outs.append(sorted(capsys.readouterr().out.strip().splitlines()))
    assert len(outs[0]) == len(outs[1]) > 0
    for a, b in zip(*outs):
        pa, pb = float(a.split("p(person) ")[1].split()[0]), float(b.split("p(person) ")[1].split()[0])
        assert abs(pa - pb) < 0.05, (a, b)
    assert main(["quantize", str(tmp_path / "missing.npz")]) == 2


def test_summary_shows_each_layers_precision():
    from fastconv import analysis
    m = small_model()
    qm = fc.quantize(m, batches((2, 3, 32, 32)))
    s = analysis.summary(qm, (1, 3, 32, 32))
    prec = {r["name"]: r["precision"] for r in s.rows}
    assert prec["0.conv"] == prec["0.bn"] == prec["0.relu"] == prec["2"] == "int8"
    assert prec["10"] == "float32"                      # the head, kept in float
    assert "precision" in str(s).splitlines()[1]
    assert "precision" not in str(analysis.summary(m, (1, 3, 32, 32)))


def test_other_input_sizes_than_calibration():
    """Calibrated at 32x32, run at 48x40 and 17x23: the geometry follows the input."""
    m = small_model()
    qm = fc.quantize(m, batches((4, 3, 32, 32)))
    for shape in ((2, 3, 48, 40), (1, 3, 17, 23)):
        x = batches(shape, 1, seed=4)[0]
        with fc.no_grad():
            f = m(x)
        q = qm(x)
        assert q.shape == f.shape and _sqnr(f, q) > 25, (shape, _sqnr(f, q))
