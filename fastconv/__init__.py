"""fastconv: fast CNN building blocks for the CPU, with a torch.nn-like API.

Every layer has a compiled (Cython/C, OpenMP) forward and backward::

    import fastconv as fc
    m = fc.nn.Conv2d(3, 16, 3, padding=1)
    y = m(x)                 # x: float32 ndarray (N, 3, H, W)
    gx = m.backward(gy)      # parameter grads accumulate into m.weight.grad
"""
from . import functional, models, nn, optim
from ._grad import is_grad_enabled, no_grad
from ._random import manual_seed
from ._threads import get_num_threads, set_num_threads
from .interop import (export_torch, import_torch, load_state_dict, save_state_dict,
                      to_torch)

__version__ = "0.1.0"

__all__ = ["nn", "optim", "models", "functional", "no_grad", "is_grad_enabled", "manual_seed",
           "set_num_threads", "get_num_threads", "show_config", "empty_cache", "memory_stats",
           "export_torch", "import_torch", "save_state_dict", "load_state_dict", "to_torch",
           "__version__"]


def empty_cache():
    """Release idle cached activation blocks and the GEMM packing workspaces.

    fastconv keeps freed arrays of >= 1 MiB for reuse (a fresh large array costs a
    page fault per 4 KiB on first touch); live arrays are never affected."""
    from ._kernels import _gemm, _memory
    _memory.empty_cache()
    _gemm.release_workspace(get_num_threads())


def memory_stats():
    """dict(live_bytes, idle_bytes, peak_live_bytes, hits, misses, limit) of the cache."""
    from ._kernels import _memory
    return _memory.stats()


def show_config():
    """Print version, compiler, ISA path, GEMM micro-kernels, OpenMP runtime and thread
    count (like ``numpy.show_config()``)."""
    import platform
    from ._kernels import _gemm, _openmp_helpers
    print(f"fastconv {__version__}  (Python {platform.python_version()}, "
          f"NumPy {__import__('numpy').__version__}, {platform.machine()})")
    print(f"  compiler:       {_gemm.compiler()}")
    print(f"  ISA path:       {_gemm.isa_name()}  (FASTCONV_ISA may force avx2 or generic)")
    print(f"  GEMM kernels:   float {_gemm.kernel_names()[0]}, double {_gemm.kernel_names()[1]}")
    print(f"  OpenMP:         {'enabled' if _openmp_helpers.openmp_enabled() else 'disabled'}")
    print(f"  threads:        {get_num_threads()}")
    try:
        from threadpoolctl import threadpool_info
        for info in threadpool_info():
            if info.get("user_api") == "openmp":
                print(f"  OpenMP runtime: {info.get('filepath')} ({info.get('num_threads')} threads)")
    except ImportError:
        pass
