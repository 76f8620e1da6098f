/* The per-thread workspace (see workspace.h). */
#define _POSIX_C_SOURCE 200112L
#include <stdlib.h>
#include "workspace.h"

static _Thread_local char *tl_buf[FC_WS_SLOTS];
static _Thread_local size_t tl_cap[FC_WS_SLOTS];

void *fc_workspace(int slot, size_t bytes)
{
    bytes = (bytes + 4095) & ~(size_t)4095;
    if (bytes > tl_cap[slot]) {
        void *p = NULL;
        free(tl_buf[slot]);
        tl_buf[slot] = NULL;
        tl_cap[slot] = 0;
        if (posix_memalign(&p, 64, bytes) != 0) return NULL;
        tl_buf[slot] = p;
        tl_cap[slot] = bytes;
    }
    return tl_buf[slot];
}

size_t fc_workspace_bytes(void)
{
    size_t n = 0;
    for (int s = 0; s < FC_WS_SLOTS; s++) n += tl_cap[s];
    return n;
}

static void release_own(void)
{
    for (int s = 0; s < FC_WS_SLOTS; s++) {
        free(tl_buf[s]);
        tl_buf[s] = NULL;
        tl_cap[s] = 0;
    }
}

void fc_workspace_release(int nthreads)
{
    release_own();
    if (nthreads > 1) {
        #pragma omp parallel num_threads(nthreads)
        release_own();
    }
}

static volatile int g_alloc_failed = 0;

void fc_workspace_flag_error(void) { g_alloc_failed = 1; }

int fc_workspace_take_error(void)
{
    int e = g_alloc_failed;
    g_alloc_failed = 0;
    return e;
}
