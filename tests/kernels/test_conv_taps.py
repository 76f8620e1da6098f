"""Small planes by border classes (Algorithm.TAPS): one GEMM per class of output pixels
over the taps that land inside the input, and its weight gradient by the same classes.
Against the NumPy reference in float64, bitwise across thread counts, with bias, ReLU,
strides, dilation, asymmetric padding, planes where some pixels see only padding, and
NaN/Inf."""
import numpy as np
import pytest

from fastconv import _conv_plan as plan
from fastconv._conv_plan import Algorithm, ConvGeometry
from fastconv.functional import conv as FC
import reference as R
from helpers import at_thread_counts

CASES = [  # N, C, H, W, M, KH, KW, stride, pads (t, b, l, r), dilation
    (9, 16, 4, 4, 24, 3, 3, 1, (1, 1, 1, 1), 1),       # ResNet's 4x4 stage
    (8, 12, 2, 2, 20, 3, 3, 1, (1, 1, 1, 1), 1),       # 2x2: every pixel a corner
    (10, 8, 4, 4, 50, 3, 3, 2, (1, 1, 1, 1), 1),       # a stage's strided first conv
    (3, 5, 5, 3, 7, 3, 2, 1, (2, 0, 1, 1), 1),         # asymmetric, rectangular
    (4, 6, 6, 6, 9, 3, 3, 1, (2, 2, 2, 2), 2),         # dilated
    (2, 4, 1, 1, 6, 3, 3, 1, (3, 3, 3, 3), 1),         # pixels that see only padding
    (3, 6, 6, 5, 5, 5, 3, 2, (0, 2, 1, 0), 1),         # 5x3 kernel, stride 2
    (5, 7, 3, 3, 61, 1, 1, 1, (1, 1, 1, 1), 1),        # 1x1 with padding: a zero border
]


def run(x, w, b, case, relu=False):
    *_, s, pads, d = case
    return FC.conv2d(x, w, b, (s, s), pads, (d, d), relu=relu, algorithm=Algorithm.TAPS)


@pytest.mark.parametrize("case", CASES)
def test_taps_matches_reference_float64(case):
    N, C, H, W, M, KH, KW, s, pads, d = case
    rng = np.random.default_rng(sum(case[:7]))
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((M, C, KH, KW))
    b = rng.standard_normal(M)
    y, ctx = run(x, w, b, case)
    assert ctx.conv.algorithm is Algorithm.TAPS
    np.testing.assert_allclose(y, R.conv2d(x, w, b, (s, s), pads, (d, d), 1), rtol=1e-11,
                               atol=1e-11)
    yr, _ = run(x, w, b, case, relu=True)
    np.testing.assert_array_equal(yr, np.maximum(y, 0))
    gy = rng.standard_normal(y.shape)
    gx, gw, gb = FC.conv2d_backward(ctx, gy)
    rx, rw, _ = R.conv2d_backward(x, w, gy, (s, s), pads, (d, d), 1)
    np.testing.assert_allclose(gx, rx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, rw, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_taps_same_bits_at_any_thread_count(case):
    N, C, H, W, M, KH, KW, s, pads, d = case
    rng = np.random.default_rng(1 + sum(case[:7]))
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((M, C, KH, KW)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    def step():
        y, ctx = run(x, w, b, case, relu=True)
        return (y, *FC.conv2d_backward(ctx, np.cos(y))[:2])

    outs = at_thread_counts(step)
    for other in outs[1:]:
        for a, b_ in zip(outs[0], other):
            np.testing.assert_array_equal(a, b_)


def test_taps_large_channels_cross_cache_blocks():
    # K = 9 * 300 spans several KC blocks per segment, M several NR panels plus an edge
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 300, 4, 4)).astype(np.float32)
    w = (rng.standard_normal((70, 300, 3, 3)) / 50).astype(np.float32)
    y, _ = FC.conv2d(x, w, None, (1, 1), (1, 1, 1, 1), algorithm=Algorithm.TAPS)
    ref = R.conv2d(x.astype(np.float64), w.astype(np.float64), None, (1, 1), (1, 1, 1, 1),
                   (1, 1), 1)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_taps_non_finite_input_reaches_only_its_outputs(value):
    # a direct convolution: Inf/NaN reach exactly the outputs whose window holds them,
    # and the padding (never multiplied) adds no NaN of its own
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 4, 4, 4))
    x[2, 1, 0, 0] = value
    w = np.abs(rng.standard_normal((5, 4, 3, 3))) + 0.1
    y, _ = FC.conv2d(x, w, None, (1, 1), (1, 1, 1, 1), algorithm=Algorithm.TAPS)
    ref = R.conv2d(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))
    assert np.isfinite(np.delete(y, 2, axis=0)).all()


def test_planner_takes_taps_where_padding_is_a_quarter_of_the_work():
    g = ConvGeometry(32, 256, 4, 4, 256, 3, 3, 1, 1, 1, 1, 1, 1)
    assert plan.in_range_taps(g) == pytest.approx(100 / 144)
    assert plan.choose_algorithm(g) is Algorithm.TAPS
    assert plan.choose_algorithm(g._replace(H=2, W=2, C=512, M=512)) is Algorithm.TAPS
    # one image: each class would be a GEMV over the whole weight; 7x7: 18% padding
    assert plan.choose_algorithm(g._replace(N=1)) is not Algorithm.TAPS
    assert plan.choose_algorithm(g._replace(H=7, W=7)) is not Algorithm.TAPS
    assert not plan.accepts(Algorithm.TAPS, g._replace(groups=2))
    assert not plan.accepts(Algorithm.TAPS, g._replace(bf16=True))
    # its input gradient runs the flipped convolution (by taps again), not col2im; its
    # weight gradient goes by the same classes
    assert plan.input_grad_algorithm(g, Algorithm.TAPS) is plan.InputGrad.FLIPPED
    assert plan.weight_grad_algorithm(g, Algorithm.TAPS) is plan.WeightGrad.TAPS
    assert plan.weight_grad_algorithm(g._replace(N=16), Algorithm.TAPS) is \
        plan.WeightGrad.GATHER


def test_planner_keeps_winograd_off_a_single_frames_late_stages():
    # 512 channels on 7x7 at one image: 16 tiles do not pay for the weights' transform
    g = ConvGeometry(1, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 1)
    assert plan.choose_algorithm(g) not in plan.WINOGRAD
    assert plan.choose_algorithm(g._replace(N=32)) in plan.WINOGRAD


@pytest.mark.parametrize("M, plane", [(200, 2), (77, 3), (512, 1)])
def test_few_column_gemm_row_split_same_bits_at_any_thread_count(M, plane):
    # one image on a tiny plane: the GEMM has a few columns and splits its rows across
    # threads (each packing its own B); bias and ReLU in the epilogue follow the rows
    rng = np.random.default_rng(M)
    x = rng.standard_normal((1, 96, plane, plane)).astype(np.float32)
    w = (rng.standard_normal((M, 96, 3, 3)) / 30).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    outs = at_thread_counts(lambda: FC.conv2d(x, w, b, (1, 1), (1, 1, 1, 1), relu=True,
                                              algorithm=Algorithm.GATHER)[0], (1, 2, 3, 4))
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0], other)
    ref = R.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), (1, 1),
                   (1, 1, 1, 1), (1, 1), 1)
    np.testing.assert_allclose(outs[0], np.maximum(ref, 0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_taps_weight_grad_kernel_matches_reference(case):
    # the planner takes it from 32 images on; the kernel itself is right at any batch
    from fastconv._kernels import _conv
    N, C, H, W, M, KH, KW, s, pads, d = case
    rng = np.random.default_rng(3 + sum(case[:7]))
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((M, C, KH, KW))
    y, _ = run(x, w, None, case)
    gy = rng.standard_normal(y.shape)
    dw2 = np.full((M, C * KH * KW), np.nan)
    _conv.conv_taps_wgrad(x, gy, dw2, KH, KW, s, s, pads[0], pads[2], d, d, 2)
    _, rw, _ = R.conv2d_backward(x, w, gy, (s, s), pads, (d, d), 1)
    np.testing.assert_allclose(dw2.reshape(w.shape), rw, rtol=1e-10, atol=1e-10)
    outs, x32, gy32 = [], x.astype(np.float32), gy.astype(np.float32)
    for nt in (1, 2, 3):
        d32 = np.empty((M, C * KH * KW), np.float32)
        _conv.conv_taps_wgrad(x32, gy32, d32, KH, KW, s, s, pads[0], pads[2], d, d, nt)
        outs.append(d32)
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0], other)


def test_taps_training_step_at_32_images_uses_the_class_weight_grad():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((32, 24, 4, 4)).astype(np.float32)
    w = (rng.standard_normal((40, 24, 3, 3)) / 15).astype(np.float32)
    y, ctx = FC.conv2d(x, w, None, (1, 1), (1, 1, 1, 1))
    assert ctx.conv.algorithm is Algorithm.TAPS
    gy = np.cos(y)
    _, gw, _ = FC.conv2d_backward(ctx, gy)
    _, rw, _ = R.conv2d_backward(x.astype(np.float64), w.astype(np.float64),
                                 gy.astype(np.float64), (1, 1), (1, 1, 1, 1), (1, 1), 1)
    np.testing.assert_allclose(gw, rw, rtol=1e-4, atol=1e-4)
