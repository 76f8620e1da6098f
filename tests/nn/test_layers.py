"""ReLU, Dropout, Identity, Flatten, Linear, Upsample, containers, loss."""
import numpy as np
import pytest

import fastconv as fc
from helpers import assert_close, check_vs_torch, directional_check, torch_or_skip


def test_relu_matches_torch_incl_nan(rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    check_vs_torch(fc.nn.ReLU(), torch.nn.ReLU(), x, rtol=0)


def test_relu_inplace_modifies_input_and_backward_works(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    ref = np.maximum(x, 0)
    m = fc.nn.ReLU(inplace=True)
    y = m(x)
    assert y is x and np.array_equal(x, ref)
    assert np.array_equal(m.backward(np.ones_like(x)), (ref > 0).astype(np.float32))
    base = rng.standard_normal((2, 8)).astype(np.float32)
    view = base[:, ::2]
    m(view)
    assert (base[:, ::2] >= 0).all()
    ro = np.ones(3, np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        m(ro)
    np.testing.assert_array_equal(fc.nn.ReLU()(ro), ro)


def test_dropout_statistics_and_backward_mask(rng):
    x = np.ones((64, 64, 8), np.float32)
    m = fc.nn.Dropout(0.3)
    y = m(x)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    assert np.allclose(y[kept], 1 / 0.7)
    g = m.backward(np.ones_like(y))
    np.testing.assert_array_equal(g, y)
    m.eval()
    assert np.array_equal(m(x), x)
    assert np.array_equal(fc.nn.Dropout(1.0)(x), np.zeros_like(x))
    fc.manual_seed(3)
    a = fc.nn.Dropout(0.5)(x)
    fc.manual_seed(3)
    assert np.array_equal(a, fc.nn.Dropout(0.5)(x))


def test_identity_and_flatten(rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    check_vs_torch(fc.nn.Identity(), torch.nn.Identity(), x, rtol=0)
    check_vs_torch(fc.nn.Flatten(), torch.nn.Flatten(), x, rtol=0)
    check_vs_torch(fc.nn.Flatten(0, 2), torch.nn.Flatten(0, 2), x, rtol=0)


@pytest.mark.parametrize("shape,fin,fout,bias", [((1, 7), 7, 3, True), ((5, 16), 16, 33, False),
                                                 ((64, 256), 256, 2, True), ((3, 2, 10), 10, 4, True)])
def test_linear_matches_torch(shape, fin, fout, bias, rng):
    torch = torch_or_skip()
    check_vs_torch(fc.nn.Linear(fin, fout, bias), torch.nn.Linear(fin, fout, bias),
                   rng.standard_normal(shape).astype(np.float32))


def test_linear_finite_differences(rng):
    directional_check(fc.nn.Linear(6, 4), rng.standard_normal((3, 6)))


UPS = [dict(scale_factor=2), dict(scale_factor=3, mode="nearest"), dict(size=(7, 5)),
       dict(size=4), dict(scale_factor=(1.5, 2.5)), dict(scale_factor=0.5),
       dict(scale_factor=2, mode="bilinear", align_corners=False),
       dict(scale_factor=2, mode="bilinear", align_corners=True),
       dict(size=(9, 4), mode="bilinear", align_corners=False),
       dict(size=(9, 4), mode="bilinear", align_corners=True),
       dict(scale_factor=1.7, mode="bilinear"), dict(size=1, mode="bilinear", align_corners=True)]


@pytest.mark.parametrize("kw", UPS, ids=[str(i) for i in range(len(UPS))])
@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (1, 1, 2, 3)])
def test_upsample_matches_torch(kw, shape, rng):
    torch = torch_or_skip()
    check_vs_torch(fc.nn.Upsample(**kw), torch.nn.Upsample(**kw),
                   rng.standard_normal(shape).astype(np.float32), rtol=1e-5)


@pytest.mark.parametrize("i", [0, 2, 6, 9])
def test_upsample_finite_differences(i, rng):
    directional_check(fc.nn.Upsample(**UPS[i]), rng.standard_normal((1, 2, 4, 3)))


def test_sequential_and_residual_match_torch(rng):
    torch = torch_or_skip()
    f = fc.nn.Residual(fc.nn.Sequential(fc.nn.Conv2d(4, 4, 3, padding=1), fc.nn.ReLU()),
                       fc.nn.Conv2d(4, 4, 1))

    class TRes(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU())
            self.shortcut = torch.nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.body(x) + self.shortcut(x)
    check_vs_torch(f, TRes(), rng.standard_normal((2, 4, 6, 6)).astype(np.float32))
    ident = fc.nn.Residual(fc.nn.Conv2d(2, 2, 3, padding=1))
    assert list(ident.state_dict()) == ["body.weight", "body.bias"]
    directional_check(ident, rng.standard_normal((1, 2, 4, 4)))


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.4])
@pytest.mark.parametrize("n,c", [(1, 2), (7, 5), (64, 10)])
def test_cross_entropy_matches_torch(smoothing, n, c, rng):
    torch = torch_or_skip()
    logits = (rng.standard_normal((n, c)) * 4).astype(np.float32)
    target = rng.integers(0, c, n)
    crit = fc.nn.CrossEntropyLoss(label_smoothing=smoothing)
    loss = crit(logits, target)
    tl = torch.tensor(logits, requires_grad=True)
    tloss = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)(tl, torch.from_numpy(target))
    tloss.backward()
    assert isinstance(loss, float)
    assert abs(loss - tloss.item()) <= 1e-5 * max(1, abs(loss))
    assert_close(crit.backward(), tl.grad.numpy(), 1e-5)


def test_cross_entropy_errors():
    crit = fc.nn.CrossEntropyLoss()
    with pytest.raises(RuntimeError, match="before any forward"):
        crit.backward()
    with pytest.raises(ValueError, match=r"target values must be in \[0, 3\)"):
        crit(np.zeros((2, 3), np.float32), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"must be in \[0, 3\)"):
        crit(np.zeros((2, 3), np.float32), np.array([-1, 0]))
    with pytest.raises(TypeError, match="integer class indices"):
        crit(np.zeros((2, 3), np.float32), np.array([0.0, 1.0]))


@pytest.mark.parametrize("make,c", [
    (lambda: fc.nn.Conv2d(3, 16, 3, padding=1), 3), (lambda: fc.nn.Conv2d(16, 16, 3, padding=1), 16),
    (lambda: fc.nn.Conv2d(4, 8, 3, groups=4), 4), (lambda: fc.nn.ConvTranspose2d(3, 4, 3, 2), 3),
    (lambda: fc.nn.MaxPool2d(2), 3), (lambda: fc.nn.AvgPool2d(2), 3), (lambda: fc.nn.BatchNorm2d(3), 3),
    (lambda: fc.nn.AdaptiveAvgPool2d(1), 3), (lambda: fc.nn.Upsample(scale_factor=2, mode="bilinear"), 3),
    (lambda: fc.nn.ReLU(), 3)])
def test_empty_batch_matches_torch(make, c):
    """N = 0: torch's output shape, an empty input gradient, zero parameter gradients."""
    torch = torch_or_skip()
    m = make()
    t = __import__("fastconv.interop", fromlist=["to_torch"]).to_torch(m)
    x = np.zeros((0, c, 8, 8), np.float32)
    y = m(x)
    assert y.shape == tuple(t(torch.zeros(0, c, 8, 8)).shape)
    assert m.backward(np.zeros_like(y)).shape == x.shape
    for p in m.parameters():
        assert p.grad is not None and not p.grad.any()
