# pool.h: the 2x2 pooling plane kernels' dispatch-table entries.
from ._base cimport fc_int
from libc.stdint cimport int32_t

cdef extern from "pool.h":
    ctypedef struct fc_pool_kernels_t:
        const char *name
        void (*max2x2_fwd)(const float *x, fc_int H, fc_int W, float *y, unsigned char *idx,
                           fc_int OH, fc_int OW) noexcept nogil
        void (*max2x2_bwd)(const float *dy, const unsigned char *idx, fc_int OH, fc_int OW,
                           float *dx, fc_int H, fc_int W) noexcept nogil
        void (*avg2x2_fwd)(const float *x, fc_int H, fc_int W, float *y, fc_int OH, fc_int OW,
                           float div) noexcept nogil
        void (*avg2x2_bwd)(const float *dy, fc_int OH, fc_int OW, float *dx, fc_int H,
                           fc_int W, float div) noexcept nogil
        void (*max_rows)(const float *row, fc_int W, float *hr, int32_t *hc, fc_int OW,
                         fc_int KW, fc_int sw, fc_int pw, fc_int dw) noexcept nogil
        void (*max_cols)(const float *hr, const int32_t *hc, int32_t base, fc_int OW, float *y,
                         int32_t *idx, int first) noexcept nogil
