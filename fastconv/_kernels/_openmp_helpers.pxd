# OpenMP entry points, stubbed when the build has no OpenMP (sklearn's pattern).
from ._base cimport FC_PARALLEL_GRAIN

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FC_OPENMP 1
    #else
    #define FC_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_thread_num(void) { return 0; }
    static void omp_set_num_threads(int n) { (void)n; }
    #endif
    """
    int FC_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
    void omp_set_num_threads(int n) noexcept nogil


cdef inline int nthreads_for(Py_ssize_t work, int n_threads) noexcept nogil:
    """n_threads, or 1 for work (elements) under the parallel grain (base.h)."""
    return n_threads if work > FC_PARALLEL_GRAIN else 1
