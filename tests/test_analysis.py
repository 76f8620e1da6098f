"""fastconv.analysis against hand-computed cases and against the layers themselves."""
import subprocess
import sys

import numpy as np
import pytest

import fastconv as fc
from fastconv import analysis, models, nn


@pytest.mark.parametrize("args,expected", [
    ((224, 3, 1, 1), 224), ((224, 3, 2, 1), 112), ((224, 7, 2, 3), 112), ((5, 3, 1, 0), 3),
    ((32, 3, 1, 1, 1), 32), ((32, 3, 1, 2, 2), 32), ((32, 3, 1, 4, 4), 32), ((7, 3, 2, 0), 3)])
def test_conv_output_size_hand_cases(args, expected):
    assert analysis.conv_output_size(*args) == expected


def test_conv_transpose_output_size_hand_cases():
    assert analysis.conv_transpose_output_size(14, 4, 2, 1) == 28
    assert analysis.conv_transpose_output_size(14, 3, 2, 1, 1) == 28
    assert analysis.conv_transpose_output_size(7, 3, 1, 0) == 9


def _actual_shapes(model, x):
    """Output shape of every leaf, recorded during a real forward."""
    shapes = {}
    for name, m in model.named_modules():
        if not list(m.children()):
            def hook(inp, _m=m, _f=m.forward, _n=name):
                out = _f(inp)
                shapes[_n] = out.shape
                return out
            m.forward = hook
    model.train()
    model(x)
    return shapes


@pytest.mark.parametrize("make,shape", [
    (models.camera_classifier, (2, 3, 64, 64)), (models.camera_classifier, (1, 3, 40, 24)),
    (lambda: nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding="same"), nn.ReLU(),
                           nn.Conv2d(8, 8, 3, dilation=2, padding=2), nn.MaxPool2d(3, 2, 1, ceil_mode=True),
                           nn.ConvTranspose2d(8, 4, 3, 2, 1, 1), nn.Upsample(scale_factor=1.5),
                           nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 13 * 12, 3)), (2, 3, 31, 29)),
    (lambda: nn.Residual(models.Bottleneck(16, 4)), (2, 16, 9, 9)),
])
def test_summary_shapes_and_params_match_the_layers(make, shape, rng):
    model = make()
    s = analysis.summary(model, shape)
    actual = _actual_shapes(model, rng.standard_normal(shape).astype(np.float32))
    got = {r["name"]: r["output_shape"] for r in s.rows}
    for name, out in actual.items():
        assert got[name] == tuple(out), name
    assert s.total_params == sum(p.data.size for p in model.parameters())
    assert "total parameters" in str(s)


def test_summary_macs_by_hand():
    s = analysis.summary(nn.Conv2d(3, 16, 3), (1, 3, 32, 32))
    assert s.rows[0]["macs"] == 30 * 30 * 16 * 3 * 9
    s = analysis.summary(nn.Conv2d(8, 8, 3, padding=1, groups=8), (2, 8, 10, 10))
    assert s.rows[0]["macs"] == 2 * 10 * 10 * 8 * 1 * 9


def test_receptive_field_of_stacks():
    for L in range(1, 8):
        m = nn.Sequential(*[nn.Conv2d(1, 1, 3) for _ in range(L)])
        assert analysis.receptive_field(m, (1, 1, 40, 40)) == (2 * L + 1, 2 * L + 1)
    m = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3))
    assert analysis.receptive_field(m, (1, 1, 40, 40)) == (11, 11)     # 3 + 2*2 + 2*2
    m = nn.Sequential(nn.Conv2d(1, 1, 3, dilation=2), nn.MaxPool2d(2), nn.Conv2d(1, 1, (3, 5)))
    assert analysis.receptive_field(m, (1, 1, 40, 40)) == (10, 14)     # 5, 6, 6+2*2 / 6+4*2


@pytest.mark.parametrize("layers", [
    [nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3), nn.Conv2d(2, 1, 3)],
    [nn.Conv2d(1, 2, 3, stride=2), nn.Conv2d(2, 1, 3)],
    [nn.Conv2d(1, 2, 3, dilation=2), nn.Conv2d(2, 1, 5)],
    [nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Conv2d(2, 1, 3)],
])
def test_theoretical_rf_equals_support_of_the_backprop_map(layers):
    """The input pixels with a non-zero gradient for the centre output are exactly the
    theoretical receptive field (random weights, no padding)."""
    m = nn.Sequential(*layers)
    rf = analysis.receptive_field(m, (1, 1, 41, 41))
    erf = analysis.effective_receptive_field(m, (1, 1, 41, 41), samples=2)
    rows, cols = np.nonzero(erf > 0)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == rf
    assert erf.max() == 1.0


def test_effective_rf_is_gaussian_like_and_smaller_than_theory():
    m = nn.Sequential(*[nn.Conv2d(2, 2, 3, padding=1) for _ in range(8)])
    erf = analysis.effective_receptive_field(m, (1, 2, 41, 41), samples=4, reinit=True)
    spread = analysis.erf_spread(erf)
    assert abs(spread["center"][0] - 20) < 1 and abs(spread["center"][1] - 20) < 1
    assert spread["radius"] < 8             # theoretical half-width is 8
    with pytest.raises(ValueError):
        analysis.erf_spread(np.zeros((3, 3)))


def test_checkerboard_transposed_vs_smooth_upsample():
    fc.manual_seed(0)
    convt = analysis.checkerboard(nn.ConvTranspose2d(4, 4, 3, 2, 1, 1), 4)
    smooth = analysis.checkerboard(models.SmoothUpsample(4, 4), 4)
    assert convt["variation"] > 0.1
    assert smooth["variation"] < 1e-5
    assert convt["phase_means"].shape == (2, 2)


def test_summary_errors():
    with pytest.raises(ValueError, match="MaxPool2d: output height would be 0"):
        analysis.summary(models.camera_classifier(), (1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"expected an input shape \(N, C, H, W\)"):
        analysis.summary(models.camera_classifier(), (3, 64, 64))
    with pytest.raises(TypeError):
        analysis.summary(object(), (1, 3, 8, 8))


def _run_cli(*args):
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(fc.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "fastconv", *args], capture_output=True,
                          text=True, cwd=os.path.dirname(os.path.abspath(__file__)), env=env)


def test_summary_command_line():
    r = _run_cli("summary", "--image-size", "64", "--width", "1", "--pool", "avg")
    assert r.returncode == 0, r.stderr
    assert "1,146,818" in r.stdout and "receptive field" in r.stdout
    r = _run_cli("summary", "--image-size", "2")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "error" in r.stderr


def test_summary_traces_plain_forward_graphs():
    """ResNet-18 (residual branches): every layer call is a row, the receptive field
    follows the longest path (435 px at the last 3x3 conv, the published figure), the
    parameter total counts each parameter once."""
    m = fc.models.resnet18(num_classes=10)
    s = analysis.summary(m, (1, 3, 224, 224))
    rows = {r["name"]: r for r in s.rows}
    assert rows["layer4.1.conv2"]["rf"] == (435, 435) and rows["layer4.1.conv2"]["jump"] == (32, 32)
    assert rows["layer4.1.relu (call 2)"]["output_shape"] == (1, 512, 7, 7)
    assert s.total_params == sum(p.data.size for p in m.parameters()) == 11181642
    assert s.rows[-1]["output_shape"] == (1, 10)


def test_summary_of_a_unet_follows_the_skips():
    u = fc.models.unet(3, 2, width=8, depth=2)
    s = analysis.summary(u, (1, 3, 32, 32))
    assert s.rows[-1]["output_shape"] == (1, 2, 32, 32)
    rf = {r["name"]: r["rf"] for r in s.rows}
    # the decoder's first conv sees the concatenation: its field is the deeper path's
    assert rf["dec.0.0"] > rf["down.1.5"]
    assert s.total_params == sum(p.data.size for p in u.parameters())


def test_receptive_field_through_a_squeeze_excitation_gate():
    """A broadcast gate (N, C, 1, 1) times a map is a per-position op on the map: the
    field and jump continue from the map, not from the globally pooled gate (whose
    jump would blow up every later layer's growth)."""
    from fastconv import nn, ops

    class SE(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Conv2d(4, 4, 1)
            self.out = nn.Conv2d(4, 4, 3, stride=2, padding=1)
            self.last = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            h = self.stem(x)
            h = ops.mul(h, nn.Sigmoid()(self.fc(self.pool(h))))
            return self.last(self.out(h))

    rows = {r["name"]: r for r in analysis.summary(SE(), (1, 3, 32, 32)).rows}
    assert rows["out"]["rf"] == (5, 5) and rows["out"]["jump"] == (2, 2)
    assert rows["last"]["rf"] == (9, 9)
