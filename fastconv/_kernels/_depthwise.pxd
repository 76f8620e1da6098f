# depthwise.h: the depthwise plane kernels' dispatch-table entries.
from ._base cimport fc_int

cdef extern from "depthwise.h":
    enum:
        FC_DW_GRAIN
        FC_DW_FWD_GRAIN
        FC_DW_LANES_BELOW
        FC_DW_LANES_BELOW_S
    ctypedef struct fc_dwgeom_t:
        fc_int sh, sw, ph, pw, dh, dw
    ctypedef struct fc_dw_kernels_t:
        const char *name
        void (*fwd_plane_f32)(const float *x, fc_int H, fc_int W, const float *w, fc_int KH,
                              fc_int KW, float *y, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                              float bias, int relu) noexcept nogil
        void (*bwd_plane_f32)(const float *x, const float *dy, fc_int H, fc_int W,
                              const float *w, fc_int KH, fc_int KW, fc_int OH, fc_int OW,
                              const fc_dwgeom_t *g, float *dx, int assign,
                              double *dw_acc) noexcept nogil
        void (*fwd_plane_f64)(const double *x, fc_int H, fc_int W, const double *w, fc_int KH,
                              fc_int KW, double *y, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                              double bias, int relu) noexcept nogil
        void (*bwd_plane_f64)(const double *x, const double *dy, fc_int H, fc_int W,
                              const double *w, fc_int KH, fc_int KW, fc_int OH, fc_int OW,
                              const fc_dwgeom_t *g, double *dx, int assign,
                              double *dw_acc) noexcept nogil
        void (*fwd_padded_f32)(const float *xp, fc_int PWD, const float *w, fc_int KH,
                               fc_int KW, float *y, fc_int OH, fc_int OW, fc_int dh, fc_int dw,
                               float bias, int relu, float *row) noexcept nogil
        void (*bwd_padded_f32)(const float *xp, float *dxp, fc_int PWD, const float *dy,
                               const float *w, fc_int KH, fc_int KW, fc_int OH, fc_int OW,
                               fc_int dh, fc_int dw, double *dw_acc, float *row,
                               float *lanes) noexcept nogil
        void (*fwd_lanes_f32)(const float *x, fc_int H, fc_int W, const float *w, fc_int KH,
                              fc_int KW, float *y, fc_int OH, fc_int OW, const fc_dwgeom_t *g,
                              const float *bias, int nc, int relu,
                              float *scratch) noexcept nogil
        void (*bwd_lanes_f32)(const float *x, const float *dy, fc_int H, fc_int W,
                              const float *w, fc_int KH, fc_int KW, fc_int OH, fc_int OW,
                              const fc_dwgeom_t *g, int nc, float *dx, float *dwl,
                              float *scratch) noexcept nogil
        void (*fwd_flat_f32)(const float *x, fc_int xs, int np, const float *w, int T,
                             const fc_int *off, const float **tmask, fc_int n_out, float *y,
                             const float *bias, int relu) noexcept nogil
        void (*wgrad_flat_f32)(const float *x, const float *dy, int T, const fc_int *off,
                               const float **tmask, const float *ymask, fc_int n_out,
                               double *dw_acc) noexcept nogil
