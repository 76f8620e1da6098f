"""Module mechanics: registration, traversal, modes, state_dict, repr, no_grad."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import models, nn
from helpers import torch_or_skip


def test_parameters_buffers_children_modules():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert [n for n, _ in m.named_buffers()] == ["1.running_mean", "1.running_var",
                                                 "1.num_batches_tracked"]
    assert len(list(m.children())) == 3 and len(list(m.modules())) == 4
    assert isinstance(m[1], nn.BatchNorm2d) and len(m) == 3 and len(m[1:]) == 2
    with pytest.raises(IndexError):
        m[5]


def test_train_eval_propagates():
    m = models.camera_classifier()
    m.eval()
    assert not any(sub.training for sub in m.modules())
    m.train()
    assert all(sub.training for sub in m.modules())


def test_zero_grad():
    m = nn.Linear(3, 2)
    y = m(np.ones((1, 3), np.float32))
    m.backward(np.ones_like(y))
    assert m.weight.grad is not None
    m.zero_grad()
    assert m.weight.grad is None
    m(np.ones((1, 3), np.float32))
    m.backward(np.ones_like(y))
    m.zero_grad(set_to_none=False)
    assert np.all(m.weight.grad == 0)


def test_state_dict_is_a_copy_and_roundtrips():
    a, b = models.camera_classifier(), models.camera_classifier()
    sd = a.state_dict()
    sd["0.conv.weight"][...] = 0
    assert not np.all(a.state_dict()["0.conv.weight"] == 0)
    b.load_state_dict(a.state_dict())
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(va, vb, err_msg=k)
    assert sd["0.bn.num_batches_tracked"].dtype == np.int64


def test_load_state_dict_errors_and_torch_tensors():
    m = nn.Conv2d(2, 3, 3)
    with pytest.raises(ValueError, match="'weight'.*expected \\(3, 2, 3, 3\\)"):
        m.load_state_dict({"weight": np.zeros((3, 2, 2, 2)), "bias": np.zeros(3)})
    with pytest.raises(KeyError, match="missing keys \\['bias'\\]"):
        m.load_state_dict({"weight": np.zeros((3, 2, 3, 3))})
    missing, unexpected = m.load_state_dict({"weight": np.zeros((3, 2, 3, 3)), "x": 1},
                                            strict=False)
    assert missing == ["bias"] and unexpected == ["x"]
    assert np.all(m.weight.data == 0)
    torch = torch_or_skip()
    t = torch.nn.Conv2d(2, 3, 3)
    m.load_state_dict(t.state_dict())
    np.testing.assert_array_equal(m.weight.data, t.weight.detach().numpy())


def test_failed_load_changes_nothing():
    m = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Linear(4, 2))
    before = m.state_dict()
    bad = {k: np.zeros_like(v) for k, v in before.items()}
    bad["1.weight"] = np.zeros((9, 9))
    with pytest.raises(ValueError):
        m.load_state_dict(bad)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_repr_matches_torch():
    torch = torch_or_skip()
    pairs = [(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False),
              torch.nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False)),
             (nn.Conv2d(4, 4, (3, 5), dilation=2, groups=4, padding="same", padding_mode="reflect"),
              torch.nn.Conv2d(4, 4, (3, 5), dilation=2, groups=4, padding="same",
                              padding_mode="reflect")),
             (nn.ConvTranspose2d(4, 2, 3, 2, 1, 1), torch.nn.ConvTranspose2d(4, 2, 3, 2, 1, 1)),
             (nn.MaxPool2d(2), torch.nn.MaxPool2d(2)), (nn.AvgPool2d(3, 1, 1), torch.nn.AvgPool2d(3, 1, 1)),
             (nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1)),
             (nn.BatchNorm2d(8), torch.nn.BatchNorm2d(8)),
             (nn.BatchNorm2d(4, affine=False), torch.nn.BatchNorm2d(4, affine=False)),
             (nn.BatchNorm2d(4, bias=False), torch.nn.BatchNorm2d(4, bias=False)), (nn.ReLU(True), torch.nn.ReLU(True)),
             (nn.Linear(3, 2), torch.nn.Linear(3, 2)), (nn.Flatten(), torch.nn.Flatten()),
             (nn.Dropout(0.2), torch.nn.Dropout(0.2)), (nn.Identity(), torch.nn.Identity()),
             (nn.Upsample(scale_factor=2, mode="bilinear"), torch.nn.Upsample(scale_factor=2, mode="bilinear")),
             (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()),
              torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU()))]
    for f, t in pairs:
        assert repr(f) == repr(t)


def test_backward_errors():
    m = nn.Conv2d(1, 1, 3)
    with pytest.raises(RuntimeError, match="Conv2d.backward called before any forward"):
        m.backward(np.ones((1, 1, 1, 1), np.float32))
    with fc.no_grad():
        y = m(np.ones((1, 1, 5, 5), np.float32))
    assert fc.is_grad_enabled()
    with pytest.raises(RuntimeError, match="no_grad"):
        m.backward(np.ones_like(y))
    y = m(np.ones((1, 1, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"gradient shape \(1, 1, 2, 2\) does not match the last "
                                         r"output's shape \(1, 1, 3, 3\)"):
        m.backward(np.ones((1, 1, 2, 2), np.float32))
    m.backward(np.ones_like(y))                 # releases the saved activations
    with pytest.raises(RuntimeError, match="released by an earlier backward"):
        m.backward(np.ones_like(y))
    seq = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="Sequential.backward called before any forward"):
        seq.backward(np.ones((1, 2)))


def test_no_grad_keeps_no_activations():
    m = models.camera_classifier()
    with fc.no_grad():
        m(np.zeros((2, 3, 16, 16), np.float32))
    for sub in m.modules():
        assert not isinstance(sub._ctx, tuple)


def test_manual_seed_reproduces_init():
    fc.manual_seed(5)
    a = models.camera_classifier().state_dict()
    fc.manual_seed(5)
    b = models.camera_classifier().state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_default_init_bounds_follow_torch():
    m = nn.Conv2d(8, 4, 3)
    bound = 1 / np.sqrt(8 * 9)
    assert np.abs(m.weight.data).max() <= bound and np.abs(m.weight.data).max() > 0.9 * bound
    t = nn.ConvTranspose2d(4, 6, 3, groups=2)
    assert np.abs(t.weight.data).max() <= 1 / np.sqrt(3 * 9)
    assert m.weight.dtype == np.float32


@pytest.mark.parametrize("make", [lambda: fc.nn.Conv2d(3, 4, 3, padding=1),
                                  lambda: fc.nn.ConvTranspose2d(3, 2, 2, stride=2),
                                  lambda: fc.nn.MaxPool2d(2), lambda: fc.nn.AvgPool2d(3, 1, 1),
                                  lambda: fc.nn.AdaptiveAvgPool2d(2)])
def test_unbatched_input_like_torch(make, rng):
    """(C, H, W) inputs, as torch accepts them: same outputs and gradients as a batch
    of one, explicit and on the tape."""
    torch = pytest.importorskip("torch")
    m = make()
    x = rng.standard_normal((3, 6, 6)).astype(np.float32)
    y = m(x)
    t = fc.interop.to_torch(m)
    tx = torch.tensor(x, requires_grad=True)
    ty = t(tx)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = m.backward(gy)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-5, atol=1e-5)
    xt = fc.Tensor(x, requires_grad=True)
    yt = m(xt)
    assert yt.shape == y.shape
    yt.backward(gy)
    np.testing.assert_allclose(xt.grad, gx, rtol=1e-6, atol=1e-6)
