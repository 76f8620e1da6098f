/* The dispatch table: every entry point the Cython modules call, by family.  Kernel sets
 * (micro-kernels, transforms, plane kernels) are chosen from the CPU flags, the best
 * whose required flags the CPU has; drivers (the GEMM framework, Winograd's, the
 * workspace) are the same on every CPU and call the chosen kernels through this table.
 *
 * All C lives in one extension, fastconv._kernels._cpu: fc_dispatch_init() fills the
 * table once at its import (before any parallel region), and the other kernel modules
 * reach it through _cpu.kernels() - so the features, the kernels chosen and the
 * workspace each exist once per process. */
#ifndef FASTCONV_DISPATCH_H
#define FASTCONV_DISPATCH_H
#include "cpu.h"
#include "depthwise.h"
#include "gemm.h"
#include "norm.h"
#include "pool.h"
#include "qgemm.h"
#include "wgrad_direct.h"
#include "winograd.h"
#include "workspace.h"

typedef struct {
    fc_gemm_ops_t gemm;
    /* the same entries, but float GEMMs multiply in bf16 (float32 sums): a caller picks
     * its precision by the table it passes down */
    fc_gemm_ops_t gemm_bf16;
    fc_winograd_ops_t winograd;
    const fc_dw_kernels_t *depthwise;
    const fc_pool_kernels_t *pool;
    const fc_norm_kernels_t *norm;
    const fc_wgrad_kernels_t *wgrad;    /* direct weight gradients (wgrad_direct.h) */
    fc_workspace_ops_t workspace;
    fc_qgemm_ops_t qgemm;            /* int8 inference (qgemm.h) */
} fc_dispatch_t;

extern fc_dispatch_t fc_dispatch;

void fc_dispatch_init(void);

#endif
