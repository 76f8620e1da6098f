"""MaxPool2d(return_indices=True) and MaxUnpool2d: torch parity (output, indices, input
gradient; float32 and float64), float64 finite differences, repeated indices, thread-count
determinism, unbatched input, the tape, and the errors."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import _shape, nn
from helpers import assert_close, directional_check, torch_or_skip


def random_cfg(rng):
    """kernel, stride, padding (<= kernel / 2), dilation, ceil_mode, input shape, with a
    pooling output of at least 1."""
    while True:
        k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        p = tuple(int(rng.integers(0, ki // 2 + 1)) for ki in k)
        d = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if rng.random() < 0.3 else (1, 1)
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(3, 12)),
                 int(rng.integers(3, 12)))
        ceil = bool(rng.random() < 0.3)
        if all(_shape.pool_output_size(shape[2 + i], k[i], s[i], p[i], d[i], ceil) >= 1
               for i in range(2)):
            return k, s, p, d, ceil, shape


_r = np.random.default_rng(11)
POOLCFG = [random_cfg(_r) for _ in range(30)]


def naive_unpool(x, idx, oh, ow):
    """Scatter in row-major order (the last of repeated indices wins) and the exact
    gradient's routing: the input whose write survived, per plane."""
    n, c = x.shape[:2]
    y = np.zeros((n, c, oh * ow), x.dtype)
    winner = np.zeros(x.shape, bool)
    for a in range(n):
        for b in range(c):
            last = {}
            for q, j in enumerate(idx[a, b].reshape(-1)):
                y[a, b, j] = x[a, b].reshape(-1)[q]
                last[j] = q
            winner[a, b].reshape(-1)[list(last.values())] = True
    return y.reshape(n, c, oh, ow), winner


@pytest.mark.parametrize("cfg", POOLCFG, ids=[f"c{i}" for i in range(len(POOLCFG))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maxpool_indices_and_unpool_match_torch(cfg, dtype, rng):
    """Pool with indices, then unpool to the input's size: y, indices, unpooled output and
    both input gradients equal torch's (integer data makes ties: the first tap wins)."""
    torch = torch_or_skip()
    torch.set_num_threads(1)        # torch's unpool scatters repeated indices in any order else
    k, s, p, d, ceil, shape = cfg
    x = rng.integers(0, 4, shape).astype(dtype)
    pool = nn.MaxPool2d(k, s, p, d, return_indices=True, ceil_mode=ceil)
    tpool = torch.nn.MaxPool2d(k, s, p, d, return_indices=True, ceil_mode=ceil)
    y, idx = pool(x)
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = tpool(tx)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    assert idx.dtype == np.int64 and idx.shape == y.shape
    np.testing.assert_array_equal(idx, tidx.numpy())
    gy = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.from_numpy(gy))
    assert_close(pool.backward(gy), tx.grad.numpy(), 0, "pool grad input")

    if d != (1, 1) or ceil:
        return                      # the unpool formula inverts plain floor pooling only
    unpool, tunpool = nn.MaxUnpool2d(k, s, p), torch.nn.MaxUnpool2d(k, s, p)
    xu = rng.standard_normal(y.shape).astype(dtype)
    txu = torch.tensor(xu, requires_grad=True)
    # the default size is the input's only when the windows tile it exactly: the
    # indices are offsets into planes of the input's width
    sizes = [shape[2:], shape] + ([None] if unpool.output_shape(y.shape) == shape else [])
    for size in sizes:
        z = unpool(xu, idx, output_size=size)
        tz = tunpool(txu, tidx, output_size=size)
        np.testing.assert_array_equal(z, tz.detach().numpy())
        gz = rng.standard_normal(z.shape).astype(dtype)
        gx = unpool.backward(gz)
        txu.grad = None
        tz.backward(torch.from_numpy(gz))
        _, winner = naive_unpool(xu, idx, *z.shape[2:])
        # torch gives every input the gradient at its index; ours only the one whose
        # value survived (they differ only where overlapping windows repeat an index)
        np.testing.assert_array_equal(gx, np.where(winner, txu.grad.numpy(), 0))
        if winner.all():
            np.testing.assert_array_equal(gx, txu.grad.numpy())
    torch.set_num_threads(2)


@pytest.mark.parametrize("shape", [(2, 3, 10, 70), (1, 2, 7, 33), (3, 1, 4, 32), (1, 1, 2, 2)])
def test_maxpool_2x2_fast_path_indices_match_torch(shape, rng):
    """The vectorised 2x2 path keeps a window-local argmax; the compiled conversion gives
    torch's plane offsets (ties, NaN, -inf, odd sizes), also under no_grad."""
    torch = torch_or_skip()
    x = rng.integers(0, 3, shape).astype(np.float32)
    x.flat[rng.choice(x.size, max(x.size // 20, 1), replace=False)] = np.nan
    x.flat[rng.choice(x.size, x.size // 20, replace=False)] = -np.inf
    ty, tidx = torch.nn.MaxPool2d(2, return_indices=True)(torch.from_numpy(x))
    y, idx = nn.MaxPool2d(2, return_indices=True)(x)
    with fc.no_grad():          # no argmax kept for a backward, the indices still made
        y0, idx0 = nn.MaxPool2d(2, return_indices=True)(x)
    for a, b in ((y, ty), (idx, tidx), (y0, ty), (idx0, tidx)):
        np.testing.assert_array_equal(a, b.numpy())


def test_indices_of_windows_wholly_in_padding_are_minus_one(rng):
    """Such a window has no argmax (-inf out); torch's index points past the plane."""
    y, idx = nn.MaxPool2d(2, padding=1, dilation=2, return_indices=True)(
        rng.standard_normal((3, 1, 1, 2)))
    assert np.isneginf(y).all() and (idx == -1).all()
    with pytest.raises(ValueError, match="MaxUnpool2d: index -1 is outside the output plane"):
        nn.MaxUnpool2d(2)(y, idx)


@pytest.mark.parametrize("seed", range(8))
def test_unpool_repeated_indices_last_wins_and_exact_gradient(seed):
    """Random indices (many repeats): forward as a row-major scatter (last wins), torch's
    forward on one thread agrees, and the input gradient is the exact derivative (float64
    finite differences), which gives 0 to inputs whose value was overwritten."""
    rng = np.random.default_rng(seed)
    n, c, h, w = 2, 3, int(rng.integers(1, 6)), int(rng.integers(1, 6))
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    oh, ow = (h - 1) * k[0] + k[0], (w - 1) * k[1] + k[1]
    idx = rng.integers(0, min(oh * ow, 5) if seed % 2 else oh * ow, (n, c, h, w))
    x = rng.standard_normal((n, c, h, w))
    m = nn.MaxUnpool2d(k)
    z = m(x, idx)
    want, winner = naive_unpool(x, idx, oh, ow)
    np.testing.assert_array_equal(z, want)
    gz = rng.standard_normal(z.shape)
    gx = m.backward(gz)
    np.testing.assert_array_equal(gx, np.where(winner, np.take_along_axis(
        gz.reshape(n, c, -1), idx.reshape(n, c, -1), 2).reshape(x.shape), 0))
    directional_check(Bound(nn.MaxUnpool2d(k), idx), x)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
    tz = torch.nn.MaxUnpool2d(k)(torch.from_numpy(x), torch.from_numpy(idx))
    torch.set_num_threads(2)
    np.testing.assert_array_equal(z, tz.numpy())


class Bound(nn.Module):
    """A MaxUnpool2d with its indices fixed: one input, for directional_check."""

    def __init__(self, m, idx, output_size=None):
        super().__init__()
        self.m, self.idx, self.size = m, idx, output_size

    def forward(self, x):
        return self.m(x, self.idx, self.size)

    def backward(self, gy, input_grad=True):
        return self.m.backward(gy)


@pytest.mark.parametrize("i", range(6))
def test_pool_unpool_finite_differences(i, rng):
    """float64, no torch: MaxPool2d with return_indices, then MaxUnpool2d on its indices
    (overlapping windows repeat them)."""
    k, s, p, d, ceil, shape = POOLCFG[i]
    x = rng.standard_normal(shape)
    directional_check(nn.MaxPool2d(k, s, p, d, return_indices=False, ceil_mode=ceil), x)
    y, idx = nn.MaxPool2d(k, s, p, return_indices=True)(x)
    directional_check(Bound(nn.MaxUnpool2d(k, s, p), idx, shape), rng.standard_normal(y.shape))


def test_bitwise_identical_across_threads(rng):
    """Pooled indices, unpooled output and its gradient: the same bits at 1 and 2 threads
    (planes large enough to run threaded; random indices repeat)."""
    x = rng.standard_normal((4, 8, 64, 64)).astype(np.float32)
    xu = rng.standard_normal((4, 8, 32, 32)).astype(np.float32)
    idx_rand = rng.integers(0, 64 * 64, xu.shape)
    gz = rng.standard_normal((4, 8, 64, 64)).astype(np.float32)
    out = []
    for t in (1, 2):
        fc.set_num_threads(t)
        _, i2 = nn.MaxPool2d(2, return_indices=True)(x)
        _, i3 = nn.MaxPool2d(3, 2, 1, return_indices=True)(x)
        m = nn.MaxUnpool2d(2)
        z = m(xu, idx_rand)
        out.append((i2, i3, z, m.backward(gz)))
    fc.set_num_threads(2)
    for a, b in zip(*out):
        assert np.array_equal(a, b)


def test_unbatched_and_tape(rng):
    """(C, H, W) input gives (C, H', W') outputs and indices; on a Tensor, y is a Tensor
    and the indices a plain int64 array, and the gradient reaches the input through both
    layers."""
    torch = torch_or_skip()
    x = rng.standard_normal((3, 6, 6)).astype(np.float32)
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    y, idx = pool(x)
    ty, tidx = torch.nn.MaxPool2d(2, return_indices=True)(torch.from_numpy(x))
    assert y.shape == idx.shape == (3, 3, 3)
    np.testing.assert_array_equal(idx, tidx.numpy())
    z = unpool(y, idx)
    np.testing.assert_array_equal(z, torch.nn.MaxUnpool2d(2)(ty, tidx).numpy())
    gz = rng.standard_normal(z.shape).astype(np.float32)
    gu = unpool.backward(gz)
    assert gu.shape == y.shape and pool.backward(gu).shape == x.shape

    t = fc.Tensor(x[None], requires_grad=True)
    yt, it = pool(t)
    assert isinstance(yt, fc.Tensor) and type(it) is np.ndarray and it.dtype == np.int64
    zt = unpool(yt, it)
    (zt * fc.Tensor(gz[None])).sum().backward()
    tx = torch.tensor(x[None], requires_grad=True)
    a, b = torch.nn.MaxPool2d(2, return_indices=True)(tx)
    torch.nn.MaxUnpool2d(2)(a, b).backward(torch.from_numpy(gz[None]))
    np.testing.assert_array_equal(t.grad, tx.grad.numpy())
    t3 = fc.Tensor(x, requires_grad=True)               # unbatched on the tape
    y3, i3 = pool(t3)
    assert y3.shape == (3, 3, 3) and i3.shape == (3, 3, 3)
    unpool(y3, i3).sum().backward()
    assert t3.grad.shape == x.shape


def test_output_shape():
    m = nn.MaxUnpool2d((3, 2), stride=(2, 3), padding=1)
    x = np.zeros((2, 3, 4, 5), np.float32)
    assert m.output_shape(x.shape) == m(x, np.zeros(x.shape, np.int64)).shape == (2, 3, 7, 12)
    assert m.output_shape(x.shape, (8, 13)) == (2, 3, 8, 13)
    p = nn.MaxPool2d(3, 2, 1, return_indices=True)
    y, idx = p(np.zeros((1, 2, 9, 8), np.float32))
    assert p.output_shape((1, 2, 9, 8)) == y.shape == idx.shape


def test_errors(rng):
    x = rng.standard_normal((1, 2, 2, 2)).astype(np.float32)
    idx = np.zeros(x.shape, np.int64)
    m = nn.MaxUnpool2d(2)
    with pytest.raises(TypeError, match="MaxUnpool2d: expected int64 indices .* got dtype int32"):
        m(x, idx.astype(np.int32))
    with pytest.raises(TypeError, match="MaxUnpool2d: expected int64 indices .* got dtype float"):
        m(x, idx.astype(np.float64))
    with pytest.raises(ValueError, match=r"MaxUnpool2d: expected indices of the input's shape "
                                         r"\(1, 2, 2, 2\), got shape \(1, 2, 2, 1\)"):
        m(x, idx[..., :1])
    with pytest.raises(ValueError, match=r"MaxUnpool2d: expected indices of the input's shape"):
        m(x[0], idx)                                    # unbatched input, batched indices
    for bad in (16, -1, 2 ** 40):
        i2 = idx.copy()
        i2[0, 1, 1, 0] = bad
        with pytest.raises(ValueError, match=f"MaxUnpool2d: index {bad} is outside the output "
                                             r"plane of 4x4 \(valid: 0 to 15\)"):
            m(x, i2)
    with pytest.raises(ValueError, match="MaxUnpool2d: output_size must have 2"):
        m(x, idx, output_size=(1, 4, 4))
    with pytest.raises(ValueError, match=r"MaxUnpool2d: invalid output_size \(6, 4\): H must be "
                                         r"between 2 and 6"):
        m(x, idx, output_size=(6, 4))
    with pytest.raises(ValueError, match="MaxUnpool2d: expected non-empty"):
        m(np.zeros((1, 0, 2, 2), np.float32), np.zeros((1, 0, 2, 2), np.int64))
    assert m(np.zeros((0, 2, 2, 2), np.float32), np.zeros((0, 2, 2, 2), np.int64)).shape == \
        (0, 2, 4, 4)
    with pytest.raises(ValueError, match="MaxUnpool2d: output size .* would be negative"):
        nn.MaxUnpool2d(1, padding=1)(x[..., :1, :1], idx[..., :1, :1])
    with pytest.raises(ValueError, match="MaxUnpool2d: kernel_size must be >= 1"):
        nn.MaxUnpool2d(0)
    with pytest.raises(ValueError, match="MaxUnpool2d: padding must be >= 0"):
        nn.MaxUnpool2d(2, padding=-1)
    with pytest.raises(TypeError, match="MaxUnpool2d: expected a float32 or float64 array"):
        m(x.astype(np.float16), idx)
    # indices changed between forward and backward: refused, not read out of bounds
    i2 = idx.copy()
    m(x, i2)
    i2[0, 0, 0, 0] = 99
    with pytest.raises(ValueError, match="MaxUnpool2d.backward: index 99 is outside"):
        m.backward(np.ones((1, 2, 4, 4), np.float32))


def test_to_torch(rng):
    """to_torch keeps return_indices, and converts MaxUnpool2d (a layer of two inputs)."""
    torch = torch_or_skip()
    from fastconv.interop import to_torch
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    pool, unpool = nn.MaxPool2d(3, 2, 1, return_indices=True), nn.MaxUnpool2d(3, 2, 1)
    tpool, tunpool = to_torch(pool), to_torch(unpool)
    assert isinstance(tunpool, torch.nn.MaxUnpool2d)
    (y, idx), (ty, tidx) = pool(x), tpool(torch.from_numpy(x))
    np.testing.assert_array_equal(idx, tidx.numpy())
    torch.set_num_threads(1)
    tz = tunpool(ty, tidx, output_size=x.shape)
    torch.set_num_threads(2)
    np.testing.assert_array_equal(unpool(y, idx, output_size=x.shape), tz.numpy())
