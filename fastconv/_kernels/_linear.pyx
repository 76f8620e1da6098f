"""Fully-connected layer on the GEMM engine: y = x W^T + b and its gradients.
bf16=True multiplies in bf16 with float32 sums (autocast)."""
from cython cimport floating
from cython.parallel cimport prange

from ._cpu cimport check_workspace, fc_dispatch_t, kernels
from ._gemm cimport fc_gemm_ops_t, gemm

cdef const fc_dispatch_t *KT = kernels()    # the kernel table


cdef inline const fc_gemm_ops_t *gemm_ops(bint bf16, size_t itemsize) except NULL:
    """The GEMM entries of the precision asked for (bf16 products: float32 only)."""
    if not bf16:
        return &KT.gemm
    if itemsize != 4:
        raise TypeError("bf16 products need float32 operands")
    return &KT.gemm_bf16


def forward(const floating[:, ::1] x, const floating[:, ::1] w, const floating[::1] b,
            floating[:, ::1] y, int n_threads,
            bint bf16=False):
    """y = x @ w.T (+ b).  x (N, I) IN; w (O, I) IN; b (O,) or None IN; y (N, O) OUT."""
    cdef Py_ssize_t N = x.shape[0], I = x.shape[1], O = w.shape[0], n, o
    cdef const floating *bp = &b[0] if (b is not None and O > 0) else NULL
    if N * O == 0:
        return
    cdef const fc_gemm_ops_t *ops = gemm_ops(bf16, sizeof(floating))
    with nogil:
        gemm(ops, N, O, I, <floating>1, &x[0, 0] if I else NULL, I, 1,
             &w[0, 0] if I else NULL, 1, I, <floating>0, &y[0, 0], O, n_threads)
        if bp != NULL:      # O(N*O): a parallel region would cost more than the adds
            for n in range(N):
                for o in range(O):
                    y[n, o] = y[n, o] + bp[o]
    check_workspace()


def backward_input(const floating[:, ::1] dy, const floating[:, ::1] w, floating[:, ::1] dx,
                   int n_threads,
            bint bf16=False):
    """dx = dy @ w.  dy (N, O) IN; w (O, I) IN; dx (N, I) OUT."""
    cdef Py_ssize_t N = dy.shape[0], O = dy.shape[1], I = w.shape[1]
    if N * I == 0:
        return
    cdef const fc_gemm_ops_t *ops = gemm_ops(bf16, sizeof(floating))
    with nogil:
        gemm(ops, N, I, O, <floating>1, &dy[0, 0] if O else NULL, O, 1,
             &w[0, 0] if O else NULL, I, 1, <floating>0, &dx[0, 0], I, n_threads)
    check_workspace()


def backward_weight(const floating[:, ::1] dy, const floating[:, ::1] x, floating[:, ::1] dw,
                    int n_threads,
            bint bf16=False):
    """dw = dy.T @ x (the batch is the GEMM's K: a fixed-order reduction).

    dy (N, O) IN; x (N, I) IN; dw (O, I) OUT."""
    cdef Py_ssize_t N = dy.shape[0], O = dy.shape[1], I = x.shape[1]
    if O * I == 0:
        return
    cdef const fc_gemm_ops_t *ops = gemm_ops(bf16, sizeof(floating))
    with nogil:
        gemm(ops, O, I, N, <floating>1, &dy[0, 0] if N else NULL, 1, O,
             &x[0, 0] if N else NULL, I, 1, <floating>0, &dw[0, 0], I, n_threads)
    check_workspace()
