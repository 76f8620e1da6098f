"""Padding layers and ops.pad against torch, and float64 finite differences."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from helpers import check_vs_torch, directional_check, torch_or_skip

CASES = [("ZeroPad2d", 2, {}), ("ZeroPad2d", (1, 0, 2, 3), {}), ("ConstantPad2d", (1, 2, 0, 1),
         {"value": 1.5}), ("ReflectionPad2d", (2, 1, 1, 2), {}), ("ReplicationPad2d", 3, {}),
         ("CircularPad2d", (1, 3, 2, 0), {})]


@pytest.mark.parametrize("name, padding, kw", CASES, ids=[c[0] for c in CASES])
def test_padding_layers_match_torch(name, padding, kw, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    check_vs_torch(getattr(nn, name)(padding, **kw), getattr(torch.nn, name)(padding, **kw), x,
                   rtol=1e-6)
    directional_check(getattr(nn, name)(padding, **kw), x.astype(np.float64))


def test_pad_op_crops_with_negative_pads_on_the_tape(rng):
    torch = torch_or_skip()
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    xt = fc.Tensor(x, requires_grad=True)
    y = fc.ops.pad(xt, (-1, 2, 0, -2), value=0.5)
    y.backward(np.ones(y.shape, np.float32))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.pad(tx, (-1, 2, 0, -2), value=0.5)
    ty.backward(torch.ones_like(ty))
    np.testing.assert_array_equal(y.data, ty.detach().numpy())
    np.testing.assert_array_equal(xt.grad, tx.grad.numpy())


def test_padding_errors():
    with pytest.raises(ValueError, match="reflect padding .* must be smaller"):
        nn.ReflectionPad2d(4)(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="mode must be one of"):
        fc.ops.pad(np.zeros((1, 1, 2, 2)), (1, 1, 1, 1), mode="wrap")
