"""The runtime: threads, the allocator cache and workspaces, and what was built.

Threads are resolved here and read per call (never cached), so OMP_NUM_THREADS,
``fastconv.set_num_threads`` and ``threadpoolctl.threadpool_limits`` all take effect
immediately.  All three set the same OpenMP runtime's ICV: the extensions link the
runtime threadpoolctl sees (libgomp under GCC).
"""
from ._kernels import _cpu, _gemm, _memory, _openmp_helpers


def get_num_threads():
    """Number of OpenMP threads fastconv kernels use in the calling thread."""
    return max(1, _openmp_helpers.get_max_threads())


def set_num_threads(n):
    """Set the number of OpenMP threads for fastconv kernels (like torch.set_num_threads).

    Applies to the OpenMP runtime fastconv links, for the calling thread and the
    threads it starts.  ``threadpoolctl.threadpool_limits(n)`` does the same."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: expected an int, got {n!r}")
    if n < 1:
        raise ValueError(f"set_num_threads: expected n >= 1, got {n}")
    _openmp_helpers.set_max_threads(n)


def isa_name():
    """The ISA path the kernels' GEMM runs: 'avx512', 'avx2' or 'generic' on x86-64,
    'neon' or 'generic' on AArch64 (FASTCONV_ISA may force a lower one)."""
    return _cpu.isa_name()


def fma_peak_gflops(threads=None, iters=5_000_000):
    """The float32 FMA throughput measured on this machine (GFLOP/s) with ``threads``
    OpenMP threads: the denominator of benchmarks' "% of peak"."""
    return _cpu.fma_peak_gflops(threads or get_num_threads(), iters)


def empty_cache():
    """Release idle cached activation blocks and the kernels' per-thread workspaces
    (GEMM packing, Winograd and depthwise scratch).

    fastconv keeps freed arrays of >= 1 MiB for reuse (a fresh large array costs a
    page fault per 4 KiB on first touch); live arrays are never affected."""
    _memory.empty_cache()
    _cpu.release_workspace(get_num_threads())


def memory_stats():
    """dict(live_bytes, idle_bytes, peak_live_bytes, hits, misses, limit) of the cache."""
    return _memory.stats()


def show_config():
    """Print version, compiler, ISA path, GEMM micro-kernels, OpenMP runtime and thread
    count (like ``numpy.show_config()``)."""
    import platform

    import numpy

    from . import __version__
    print(f"fastconv {__version__}  (Python {platform.python_version()}, "
          f"NumPy {numpy.__version__}, {platform.machine()})")
    print(f"  compiler:       {_cpu.compiler()}")
    lower = "generic" if _cpu.isa_name() in ("neon", "generic") else "avx512f, avx2 or generic"
    print(f"  ISA path:       {_cpu.isa_name()}  (FASTCONV_ISA may force {lower})")
    print(f"  CPU flags:      {' '.join(_cpu.features()) or 'none'}")
    print(f"  GEMM kernels:   float {_gemm.kernel_names()[0]}, double {_gemm.kernel_names()[1]}, "
          f"bf16 {_gemm.bf16_kernel_name()}")
    sets = _cpu.kernel_sets()
    print(f"  plane kernels:  pooling {sets['pool']}, BatchNorm {sets['norm']}, "
          f"depthwise {sets['depthwise']}, weight gradient {sets['wgrad']}")
    print(f"  OpenMP:         {'enabled' if _openmp_helpers.openmp_enabled() else 'disabled'}")
    print(f"  threads:        {get_num_threads()}")
    try:
        from threadpoolctl import threadpool_info
        for info in threadpool_info():
            if info.get("user_api") == "openmp":
                print(f"  OpenMP runtime: {info.get('filepath')} ({info.get('num_threads')} threads)")
    except ImportError:
        pass
