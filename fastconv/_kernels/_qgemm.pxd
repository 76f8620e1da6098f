# qgemm.h: the int8 inference kernels' dispatch-table entries.
from libc.stdint cimport int8_t, int32_t, uint8_t
from ._base cimport fc_int

cdef extern from "qgemm.h":
    ctypedef struct fc_qepi_t:
        const int32_t *comp
        const float *mult
        const float *bias
        float lo, hi
        uint8_t *y8
        float *yf
        fc_int ldy
    ctypedef struct fc_qkernel_t:
        unsigned requires
        int mr, nr
        const char *name
    ctypedef struct fc_qgeom_t:
        fc_int n, h, w, c
        fc_int kh, kw, sh, sw, ph, pw, dh, dw
        fc_int oh, ow
        int zp
    ctypedef struct fc_qgemm_ops_t:
        const fc_qkernel_t *kernel
        fc_int (*pack_size)(const fc_qkernel_t *k, fc_int K, fc_int cout) noexcept nogil
        void (*pack)(const fc_qkernel_t *k, const int8_t *w, fc_int K, fc_int cout,
                     int8_t *bp) noexcept nogil
        int (*conv)(const fc_qkernel_t *k, const uint8_t *x, const fc_qgeom_t *g,
                    const int8_t *bp, fc_int cout, const fc_qepi_t *e,
                    int nthreads) noexcept nogil
        void (*dwconv)(const uint8_t *x, const fc_qgeom_t *g, const int8_t *w,
                       const fc_qepi_t *e, int nthreads) noexcept nogil
