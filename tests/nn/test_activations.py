"""The activation family: torch parity (float32 and float64, output and input
gradient, PReLU's weight gradient), NaN, in place, finite differences, threads."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from helpers import check_vs_torch, directional_check, torch_or_skip

ACTS = [("ReLU6", {}), ("LeakyReLU", {"negative_slope": 0.2}), ("ELU", {"alpha": 0.7}),
        ("SiLU", {}), ("GELU", {}), ("GELU", {"approximate": "tanh"}), ("Sigmoid", {}),
        ("Tanh", {}), ("Hardswish", {}), ("Hardsigmoid", {}), ("Mish", {})]
IDS = [f"{n}{kw}" for n, kw in ACTS]


def inputs(rng, shape):
    x = rng.standard_normal(shape) * 4           # every piece: beyond +-3, +-6, 20
    x.flat[:6] = [-3.0, 3.0, 0.0, 6.0, 25.0, -25.0]
    return x


@pytest.mark.parametrize("name, kw", ACTS, ids=IDS)
def test_activation_matches_torch(name, kw, rng):
    torch = torch_or_skip()
    x = inputs(rng, (3, 4, 5, 6))
    check_vs_torch(getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw), x.astype(np.float32),
                   rtol=2e-6)
    # (1e-7: torch's float64 Hardsigmoid backward scales by a float32 1/6)
    check_vs_torch(getattr(nn, name)(**kw).double(), getattr(torch.nn, name)(**kw).double(), x,
                   rtol=1e-7)


@pytest.mark.parametrize("name, kw", ACTS, ids=IDS)
def test_activation_finite_differences_and_nan(name, kw, rng):
    x = rng.standard_normal((2, 3, 4)) * 2
    x[np.abs(np.abs(x) - 3) < 0.05] += 0.2          # off the kinks
    directional_check(getattr(nn, name)(**kw), x)
    torch = torch_or_skip()
    xn = np.array([np.nan, 1.0, -1.0], np.float32)
    want = getattr(torch.nn, name)(**kw)(torch.tensor(xn)).numpy()
    np.testing.assert_allclose(getattr(nn, name)(**kw)(xn), want, rtol=1e-6)   # NaN where NaN


@pytest.mark.parametrize("name", ["ReLU6", "LeakyReLU", "ELU", "SiLU", "Hardswish",
                                  "Hardsigmoid", "Mish"])
def test_inplace_writes_the_input_and_keeps_the_gradient(name, rng):
    x = inputs(rng, (2, 3, 4, 4)).astype(np.float32)
    ref = getattr(nn, name)()
    y = ref(x.copy())
    g = ref.backward(np.ones_like(y))
    m = getattr(nn, name)(inplace=True)
    x2 = x.copy()
    y2 = m(x2)
    assert y2 is x2 and np.array_equal(x2, y)
    np.testing.assert_array_equal(m.backward(np.ones_like(y)), g)


@pytest.mark.parametrize("num, shape", [(1, (2, 3, 4, 4)), (3, (2, 3, 4, 4)), (5, (4, 5))])
def test_prelu_matches_torch(num, shape, rng):
    torch = torch_or_skip()
    m = nn.PReLU(num, init=0.1)
    m.weight.data = rng.uniform(0.05, 0.5, num).astype(np.float32)
    check_vs_torch(m, torch.nn.PReLU(num), rng.standard_normal(shape).astype(np.float32),
                   rtol=1e-5)
    directional_check(nn.PReLU(num, init=0.3), rng.standard_normal(shape))
    with pytest.raises(ValueError, match="PReLU: num_parameters=2 must be 1"):
        nn.PReLU(2)(np.zeros((1, 3, 2, 2), np.float32))


def test_activations_bitwise_identical_across_threads(rng):
    x = rng.standard_normal((8, 16, 33, 33)).astype(np.float32)
    out = []
    for t in (1, 2, 3):
        fc.set_num_threads(t)
        m, p = nn.GELU(), nn.PReLU(16)
        y = m(x)
        out.append((y, m.backward(y), p(x), p.backward(x), p.weight.grad))
    fc.set_num_threads(2)
    for o in out[1:]:
        for a, b in zip(o, out[0]):
            assert np.array_equal(a, b)
