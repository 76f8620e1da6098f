"""to_torch on plain-forward models (traced to torch.fx) and the effective receptive
field through graphs: torch computes the same outputs and gradients."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import analysis, nn, ops

torch = pytest.importorskip("torch")


class _Graph(nn.Module):
    """Every op kind a traced forward meets: a shared conv used twice, a concatenated
    skip, an SE gate, split/chunk, pad, interpolate, a direct Parameter, constants,
    permute/reshape, softmax, and two outputs."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.fc1 = nn.Conv2d(16, 4, 1)
        self.fc2 = nn.Conv2d(4, 16, 1)
        self.pool = nn.MaxPool2d(2)
        self.unused = nn.Conv2d(2, 2, 1)               # never called: keys still match
        self.scale = nn.Parameter(np.full((1, 16, 1, 1), 0.5, np.float32))
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        a = nn.ReLU()(self.stem(x))                       # a layer made in forward
        b = self.shared(self.shared(a))                  # one module, two calls
        h = self.bn(ops.cat([a, b], 1))
        gate = self.fc2(nn.ReLU()(self.fc1(h.mean((2, 3), keepdim=True))))
        h = h * nn.Sigmoid()(gate) * self.scale - 0.25
        p, q = ops.chunk(h, 2, dim=1)
        h = ops.cat([q, p], 1) / 2.0
        h = ops.pad(self.pool(h), (1, 1, 1, 1), mode="reflect")
        h = ops.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
        s0, s1 = ops.split(h, [6, 10], dim=1)
        feat = ops.cat([s0, s1], 1).mean((2, 3))
        logits = self.head(feat)
        return logits, ops.softmax(h.permute(0, 2, 3, 1).reshape(h.shape[0], -1, 16), 2)


def _grads(model):
    return {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("make,shape,train", [
    (lambda: _Graph(), (2, 3, 12, 12), True),
    (lambda: fc.models.resnet18(num_classes=5), (2, 3, 32, 32), True),
    # eval: its classifier's Dropout draws differ between the libraries
    (lambda: fc.models.mobilenet_v2(num_classes=4, width_mult=0.5), (2, 3, 32, 32), False),
    (lambda: fc.models.unet(), (2, 3, 32, 32), True),
])
def test_traced_model_matches_outputs_and_every_gradient(make, shape, train):
    fc.manual_seed(0)
    model = make()
    model.train(train)
    # training mode in float64: BatchNorm over a batch of 3 on small planes amplifies
    # float32 rounding, which differs between ISA paths, past any useful tolerance
    dt = np.float64 if train else np.float32
    if train:
        model.double()
    before = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    t = fc.to_torch(model, example_input=shape)
    if train:
        t.double()
    assert t.training == train
    for k, v in model.state_dict().items():       # tracing moved no running statistic
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    assert isinstance(t, torch.fx.GraphModule)
    assert list(t.state_dict()) == list(model.state_dict()) or \
        set(t.state_dict()) == set(model.state_dict())
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3,) + shape[1:]).astype(dt)           # another batch size
    out = model(fc.Tensor(x))
    outs = out if isinstance(out, tuple) else (out,)
    tout = t(torch.from_numpy(x))
    touts = tout if isinstance(tout, tuple) else (tout,)
    loss, tloss = 0.0, 0.0
    for k, (o, to) in enumerate(zip(outs, touts)):
        scale = max(1.0, float(np.abs(o.data).max()))
        np.testing.assert_allclose(o.data, to.detach().numpy(), rtol=1e-3, atol=1e-4 * scale)
        w = rng.standard_normal(o.shape).astype(dt)
        loss = loss + (o * w).sum() if k else (o * w).sum()
        tloss = tloss + (to * torch.from_numpy(w)).sum()
    loss.backward()
    tloss.backward()
    tp = dict(t.named_parameters())
    for n, g in _grads(model).items():
        if n.startswith("unused"):
            assert g is None and tp[n].grad is None
            continue
        np.testing.assert_allclose(g, tp[n].grad.numpy(), rtol=2e-3,
                                   atol=2e-3 * float(np.abs(g).max()) + 1e-7, err_msg=n)
    # the traced module keeps BatchNorm's running statistics, in train mode too
    for n, b in t.named_buffers():
        if n.endswith("running_mean"):
            np.testing.assert_allclose(model.state_dict()[n], b.numpy(), rtol=1e-5, atol=1e-6)


def test_chain_still_converts_module_for_module():
    model = fc.models.camera_classifier()
    t = fc.to_torch(model)
    assert not isinstance(t, torch.fx.GraphModule)


def test_plain_forward_without_example_input_says_what_to_pass():
    with pytest.raises(TypeError, match="example_input"):
        fc.to_torch(fc.models.unet())


def test_parameterised_layer_made_inside_forward_is_refused():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return nn.Conv2d(3, 3, 1)(self.c(x))

    with pytest.raises(TypeError, match="created inside forward"):
        fc.to_torch(Bad(), example_input=(1, 3, 4, 4))


def test_erf_through_a_graph_matches_torch():
    """ERF of a model with a concatenated skip (not a chain): the tape's input gradient
    equals torch's autograd on the traced twin."""
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(2, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 5, padding=4, dilation=2)
            self.c = nn.Conv2d(8, 3, 3, padding=1)

        def forward(self, x):
            h = self.a(x)
            return self.c(ops.cat([h, self.b(h)], 1))

    fc.manual_seed(3)
    model = Skip()
    shape = (1, 2, 21, 21)
    erf = analysis.effective_receptive_field(model, shape, samples=3, seed=5)
    t = fc.to_torch(model, example_input=shape)
    rng = np.random.default_rng(5)
    acc = np.zeros(shape[2:])
    for _ in range(3):
        x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).requires_grad_()
        y = t(x)
        g = torch.zeros_like(y)
        g[:, :, y.shape[2] // 2, y.shape[3] // 2] = 1
        y.backward(g)
        acc += x.grad.abs().sum((0, 1)).numpy()
    np.testing.assert_allclose(erf, acc / acc.max(), rtol=1e-4, atol=1e-6)
    # the dilated branch reaches 1 + 2 + 8 + 2 = 13 pixels wide; the direct path only 5
    assert erf[10, 10 - 6] > 0 and erf[10, 10 - 7] == 0
    assert all(p.grad is None for p in model.parameters())


def test_pool_indices_stay_a_value_of_the_graph():
    """MaxPool2d(return_indices) then MaxUnpool2d: traced on zeros, the twin must still
    unpool each input at its own maxima (the indices a value, not the trace's constant)."""
    class PoolUnpool(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.MaxPool2d(2, return_indices=True)
            self.unpool = nn.MaxUnpool2d(2)

        def forward(self, x):
            y, idx = self.pool(x)
            return self.unpool(y, idx)

    model = PoolUnpool()
    t = fc.to_torch(model, example_input=(1, 2, 8, 8))
    x = np.random.default_rng(8).standard_normal((2, 2, 8, 8)).astype(np.float32)
    with fc.no_grad():
        ref = model(x)
    np.testing.assert_array_equal(t(torch.from_numpy(x)).detach().numpy(), ref)
