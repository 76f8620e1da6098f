"""Winograd convolution bindings: 3x3, stride 1, float32, by F(2x2, 3x3) or F(4x4, 3x3)
(the drivers and per-ISA transforms of src/winograd*.c, through the dispatch table)."""
from ._cpu cimport check_workspace, fc_dispatch_t, kernels

cdef const fc_dispatch_t *KT = kernels()    # the kernel table


def _check_tile(int tile):
    if tile != 2 and tile != 4:
        raise ValueError(f"winograd: tile must be 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)), got {tile}")


def winograd_weights_size(Py_ssize_t M, Py_ssize_t C, int tile, bint bf16=False):
    """Length of winograd_weights' output for M output and C input channels."""
    _check_tile(tile)
    return KT.winograd.weights_size(M, C, tile, bf16)


def winograd_weights(const float[:, :, :, ::1] w, float[::1] Up, int tile, int n_threads=1,
                     bint bf16=False):
    """The F(tile x tile, 3x3) transform of 3x3 weights w (M, C, 3, 3) IN, written into the
    GEMM micro-kernel's packed panels: Up (winograd_weights_size(M, C, tile, bf16),) OUT
    (bf16: as the bf16 micro-kernel's pair panels)."""
    _check_tile(tile)
    if w.shape[2] != 3 or w.shape[3] != 3 \
            or <size_t>Up.shape[0] != KT.winograd.weights_size(w.shape[0], w.shape[1], tile, bf16):
        raise ValueError("winograd_weights: expected w (M, C, 3, 3) and Up of "
                         "winograd_weights_size(M, C, tile)")
    if Up.shape[0] == 0:
        return
    with nogil:
        KT.winograd.weights(&w[0, 0, 0, 0], w.shape[0], w.shape[1], tile, &Up[0], bf16,
                            n_threads)


def winograd_conv3x3(const float[:, :, :, ::1] x, const float[::1] Up, Py_ssize_t M, int tile,
                     const float[::1] bias, float[:, :, :, ::1] y, Py_ssize_t pt, Py_ssize_t pl,
                     bint relu, int n_threads, bint bf16=False):
    """y = relu?(conv3x3(x) + bias), stride 1, by Winograd F(tile x tile, 3x3), tile 2 or
    4 (bf16: transformed operands multiplied in bf16, Up made with bf16=True).  x (N, C, H, W) IN; Up from winograd_weights(.., tile) IN; bias (M,) or None;
    y (N, M, OH, OW) OUT; the padding is (pt, pl) at the top/left, the bottom/right
    implied by OH, OW."""
    cdef const float *bp = &bias[0] if bias is not None else NULL
    cdef int rc
    _check_tile(tile)
    if y.shape[1] != M or <size_t>Up.shape[0] != KT.winograd.weights_size(M, x.shape[1], tile, bf16):
        raise ValueError("winograd_conv3x3: inconsistent shapes")
    if y.shape[0] * y.shape[1] * y.shape[2] * y.shape[3] == 0:
        return
    with nogil:
        rc = KT.winograd.conv(&x[0, 0, 0, 0], x.shape[0], x.shape[1], x.shape[2], x.shape[3],
                              &Up[0], M, tile, &y[0, 0, 0, 0], y.shape[2], y.shape[3], pt, pl,
                              bp, relu, bf16, n_threads)
    if rc != 0:
        raise MemoryError("winograd_conv3x3: cannot allocate scratch")


def winograd_wgrad_scratch_shape(Py_ssize_t N, Py_ssize_t C, Py_ssize_t M, Py_ssize_t OH,
                                 Py_ssize_t OW):
    """Shape of winograd_conv3x3_wgrad's scratch: (chunks, 16, M, C), chunks fixed by shapes."""
    return (max(1, KT.winograd.wgrad_chunks(N, C, M, OH, OW)), 16, M, C)


def winograd_conv3x3_wgrad(const float[:, :, :, ::1] x, const float[:, :, :, ::1] dy,
                           float[:, :, :, ::1] S, float[:, ::1] dw, Py_ssize_t pt,
                           Py_ssize_t pl, int n_threads, bint bf16=False):
    """Weight gradient of winograd_conv3x3 (either tile) by the F(2x2, 3x3) transforms
    (bf16: its GEMMs multiply in bf16).

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
        rc = KT.winograd.wgrad(&x[0, 0, 0, 0], N, C, x.shape[2], x.shape[3], &dy[0, 0, 0, 0],
                               M, dy.shape[2], dy.shape[3], pt, pl, &S[0, 0, 0, 0],
                               &dw[0, 0], bf16, n_threads)
    if rc != 0:
        raise MemoryError("winograd_conv3x3_wgrad: cannot allocate scratch")
    check_workspace()
