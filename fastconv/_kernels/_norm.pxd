# norm.h: the BatchNorm plane kernels' dispatch-table entries.
from ._base cimport fc_int

cdef extern from "norm.h":
    enum: FC_NORM_FLUSH
    ctypedef struct fc_norm_kernels_t:
        const char *name
        double (*sum)(const float *x, fc_int n) noexcept nogil
        double (*sum_planes)(const float *x, fc_int np, fc_int n, fc_int xs) noexcept nogil
        double (*sqdev_planes)(const float *x, fc_int np, fc_int n, fc_int xs,
                               float mean) noexcept nogil
        void (*bwd_sums_planes)(const float *x, const float *dy, const float *y, int relu,
                                float ma, float mb, fc_int np, fc_int n, fc_int xs, fc_int gs,
                                float mean, double *s1, double *s2) noexcept nogil
        void (*affine)(const float *x, float *y, fc_int n, float m, float a, float b,
                       int relu) noexcept nogil
        void (*bwd_apply)(const float *x, const float *dy, const float *y, int relu, float ma,
                          float mb, float *dx, fc_int n, double m, double a, double b,
                          double ik, int exact) noexcept nogil
