"""Thread count: resolved in one place, read per call (never cached), so
OMP_NUM_THREADS, ``fastconv.set_num_threads`` and ``threadpoolctl.threadpool_limits``
all take effect immediately.  All three set the same OpenMP runtime's ICV: the
extensions link the runtime threadpoolctl sees (libgomp under GCC)."""
from ._kernels import _openmp_helpers


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
