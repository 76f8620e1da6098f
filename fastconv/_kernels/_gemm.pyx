"""GEMM bindings: the framework and micro-kernels in the dispatch table, for tests and
reports (the layers call it through the typed helpers of _gemm.pxd)."""
from cython cimport floating

from ._cpu cimport check_workspace, fc_dispatch_t, kernels

cdef const fc_dispatch_t *KT = kernels()    # the kernel table


def kernel_names():
    """(float kernel, double kernel) micro-kernel names, e.g. ('avx512_8x48', 'avx512_8x16')."""
    return KT.gemm.s.name.decode(), KT.gemm.d.name.decode()


def bf16_kernel_name():
    """The bf16 micro-kernel in use, e.g. 'bf16_avx512bf16_8x48' (native) or
    'bf16_emulated_avx2_6x16'."""
    return KT.gemm.b.name.decode()


def matmul(const floating[:, :] a, const floating[:, :] b, floating[:, ::1] c,
           floating alpha=1, floating beta=0, int n_threads=1, bint bf16=False):
    """c = alpha * a @ b + beta * c.  a (M, K), b (K, N) with any strides; c (M, N).

    bf16: float32 operands rounded to bf16, products summed in float32.
    Used by the tests to check the engine against NumPy on every ISA path."""
    cdef Py_ssize_t M = a.shape[0], K = a.shape[1], N = b.shape[1]
    if b.shape[0] != K or c.shape[0] != M or c.shape[1] != N:
        raise ValueError(f"matmul: shapes ({M}, {K}) @ ({b.shape[0]}, {N}) -> ({c.shape[0]}, {c.shape[1]}) do not agree")
    cdef Py_ssize_t isz = sizeof(floating)
    if bf16 and floating is double:
        raise TypeError("matmul: bf16 products need float32 operands")
    with nogil:
        gemm(&KT.gemm_bf16 if bf16 else &KT.gemm, M, N, K, alpha, &a[0, 0] if M * K else NULL, a.strides[0] // isz,
             a.strides[1] // isz, &b[0, 0] if K * N else NULL, b.strides[0] // isz,
             b.strides[1] // isz, beta, &c[0, 0] if M * N else NULL, c.strides[0] // isz,
             n_threads)
    check_workspace()
