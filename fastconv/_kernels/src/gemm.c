/* GEMM framework: one source, two precisions (see gemm_impl.h). */
#define _POSIX_C_SOURCE 200112L
#include <stdlib.h>
#include "gemm.h"

#define FC_CAT_(a, b) a##b
#define FC_CAT(a, b) FC_CAT_(a, b)

/* Packing workspace: one buffer per calling thread, grown on demand and kept, so a
 * GEMM call costs no allocation and no page faults after the first (a fresh
 * multi-MiB block is a new mmap, zero-filled page by page on first touch). */
static _Thread_local char *tl_ws = NULL;
static _Thread_local size_t tl_ws_cap = 0;

static void *fc_workspace(size_t bytes)
{
    bytes = (bytes + 4095) & ~(size_t)4095;
    if (bytes > tl_ws_cap) {
        void *p = NULL;
        free(tl_ws);
        tl_ws = NULL;
        tl_ws_cap = 0;
        if (posix_memalign(&p, 64, bytes) != 0) return NULL;
        tl_ws = p;
        tl_ws_cap = bytes;
    }
    return tl_ws;
}

size_t fc_gemm_workspace_bytes(void) { return tl_ws_cap; }

/* A GEMM that cannot get its workspace computes nothing; it raises this flag, which
 * every kernel entry point checks (fc_gemm_take_error) after its parallel section and
 * turns into a MemoryError, so no caller returns a result that was never computed. */
static volatile int g_alloc_failed = 0;

void fc_gemm_flag_error(void) { g_alloc_failed = 1; }

int fc_gemm_take_error(void)
{
    int e = g_alloc_failed;
    g_alloc_failed = 0;
    return e;
}

void fc_gemm_release_workspace(int nthreads)
{
    free(tl_ws);
    tl_ws = NULL;
    tl_ws_cap = 0;
    if (nthreads > 1) {
        #pragma omp parallel num_threads(nthreads)
        {
            free(tl_ws);
            tl_ws = NULL;
            tl_ws_cap = 0;
        }
    }
}

/* The micro-kernel table for the ISA in use (cpu.c). */
const fc_skernel_t *fc_skernel(void)
{
    switch (fc_isa()) {
    case FC_ISA_AVX512: return &fc_skernel_avx512;
    case FC_ISA_AVX2: return &fc_skernel_avx2;
    default: return &fc_skernel_generic;
    }
}

const fc_dkernel_t *fc_dkernel(void)
{
    switch (fc_isa()) {
    case FC_ISA_AVX512: return &fc_dkernel_avx512;
    case FC_ISA_AVX2: return &fc_dkernel_avx2;
    default: return &fc_dkernel_generic;
    }
}

#define FC_T float
#define FC_KT fc_skernel_t
#define FC_GET_KERNEL fc_skernel
#define FC_GEMM fc_sgemm
#define FC_GEMM_EX fc_sgemm_ex
#include "gemm_impl.h"
#undef FC_T
#undef FC_KT
#undef FC_GET_KERNEL
#undef FC_GEMM
#undef FC_GEMM_EX

#define FC_T double
#define FC_KT fc_dkernel_t
#define FC_GET_KERNEL fc_dkernel
#define FC_GEMM fc_dgemm
#define FC_GEMM_EX fc_dgemm_ex
#include "gemm_impl.h"
