"""Gradients through any forward (the tape): graphs that are not chains, against torch
on the same code, and float64 finite differences; the tape's errors."""
import threading

import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from helpers import assert_close, torch_or_skip


def tape_grads(model, forward, x):
    """Parameter gradients of sum(forward(model, Tensor(x)) * gy) on the tape."""
    model.zero_grad()
    y = forward(model, fc.Tensor(x))
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(y.dtype)
    y.backward(gy)
    return y.data, gy, {n: p.grad for n, p in model.named_parameters()}


def torch_twin(torch, model):
    """A dict name -> torch Parameter with the fastconv model's values."""
    return {n: torch.nn.Parameter(torch.tensor(p.data.copy()))
            for n, p in model.named_parameters()}


class UNetish(nn.Module):
    """Encoder, a stride-2 conv, a transposed conv back up, and the skip concatenated."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.dec = nn.Conv2d(8, 2, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        e = self.relu(self.enc(x))
        u = self.up(self.relu(self.down(e)))
        return self.dec(fc.cat([u, e], dim=1))


def test_concat_skip_matches_torch(rng):
    torch = torch_or_skip()
    F = torch.nn.functional
    m = UNetish()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    y, gy, grads = tape_grads(m, lambda m, x: m(x), x)
    P = torch_twin(torch, m)
    e = F.relu(F.conv2d(torch.tensor(x), P["enc.weight"], P["enc.bias"], padding=1))
    d = F.relu(F.conv2d(e, P["down.weight"], P["down.bias"], stride=2, padding=1))
    u = F.conv_transpose2d(d, P["up.weight"], P["up.bias"], stride=2)
    ty = F.conv2d(torch.cat([u, e], 1), P["dec.weight"], P["dec.bias"], padding=1)
    ty.backward(torch.from_numpy(gy))
    assert_close(y, ty.detach().numpy(), 1e-5, "forward")
    for n, g in grads.items():
        assert_close(g, P[n].grad.numpy(), 1e-4, n)


class SqueezeExcite(nn.Module):
    """x times a per-channel gate computed from x itself."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(c, 2), nn.Linear(2, c)
        self.relu = nn.ReLU()

    def forward(self, x):
        h = self.conv(x)
        s = h.mean((2, 3))
        gate = self.fc2(self.relu(self.fc1(s)))
        return h * gate.reshape(gate.shape[0], gate.shape[1], 1, 1) + h


def test_squeeze_excitation_gate_matches_torch(rng):
    torch = torch_or_skip()
    F = torch.nn.functional
    m = SqueezeExcite(4)
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    y, gy, grads = tape_grads(m, lambda m, x: m(x), x)
    P = torch_twin(torch, m)
    h = F.conv2d(torch.tensor(x), P["conv.weight"], P["conv.bias"], padding=1)
    g = F.linear(F.relu(F.linear(h.mean((2, 3)), P["fc1.weight"], P["fc1.bias"])),
                 P["fc2.weight"], P["fc2.bias"])
    ty = h * g[:, :, None, None] + h
    ty.backward(torch.from_numpy(gy))
    assert_close(y, ty.detach().numpy(), 1e-5, "forward")
    for n, gr in grads.items():
        assert_close(gr, P[n].grad.numpy(), 1e-4, n)


def test_module_used_twice_gets_both_gradients(rng):
    """A Siamese / weight-shared block: one module, two calls in one forward."""
    torch = torch_or_skip()
    F = torch.nn.functional
    conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)     # BatchNorm zeroes a bias' gradient
    bn = nn.BatchNorm2d(3)
    model = nn.Sequential(conv, bn)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    y, gy, grads = tape_grads(model, lambda m, x: m(m(x)) - m(x), x)
    P = torch_twin(torch, model)

    def tm(v):
        v = F.conv2d(v, P["0.weight"], None, padding=1)
        return F.batch_norm(v, None, None, P["1.weight"], P["1.bias"], training=True)
    tx = torch.tensor(x)
    ty = tm(tm(tx)) - tm(tx)
    ty.backward(torch.from_numpy(gy))
    assert_close(y, ty.detach().numpy(), 1e-5, "forward")
    for n, g in grads.items():
        assert_close(g, P[n].grad.numpy(), 1e-4, n)


def test_two_heads_two_losses_and_a_detached_branch(rng):
    torch = torch_or_skip()
    F = torch.nn.functional
    trunk, head_a, head_b = nn.Conv2d(3, 4, 3), nn.Linear(4, 2), nn.Linear(4, 3)
    model = nn.Sequential(trunk, head_a, head_b)      # only to hold the parameters
    x = rng.standard_normal((3, 3, 5, 5)).astype(np.float32)
    ta, tb = np.array([0, 1, 1]), np.array([2, 0, 1])
    crit = nn.CrossEntropyLoss()
    model.zero_grad()
    f = trunk(fc.Tensor(x)).mean((2, 3))
    loss = crit(head_a(f), ta) + 0.5 * crit(head_b(f.detach()), tb)
    loss.backward()
    P = torch_twin(torch, model)
    tf = F.conv2d(torch.tensor(x), P["0.weight"], P["0.bias"]).mean((2, 3))
    tl = (F.cross_entropy(F.linear(tf, P["1.weight"], P["1.bias"]), torch.tensor(ta))
          + 0.5 * F.cross_entropy(F.linear(tf.detach(), P["2.weight"], P["2.bias"]),
                                  torch.tensor(tb)))
    tl.backward()
    assert_close(float(loss), tl.item(), 1e-5, "loss")
    for n, p in model.named_parameters():
        assert_close(p.grad, P[n].grad.numpy(), 1e-4, n)


def test_tape_equals_explicit_backward_bitwise(rng):
    """The camera classifier: the tape and model.backward give the same bits."""
    m = fc.models.camera_classifier()
    crit = nn.CrossEntropyLoss()
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    t = np.array([0, 1, 1, 0])
    crit(m(x), t)
    m.backward(crit.backward(), input_grad=False)
    explicit = {n: p.grad.copy() for n, p in m.named_parameters()}
    m.zero_grad()
    crit(m(fc.Tensor(x)), t).backward()
    for n, p in m.named_parameters():
        assert np.array_equal(p.grad, explicit[n]), n


def test_ops_finite_differences(rng):
    """float64 central differences of a forward mixing every composing op."""
    conv = nn.Conv2d(4, 4, 3, padding=1).double()
    x0 = rng.standard_normal((2, 4, 4, 4))
    w = rng.standard_normal((2, 4, 4, 4))

    def f(x):
        h = conv(x)
        a, b = fc.split(h, 2, dim=1)
        c = fc.cat([b, a * 2.0], dim=1) / (1.5 + h[:, :1] * h[:, :1])
        s = fc.ops.log_softmax(c.flatten(2), -1).reshape(2, 4, 4, 4)
        return (fc.stack([s, c.permute(0, 1, 3, 2)], 0).sum(0) * w).sum()

    xt = fc.Tensor(x0, requires_grad=True)
    conv.zero_grad()
    f(xt).backward()
    v = rng.standard_normal(x0.shape)
    eps = 1e-6
    with fc.no_grad():
        num = (f(fc.Tensor(x0 + eps * v)).item() - f(fc.Tensor(x0 - eps * v)).item()) / (2 * eps)
    assert abs(num - float(np.sum(xt.grad * v))) <= 1e-6 * max(1, abs(num))


def test_broadcasting_gradients_reduce_to_each_operand(rng):
    a = fc.Tensor(rng.standard_normal((2, 3, 4, 4)), requires_grad=True)
    b = fc.Tensor(rng.standard_normal((1, 3, 1, 1)), requires_grad=True)
    ((a - b) * b / (b * b + 1)).sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape
    with pytest.raises(ValueError, match="broadcast"):
        fc.Tensor(np.zeros((2, 3))) + fc.Tensor(np.zeros((4,)))


def test_no_grad_records_nothing(rng):
    m = nn.Conv2d(3, 2, 3)
    with fc.no_grad():
        y = m(fc.Tensor(rng.standard_normal((1, 3, 4, 4)).astype(np.float32)))
    assert y.is_leaf
    with pytest.raises(RuntimeError, match="no_grad"):
        y.sum().backward()


def test_no_grad_nests_restores_after_errors_and_decorates():
    assert fc.is_grad_enabled()
    with fc.no_grad():
        with fc.no_grad():
            assert not fc.is_grad_enabled()
        assert not fc.is_grad_enabled()
    assert fc.is_grad_enabled()
    with pytest.raises(KeyError):
        with fc.no_grad():
            raise KeyError("inside")
    assert fc.is_grad_enabled()

    @fc.no_grad()
    def infer(v):
        """doc kept"""
        return fc.is_grad_enabled(), v

    assert infer(3) == (False, 3) and infer.__doc__ == "doc kept"
    assert fc.is_grad_enabled()


def test_backward_twice_raises(rng):
    m = nn.Conv2d(3, 2, 3)
    loss = m(fc.Tensor(rng.standard_normal((1, 3, 4, 4)).astype(np.float32))).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="already back-propagated"):
        loss.backward()


def test_backward_in_another_thread_raises(rng):
    m = nn.Conv2d(3, 2, 3)
    loss = m(fc.Tensor(rng.standard_normal((1, 3, 4, 4)).astype(np.float32))).sum()
    err = []
    t = threading.Thread(target=lambda: err.append(pytest.raises(RuntimeError, loss.backward)))
    t.start()
    t.join()
    assert "another thread" in str(err[0].value)


def test_module_backward_after_a_taped_forward_points_to_the_loss(rng):
    m = nn.Conv2d(3, 2, 3)
    y = m(fc.Tensor(rng.standard_normal((1, 3, 4, 4)).astype(np.float32)))
    with pytest.raises(RuntimeError, match="recorded on the tape"):
        m.backward(np.ones(y.shape, np.float32))


def test_frozen_parameters_get_no_gradient(rng):
    m = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Conv2d(2, 2, 1))
    m[0].weight.requires_grad = False
    m(fc.Tensor(rng.standard_normal((1, 3, 4, 4)).astype(np.float32))).sum().backward()
    assert m[0].weight.grad is None and m[0].bias.grad is not None


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_cat_and_its_backward_equal_numpy_along_any_dim(dim, rng):
    """Threaded row copies (pieces of 256 KiB) against np.concatenate and np.split:
    mixed dtypes, a non-contiguous input, an input of size 0 along dim, gradients only
    where asked; an out-of-range dim raises instead of wrapping."""
    from fastconv.functional import compose as C
    shapes = [(6, 40, 33, 35), (6, 24, 33, 35), (6, 40, 33, 35)]
    d = dim % 4
    xs = []
    for i, s in enumerate(shapes):
        s = list(shapes[0])
        s[d] = shapes[i][1] if d == 1 else [6, 3, 0][i] if d != 1 else s[d]
        xs.append(rng.standard_normal(s).astype(np.float32))
    xs[1] = xs[1].astype(np.float64)
    xs[2] = np.asfortranarray(xs[2])
    out, ctx = C.cat(xs, dim)
    ref = np.concatenate([a.astype(np.float64) for a in xs], axis=d)
    assert out.dtype == np.float64 and np.array_equal(out, ref)
    g = rng.standard_normal(out.shape)
    grads = C.cat_backward(ctx, g, (True, False, True))
    parts = np.split(g, np.cumsum([a.shape[d] for a in xs])[:-1], axis=d)
    assert grads[1] is None
    for gi, p in ((grads[0], parts[0]), (grads[2], parts[2])):
        assert gi.flags.c_contiguous and np.array_equal(gi, p)
    with pytest.raises(ValueError, match="out of range"):
        C.cat(xs, 4)
