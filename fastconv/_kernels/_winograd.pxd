# winograd.h: the Winograd drivers' dispatch-table entries.
from ._base cimport fc_int

cdef extern from "winograd.h":
    ctypedef struct fc_winograd_ops_t:
        size_t (*weights_size)(fc_int M, fc_int C, int tile, int bf16) noexcept nogil
        void (*weights)(const float *g, fc_int M, fc_int C, int tile, float *Up,
                        int bf16, int nthreads) noexcept nogil
        int (*conv)(const float *x, fc_int N, fc_int C, fc_int H, fc_int W, const float *Up,
                    fc_int M, int tile, float *y, fc_int OH, fc_int OW, fc_int pt, fc_int pl,
                    const float *bias, int relu, int bf16, int nthreads) noexcept nogil
        fc_int (*wgrad_chunks)(fc_int N, fc_int C, fc_int M, fc_int OH, fc_int OW) noexcept nogil
        int (*wgrad)(const float *x, fc_int N, fc_int C, fc_int H, fc_int W, const float *dy,
                     fc_int M, fc_int OH, fc_int OW, fc_int pt, fc_int pl, float *S, float *dw,
                     int bf16, int nthreads) noexcept nogil
