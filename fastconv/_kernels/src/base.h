/* What every kernel family builds on: the index type and the parallel grain. */
#ifndef FASTCONV_BASE_H
#define FASTCONV_BASE_H
#include <stddef.h>
#include <stdint.h>

typedef int64_t fc_int;

/* Work below which a kernel runs on one thread: a parallel region costs more than it
 * saves (PyTorch's GRAIN_SIZE).  The unit is elements; a call site whose unit of work
 * is larger or smaller scales it, and names the result where it uses it. */
#define FC_PARALLEL_GRAIN 32768

#define FC_CAT_(a, b) a##b
#define FC_CAT(a, b) FC_CAT_(a, b)

#endif
