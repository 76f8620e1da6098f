"""BatchNorm2d followed by ReLU or ReLU6 on the tape runs as one node (the activation in
the normalising pass, its mask in BatchNorm's backward): the same values as the two
layers, bit for bit, forward and every gradient, in both dtypes, bf16 saving included."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from fastconv.nn.container import batch_norm_activation


def _pair(act, C=6, dtype=np.float32):
    fc.manual_seed(3)
    bn = nn.BatchNorm2d(C)
    rng = np.random.default_rng(C)
    bn.weight.data[...] = rng.uniform(0.5, 3, C)        # outputs past 6 and below 0 both
    bn.bias.data[...] = rng.uniform(-1, 4, C)
    if dtype == np.float64:
        bn.double()
    return bn, act()


def _run(bn, act, x, fused, gy):
    xt = fc.Tensor(x.copy(), requires_grad=True)
    bn.weight.grad = bn.bias.grad = None
    y = batch_norm_activation(bn, act, xt) if fused else act(bn(xt))
    (y * fc.Tensor(gy)).sum().backward()
    return (np.asarray(y.data), xt.grad, bn.weight.grad, bn.bias.grad,
            bn.running_mean.copy(), bn.running_var.copy())


@pytest.mark.parametrize("act", [nn.ReLU, nn.ReLU6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 6, 9, 11), (3, 6, 2, 2), (2, 6, 40, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_fused_equals_two_layers(act, dtype, shape, training):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    x[0, 1, 0, 0] = np.nan
    gy = rng.standard_normal(shape).astype(dtype)
    outs = []
    for fused in (False, True):
        bn, a = _pair(act, dtype=dtype)
        bn.train(training)
        outs.append(_run(bn, a, x, fused, gy))
    y = outs[1][0]
    if act is nn.ReLU6:
        assert (y[np.isfinite(y)] == 6).any() and (y[np.isfinite(y)] == 0).any()
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("act", [nn.ReLU, nn.ReLU6])
def test_fused_under_bf16_saving_equals_two_layers(act):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 6, 8, 8)) * 2).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    outs = []
    for fused in (False, True):
        bn, a = _pair(act)
        with fc.autocast("bf16", save_bf16=True):
            outs.append(_run(bn, a, x, fused, gy))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_sequential_fuses_on_the_tape_only():
    fc.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(),
                        nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4), nn.ReLU())
    x = np.random.default_rng(0).standard_normal((2, 3, 10, 10)).astype(np.float32)
    with fc.profiler.profile() as prof:
        net(fc.Tensor(x)).sum().backward()
    names = prof.table()
    assert "ReLU6" not in names and "ReLU " not in names and "BatchNorm2d" in names
    grads = [p.grad.copy() for p in net.parameters()]
    # the explicit backward (arrays, not Tensors) runs the layers one by one: same grads
    for p in net.parameters():
        p.grad = None
    y = net(x)
    net.backward(np.ones_like(y))
    for a, p in zip(grads, net.parameters()):
        np.testing.assert_allclose(a, p.grad, rtol=1e-5, atol=1e-6)
    # a trace (summary, to_torch) sees every layer
    from fastconv import analysis
    rows = analysis.summary(net, (1, 3, 10, 10))
    assert "ReLU6" in str(rows)


def test_batch_norm_rejects_unknown_activation():
    x = np.ones((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match="relu must be"):
        fc.functional.batch_norm(x, None, None, 1e-5, relu="gelu")
