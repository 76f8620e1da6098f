"""bf16 mixed precision (fastconv.autocast): the GEMM's rounding and sums, every conv
path and Linear against float64 references of the rounded operands, the Winograd
error bound, every ISA path giving the same bits, thread-count determinism, and the
context's semantics.  No torch needed.

A bf16 product of float32 operands is exact, and the kernels sum in float32: so a bf16
GEMM/convolution equals the float64 result on bf16-rounded operands up to float32
summation error (about 1e-6 relative here), which is the bound tested for every direct
algorithm.  Winograd F(2x2) rounds its transformed tiles instead, so it is held to its
stated bound against the exact float64 convolution."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv as fc
from fastconv._conv_plan import Algorithm, ConvGeometry, accepts, choose_algorithm
from fastconv._kernels import _gemm
from fastconv.functional import conv as FC

import reference as ref
from helpers import assert_close, at_thread_counts

RNG = np.random.default_rng(20261130)


def bf16(a):
    """float32 -> bf16 -> float64: round to nearest even, subnormals to zero, as the
    kernels' packing does."""
    a = np.asarray(a, np.float32)
    u = a.reshape(-1).view(np.uint32).astype(np.uint64)     # 1-d: old NumPy's scalar casts
    r = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    r = np.where((u & 0x7F800000) == 0, u & 0x80000000, r).astype(np.uint32)
    return r.view(np.float32).astype(np.float64).reshape(a.shape)


def rms_rel(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - b) ** 2) / np.mean(b ** 2)))


# ------------------------------------------------------------------ the GEMM

@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (7, 33, 5), (13, 100, 257), (40, 64, 1),
                                   (64, 97, 300), (9, 200, 513), (130, 50, 64)])
def test_matmul_equals_exact_product_of_rounded_operands(M, N, K):
    a = RNG.standard_normal((M, K)).astype(np.float32)
    b = RNG.standard_normal((K, N)).astype(np.float32)
    c = np.zeros((M, N), np.float32)
    _gemm.matmul(a, b, c, n_threads=2, bf16=True)
    exact = bf16(a) @ bf16(b)
    assert_close(c, exact, rtol=2e-6, what="bf16 matmul")
    # and it is not the float32 product: the rounding really happened
    if K >= 5:
        assert np.abs(c - a.astype(np.float64) @ b).max() > 1e-4 * np.abs(exact).max()


def test_matmul_strided_and_transposed_operands_and_beta():
    a = RNG.standard_normal((70, 90)).astype(np.float32)
    b = RNG.standard_normal((60, 70)).astype(np.float32)
    c0 = RNG.standard_normal((90, 60)).astype(np.float32)
    c = c0.copy()
    _gemm.matmul(a.T, b.T, c, alpha=1.0, beta=1.0, n_threads=2, bf16=True)
    assert_close(c, c0 + bf16(a.T) @ bf16(b.T), rtol=2e-6, what="a.T @ b.T + c")
    A = a[::2, ::3][:, :30]                           # (35, 30), strides (2*90, 3)
    B = b[:60:2, ::2][:30]                            # (30, 35), strides (2*70, 2)
    c = np.zeros((35, 35), np.float32)
    _gemm.matmul(A, B, c, n_threads=2, bf16=True)
    assert_close(c, bf16(A) @ bf16(B), rtol=2e-6, what="strided operands")


def test_matmul_rounding_is_nearest_even_and_keeps_special_values():
    one = np.float32(1)
    tie_down = np.float32(1 + 2.0 ** -8)          # halfway 1 and 1 + 2^-7: even is 1
    tie_up = np.float32(1 + 3 * 2.0 ** -8)        # halfway 1 + 2^-7 and 1 + 2^-6: 1 + 2^-6
    above = np.float32(1 + 2.0 ** -8 + 2.0 ** -20)  # just above halfway: up
    tiny = np.float32(1e-39)                      # subnormal: read as zero
    vals = np.array([[tie_down, tie_up, above, tiny, np.inf, -np.inf, np.nan, 3e38]],
                    np.float32)
    c = np.zeros((8, 1), np.float32)
    _gemm.matmul(vals.T.copy(), np.array([[one]], np.float32), c, bf16=True)
    got = c[:, 0]
    assert got[0] == 1.0 and got[1] == 1 + 2.0 ** -6 and got[2] == 1 + 2.0 ** -7
    assert got[3] == 0.0
    assert got[4] == np.inf and got[5] == -np.inf and np.isnan(got[6])
    assert got[7] == np.float32(bf16(np.float32(3e38)))
    # a packed GEMM (large enough to pack) rounds the same way
    a = np.full((16, 64), tie_up, np.float32)
    b = np.zeros((64, 64), np.float32)
    b[0] = 1
    c = np.zeros((16, 64), np.float32)
    _gemm.matmul(a, b, c, bf16=True)
    assert np.all(c == 1 + 2.0 ** -6)


def test_matmul_bits_do_not_depend_on_threads():
    a = RNG.standard_normal((150, 700)).astype(np.float32)
    b = RNG.standard_normal((700, 333)).astype(np.float32)

    def run():
        c = np.zeros((150, 333), np.float32)
        _gemm.matmul(a, b, c, n_threads=fc.get_num_threads(), bf16=True)
        return c
    outs = at_thread_counts(run)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_matmul_bf16_refuses_float64():
    a = np.ones((4, 4))
    with pytest.raises(TypeError, match="float32"):
        _gemm.matmul(a, a, np.zeros((4, 4)), bf16=True)


# ------------------------------------------------------------------ convolutions

CONFIGS = [
    # (N, C, H, W, M, k, stride, pads, dilation, groups)
    (2, 5, 11, 13, 7, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (2, 8, 9, 9, 16, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1),
    (3, 6, 10, 12, 9, 3, (1, 1), (2, 2, 2, 2), (2, 2), 1),
    (2, 8, 7, 7, 12, 3, (1, 2), (0, 1, 1, 0), (1, 1), 2),
    (2, 16, 6, 6, 24, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (1, 3, 17, 15, 16, 5, (2, 1), (2, 2, 2, 2), (1, 1), 1),
    (4, 16, 4, 4, 16, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (2, 12, 14, 14, 20, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4),
]


def _direct_algorithms(g):
    return [a for a in (Algorithm.GATHER, Algorithm.PADDED) if accepts(a, g)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "x".join(map(str, c[:6])))
def test_conv_bf16_equals_rounded_operands_reference(cfg):
    """Forward, d input, d weight, d bias of every direct algorithm under autocast equal
    the float64 results on bf16-rounded operands (float32-sum error only)."""
    N, C, H, W, M, k, s, p, d, G = cfg
    x = RNG.standard_normal((N, C, H, W)).astype(np.float32)
    w = (RNG.standard_normal((M, C // G, k, k)) * 0.3).astype(np.float32)
    b = RNG.standard_normal(M).astype(np.float32)
    g = ConvGeometry.of(x.shape, w.shape, s, p, d, G, np.float32, True)
    gy = RNG.standard_normal((N, M, g.OH, g.OW)).astype(np.float32)
    y_ref = ref.conv2d(bf16(x), bf16(w), b, s, p, d, G)
    gx_ref, _, gb_ref = ref.conv2d_backward(bf16(x), bf16(w), bf16(gy), s, p, d, G)
    _, gw_ref, _ = ref.conv2d_backward(bf16(x), bf16(w), bf16(gy), s, p, d, G)
    for algo in _direct_algorithms(g):
        with fc.autocast("bf16"):
            y, ctx = FC.conv2d(x, w, b, s, p, d, G, algorithm=algo)
        gx, gw, gb = FC.conv2d_backward(ctx, gy)        # outside: recorded precision
        assert ctx.conv.geom.bf16
        assert_close(y, y_ref, rtol=1e-5, what=f"{algo} y")
        assert_close(gx, gx_ref, rtol=1e-5, what=f"{algo} dx")
        assert_close(gw, gw_ref, rtol=1e-5, what=f"{algo} dw")
        assert_close(gb, gy.astype(np.float64).sum((0, 2, 3)), rtol=1e-5, what="db (float32)")


def test_conv_transpose_bf16_equals_rounded_operands_reference():
    x = RNG.standard_normal((2, 6, 5, 7)).astype(np.float32)
    w = (RNG.standard_normal((6, 4, 4, 4)) * 0.3).astype(np.float32)
    for stride, pad in (((2, 2), (1, 1)), ((1, 1), (1, 1))):
        with fc.autocast("bf16"):
            y, ctx = FC.conv_transpose2d(x, w, None, stride, pad)
        assert_close(y, ref.conv_transpose2d(bf16(x), bf16(w), None, stride, pad), rtol=1e-5,
                     what=f"conv_transpose2d stride {stride}")
        gy = RNG.standard_normal(y.shape).astype(np.float32)
        gx, gw, _ = FC.conv_transpose2d_backward(ctx, gy)
        # d x of a transposed conv is the conv of gy with the same weights
        pads = (pad[0], pad[0] + (gy.shape[2] - ((x.shape[2] - 1) * stride[0] - 2 * pad[0] + 4)),
                pad[1], pad[1] + (gy.shape[3] - ((x.shape[3] - 1) * stride[1] - 2 * pad[1] + 4)))
        assert_close(gx, ref.conv2d(bf16(gy), bf16(w), None, stride, pads), rtol=1e-5,
                     what="conv_transpose2d dx")
        assert np.abs(gw).max() > 0


def test_winograd_under_bf16_f2_within_bound_f4_float32():
    """F(2x2) in bf16: within 2x the direct bf16 convolution's rms error against the exact
    float64 result (the bound stated in _conv_plan.accepts).  F(4x4) would amplify the
    rounding about tenfold, so under autocast it keeps float32 products: the same bits
    as without autocast."""
    x = np.maximum(RNG.standard_normal((4, 64, 20, 20)), 0).astype(np.float32)
    w = (RNG.standard_normal((32, 64, 3, 3)) / 24).astype(np.float32)
    exact = ref.conv2d(x, w, None, (1, 1), (1, 1, 1, 1))
    errs = {}
    for algo in (Algorithm.WINOGRAD2, Algorithm.GATHER):
        with fc.autocast("bf16"):
            y, ctx = FC.conv2d(x, w, None, (1, 1), (1, 1, 1, 1), algorithm=algo)
        errs[algo] = rms_rel(y, exact)
    assert errs[Algorithm.GATHER] > 1e-3            # bf16 really rounds
    assert errs[Algorithm.WINOGRAD2] <= 2 * errs[Algorithm.GATHER]
    with fc.autocast("bf16"):
        y4, _ = FC.conv2d(x, w, None, (1, 1), (1, 1, 1, 1), algorithm="winograd4")
    y4_32, _ = FC.conv2d(x, w, None, (1, 1), (1, 1, 1, 1), algorithm="winograd4")
    assert np.array_equal(y4, y4_32) and rms_rel(y4, exact) < 1e-5
    # the planner picks the same algorithms with and without bf16
    g = ConvGeometry(8, 64, 64, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, bf16=True)
    assert choose_algorithm(g) is choose_algorithm(g._replace(bf16=False)) is Algorithm.WINOGRAD4


def test_winograd2_bf16_backward_within_bound():
    x = np.maximum(RNG.standard_normal((4, 32, 16, 16)), 0).astype(np.float32)
    w = (RNG.standard_normal((32, 32, 3, 3)) / 17).astype(np.float32)
    gy = RNG.standard_normal((4, 32, 16, 16)).astype(np.float32)
    gx_ref, gw_ref, _ = ref.conv2d_backward(x, w, gy, (1, 1), (1, 1, 1, 1))
    with fc.autocast("bf16"):
        _, ctx = FC.conv2d(x, w, None, (1, 1), (1, 1, 1, 1), algorithm="winograd2")
    gx, gw, _ = FC.conv2d_backward(ctx, gy)
    assert rms_rel(gx, gx_ref) < 8e-3 and rms_rel(gw, gw_ref) < 8e-3


def test_depthwise_stays_float32_under_autocast():
    m = fc.nn.Conv2d(8, 8, 3, padding=1, groups=8)
    x = RNG.standard_normal((2, 8, 9, 9)).astype(np.float32)
    y32 = m(x)
    with fc.autocast("bf16"):
        y16 = m(x)
    assert np.array_equal(y32, y16)


def test_float64_layers_ignore_autocast():
    m = fc.nn.Conv2d(4, 6, 3).double()
    x = RNG.standard_normal((2, 4, 7, 7))
    y = m(x)
    with fc.autocast("bf16"):
        assert np.array_equal(m(x), y)


def test_linear_bf16_forward_and_backward():
    lin = fc.nn.Linear(37, 11)
    x = RNG.standard_normal((9, 37)).astype(np.float32)
    gy = RNG.standard_normal((9, 11)).astype(np.float32)
    W, b = lin.weight.data, lin.bias.data
    with fc.autocast("bf16"):
        y = lin(x)
    gx = lin.backward(gy)
    assert_close(y, bf16(x) @ bf16(W).T + b, rtol=1e-5, what="linear y")
    assert_close(gx, bf16(gy) @ bf16(W), rtol=1e-5, what="linear dx")
    assert_close(lin.weight.grad, bf16(gy).T @ bf16(x), rtol=1e-5, what="linear dw")
    assert_close(lin.bias.grad, gy.astype(np.float64).sum(0), rtol=1e-5, what="linear db")


# ------------------------------------------------------------------ determinism, ISA paths

def _camera_step_digest():
    fc.manual_seed(0)
    m = fc.models.camera_classifier(width=0.25)
    crit = fc.nn.CrossEntropyLoss()
    # 24x24: every 3x3 layer runs Winograd F(2x2) or a GEMM in bf16 (F(4x4), on larger
    # planes, keeps float32 products, whose last bits may differ between ISA paths)
    x = np.random.default_rng(1).standard_normal((6, 3, 24, 24)).astype(np.float32)
    with fc.autocast("bf16"):
        loss = crit(m(x), np.arange(6) % 2)
    m.backward(crit.backward())
    h = hashlib.sha256(np.float64(loss).tobytes())
    for _, p in sorted(m.named_parameters()):
        h.update(p.grad.tobytes())
    return h.hexdigest()


def test_bf16_training_step_bits_do_not_depend_on_threads():
    outs = at_thread_counts(_camera_step_digest)
    assert len(set(outs)) == 1


def test_every_isa_path_gives_the_same_bf16_bits():
    """FASTCONV_ISA forces the emulated kernels (avx512f: AVX-512 without AVX512_BF16,
    avx2, generic); vdpbf16ps's order of additions is followed exactly, so a bf16
    training step's gradients are bit for bit the same on every path."""
    import fastconv
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    here = os.path.dirname(os.path.abspath(__file__))
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from fastconv._kernels import _gemm\n"
            "import test_bf16 as t\n"
            "print(_gemm.bf16_kernel_name(), t._camera_step_digest())\n" % here)
    seen = {}
    for isa in ("native", "avx512f", "avx2", "generic"):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([pkg_root, here,
                                                           os.environ.get("PYTHONPATH", "")]))
        env.pop("FASTCONV_ISA", None)
        if isa != "native":
            env["FASTCONV_ISA"] = isa
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=120, cwd=here)
        assert r.returncode == 0, r.stderr
        kernel, digest = r.stdout.split()
        seen[kernel] = digest
    assert len(set(seen.values())) == 1, seen
    assert any("generic" in k for k in seen)


# ------------------------------------------------------------------ the context

def test_autocast_context_semantics():
    assert fc.autocast_dtype() is None
    with fc.autocast("bfloat16"):
        assert fc.autocast_dtype() == "bf16"
        with fc.autocast("bf16", enabled=False):
            assert fc.autocast_dtype() is None
        assert fc.autocast_dtype() == "bf16"
    assert fc.autocast_dtype() is None
    for bad in ("float16", np.float16, "fp8", None):
        with pytest.raises(ValueError, match="autocast: dtype must be 'bf16'"):
            with fc.autocast(bad):
                pass


def test_autocast_on_the_tape_trains():
    """A plain-Python forward on the tape under autocast: loss goes down, gradients
    reach every parameter, and the checkpointed weights stay float32."""
    fc.manual_seed(3)
    m = fc.nn.Sequential(fc.nn.Conv2d(3, 16, 3, padding=1), fc.nn.BatchNorm2d(16),
                         fc.nn.ReLU(), fc.nn.AdaptiveAvgPool2d(1), fc.nn.Flatten(),
                         fc.nn.Linear(16, 2))
    opt = fc.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    crit = fc.nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    y = np.arange(16) % 2
    x = (rng.standard_normal((16, 3, 8, 8)) + y[:, None, None, None] * 0.8).astype(np.float32)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        with fc.autocast("bf16"):
            loss = crit(m(fc.Tensor(x)), y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.data.dtype == np.float32 and p.grad is not None for p in m.parameters())


def test_train_config_precision_checked():
    from fastconv.train import TrainConfig
    TrainConfig(precision="bf16").check(False)
    with pytest.raises(ValueError, match="precision must be 'float32' or 'bf16'"):
        TrainConfig(precision="fp16").check(False)


# ------------------------------------------------------------------ activations kept in bf16

def test_conv_keeps_its_input_in_bf16_with_the_same_weight_gradient(monkeypatch):
    """The bf16 weight-gradient GEMM rounds its input anyway: keeping it as bf16 changes
    no bit of a GEMM path's gradients; Winograd's transforms the rounded input (one more
    rounding, still bf16's error)."""
    from fastconv import _precision
    x = RNG.standard_normal((4, 16, 20, 20)).astype(np.float32)
    gy = RNG.standard_normal((4, 24, 20, 20)).astype(np.float32)
    w = (RNG.standard_normal((24, 16, 3, 3)) * 0.1).astype(np.float32)
    grads = {}
    for kept in (True, False):
        if not kept:
            monkeypatch.setattr(_precision, "SAVE_AT_LEAST", 1 << 62)
        for algo in ("gather", "padded", "winograd2"):
            with fc.autocast("bf16", save_bf16=True):
                _, ctx = FC.conv2d(x, w, None, (1, 1), (1, 1, 1, 1), algorithm=algo)
            saved = ctx.conv.src if algo != "padded" else ctx.conv.padded[0]
            assert isinstance(saved, _precision.Bf16Saved) == kept
            grads[kept, algo] = FC.conv2d_backward(ctx, gy)
    for algo in ("gather", "padded"):
        for a, b in zip(grads[True, algo], grads[False, algo]):
            assert np.array_equal(a, b), algo
    (gx1, gw1, _), (gx0, gw0, _) = grads[True, "winograd2"], grads[False, "winograd2"]
    assert np.array_equal(gx1, gx0)                    # d input never reads the input
    assert rms_rel(gw1, gw0.astype(np.float64)) < 5e-3


def test_batchnorm_relu_keeps_bf16_and_the_mask_exactly():
    from fastconv import _precision
    bn = fc.nn.BatchNorm2d(8)
    x = RNG.standard_normal((4, 8, 16, 16)).astype(np.float32)
    gy = RNG.standard_normal(x.shape).astype(np.float32)
    y32 = bn.forward_relu(x)
    gx32 = bn.backward(gy)
    with fc.autocast("bf16", save_bf16=True):
        y16 = bn.forward_relu(x)
    assert isinstance(bn._ctx.x, _precision.Bf16Saved) and isinstance(bn._ctx.y, _precision.Bf16Saved)
    gx16 = bn.backward(gy)
    assert np.array_equal(y16, y32)                    # the forward itself is float32
    # the gradient's error is bf16's, through x-hat; where the output was zero it is
    # exactly zero-masked in both
    assert rms_rel(gx16, gx32.astype(np.float64)) < 1e-2
    assert np.array_equal(gx16[y32 <= 0] != 0, gx32[y32 <= 0] != 0)


def test_a_shared_bf16_copy_never_misses_an_in_place_write():
    from fastconv import _precision
    a = RNG.standard_normal((64, 128)).astype(np.float32)
    with fc.autocast("bf16", save_bf16=True):
        k1 = _precision.keep(a)
        assert _precision.keep(a) is k1                # the next layer shares it
        a[3, 5] += 1.0                                 # written in place in between
        k2 = _precision.keep(a)
    assert k2 is not k1
    assert np.array_equal(k2.restore(), bf16(a).astype(np.float32))
    assert not np.array_equal(k1.restore(), k2.restore())


def test_keep_only_under_autocast_with_gradients_and_off_the_tape():
    from fastconv import _precision
    a = RNG.standard_normal((64, 128)).astype(np.float32)
    assert _precision.keep(a) is a
    with fc.autocast("bf16"):
        assert _precision.keep(a) is a                     # the default: float32
    with fc.autocast("bf16", save_bf16=True):
        with fc.no_grad():
            assert _precision.keep(a) is a
        with _precision.recording():
            assert _precision.keep(a) is a
        assert _precision.keep(a.astype(np.float64)).dtype == np.float64
        assert isinstance(_precision.keep(a), _precision.Bf16Saved)


def test_bf16_step_keeps_about_half_the_activation_bytes():
    m = fc.models.camera_classifier(width=0.5)
    crit = fc.nn.CrossEntropyLoss()
    x = RNG.standard_normal((8, 3, 48, 48)).astype(np.float32)
    live = {}
    for bf in (False, True):
        fc.empty_cache()
        base = fc.memory_stats()["live_bytes"]
        with fc.autocast("bf16", enabled=bf, save_bf16=True):
            crit(m(x), np.arange(8) % 2)
        live[bf] = fc.memory_stats()["live_bytes"] - base
        m.backward(crit.backward(), input_grad=False)
    assert live[True] <= 0.6 * live[False], live


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(3, 5, 4, 4), (3, 5, 9, 13), (75, 2, 8, 8)])
def test_batchnorm_backward_reads_bf16_planes_like_widened_arrays(relu, shape, monkeypatch):
    """The backward reads the kept bf16 planes directly (planes >= 32 values) or widens
    small ones: bit for bit the float32 backward on the widened arrays (75 planes of 64:
    widened and summed in chunks of the kernel's flush period, 32 planes)."""
    from fastconv import _precision
    from fastconv.functional import norm as FN
    monkeypatch.setattr(_precision, "SAVE_AT_LEAST", 1)
    x = RNG.standard_normal(shape).astype(np.float32)
    gy = RNG.standard_normal(x.shape).astype(np.float32)
    C = shape[1]
    w, b = RNG.standard_normal(C).astype(np.float32), RNG.standard_normal(C).astype(np.float32)
    with fc.autocast("bf16", save_bf16=True):
        _, ctx = FN.batch_norm(x, w, b, 1e-5, relu=relu)
    assert type(ctx.x) is _precision.Bf16Saved
    widened = ctx._replace(x=ctx.x.restore(), y=None if ctx.y is None else ctx.y.restore())
    for got, want in zip(FN.batch_norm_backward(ctx, gy), FN.batch_norm_backward(widened, gy)):
        assert np.array_equal(got, want)


def test_summary_shows_the_precision_each_layer_runs_in():
    from fastconv import analysis
    m = fc.nn.Sequential(fc.nn.Conv2d(3, 16, 3, padding=1), fc.nn.BatchNorm2d(16),
                         fc.nn.Conv2d(16, 16, 3, padding=1, groups=16),
                         fc.nn.Conv2d(16, 32, 3, padding=1), fc.nn.AdaptiveAvgPool2d(1),
                         fc.nn.Flatten(), fc.nn.Linear(32, 2))
    rows = analysis.summary(m, (16, 3, 64, 64), precision="bf16").rows
    got = {r["name"]: r["precision"] for r in rows}
    assert got == {"0": "bf16", "1": "float32", "2": "float32 (depthwise)",
                   "3": "float32 (Winograd F(4x4))", "4": "float32", "5": "float32",
                   "6": "bf16"}
    # on small planes the same 3x3 layer is Winograd F(2x2): bf16
    rows = analysis.summary(m, (2, 3, 12, 12), precision="bf16").rows
    assert rows[3]["precision"] == "bf16"
    assert "precision" in str(analysis.summary(m, (2, 3, 12, 12), precision="bf16"))
    assert "precision" not in analysis.summary(m, (2, 3, 12, 12)).rows[0]
    with pytest.raises(ValueError, match="precision must be"):
        analysis.summary(m, (2, 3, 12, 12), precision="int4")
