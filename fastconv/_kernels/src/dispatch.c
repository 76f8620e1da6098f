/* Fills the dispatch table (see dispatch.h). */
#include "dispatch.h"

fc_dispatch_t fc_dispatch;

/* The first of the candidates (best first, NULL-terminated) whose `requires` flags, the
 * unsigned at offset `off` of each, the CPU has.  The last candidate requires none. */
static const void *pick(const void *const *cand, size_t off)
{
    for (; cand[1]; cand++)
        if (fc_cpu_has(*(const unsigned *)((const char *)*cand + off))) break;
    return *cand;
}

#define PICK(T, ...) ((const T *)pick((const void *const[]){__VA_ARGS__, NULL}, \
                                      offsetof(T, requires)))

/* Candidates that exist in this build: the SIMD sets are compiled for x86 only (the
 * AVX-512 ones and all but the GEMM's AVX2 set for x86-64 only). */
#if defined(__x86_64__)
#define X86_64(set) set,
#else
#define X86_64(set)
#endif
#if defined(__x86_64__) || defined(__i386__)
#define X86(set) set,
#else
#define X86(set)
#endif
#if defined(__aarch64__)
#define ARM64(set) set,
#else
#define ARM64(set)
#endif

void fc_dispatch_init(void)
{
    fc_dispatch_t k;
    k.gemm.s = PICK(fc_skernel_t, X86_64(&fc_skernel_avx512) X86(&fc_skernel_avx2)
                    ARM64(&fc_skernel_neon) &fc_skernel_generic);
    k.gemm.d = PICK(fc_dkernel_t, X86_64(&fc_dkernel_avx512) X86(&fc_dkernel_avx2)
                    &fc_dkernel_generic);
    k.gemm.b = PICK(fc_bkernel_t, X86_64(&fc_bkernel_avx512bf16) X86_64(&fc_bkernel_avx512)
                    X86_64(&fc_bkernel_avx2) &fc_bkernel_generic);
    k.gemm.sgemm_ex = fc_sgemm_ex;
    k.gemm.dgemm_ex = fc_dgemm_ex;
    k.gemm.sgemm = fc_sgemm;
    k.gemm.dgemm = fc_dgemm;
    k.gemm.sconv_taps = fc_sconv_taps;
    k.gemm.dconv_taps = fc_dconv_taps;
    k.gemm.sconv_taps_wgrad = fc_sconv_taps_wgrad;
    k.gemm.dconv_taps_wgrad = fc_dconv_taps_wgrad;
    k.gemm_bf16 = k.gemm;
    k.gemm_bf16.sgemm_ex = fc_bgemm_ex;
    k.gemm_bf16.sgemm = fc_bgemm;
    k.winograd.kernels = PICK(fc_winograd_kernels_t, X86_64(&fc_winograd_avx512)
                              X86_64(&fc_winograd_avx2) &fc_winograd_generic);
    k.winograd.weights_size = fc_winograd_weights_size;
    k.winograd.weights = fc_winograd_weights;
    k.winograd.conv = fc_winograd_conv;
    k.winograd.wgrad_chunks = fc_winograd_wgrad_chunks;
    k.winograd.wgrad = fc_winograd_f23_wgrad;
    k.depthwise = PICK(fc_dw_kernels_t, X86_64(&fc_dw_avx512) X86_64(&fc_dw_avx2)
                       ARM64(&fc_dw_neon) &fc_dw_generic);
    k.pool = PICK(fc_pool_kernels_t, X86_64(&fc_pool_avx512) X86_64(&fc_pool_avx2)
                  ARM64(&fc_pool_neon) &fc_pool_generic);
    k.norm = PICK(fc_norm_kernels_t, X86_64(&fc_norm_avx512) X86_64(&fc_norm_avx2)
                  ARM64(&fc_norm_neon) &fc_norm_generic);
    k.wgrad = PICK(fc_wgrad_kernels_t, X86_64(&fc_wgrad_avx2) &fc_wgrad_generic);
    k.workspace.get = fc_workspace;
    k.workspace.flag_error = fc_workspace_flag_error;
    k.workspace.take_error = fc_workspace_take_error;
    k.qgemm.kernel = PICK(fc_qkernel_t, X86_64(&fc_qkernel_vnni) X86_64(&fc_qkernel_avx512bw)
                          X86_64(&fc_qkernel_avx2) &fc_qkernel_generic);
    k.qgemm.pack_size = fc_qpack_size;
    k.qgemm.pack = fc_qpack;
    k.qgemm.conv = fc_qconv;
    k.qgemm.dwconv = fc_qdwconv;
    fc_dispatch = k;
}
