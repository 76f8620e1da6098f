# gemm.h: the GEMM framework's types and dispatch-table entries, and typed calls of them.
from cython cimport floating
from ._base cimport fc_int

cdef extern from "gemm.h":
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
        const void *row_scale
        int relu
    ctypedef struct fc_skernel_t:
        const char *name
    ctypedef struct fc_dkernel_t:
        const char *name
    ctypedef struct fc_bkernel_t:
        const char *name
    void fc_bf16_pairs(float *panel, fc_int k, int w) nogil
    ctypedef struct fc_gemm_ops_t:
        const fc_skernel_t *s
        const fc_dkernel_t *d
        const fc_bkernel_t *b
        void (*sgemm_ex)(fc_int M, fc_int N, fc_int K, float alpha,
                         const float *A, fc_int rsa, fc_int csa, const fc_bsrc_t *B,
                         float beta, float *C, fc_int ldc, const fc_epilogue_t *ep,
                         int nthreads) noexcept nogil
        void (*dgemm_ex)(fc_int M, fc_int N, fc_int K, double alpha,
                         const double *A, fc_int rsa, fc_int csa, const fc_bsrc_t *B,
                         double beta, double *C, fc_int ldc, const fc_epilogue_t *ep,
                         int nthreads) noexcept nogil
        void (*sgemm)(fc_int M, fc_int N, fc_int K, float alpha,
                      const float *A, fc_int rsa, fc_int csa,
                      const float *B, fc_int rsb, fc_int csb,
                      float beta, float *C, fc_int ldc, int nthreads) noexcept nogil
        void (*dgemm)(fc_int M, fc_int N, fc_int K, double alpha,
                      const double *A, fc_int rsa, fc_int csa,
                      const double *B, fc_int rsb, fc_int csb,
                      double beta, double *C, fc_int ldc, int nthreads) noexcept nogil
        int (*sconv_taps)(fc_int N, fc_int C, fc_int H, fc_int W, fc_int M, fc_int OH,
                          fc_int OW, fc_int KH, fc_int KW, fc_int sh, fc_int sw, fc_int ph,
                          fc_int pw, fc_int dh, fc_int dw, const float *x, const float *w,
                          const float *scale, const float *bias, int relu, float *y,
                          int nthreads) noexcept nogil
        int (*dconv_taps)(fc_int N, fc_int C, fc_int H, fc_int W, fc_int M, fc_int OH,
                          fc_int OW, fc_int KH, fc_int KW, fc_int sh, fc_int sw, fc_int ph,
                          fc_int pw, fc_int dh, fc_int dw, const double *x, const double *w,
                          const double *scale, const double *bias, int relu, double *y,
                          int nthreads) noexcept nogil
        int (*sconv_taps_wgrad)(fc_int N, fc_int C, fc_int H, fc_int W, fc_int M, fc_int OH,
                                fc_int OW, fc_int KH, fc_int KW, fc_int sh, fc_int sw,
                                fc_int ph, fc_int pw, fc_int dh, fc_int dw, const float *x,
                                const float *dy, float *dwt, int nthreads) noexcept nogil
        int (*dconv_taps_wgrad)(fc_int N, fc_int C, fc_int H, fc_int W, fc_int M, fc_int OH,
                                fc_int OW, fc_int KH, fc_int KW, fc_int sh, fc_int sw,
                                fc_int ph, fc_int pw, fc_int dh, fc_int dw, const double *x,
                                const double *dy, double *dwt, int nthreads) noexcept nogil


cdef inline void gemm(const fc_gemm_ops_t *ops, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                      floating alpha, const floating *A, Py_ssize_t rsa, Py_ssize_t csa,
                      const floating *B, Py_ssize_t rsb, Py_ssize_t csb,
                      floating beta, floating *C, Py_ssize_t ldc, int nthreads) noexcept nogil:
    """C[M x N] = alpha * A[M x K] @ B[K x N] + beta * C (general strides for A, B).
    ops: the dispatch table's GEMM entries (&_cpu.kernels().gemm)."""
    if floating is float:
        ops.sgemm(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads)
    else:
        ops.dgemm(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads)


cdef inline void gemm_ex(const fc_gemm_ops_t *ops, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                         floating alpha, const floating *A, Py_ssize_t rsa, Py_ssize_t csa,
                         const fc_bsrc_t *B, floating beta, floating *C, Py_ssize_t ldc,
                         const fc_epilogue_t *ep, int nthreads) noexcept nogil:
    """C = alpha * A @ B(source) + beta * C, then the epilogue (row bias, ReLU)."""
    if floating is float:
        ops.sgemm_ex(M, N, K, alpha, A, rsa, csa, B, beta, C, ldc, ep, nthreads)
    else:
        ops.dgemm_ex(M, N, K, alpha, A, rsa, csa, B, beta, C, ldc, ep, nthreads)
