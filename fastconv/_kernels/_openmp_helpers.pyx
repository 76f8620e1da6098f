"""Thread-count plumbing.  The only place fastconv touches the OpenMP runtime's state."""
from ._openmp_helpers cimport FC_OPENMP, omp_get_max_threads, omp_set_num_threads


def openmp_enabled():
    """True when the extensions were built with OpenMP."""
    return bool(FC_OPENMP)


def get_max_threads():
    """omp_get_max_threads() of the calling thread (follows OMP_NUM_THREADS and
    threadpoolctl, which both set the same runtime's ICV)."""
    return omp_get_max_threads()


def set_max_threads(int n):
    """omp_set_num_threads(n) on the runtime the extensions link."""
    omp_set_num_threads(n)
