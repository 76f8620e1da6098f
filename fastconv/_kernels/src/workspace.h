/* One per-thread workspace for every kernel's scratch: GEMM packing, Winograd's
 * transformed tiles, depthwise padded planes.  A thread holds one buffer per slot (a
 * kernel that calls another while its scratch is live - Winograd's weight gradient
 * runs GEMMs - takes another slot), grown on demand and kept, so a call costs no
 * allocation and no page faults after the first (a fresh multi-MiB block is a new
 * mmap, zero-filled page by page on first touch).  fastconv.empty_cache() releases
 * them. */
#ifndef FASTCONV_WORKSPACE_H
#define FASTCONV_WORKSPACE_H
#include "base.h"

enum { FC_WS_PACK = 0, FC_WS_SCRATCH = 1, FC_WS_SLOTS = 2 };

/* The calling thread's buffer for slot: 64-byte aligned, at least `bytes`, contents
 * undefined; NULL if it could not be allocated. */
void *fc_workspace(int slot, size_t bytes);
size_t fc_workspace_bytes(void);         /* held by the calling thread, all slots */
/* Frees the calling thread's buffers and, with nthreads > 1, those of an OpenMP team of
 * that size. */
void fc_workspace_release(int nthreads);

/* A kernel that cannot get its workspace computes nothing; it raises this flag, which
 * the caller takes (and clears) after its parallel section and turns into a
 * MemoryError, so no caller returns a result that was never computed. */
void fc_workspace_flag_error(void);
int fc_workspace_take_error(void);

/* Its entries in the dispatch table. */
typedef struct {
    void *(*get)(int slot, size_t bytes);
    void (*flag_error)(void);
    int (*take_error)(void);
} fc_workspace_ops_t;

#endif
