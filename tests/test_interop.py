"""fastconv -> torch model conversion keeps structure, keys and outputs."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import models
from fastconv.interop import to_torch
from helpers import assert_close, torch_or_skip


def _assert_same_outputs(m, t, rng):
    """fastconv module m and torch module t (both in eval mode) agree on a batch."""
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    with fc.no_grad():
        y = m(x)
    with torch.no_grad():
        assert_close(y, t(torch.from_numpy(x)).numpy(), 1e-4)


def test_to_torch_camera_classifier_same_outputs(rng):
    torch_or_skip()
    m = models.camera_classifier()
    m.eval()
    t = to_torch(m)
    assert list(t.state_dict()) == list(m.state_dict())
    assert not t.training
    _assert_same_outputs(m, t, rng)


@pytest.mark.parametrize("width, pool", [(0.5, "max"), (0.25, "avg")])
def test_camera_classifier_width_and_pool(width, pool, rng):
    """The variants keep the article's layers and keys, with scaled channels, and match
    torch forward and backward (training mode: batch statistics)."""
    torch = torch_or_skip()
    m = models.camera_classifier(width=width, pool=pool)
    assert list(m.state_dict()) == list(models.camera_classifier().state_dict())
    assert [m[i].conv.out_channels for i in (0, 3, 6)] == [round(64 * width),
                                                          round(128 * width),
                                                          round(256 * width)]
    assert type(m[8]).__name__ == ("AdaptiveMaxPool2d" if pool == "max" else "AdaptiveAvgPool2d")
    t = to_torch(m)
    x = rng.standard_normal((3, 3, 24, 24)).astype(np.float32)
    g = rng.standard_normal((3, 2)).astype(np.float32)
    y = m(x)
    dx = m.backward(g)
    xt = torch.from_numpy(x).requires_grad_()
    yt = t(xt)
    yt.backward(torch.from_numpy(g))
    assert_close(y, yt.detach().numpy(), 1e-4)
    assert_close(dx, xt.grad.numpy(), 1e-4)
    tp = dict(t.named_parameters())
    for name, p in m.named_parameters():
        assert_close(p.grad, tp[name].grad.numpy(), 1e-3)
    for bad in (dict(width=0), dict(width=True), dict(pool="sum")):
        with pytest.raises(ValueError, match="camera_classifier"):
            models.camera_classifier(**bad)


def test_to_torch_blocks(rng):
    torch = torch_or_skip()
    for m, shape in [(fc.nn.Residual(models.Bottleneck(16, 4)), (1, 16, 5, 5)),
                     (models.DepthwiseSeparableConv(4, 6), (1, 4, 6, 6)),
                     (models.SmoothUpsample(3, 2), (1, 3, 4, 4)),
                     (fc.nn.Sequential(fc.nn.ConvTranspose2d(2, 3, 3, 2, 1, 1), fc.nn.AvgPool2d(2),
                                       fc.nn.Upsample(size=5)), (1, 2, 4, 4))]:
        t = to_torch(m)
        x = rng.standard_normal(shape).astype(np.float32)
        assert_close(m(x), t(torch.from_numpy(x)).detach().numpy(), 1e-4)


def test_npz_roundtrip_is_exact(tmp_path, rng):
    a, b = models.camera_classifier(), models.camera_classifier()
    a[0].bn.running_mean[...] = rng.standard_normal(64)
    path = tmp_path / "m.npz"
    fc.save_state_dict(a, path)
    fc.load_state_dict(b, path)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(va, vb, err_msg=k)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]      # no temporary left


def test_export_to_torch_file_runs_identically(tmp_path, rng):
    torch = torch_or_skip()
    m = models.camera_classifier()
    m.eval()
    path = tmp_path / "m.pt"
    fc.export_torch(m, path)
    t = to_torch(models.camera_classifier())           # different init ...
    t.load_state_dict(torch.load(path))                # ... replaced by the file
    t.eval()
    _assert_same_outputs(m, t, rng)


def test_import_from_torch_file_runs_identically(tmp_path, rng):
    torch = torch_or_skip()
    t = to_torch(models.camera_classifier())
    with torch.no_grad():                               # torch-side training changed weights
        for p in t.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    t.eval()
    path = tmp_path / "t.pt"
    torch.save(t.state_dict(), path)
    m = models.camera_classifier()
    fc.import_torch(m, path)
    m.eval()
    _assert_same_outputs(m, t, rng)
    torch.save(t, tmp_path / "whole.pt")                # a pickled module: only when trusted
    with pytest.raises(ValueError, match=r"torch.save\(model.state_dict\(\), path\)"):
        fc.import_torch(models.camera_classifier(), tmp_path / "whole.pt")
    m2 = models.camera_classifier()
    fc.import_torch(m2, tmp_path / "whole.pt", trusted=True)
    m2.eval()
    _assert_same_outputs(m2, t, rng)


def test_torch_missing_gives_a_clear_error(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install torch==2.13.0"):
        fc.export_torch(models.camera_classifier(), "x.pt")
