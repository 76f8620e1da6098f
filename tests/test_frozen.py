"""fastconv.freeze: the frozen program against the model's own eval forward (and torch's,
when installed), across models, graphs, batch and input sizes, thread counts, non-finite
inputs; the snapshot semantics and the errors."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import nn, ops
from fastconv.models import (camera_classifier, mobilenet_v2, mobilenet_v3_small, resnet18,
                             unet)

from helpers import assert_close, at_thread_counts


def _randomise_bn(model, seed=1):
    """Running statistics and affine parameters away from their defaults, so a wrong
    fold shows."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = rng.standard_normal(m.running_mean.shape) * 0.2
            m.running_var[...] = rng.uniform(0.5, 2.0, m.running_var.shape)
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.weight.data.shape)
            m.bias.data[...] = rng.standard_normal(m.bias.data.shape) * 0.1
    return model.eval()


def _eval(model, x):
    with fc.no_grad():
        return np.array(model(x))


MODELS = {
    "camera": lambda: camera_classifier(),
    "resnet18": lambda: resnet18(num_classes=3),
    "mobilenet_v2": lambda: mobilenet_v2(num_classes=3, width_mult=0.5),
    "mobilenet_v3_small": lambda: mobilenet_v3_small(num_classes=3),
    "unet": lambda: unet(),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_match_their_eval_forward(name):
    model = _randomise_bn(MODELS[name]())
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    frozen = fc.freeze(model, (3, 32, 32))
    y = frozen(x)
    ref = _eval(model, x)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    assert_close(y, ref, rtol=2e-5, what=name)
    # one frame, and a batch size the trace did not see
    assert_close(frozen(x[:1]), ref[:1], rtol=2e-5, what=f"{name} N=1")
    x5 = np.concatenate([x, x, x[:1]])
    assert_close(frozen(x5), _eval(model, x5), rtol=2e-5, what=f"{name} N=5")


def test_steps_fold_batchnorm_and_fuse_activations():
    frozen = fc.freeze(_randomise_bn(mobilenet_v2(num_classes=2, width_mult=0.5)), (3, 32, 32))
    kinds = [k for _, k in frozen.steps]
    assert "conv+bn+relu6" in kinds and "conv+bn" in kinds and "add" in kinds
    assert not any(k.startswith("bn") or k == "relu6" for k in kinds)
    frozen = fc.freeze(_randomise_bn(resnet18(num_classes=2)), (3, 32, 32))
    assert "add+relu" in [k for _, k in frozen.steps]


def test_matches_torch():
    torch = pytest.importorskip("torch")
    model = _randomise_bn(resnet18(num_classes=3))
    x = np.random.default_rng(3).standard_normal((1, 3, 40, 40)).astype(np.float32)
    tm = fc.to_torch(model, x.shape).eval()
    with torch.no_grad():
        ref = tm(torch.from_numpy(x)).numpy()
    assert_close(fc.freeze(model, (3, 40, 40))(x), ref, rtol=1e-4, what="resnet18 vs torch")


def test_same_bits_at_every_thread_count():
    model = _randomise_bn(mobilenet_v2(num_classes=3, width_mult=0.5))
    frozen = fc.freeze(model, (3, 48, 48))
    x = np.random.default_rng(1).standard_normal((1, 3, 48, 48)).astype(np.float32)
    outs = at_thread_counts(lambda: frozen(x))
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_other_spatial_size_and_unbatched_input():
    model = _randomise_bn(resnet18(num_classes=3))
    frozen = fc.freeze(model, (3, 32, 32))
    x = np.random.default_rng(2).standard_normal((3, 56, 48)).astype(np.float32)
    y = frozen(x)                                   # (C, H, W): torch's unbatched form
    assert y.shape == (3,)
    assert_close(y, _eval(model, x[None])[0], rtol=2e-5, what="unbatched 56x48")


def test_non_finite_inputs_as_the_eval_forward():
    # Winograd layers fall back to a direct kernel on NaN / Inf input, as the eval path
    model = _randomise_bn(camera_classifier())
    x = np.random.default_rng(4).standard_normal((2, 3, 64, 64)).astype(np.float32)
    x[0, 1, 10, 10], x[1, 0, 30:33, 5] = np.nan, np.inf
    y, ref = fc.freeze(model, (3, 64, 64))(x), _eval(model, x)
    assert_close(y, ref, rtol=2e-5, what="non-finite input")
    assert np.isnan(y[0]).any() and np.array_equal(np.isnan(y), np.isnan(ref))


def test_non_contiguous_and_float64_input_cast_to_the_model_dtype():
    model = _randomise_bn(camera_classifier())
    x = np.random.default_rng(5).standard_normal((2, 3, 64, 128)).astype(np.float64)[..., ::2]
    frozen = fc.freeze(model, (3, 64, 64))
    y = frozen(x)
    assert y.dtype == np.float32
    assert_close(y, _eval(model, np.ascontiguousarray(x, np.float32)), rtol=2e-5)


def test_snapshot_later_changes_to_the_model_do_not_reach_it():
    model = _randomise_bn(camera_classifier())
    x = np.random.default_rng(6).standard_normal((1, 3, 64, 64)).astype(np.float32)
    frozen = fc.freeze(model, (3, 64, 64))
    before = frozen(x)
    for p in model.parameters():
        p.data[...] *= 0.5
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] += 1.0
    np.testing.assert_array_equal(frozen(x), before)
    assert not np.allclose(_eval(model, x), before)
    assert_close(fc.freeze(model, (3, 64, 64))(x), _eval(model, x), rtol=2e-5)


class _Graph(nn.Module):
    """Concatenated skips, a squeeze-and-excitation gate, a layer used twice, a split
    (several outputs), max pooling with indices and its unpooling, a constant made in the
    forward, and an explicit-padding convolution."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")
        self.bn = nn.BatchNorm2d(8)
        self.shared = nn.Conv2d(4, 4, 3, padding=1)
        self.fc1 = nn.Conv2d(8, 4, 1)
        self.fc2 = nn.Conv2d(4, 8, 1)
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.act = nn.ReLU()
        self.gate = nn.Sigmoid()
        self.head = nn.Conv2d(16, 5, 1)

    def forward(self, x):
        x = self.act(self.bn(self.stem(x)))
        a, b = ops.split(x, 4, 1)
        a, b = self.shared(a), self.shared(b)           # one layer, two calls
        y = ops.cat([a, b], 1)
        g = self.gate(self.fc2(self.act(self.fc1(self.gap(y)))))
        y = ops.mul(y, g)                                # broadcast gate
        p, idx = self.pool(y)
        u = self.unpool(p, idx)
        y = ops.cat([u, x], 1)
        y = ops.mul(y, fc.Tensor(np.full((1, 16, 1, 1), 0.5, np.float32)))
        return self.head(y)


def test_graphs_with_branches_shared_layers_and_several_outputs():
    model = _randomise_bn(_Graph())
    x = np.random.default_rng(7).standard_normal((2, 3, 16, 16)).astype(np.float32)
    frozen = fc.freeze(model, (3, 16, 16))
    assert_close(frozen(x), _eval(model, x), rtol=2e-5, what="graph")
    assert_close(frozen(x[:1]), _eval(model, x[:1]), rtol=2e-5, what="graph N=1")


def test_errors():
    model = camera_classifier()
    with pytest.raises(RuntimeError, match="training mode.*eval"):
        fc.freeze(model, (3, 64, 64))
    model.eval()
    with pytest.raises(ValueError, match="input_shape"):
        fc.freeze(model, (3, 0, 64))
    frozen = fc.freeze(model, np.zeros((1, 3, 64, 64), np.float32))
    assert frozen.input_shape == (3, 64, 64)
    with pytest.raises(TypeError, match="float32"):
        frozen(np.zeros((1, 3, 64, 64), np.int32))
    with pytest.raises(ValueError, match=r"expects \(N, 3, H, W\).*got \(1, 4, 64, 64\)"):
        frozen(np.zeros((1, 4, 64, 64), np.float32))
    with pytest.raises(ValueError, match=r"got \(64, 64\)"):
        frozen(np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError):                 # too small for the layers: theirs
        frozen(np.zeros((1, 3, 2, 2), np.float32))
    with pytest.raises(RuntimeError, match="inference only"):
        frozen.train()
    assert frozen.eval() is frozen and frozen.train(False) is frozen
    with pytest.raises(TypeError, match="freeze"):
        fc.freeze(nn.Identity().eval(), (3, 8, 8))
