# pool.h: the 2x2 pooling plane kernels' dispatch-table entries.
from ._base cimport fc_int

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
