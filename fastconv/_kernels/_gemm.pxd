# Shared GEMM entry points: other kernel modules cimport these; the C engine lives
# only in the _gemm extension (the header supplies the struct layouts).
from cython cimport floating
from libc.stdint cimport int64_t

cdef extern from "gemm.h":
    ctypedef int64_t fc_int
    enum:
        FC_B_MATRIX
        FC_B_IM2COL
        FC_B_IM2COL_T
        FC_B_OFFSETS
        FC_B_OFFSETS_T
    ctypedef struct fc_conv_geom_t:
        fc_int C, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, nimg, istride
    ctypedef struct fc_bsrc_t:
        int kind
        const void *ptr
        fc_int rs, cs
        fc_conv_geom_t g
        const fc_int *off
    ctypedef struct fc_epilogue_t:
        const void *row_bias
        int relu

cdef int gemm_failed() noexcept nogil    # take (and clear) the allocation-failure flag
cdef void gemm_flag_error() noexcept nogil   # raise it (a caller's scratch failed)

cdef void sgemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, float alpha,
                const float *A, Py_ssize_t rsa, Py_ssize_t csa,
                const float *B, Py_ssize_t rsb, Py_ssize_t csb,
                float beta, float *C, Py_ssize_t ldc, int nthreads) noexcept nogil
cdef void dgemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, double alpha,
                const double *A, Py_ssize_t rsa, Py_ssize_t csa,
                const double *B, Py_ssize_t rsb, Py_ssize_t csb,
                double beta, double *C, Py_ssize_t ldc, int nthreads) noexcept nogil
cdef void sgemm_ex(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, float alpha,
                   const float *A, Py_ssize_t rsa, Py_ssize_t csa, const fc_bsrc_t *B,
                   float beta, float *C, Py_ssize_t ldc, const fc_epilogue_t *ep,
                   int nthreads) noexcept nogil
cdef void dgemm_ex(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, double alpha,
                   const double *A, Py_ssize_t rsa, Py_ssize_t csa, const fc_bsrc_t *B,
                   double beta, double *C, Py_ssize_t ldc, const fc_epilogue_t *ep,
                   int nthreads) noexcept nogil


cdef inline void gemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, floating alpha,
                      const floating *A, Py_ssize_t rsa, Py_ssize_t csa,
                      const floating *B, Py_ssize_t rsb, Py_ssize_t csb,
                      floating beta, floating *C, Py_ssize_t ldc, int nthreads) noexcept nogil:
    """C[M x N] = alpha * A[M x K] @ B[K x N] + beta * C (general strides for A, B)."""
    if floating is float:
        sgemm(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads)
    else:
        dgemm(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads)


cdef inline void gemm_ex(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, floating alpha,
                         const floating *A, Py_ssize_t rsa, Py_ssize_t csa, const fc_bsrc_t *B,
                         floating beta, floating *C, Py_ssize_t ldc, const fc_epilogue_t *ep,
                         int nthreads) noexcept nogil:
    """C = alpha * A @ B(source) + beta * C, then the epilogue (row bias, ReLU)."""
    if floating is float:
        sgemm_ex(M, N, K, alpha, A, rsa, csa, B, beta, C, ldc, ep, nthreads)
    else:
        dgemm_ex(M, N, K, alpha, A, rsa, csa, B, beta, C, ldc, ep, nthreads)


cdef inline void check_gemm() except *:
    """Raise MemoryError if a GEMM since the last check could not get its workspace."""
    if gemm_failed():
        raise MemoryError("fastconv: a GEMM could not allocate its packing workspace")
