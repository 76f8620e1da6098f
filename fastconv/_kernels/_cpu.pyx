"""The kernel library's core: the CPU flags, the dispatch table, the per-thread workspace.

Notes
-----
Every C function of fastconv is linked into this extension.  Importing it detects the
CPU flags (``FASTCONV_ISA`` may remove some) and fills the dispatch table, once, before
any OpenMP region; the other kernel modules cimport ``kernels()`` and call C through
it, so the flags, the chosen kernels and the workspace exist once per process.
"""
from cython.parallel cimport prange

fc_dispatch_init()


cdef const fc_dispatch_t *kernels() noexcept nogil:
    return &fc_dispatch


def features():
    """The CPU flags in use (after FASTCONV_ISA), e.g. ['avx2', 'fma', 'avx512f', ...]."""
    return [fc_cpu_flag_name(b).decode() for b in range(FC_CPU_NFLAGS) if fc_cpu_has(1 << b)]


def isa_name():
    """The ISA path in use: 'avx512', 'avx2' or 'generic'."""
    return fc_isa_name().decode()


def kernel_sets():
    """The memory-bound kernel sets in use by family, e.g. {'pool': 'avx512', 'norm':
    'avx512', 'depthwise': 'avx512', 'wgrad': 'avx2'} ('neon' on AArch64, 'generic' when
    forced)."""
    return {"pool": fc_dispatch.pool.name.decode(), "norm": fc_dispatch.norm.name.decode(),
            "depthwise": fc_dispatch.depthwise.name.decode(),
            "wgrad": fc_dispatch.wgrad.name.decode()}


def compiler():
    """The compiler (and version) that built the kernels."""
    return fc_compiler().decode()


def release_workspace(int n_threads):
    """Free the kernels' per-thread workspaces: the calling thread's and an OpenMP team's."""
    fc_workspace_release(n_threads)


def workspace_bytes():
    """Bytes held by the calling thread's workspace."""
    return fc_workspace_bytes()


def fma_peak_gflops(int n_threads=1, Py_ssize_t iters=20_000_000):
    """Measured FMA throughput (GFLOP/s) of the ISA path on n_threads threads:
    independent FMA chains, no memory traffic.  The benchmarks quote % of this."""
    import time
    import numpy as np
    cdef double[::1] flops = np.zeros(n_threads), sink = np.zeros(n_threads)
    cdef Py_ssize_t t
    fc_fma_probe(1000, &sink[0])                    # warm up clocks
    t0 = time.perf_counter()
    with nogil:
        for t in prange(n_threads, num_threads=n_threads, schedule='static', chunksize=1):
            flops[t] = fc_fma_probe(iters, &sink[t])
    dt = time.perf_counter() - t0
    return float(np.sum(flops)) / dt / 1e9
