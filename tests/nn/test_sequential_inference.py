"""Sequential in eval under no_grad folds Conv2d + BatchNorm2d (+ ReLU) into one
convolution: same values as the layer-by-layer forward, and tracing still sees every
layer."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import analysis, nn


def _net():
    fc.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), nn.BatchNorm2d(8),
                        nn.ReLU6(), nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4))
    rng = np.random.default_rng(0)
    for m in net:
        if isinstance(m, nn.BatchNorm2d):       # non-trivial running statistics
            m.running_mean[:] = rng.standard_normal(m.num_features)
            m.running_var[:] = rng.uniform(0.5, 2.0, m.num_features)
            m.weight.data[:] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data[:] = rng.standard_normal(m.num_features)
    return net.eval()


@pytest.mark.parametrize("tensor", [False, True])
def test_folded_equals_layer_by_layer(tensor, monkeypatch):
    net = _net()
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 9)).astype(np.float32)
    ref = np.asarray(net(x))                        # grad enabled: layer by layer
    calls = []
    monkeypatch.setattr(nn.BatchNorm2d, "forward", lambda self, v: calls.append(1) or v)
    with fc.no_grad():
        y = net(fc.Tensor(x) if tensor else x)
    assert calls == []                              # every BatchNorm was folded
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-5)


def test_training_mode_and_tracing_run_every_layer():
    net = _net()
    x = np.zeros((1, 3, 8, 8), np.float32)
    net.train()
    with fc.no_grad():
        net(x)
    assert net[1].num_batches_tracked == 1          # training: BatchNorm ran
    # a plain-forward model in eval, traced (to_torch): every BatchNorm is in the graph
    torch = pytest.importorskip("torch")
    model = fc.models.mobilenet_v2(num_classes=3, width_mult=0.5).eval()
    t = fc.to_torch(model, example_input=(1, 3, 32, 32))
    called = {n.target for n in t.graph.nodes if n.op == "call_module"}
    bns = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert bns <= called
    xs = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with fc.no_grad():
        y = model(xs)
    with torch.no_grad():
        ty = t(torch.from_numpy(xs)).numpy()
    np.testing.assert_allclose(y, ty, rtol=1e-4, atol=1e-5)


def test_relu6_after_batchnorm_is_folded_and_clamps(monkeypatch):
    fc.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(4, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU6()).eval()
    net[1].weight.data[:] = np.linspace(-8, 8, 16)         # outputs well past 6 and below 0
    x = np.random.default_rng(3).standard_normal((2, 4, 7, 7)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    ref = np.asarray(net(x))                                # grad enabled: layer by layer
    assert (ref == 6).any() and (ref == 0).any() and np.isnan(ref).any()
    calls = []
    monkeypatch.setattr(nn.ReLU6, "forward", lambda self, v: calls.append(1) or v)
    with fc.no_grad():
        y = net(x)
    assert calls == []
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert np.array_equal(np.isnan(y), np.isnan(ref))
