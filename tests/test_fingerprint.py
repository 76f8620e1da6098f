"""The inference cache's fingerprint of weights (_memory.fingerprint): any change to the
bytes changes it (one word anywhere, the tail bytes, a pair of sign flips that a plain
multiplicative hash would cancel), equal bytes give equal values at any thread count and
for the same bytes in either contiguous order, and a cached layer sees an in-place change of its weights."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from fastconv._kernels import _memory
from helpers import at_thread_counts


def _fp(a, nt=1):
    return _memory.fingerprint((a,), nt)[0]


@pytest.mark.parametrize("n", [1, 3, 8, 31, 33, 1000, (1 << 20) + 5, 5 << 20])
def test_every_single_change_shows(n):
    rng = np.random.default_rng(n % 997)
    a = rng.standard_normal(n).astype(np.float32)
    f = _fp(a)
    for i in sorted({0, n // 3, n // 2, n - 1}):
        b = a.copy()
        b[i] = np.nextafter(b[i], np.inf)
        assert _fp(b) != f
    if n >= 3:
        b = a.copy()
        b[0], b[2] = -b[0], -b[2]                 # bit 31 of two words in one lane
        assert _fp(b) != f
    assert _fp(a[:n - 1]) != f or n == 1          # the length counts


def test_same_bytes_same_fingerprint_at_any_thread_count():
    a = np.random.default_rng(1).standard_normal(9 << 20 // 4).astype(np.float32)
    outs = at_thread_counts(lambda: _memory.fingerprint((a, None, a[:7]), fc.get_num_threads()))
    assert all(o == outs[0] for o in outs)
    assert outs[0][1] is None
    assert _fp(a.copy()) == outs[0][0]
    assert _fp(np.asfortranarray(a.reshape(-1, 4).T)) == _fp(a.reshape(-1, 4).T.copy("F"))


def test_non_contiguous_is_refused():
    with pytest.raises((BufferError, ValueError)):
        _memory.fingerprint((np.zeros((8, 8), np.float32)[:, ::2],))


def test_cached_winograd_layer_sees_in_place_weight_change():
    rng = np.random.default_rng(2)
    conv, bn = nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
    net = nn.Sequential(conv, bn).eval()
    x = rng.standard_normal((1, 32, 12, 12)).astype(np.float32)
    with fc.no_grad():
        y0 = net(x)
        conv.weight.data[3, 5, 1, 1] += 1.0       # in place: the cached transform is stale
        y1 = net(x)
        ref = net.__class__(nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32))
        ref.load_state_dict(net.state_dict())
        y_ref = ref.eval()(x)
    assert not np.allclose(y0, y1)
    np.testing.assert_allclose(y1, y_ref, rtol=1e-5, atol=1e-5)
