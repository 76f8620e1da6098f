# Shared GEMM entry points: other kernel modules cimport these; the C engine lives
# only in the _gemm extension.
from cython cimport floating

cdef void sgemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, float alpha,
                const float *A, Py_ssize_t rsa, Py_ssize_t csa,
                const float *B, Py_ssize_t rsb, Py_ssize_t csb,
                float beta, float *C, Py_ssize_t ldc, int nthreads) noexcept nogil
cdef void dgemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, double alpha,
                const double *A, Py_ssize_t rsa, Py_ssize_t csa,
                const double *B, Py_ssize_t rsb, Py_ssize_t csb,
                double beta, double *C, Py_ssize_t ldc, int nthreads) noexcept nogil


cdef inline void gemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, floating alpha,
                      const floating *A, Py_ssize_t rsa, Py_ssize_t csa,
                      const floating *B, Py_ssize_t rsb, Py_ssize_t csb,
                      floating beta, floating *C, Py_ssize_t ldc, int nthreads) noexcept nogil:
    """C[M x N] = alpha * A[M x K] @ B[K x N] + beta * C (general strides for A, B)."""
    if floating is float:
        sgemm(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads)
    else:
        dgemm(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads)
