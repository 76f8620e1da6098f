# The kernel library's core (cpu.h, workspace.h, dispatch.h): every C function lives in
# the _cpu extension, and the other kernel modules call C through kernels().
from ._base cimport fc_int
from ._depthwise cimport fc_dw_kernels_t
from ._gemm cimport fc_gemm_ops_t
from ._norm cimport fc_norm_kernels_t
from ._pool cimport fc_pool_kernels_t
from ._qgemm cimport fc_qgemm_ops_t
from ._winograd cimport fc_winograd_ops_t

cdef extern from "wgrad_direct.h":
    ctypedef struct fc_wgrad_kernels_t:
        int (*swgrad3)(const float *dy, const float *x, fc_int N, fc_int M, fc_int C,
                       fc_int OH, fc_int OW, fc_int x_img, fc_int x_ch, fc_int PW, fc_int KH,
                       fc_int dh, fc_int dw, float *dwt, int nthreads) noexcept nogil
        const char *name

cdef extern from "cpu.h":
    enum:
        FC_CPU_NFLAGS
    int fc_cpu_has(unsigned flags) nogil
    const char *fc_cpu_flag_name(int bit) nogil
    const char *fc_isa_name() nogil
    const char *fc_compiler() nogil
    double fc_fma_probe(fc_int iters, double *sink) nogil

cdef extern from "workspace.h":
    enum:
        FC_WS_PACK
        FC_WS_SCRATCH
    size_t fc_workspace_bytes() nogil
    void fc_workspace_release(int nthreads) nogil
    ctypedef struct fc_workspace_ops_t:
        void *(*get)(int slot, size_t bytes) noexcept nogil
        void (*flag_error)() noexcept nogil
        int (*take_error)() noexcept nogil

cdef extern from "dispatch.h":
    ctypedef struct fc_dispatch_t:
        fc_gemm_ops_t gemm
        fc_gemm_ops_t gemm_bf16
        fc_winograd_ops_t winograd
        const fc_dw_kernels_t *depthwise
        const fc_pool_kernels_t *pool
        const fc_norm_kernels_t *norm
        const fc_wgrad_kernels_t *wgrad
        fc_workspace_ops_t workspace
        fc_qgemm_ops_t qgemm
    fc_dispatch_t fc_dispatch           # _cpu.pyx only: the other modules use kernels()
    void fc_dispatch_init() nogil

cdef const fc_dispatch_t *kernels() noexcept nogil   # the table, filled at import


cdef inline void check_workspace() except *:
    """Raise MemoryError if a kernel since the last check could not get its workspace."""
    if kernels().workspace.take_error():
        raise MemoryError("fastconv: a kernel could not allocate its workspace")
