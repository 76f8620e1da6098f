/* GEMM framework: one source, two precisions (see gemm_impl.h). */
#define _POSIX_C_SOURCE 200112L
#include <stdlib.h>
#include "gemm.h"

#define FC_CAT_(a, b) a##b
#define FC_CAT(a, b) FC_CAT_(a, b)

static void *fc_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0) return NULL;
    return p;
}

#define FC_T float
#define FC_KT fc_skernel_t
#define FC_GET_KERNEL fc_skernel
#define FC_GEMM fc_sgemm
#include "gemm_impl.h"
#undef FC_T
#undef FC_KT
#undef FC_GET_KERNEL
#undef FC_GEMM

#define FC_T double
#define FC_KT fc_dkernel_t
#define FC_GET_KERNEL fc_dkernel
#define FC_GEMM fc_dgemm
#include "gemm_impl.h"
