"""fc.export_onnx: every layer, op and model, run by ONNX Runtime, gives fastconv's eval
output (at the traced batch and at others: the batch is dynamic); what ONNX cannot
express raises TypeError naming it.  Skipped without onnx and onnxruntime."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv as fc
from fastconv import models, nn, ops

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def randomize(m, seed=0):
    """Random weights and running statistics, so that no layer is a near identity."""
    rng = np.random.default_rng(seed)
    for p in m.parameters():
        p.data[...] = rng.standard_normal(p.data.shape).astype(p.data.dtype) * 0.3
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d) and mod.track_running_stats:
            mod.running_mean[...] = rng.standard_normal(mod.num_features) * 0.2
            mod.running_var[...] = rng.uniform(0.5, 2.0, mod.num_features)
    return m.eval()


def round_trip(m, shape, tmp_path, batches=(1, 3), rtol=2e-5):
    path = str(tmp_path / "m.onnx")
    fc.export_onnx(m, path, shape)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for n in batches:
        x = np.random.default_rng(n).standard_normal((n,) + tuple(shape[1:])).astype(np.float32)
        with fc.no_grad():
            y = m(fc.Tensor(x))
        want = [np.asarray(t) for t in (y if isinstance(y, tuple) else (y,))]
        got = sess.run(None, {"input": x})
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.shape == b.shape
            scale = max(1.0, float(np.max(np.abs(b))))
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


class Forward(nn.Module):
    """A plain forward: fn(self, x) with the given layers as children."""

    def __init__(self, fn, **layers):
        super().__init__()
        self.fn = fn
        for k, v in layers.items():
            setattr(self, k, v)

    def forward(self, x):
        return self.fn(self, x)


LAYERS = {
    "conv": (lambda: nn.Conv2d(3, 8, 3, padding=1), (1, 3, 9, 11)),
    "conv_strided_dilated": (lambda: nn.Conv2d(3, 6, 3, stride=2, padding=2, dilation=2),
                             (1, 3, 13, 12)),
    "conv_same_stride2": (lambda: nn.Conv2d(4, 4, 4, stride=2, padding="same", bias=False),
                          (1, 4, 9, 10)),
    "conv_grouped": (lambda: nn.Conv2d(6, 9, 3, groups=3), (1, 6, 8, 8)),
    "conv_depthwise": (lambda: nn.Conv2d(8, 8, 3, padding=1, groups=8), (1, 8, 7, 7)),
    "conv_1x1": (lambda: nn.Conv2d(8, 5, 1), (1, 8, 6, 6)),
    "conv_reflect": (lambda: nn.Conv2d(3, 4, 3, padding=2, padding_mode="reflect"),
                     (1, 3, 8, 9)),
    "conv_replicate": (lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="replicate"),
                       (1, 3, 8, 9)),
    "conv_circular": (lambda: nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode="circular"),
                      (1, 3, 8, 9)),
    "conv_transpose": (lambda: nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1), (1, 4, 5, 6)),
    "conv_transpose_out_pad": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1,
                                                          output_padding=1, groups=2),
                               (1, 4, 5, 5)),
    "linear": (lambda: nn.Linear(7, 4), (1, 7)),
    "linear_3d": (lambda: nn.Linear(5, 3), (1, 4, 5)),
    "batchnorm": (lambda: nn.BatchNorm2d(5), (1, 5, 4, 4)),
    "syncbatchnorm_2d": (lambda: nn.SyncBatchNorm(5), (1, 5)),
    "groupnorm": (lambda: nn.GroupNorm(2, 6), (1, 6, 5, 5)),
    "layernorm": (lambda: nn.LayerNorm([5, 5]), (1, 3, 5, 5)),
    "instancenorm": (lambda: nn.InstanceNorm2d(4, affine=True), (1, 4, 6, 6)),
    "maxpool": (lambda: nn.MaxPool2d(3, 2, padding=1), (1, 3, 9, 9)),
    "maxpool_ceil_dilated": (lambda: nn.MaxPool2d(2, 2, dilation=2, ceil_mode=True),
                             (1, 3, 9, 8)),
    "avgpool": (lambda: nn.AvgPool2d(3, 2, padding=1, count_include_pad=False), (1, 3, 9, 9)),
    "avgpool_ceil": (lambda: nn.AvgPool2d(2, ceil_mode=True), (1, 3, 7, 7)),
    "adaptive_avg_1": (lambda: nn.AdaptiveAvgPool2d(1), (1, 4, 5, 7)),
    "adaptive_avg_2": (lambda: nn.AdaptiveAvgPool2d((2, 3)), (1, 4, 6, 9)),
    "adaptive_max_1": (lambda: nn.AdaptiveMaxPool2d(1), (1, 4, 5, 7)),
    "upsample_nearest": (lambda: nn.Upsample(scale_factor=2), (1, 3, 4, 5)),
    "upsample_bilinear": (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (1, 3, 4, 5)),
    "upsample_bilinear_corners": (lambda: nn.Upsample(size=(7, 9), mode="bilinear",
                                                      align_corners=True), (1, 3, 4, 5)),
    "upsample_fractional": (lambda: nn.Upsample(scale_factor=1.5, mode="bilinear"),
                            (1, 2, 6, 6)),
    "pixel_shuffle": (lambda: nn.PixelShuffle(2), (1, 8, 3, 4)),
    "pixel_unshuffle": (lambda: nn.PixelUnshuffle(2), (1, 2, 6, 4)),
    "flatten": (lambda: nn.Flatten(), (1, 3, 2, 2)),
    "flatten_middle": (lambda: nn.Flatten(2, 3), (1, 3, 2, 4)),
    "zeropad": (lambda: nn.ZeroPad2d((1, 2, 0, 3)), (1, 2, 4, 4)),
    "constantpad": (lambda: nn.ConstantPad2d(1, 0.5), (1, 2, 4, 4)),
    "reflectionpad": (lambda: nn.ReflectionPad2d((2, 1, 1, 2)), (1, 2, 5, 5)),
    "replicationpad": (lambda: nn.ReplicationPad2d(2), (1, 2, 4, 4)),
    "circularpad": (lambda: nn.CircularPad2d((1, 2, 2, 1)), (1, 2, 4, 5)),
    "dropout": (lambda: nn.Sequential(nn.Dropout(0.5), nn.Dropout2d(0.3), nn.Identity()),
                (1, 3, 4, 4)),
    "prelu": (lambda: nn.PReLU(3), (1, 3, 4, 4)),
    "prelu_shared": (lambda: nn.PReLU(), (1, 3, 4, 4)),
}
for act in ("ReLU", "ReLU6", "LeakyReLU", "ELU", "SiLU", "GELU", "Sigmoid", "Tanh",
            "Hardswish", "Hardsigmoid", "Mish"):
    LAYERS[act.lower()] = (lambda a=act: getattr(nn, a)(), (1, 3, 5, 5))
LAYERS["gelu_tanh"] = (lambda: nn.GELU(approximate="tanh"), (1, 3, 5, 5))
LAYERS["leaky_relu_slope"] = (lambda: nn.LeakyReLU(0.2), (1, 3, 5, 5))
LAYERS["elu_alpha"] = (lambda: nn.ELU(0.5), (1, 3, 5, 5))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_round_trip(name, tmp_path):
    make, shape = LAYERS[name]
    m = randomize(make())
    if isinstance(m, nn.InstanceNorm2d):
        m.train()                       # without running statistics: instance statistics
    round_trip(m, shape, tmp_path)


def _ops_forward(self, x):
    a, b = ops.split(x, [2, 4], dim=1)
    c = ops.cat([a * 2.0, b - 1.0, x[:, 1:3] / 4.0], dim=1)
    c = c + self.conv(x)[:, :, 1:-1, ::2].mean(dim=(2, 3), keepdim=True)
    s = ops.stack([c.sum(dim=1), c.mean(dim=1)], dim=1)
    p = ops.pad(s, (1, 1, 2, 0), mode="reflect")
    q = ops.softmax(p, dim=1) + ops.log_softmax(p, dim=-1)
    r = ops.interpolate(q, scale_factor=2, mode="bilinear")
    parts = ops.chunk(r, 2, dim=3)
    return parts[0].permute(0, 2, 3, 1).reshape(x.shape[0], -1)


def test_ops_round_trip(tmp_path):
    m = randomize(Forward(_ops_forward, conv=nn.Conv2d(6, 8, 3)))
    round_trip(m, (1, 6, 8, 10), tmp_path)


def _se_forward(self, x):       # a squeeze-and-excitation gate and two heads
    y = self.conv(x)
    gate = ops.mean(y, dim=(2, 3), keepdim=True)
    y = y * nn.Sigmoid()(gate) + x
    return self.head1(y.flatten(1)), self.head2(y.mean(dim=(2, 3)))


def test_two_outputs_and_a_gate(tmp_path):
    m = randomize(Forward(_se_forward, conv=nn.Conv2d(4, 4, 3, padding=1),
                          head1=nn.Linear(64, 3), head2=nn.Linear(4, 2)))
    round_trip(m, (1, 4, 4, 4), tmp_path)


@pytest.mark.parametrize("name, make, shape", [
    ("camera", lambda: models.camera_classifier(), (1, 3, 64, 64)),
    ("camera_w05_max", lambda: models.camera_classifier(width=0.5, pool="max"), (1, 3, 96, 96)),
    ("resnet18", lambda: models.resnet18(10), (1, 3, 64, 64)),
    ("mobilenet_v2", lambda: models.mobilenet_v2(10, width_mult=0.5), (1, 3, 64, 64)),
    ("mobilenet_v3_small", lambda: models.mobilenet_v3_small(10), (1, 3, 64, 64)),
    ("unet", lambda: models.unet(), (1, 3, 32, 32)),
    ("blocks", lambda: nn.Sequential(models.DepthwiseSeparableConv(8, 16),
                                     models.Bottleneck(16),
                                     models.SmoothUpsample(16, 8)), (1, 8, 8, 8)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_model_round_trip(name, make, shape, tmp_path):
    m = make()
    randomize(m)
    round_trip(m, shape, tmp_path, rtol=1e-4)


def test_model_keeps_its_mode_and_statistics(tmp_path):
    m = randomize(models.camera_classifier())
    before = {k: v.copy() for k, v in m.state_dict().items()}
    fc.export_onnx(m, str(tmp_path / "m.onnx"), (4, 3, 32, 32))
    assert not m.training
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_fixed_batch(tmp_path):
    proto = fc.export_onnx(randomize(nn.Conv2d(2, 2, 1)), str(tmp_path / "m.onnx"),
                           (5, 2, 3, 3), dynamic_batch=False)
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_value == 5


@pytest.mark.parametrize("make, shape, match", [
    (lambda: nn.MaxPool2d(2, return_indices=True), (1, 2, 4, 4), "return_indices"),
    (lambda: nn.AvgPool2d(2, divisor_override=3), (1, 2, 4, 4), "divisor_override"),
    (lambda: nn.AdaptiveAvgPool2d(3), (1, 2, 7, 7), "AdaptiveAvgPool2d"),
    (lambda: nn.BatchNorm2d(2, track_running_stats=False), (1, 2, 3, 3), "BatchNorm2d"),
    (lambda: Forward(lambda self, x: x[0:1] * 2), (1, 2, 3, 3), "batch axis"),
])
def test_what_onnx_cannot_express_is_named(make, shape, match, tmp_path):
    with pytest.raises(TypeError, match=match):
        fc.export_onnx(make(), str(tmp_path / "m.onnx"), shape)
    assert not os.path.exists(tmp_path / "m.onnx")


def test_bad_input_shape(tmp_path):
    with pytest.raises(ValueError, match="input_shape"):
        fc.export_onnx(nn.ReLU(), str(tmp_path / "m.onnx"), (0, 3))


def test_export_command(tmp_path):
    """python -m fastconv export CHECKPOINT OUT.onnx: the trained camera classifier with
    its classes and input normalisation in the file's metadata."""
    from fastconv.train import TrainConfig, train
    cfg = TrainConfig(image_size=32, synthetic_size=40, epochs=1, batch_size=16,
                      out=str(tmp_path)).check()
    train(cfg, progress=False, far_test=False, log=lambda *a: None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fc.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = str(tmp_path / "camera.onnx")
    r = subprocess.run([sys.executable, "-m", "fastconv", "export",
                        str(tmp_path / "checkpoint.npz"), out], env=env, cwd=str(tmp_path),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, r.stdout
    from fastconv.train import load_model, prepare_input
    model, saved = load_model(str(tmp_path / "checkpoint.npz"))
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert json.loads(meta["classes"]) == list(saved["classes"])
    assert json.loads(meta["mean"]) == list(saved["mean"])
    assert json.loads(meta["std"]) == list(saved["std"]) and meta["image_size"] == "32"
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    x = prepare_input(images, saved)
    with fc.no_grad():
        want = np.asarray(model(x))
    got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
