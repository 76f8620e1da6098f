"""The article's blocks and the camera classifier against identical torch models."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import models
from helpers import assert_close, check_vs_torch, to_torch_state, torch_or_skip


def torch_models(torch):
    nn = torch.nn

    class ConvBlock(nn.Module):
        def __init__(self, i, o, k=3, s=1, p=1):
            super().__init__()
            self.conv = nn.Conv2d(i, o, k, s, p, bias=False)
            self.bn = nn.BatchNorm2d(o)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.relu(self.bn(self.conv(x)))

    class DSConv(nn.Module):
        def __init__(self, i, o, k=3, s=1, p=1):
            super().__init__()
            self.depthwise = nn.Conv2d(i, i, k, s, p, groups=i, bias=False)
            self.pointwise = nn.Conv2d(i, o, 1, bias=False)

        def forward(self, x):
            return self.pointwise(self.depthwise(x))

    class Smooth(nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            self.conv = nn.Conv2d(i, o, 3, padding=1)

        def forward(self, x):
            return self.conv(self.up(x))

    def bottleneck(c=256, m=64):
        return nn.Sequential(nn.Conv2d(c, m, 1, bias=False), nn.BatchNorm2d(m), nn.ReLU(True),
                             nn.Conv2d(m, m, 3, padding=1, bias=False), nn.BatchNorm2d(m),
                             nn.ReLU(True), nn.Conv2d(m, c, 1, bias=False), nn.BatchNorm2d(c))

    def camera(n=2):
        return nn.Sequential(ConvBlock(3, 64), ConvBlock(64, 64), nn.MaxPool2d(2, 2),
                             ConvBlock(64, 128), ConvBlock(128, 128), nn.MaxPool2d(2, 2),
                             ConvBlock(128, 256, s=2), ConvBlock(256, 256),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, n))
    return ConvBlock, DSConv, Smooth, bottleneck, camera


def n_params(m):
    return sum(p.data.size for p in m.parameters())


def test_parameter_counts_match_torch():
    torch = torch_or_skip()
    ConvBlock, DSConv, Smooth, bottleneck, camera = torch_models(torch)
    pairs = [(models.camera_classifier(), camera()), (models.Bottleneck(), bottleneck()),
             (models.DepthwiseSeparableConv(256, 256), DSConv(256, 256)),
             (models.ConvBlock(3, 64), ConvBlock(3, 64)), (models.SmoothUpsample(8, 4), Smooth(8, 4))]
    for f, t in pairs:
        assert n_params(f) == sum(p.numel() for p in t.parameters())
        assert list(f.state_dict()) == list(t.state_dict())
    assert n_params(models.camera_classifier()) == 1_146_818
    assert n_params(models.Bottleneck(256, 64)) == 70_400


@pytest.mark.parametrize("which", ["convblock", "convblock_s2", "dsconv", "smooth", "bottleneck",
                                   "residual_bottleneck"])
def test_blocks_match_torch(which, rng):
    torch = torch_or_skip()
    ConvBlock, DSConv, Smooth, bottleneck, _ = torch_models(torch)
    if which == "convblock":
        f, t, shape = models.ConvBlock(5, 8), ConvBlock(5, 8), (2, 5, 9, 7)
    elif which == "convblock_s2":
        f, t, shape = models.ConvBlock(4, 6, 3, 2, 1), ConvBlock(4, 6, 3, 2, 1), (3, 4, 10, 9)
    elif which == "dsconv":
        f, t, shape = models.DepthwiseSeparableConv(6, 10), DSConv(6, 10), (2, 6, 8, 8)
    elif which == "smooth":
        f, t, shape = models.SmoothUpsample(4, 3), Smooth(4, 3), (2, 4, 5, 6)
    elif which == "bottleneck":
        f, t, shape = models.Bottleneck(32, 8), bottleneck(32, 8), (2, 32, 6, 6)
    else:
        f = fc.nn.Residual(models.Bottleneck(16, 4))

        class TR(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.body = bottleneck(16, 4)

            def forward(self, x):
                return self.body(x) + x
        t, shape = TR(), (2, 16, 5, 5)
    check_vs_torch(f, t, rng.standard_normal(shape).astype(np.float32), rtol=3e-4)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_camera_classifier_three_sgd_steps_match_torch(dtype, rng):
    """Same init, same data, SGD with momentum + weight decay + label smoothing: same
    losses and weights.  float64 pins the maths (agreement ~1e-12).  In float32 a ReLU
    input or a max-pool pair within rounding of a tie goes one way in one library and
    the other way in the other, and three momentum steps carry that into every later
    weight: over 8 random inits on an AVX2 host, whole tensors drifted by a median up to
    ~1.4e-3 and a worst element up to ~1.7e-2 of their scale (with Winograd off too;
    torch float32 itself drifted from torch float64 by up to 1e-2 on 3 of the 8).  So
    float32 checks the losses, each tensor's median difference and its worst element at
    about 3x those scales."""
    torch = torch_or_skip()
    *_, camera = torch_models(torch)
    fm = models.camera_classifier()
    tm = camera()
    tm.load_state_dict(to_torch_state(fm))
    if dtype == "float64":
        fm.double()
        tm.double()
    loss_tol, w_tol, med_tol = (1e-10, 1e-9, 1e-9) if dtype == "float64" else (1e-3, 5e-2, 5e-3)
    crit = fc.nn.CrossEntropyLoss(label_smoothing=0.1)
    tcrit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    opt = fc.optim.SGD(fm.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    topt = torch.optim.SGD(tm.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for step in range(3):
        x = rng.standard_normal((8, 3, 32, 32)).astype(dtype)
        y = rng.integers(0, 2, 8)
        opt.zero_grad()
        loss = crit(fm(x), y)
        fm.backward(crit.backward())
        opt.step()
        topt.zero_grad()
        tloss = tcrit(tm(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        topt.step()
        assert abs(loss - tloss.item()) < loss_tol * max(1.0, abs(loss)), (step, loss, tloss.item())
    tstate = tm.state_dict()
    for k, v in fm.state_dict().items():
        t = tstate[k].numpy()
        # floor the scale at 0.05: BN biases start at 0 and hold only a few small steps
        diff = np.abs(v.astype(np.float64) - t)
        scale = max(np.abs(t).max(), 0.05)
        assert diff.max() <= w_tol * scale, (k, diff.max())
        assert np.median(diff) <= med_tol * scale, (k, np.median(diff))


def test_camera_classifier_eval_matches_torch(rng):
    torch = torch_or_skip()
    *_, camera = torch_models(torch)
    fm, tm = models.camera_classifier(), camera()
    for m in fm.modules():                   # non-trivial running statistics
        if isinstance(m, fc.nn.BatchNorm2d):
            m.running_mean[...] = rng.standard_normal(m.num_features) * 0.1
            m.running_var[...] = rng.uniform(0.5, 2, m.num_features)
    tm.load_state_dict(to_torch_state(fm))
    fm.eval()
    tm.eval()
    x = rng.standard_normal((2, 3, 40, 24)).astype(np.float32)
    with fc.no_grad():
        y = fm(x)
    with torch.no_grad():
        ty = tm(torch.from_numpy(x)).numpy()
    assert_close(y, ty, 1e-4)


def test_convblock_finite_differences(rng):
    from helpers import directional_check
    b = models.ConvBlock(3, 4)
    b.bn.bias.data[:] = rng.standard_normal(4).astype(np.float32)
    directional_check(b, rng.standard_normal((2, 3, 5, 5)))


def test_backward_without_input_grad_gives_same_param_grads(rng):
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    grads = []
    for input_grad in (True, False):
        fc.manual_seed(3)
        m = models.camera_classifier()
        y = m(x)
        gx = m.backward(np.ones_like(y), input_grad=input_grad)
        assert (gx is None) == (not input_grad)
        grads.append([p.grad.copy() for p in m.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_folded_inference_matches_unfolded_eval(rng):
    """Eval under no_grad folds BatchNorm into the convolution (and ReLU into its
    epilogue); with gradients enabled the same eval forward runs unfolded."""
    m = models.camera_classifier()
    for sub in m.modules():
        if isinstance(sub, fc.nn.BatchNorm2d):
            sub.running_mean[...] = rng.standard_normal(sub.num_features) * 0.2
            sub.running_var[...] = rng.uniform(0.3, 3, sub.num_features)
            sub.weight.data[...] = rng.uniform(0.5, 1.5, sub.num_features)
            sub.bias.data[...] = rng.standard_normal(sub.num_features) * 0.1
    m.eval()
    x = rng.standard_normal((3, 3, 24, 20)).astype(np.float32)
    unfolded = m(x)
    with fc.no_grad():
        folded = m(x)
    assert_close(folded, unfolded, 1e-5)
