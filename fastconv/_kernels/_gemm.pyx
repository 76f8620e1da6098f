"""GEMM engine bindings: the C engine (src/gemm*.c) behind a typed, nogil interface.

Notes
-----
The ISA path (avx512 / avx2 / generic) is chosen once, at import, before any OpenMP
region; ``FASTCONV_ISA`` may force a lower path.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t

cdef extern from "gemm.h":
    ctypedef struct fc_skernel_t:
        const char *name
    ctypedef struct fc_dkernel_t:
        const char *name
    int fc_isa() nogil
    const char *fc_isa_name() nogil
    const char *fc_compiler() nogil
    const fc_skernel_t *fc_skernel() nogil
    const fc_dkernel_t *fc_dkernel() nogil
    void fc_sgemm(fc_int M, fc_int N, fc_int K, float alpha,
                  const float *A, fc_int rsa, fc_int csa,
                  const float *B, fc_int rsb, fc_int csb,
                  float beta, float *C, fc_int ldc, int nthreads) nogil
    void fc_dgemm(fc_int M, fc_int N, fc_int K, double alpha,
                  const double *A, fc_int rsa, fc_int csa,
                  const double *B, fc_int rsb, fc_int csb,
                  double beta, double *C, fc_int ldc, int nthreads) nogil

    void fc_sgemm_ex(fc_int M, fc_int N, fc_int K, float alpha,
                     const float *A, fc_int rsa, fc_int csa, const fc_bsrc_t *B,
                     float beta, float *C, fc_int ldc, const fc_epilogue_t *ep, int nthreads) nogil
    void fc_dgemm_ex(fc_int M, fc_int N, fc_int K, double alpha,
                     const double *A, fc_int rsa, fc_int csa, const fc_bsrc_t *B,
                     double beta, double *C, fc_int ldc, const fc_epilogue_t *ep, int nthreads) nogil
    size_t fc_gemm_workspace_bytes() nogil
    int fc_gemm_take_error() nogil
    void fc_gemm_flag_error() nogil
    void fc_gemm_release_workspace(int nthreads) nogil
    double fc_fma_probe(fc_int iters, double *sink) nogil
    size_t fc_winograd_weights_size(fc_int M, fc_int C, int tile) nogil
    void fc_winograd_weights(const float *g, fc_int M, fc_int C, int tile, float *Up,
                             int nthreads) nogil
    int fc_winograd_conv(const float *x, fc_int N, fc_int C, fc_int H, fc_int W, const float *Up,
                         fc_int M, int tile, float *y, fc_int OH, fc_int OW, fc_int pt, fc_int pl,
                         const float *bias, int relu, int nthreads) nogil
    fc_int fc_winograd_wgrad_chunks(fc_int N, fc_int C, fc_int M, fc_int OH, fc_int OW) nogil
    int fc_winograd_f23_wgrad(const float *x, fc_int N, fc_int C, fc_int H, fc_int W,
                              const float *dy, fc_int M, fc_int OH, fc_int OW, fc_int pt,
                              fc_int pl, float *S, float *dw, int nthreads) nogil

fc_isa()  # fill the dispatch table now, single-threaded


cdef int gemm_failed() noexcept nogil:
    return fc_gemm_take_error()


cdef void gemm_flag_error() noexcept nogil:
    fc_gemm_flag_error()


cdef void sgemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, float alpha,
                const float *A, Py_ssize_t rsa, Py_ssize_t csa,
                const float *B, Py_ssize_t rsb, Py_ssize_t csb,
                float beta, float *C, Py_ssize_t ldc, int nthreads) noexcept nogil:
    fc_sgemm(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads)


cdef void dgemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, double alpha,
                const double *A, Py_ssize_t rsa, Py_ssize_t csa,
                const double *B, Py_ssize_t rsb, Py_ssize_t csb,
                double beta, double *C, Py_ssize_t ldc, int nthreads) noexcept nogil:
    fc_dgemm(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads)


cdef void sgemm_ex(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, float alpha,
                   const float *A, Py_ssize_t rsa, Py_ssize_t csa, const fc_bsrc_t *B,
                   float beta, float *C, Py_ssize_t ldc, const fc_epilogue_t *ep,
                   int nthreads) noexcept nogil:
    fc_sgemm_ex(M, N, K, alpha, A, rsa, csa, B, beta, C, ldc, ep, nthreads)


cdef void dgemm_ex(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, double alpha,
                   const double *A, Py_ssize_t rsa, Py_ssize_t csa, const fc_bsrc_t *B,
                   double beta, double *C, Py_ssize_t ldc, const fc_epilogue_t *ep,
                   int nthreads) noexcept nogil:
    fc_dgemm_ex(M, N, K, alpha, A, rsa, csa, B, beta, C, ldc, ep, nthreads)


def release_workspace(int n_threads):
    """Free the GEMM packing workspaces of the calling thread and an OpenMP team."""
    fc_gemm_release_workspace(n_threads)


def workspace_bytes():
    """Bytes held by the calling thread's GEMM packing workspace."""
    return fc_gemm_workspace_bytes()


def isa_name():
    """The ISA path in use: 'avx512', 'avx2' or 'generic'."""
    return fc_isa_name().decode()


def compiler():
    """The compiler (and version) that built the kernels."""
    return fc_compiler().decode()


def kernel_names():
    """(float kernel, double kernel) micro-kernel names, e.g. ('avx512_8x48', 'avx512_8x16')."""
    return fc_skernel().name.decode(), fc_dkernel().name.decode()


def matmul(const floating[:, :] a, const floating[:, :] b, floating[:, ::1] c,
           floating alpha=1, floating beta=0, int n_threads=1):
    """c = alpha * a @ b + beta * c.  a (M, K), b (K, N) with any strides; c (M, N).

    Used by the tests to check the engine against NumPy on every ISA path."""
    cdef Py_ssize_t M = a.shape[0], K = a.shape[1], N = b.shape[1]
    if b.shape[0] != K or c.shape[0] != M or c.shape[1] != N:
        raise ValueError(f"matmul: shapes ({M}, {K}) @ ({b.shape[0]}, {N}) -> ({c.shape[0]}, {c.shape[1]}) do not agree")
    cdef Py_ssize_t isz = sizeof(floating)
    with nogil:
        gemm(M, N, K, alpha, &a[0, 0] if M * K else NULL, a.strides[0] // isz, a.strides[1] // isz,
             &b[0, 0] if K * N else NULL, b.strides[0] // isz, b.strides[1] // isz,
             beta, &c[0, 0] if M * N else NULL, c.strides[0] // isz, n_threads)
    check_gemm()


def fma_peak_gflops(int n_threads=1, Py_ssize_t iters=20_000_000):
    """Measured FMA throughput (GFLOP/s) of the chosen ISA on n_threads threads:
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


def _check_tile(int tile):
    if tile != 2 and tile != 4:
        raise ValueError(f"winograd: tile must be 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)), got {tile}")


def winograd_weights_size(Py_ssize_t M, Py_ssize_t C, int tile):
    """Length of winograd_weights' output for M output and C input channels."""
    _check_tile(tile)
    return fc_winograd_weights_size(M, C, tile)


def winograd_weights(const float[:, :, :, ::1] w, float[::1] Up, int tile, int n_threads=1):
    """The F(tile x tile, 3x3) transform of 3x3 weights w (M, C, 3, 3) IN, written into the
    GEMM micro-kernel's packed panels: Up (winograd_weights_size(M, C, tile),) OUT."""
    _check_tile(tile)
    if w.shape[2] != 3 or w.shape[3] != 3 \
            or <size_t>Up.shape[0] != fc_winograd_weights_size(w.shape[0], w.shape[1], tile):
        raise ValueError("winograd_weights: expected w (M, C, 3, 3) and Up of "
                         "winograd_weights_size(M, C, tile)")
    if Up.shape[0] == 0:
        return
    with nogil:
        fc_winograd_weights(&w[0, 0, 0, 0], w.shape[0], w.shape[1], tile, &Up[0], n_threads)


def winograd_conv3x3(const float[:, :, :, ::1] x, const float[::1] Up, Py_ssize_t M, int tile,
                     const float[::1] bias, float[:, :, :, ::1] y, Py_ssize_t pt, Py_ssize_t pl,
                     bint relu, int n_threads):
    """y = relu?(conv3x3(x) + bias), stride 1, by Winograd F(tile x tile, 3x3), tile 2 or
    4.  x (N, C, H, W) IN; Up from winograd_weights(.., tile) IN; bias (M,) or None;
    y (N, M, OH, OW) OUT; the padding is (pt, pl) at the top/left, the bottom/right
    implied by OH, OW."""
    cdef const float *bp = &bias[0] if bias is not None else NULL
    cdef int rc
    _check_tile(tile)
    if y.shape[1] != M or <size_t>Up.shape[0] != fc_winograd_weights_size(M, x.shape[1], tile):
        raise ValueError("winograd_conv3x3: inconsistent shapes")
    if y.shape[0] * y.shape[1] * y.shape[2] * y.shape[3] == 0:
        return
    with nogil:
        rc = fc_winograd_conv(&x[0, 0, 0, 0], x.shape[0], x.shape[1], x.shape[2], x.shape[3],
                              &Up[0], M, tile, &y[0, 0, 0, 0], y.shape[2], y.shape[3], pt, pl,
                              bp, relu, n_threads)
    if rc != 0:
        raise MemoryError("winograd_conv3x3: cannot allocate scratch")


def winograd_wgrad_scratch_shape(Py_ssize_t N, Py_ssize_t C, Py_ssize_t M, Py_ssize_t OH,
                                 Py_ssize_t OW):
    """Shape of winograd_conv3x3_wgrad's scratch: (chunks, 16, M, C), chunks fixed by shapes."""
    return (max(1, fc_winograd_wgrad_chunks(N, C, M, OH, OW)), 16, M, C)


def winograd_conv3x3_wgrad(const float[:, :, :, ::1] x, const float[:, :, :, ::1] dy,
                           float[:, :, :, ::1] S, float[:, ::1] dw, Py_ssize_t pt,
                           Py_ssize_t pl, int n_threads):
    """Weight gradient of winograd_conv3x3 (either tile) by the F(2x2, 3x3) transforms.

    x (N, C, H, W) IN; dy (N, M, OH, OW) IN; S winograd_wgrad_scratch_shape() scratch;
    dw (M, C*9) OUT.  Bits do not depend on n_threads."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], M = dy.shape[1], rc
    if dy.shape[0] != N or dw.shape[0] != M or dw.shape[1] != C * 9 \
            or (S.shape[0], S.shape[1], S.shape[2], S.shape[3]) \
            != winograd_wgrad_scratch_shape(N, C, M, dy.shape[2], dy.shape[3]):
        raise ValueError("winograd_conv3x3_wgrad: inconsistent shapes")
    if M * C == 0:
        return
    if N * dy.shape[2] * dy.shape[3] == 0 or C * x.shape[2] * x.shape[3] == 0:
        dw[...] = 0
        return
    with nogil:
        rc = fc_winograd_f23_wgrad(&x[0, 0, 0, 0], N, C, x.shape[2], x.shape[3], &dy[0, 0, 0, 0],
                                   M, dy.shape[2], dy.shape[3], pt, pl, &S[0, 0, 0, 0],
                                   &dw[0, 0], n_threads)
    if rc != 0:
        raise MemoryError("winograd_conv3x3_wgrad: cannot allocate scratch")
    check_gemm()
