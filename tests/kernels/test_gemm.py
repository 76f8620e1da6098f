"""The GEMM engine against NumPy, on every ISA path the CPU has."""
import os
import subprocess
import sys

import numpy as np
import pytest

from fastconv._kernels import _cpu, _gemm

SHAPES = [(1, 1, 1), (7, 13, 5), (12, 32, 1), (13, 33, 17), (64, 300, 576), (250, 97, 400),
          (5, 3100, 9), (700, 20, 33), (64, 64, 200), (40, 112, 37),
          # few columns (a frame's small planes): dot products along K for N <= 8 (K tails,
          # row tails), rows straight from A for N <= 16
          (64, 4, 160), (257, 8, 77), (9, 1, 2000), (70, 3, 31), (40, 13, 300), (33, 16, 64)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_matmul_matches_numpy(M, N, K, dtype, rng):
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    c = np.full((M, N), np.nan, dtype)                       # beta=0 must overwrite NaN
    _gemm.matmul(a, b, c, 1, 0, 2)
    np.testing.assert_allclose(c, ref, atol=tol * np.sqrt(K) * 4, rtol=tol)
    c2 = np.ones((M, N), dtype)
    _gemm.matmul(np.asfortranarray(a), b.T.copy().T, c2, 0.5, 2.0, 1)   # strided operands
    np.testing.assert_allclose(c2, 0.5 * ref + 2, atol=tol * np.sqrt(K) * 4, rtol=tol)


def test_matmul_bitwise_independent_of_threads(rng):
    a = rng.standard_normal((100, 700)).astype(np.float32)
    b = rng.standard_normal((700, 900)).astype(np.float32)
    outs = []
    for nt in (1, 2, 3, 8):
        c = np.empty((100, 900), np.float32)
        _gemm.matmul(a, b, c, 1, 0, nt)
        outs.append(c)
    for c in outs[1:]:
        np.testing.assert_array_equal(c, outs[0])


@pytest.mark.parametrize("N", [1, 4, 7, 12])
def test_few_column_matmul_bitwise_independent_of_threads(N, rng):
    a = rng.standard_normal((301, 700)).astype(np.float32)
    b = rng.standard_normal((700, N)).astype(np.float32)
    outs = []
    for nt in (1, 2, 3, 8):
        c = np.empty((301, N), np.float32)
        _gemm.matmul(a, b, c, 1, 0, nt)
        outs.append(c)
    for c in outs[1:]:
        np.testing.assert_array_equal(c, outs[0])
    np.testing.assert_allclose(outs[0], a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("M,N", [(256, 64), (100, 17), (64, 96), (301, 150), (24, 64)])
def test_row_split_matmul_bitwise_independent_of_threads(M, N, rng):
    """A frame's small planes (a few column panels: 64 = 48 + 16) split the rows across
    threads instead; every element must keep the one-thread bits."""
    a = rng.standard_normal((M, 1152)).astype(np.float32)
    b = rng.standard_normal((1152, N)).astype(np.float32)
    outs = []
    for nt in (1, 2, 3, 4, 16):
        c = np.empty((M, N), np.float32)
        _gemm.matmul(a, b, c, 1, 0, nt)
        outs.append(c)
    for c in outs[1:]:
        np.testing.assert_array_equal(c, outs[0])
    np.testing.assert_allclose(outs[0], a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("n", [17, 32, 33, 64, 80])
def test_matmul_column_bits_do_not_depend_on_panel_width(n, rng):
    """Edge panels of 16 or 32 live columns run narrower micro-kernels: each column must
    come out with the same bits as when it sits inside a full-width panel.  (Products of
    16 columns or fewer take the few-column paths, which sum in another order.)"""
    a = rng.standard_normal((24, 300)).astype(np.float32)
    b = rng.standard_normal((300, 96)).astype(np.float32)
    full = np.empty((24, 96), np.float32)
    _gemm.matmul(a, b, full, 1, 0, 1)
    part = np.empty((24, n), np.float32)
    _gemm.matmul(a, np.ascontiguousarray(b[:, :n]), part, 1, 0, 1)
    np.testing.assert_array_equal(part, full[:, :n])


def test_tiny_matmul_sums_each_element_in_k_order(rng):
    """Products of at most 8192 multiply-adds (a Linear head) sum each element as one chain
    in K order (rows side by side only for speed): the default training run's bits rest
    on it, so the order is pinned here against a float32 loop."""
    M, N, K = 19, 2, 50
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    c = np.empty((M, N), np.float32)
    _gemm.matmul(a, b, c, 1, 0, 2)
    ref = np.empty((M, N), np.float32)
    for i in range(M):
        for j in range(N):
            acc = np.float32(0)
            for p in range(K):
                acc = np.float32(acc + np.float32(a[i, p] * b[p, j]))
            ref[i, j] = acc
    np.testing.assert_array_equal(c, ref)


def test_matmul_shape_error():
    with pytest.raises(ValueError, match="do not agree"):
        _gemm.matmul(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32),
                     np.ones((2, 2), np.float32))


def _supported_paths():
    best = _cpu.isa_name()
    order = ["generic", "neon"] if best == "neon" else ["generic", "avx2", "avx512"]
    return order[:order.index(best) + 1]


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512", "neon"])
def test_isa_path_forced_by_env_runs_conv_correctly(isa):
    """FASTCONV_ISA forces a lower path; a conv layer is checked against a float64
    run in a fresh interpreter (the dispatch table is filled once per process)."""
    if isa not in _supported_paths():
        pytest.skip(f"CPU lacks {isa}")
    code = (
        "import numpy as np, fastconv as fc\n"
        "from fastconv._kernels import _cpu\n"
        "assert _cpu.isa_name() == %r, _cpu.isa_name()\n"
        "sets = set(_cpu.kernel_sets().values())\n"
        "isa = _cpu.isa_name()\n"
        "assert isa == 'avx512' or sets <= {isa, 'generic' if isa == 'neon' else isa}, sets\n"
        "rng = np.random.default_rng(0)\n"
        "m = fc.nn.Conv2d(5, 37, 3, padding=1)\n"
        "x = rng.standard_normal((3, 5, 19, 23)).astype(np.float32)\n"
        "y = m(x); gx = m.backward(np.ones_like(y))\n"
        "m64 = fc.nn.Conv2d(5, 37, 3, padding=1); m64.load_state_dict(m.state_dict()); m64.double()\n"
        "y64 = m64(x.astype(np.float64)); gx64 = m64.backward(np.ones_like(y64))\n"
        "assert np.abs(y - y64).max() < 1e-4 * np.abs(y64).max()\n"
        "assert np.abs(gx - gx64).max() < 1e-4 * np.abs(gx64).max()\n"
        "assert np.abs(m.weight.grad - m64.weight.grad).max() < 1e-4 * np.abs(m64.weight.grad).max()\n"
        "for mk in (lambda: fc.nn.Conv2d(8, 8, 3, padding=1, groups=8),\n"
        "           lambda: fc.nn.Conv2d(16, 24, 3, padding=1),\n"
        "           lambda: fc.nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=8),\n"
        "           lambda: fc.nn.MaxPool2d(2), lambda: fc.nn.AvgPool2d(2)):\n"
        "    a, b = mk(), mk(); b.load_state_dict(a.state_dict()); b.double()\n"
        "    cin = 16 if isinstance(a, fc.nn.Conv2d) and a.in_channels == 16 else 8\n"
        "    xs = rng.standard_normal((2, cin, 12, 70)).astype(np.float32)\n"
        "    ya = a(xs); ga = a.backward(np.ones_like(ya))\n"
        "    yb = b(xs.astype(np.float64)); gb = b.backward(np.ones_like(yb))\n"
        "    assert np.abs(ya - yb).max() <= 1e-5 * np.abs(yb).max(), mk\n"
        "    assert np.abs(ga - gb).max() <= 1e-5 * np.abs(gb).max(), mk\n"
        "print('ok')\n" % isa)
    import fastconv
    # the child imports the same fastconv as this process (installed or built in place)
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = dict(os.environ, FASTCONV_ISA=isa,
               PYTHONPATH=os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]))
    # run outside the source tree so the installed (compiled) package is imported
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_few_column_matmul_bits_same_on_avx2_and_avx512():
    """With AVX-512VL the few-column dot products take more rows per pass (32 vector
    registers); each row's arithmetic is the AVX2 kernels', so the bits must be too
    (every column count, row counts leaving each pass width's remainder)."""
    if "avx512" not in _supported_paths():
        pytest.skip("CPU lacks avx512")
    code = (
        "import sys, numpy as np\n"
        "from fastconv._kernels import _gemm\n"
        "rng = np.random.default_rng(3); out = []\n"
        "for N in range(1, 9):\n"
        "    for M, K in ((8, 8), (41, 100), (77, 1031), (130, 2304)):\n"
        "        a = rng.standard_normal((M, K)).astype(np.float32)\n"
        "        b = rng.standard_normal((K, N)).astype(np.float32)\n"
        "        c = np.empty((M, N), np.float32); _gemm.matmul(a, b, c, 1, 0, 1)\n"
        "        out.append(c.tobytes().hex())\n"
        "print(len(out)); print(__import__('hashlib').sha256(''.join(out).encode()).hexdigest())\n")
    import fastconv
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    digests = []
    for isa in ("avx512", "avx2"):
        env = dict(os.environ, FASTCONV_ISA=isa,
                   PYTHONPATH=os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]))
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           timeout=120, cwd=os.path.dirname(os.path.abspath(__file__)))
        assert r.returncode == 0, r.stderr
        digests.append(r.stdout.split()[-1])
    assert digests[0] == digests[1]


@pytest.mark.parametrize("N", [100, 47, 16, 30])
@pytest.mark.parametrize("threads", [1, 2])
def test_few_rows_read_b_in_place_with_the_packed_bits(N, threads, rng):
    # up to 128 rows of A, B's rows are read in place (no packing) where the kernel can:
    # the same sums in the same order as the packed path of a taller A, so the same
    # bits; K over two cache blocks, edge panels of 48, 32 and 16 columns, alpha and beta
    K = 300
    a = rng.standard_normal((300, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    c0 = rng.standard_normal((300, N)).astype(np.float32)
    tall, short = c0.copy(), c0[:64].copy()
    _gemm.matmul(a, b, tall, 0.5, 2.0, threads)         # 300 rows (150 a thread): packed
    _gemm.matmul(a[:64], b, short, 0.5, 2.0, threads)   # 64 rows: B in place
    assert np.array_equal(short, tall[:64])
    ref = 0.5 * (a[:64].astype(np.float64) @ b) + 2.0 * c0[:64]
    np.testing.assert_allclose(short, ref, rtol=1e-5, atol=1e-4)
