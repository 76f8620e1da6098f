/* Winograd transforms for any CPU: the templates, vectorised for the baseline. */
#include "cpu.h"
#include "winograd.h"

/* The transforms copy 16-lane rows in loops: keep them as vector moves, not memcpy calls */
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#include "winograd_tiles.h"

#define W_NAME(x) w_##x##_generic
#include "winograd23_impl.h"
#undef W_NAME
#define W43_WL 16
#define W_NAME(x) w_##x##_16_generic
#include "winograd43_impl.h"
#undef W_NAME
#undef W43_WL
#define W43_WL 8
#define W_NAME(x) w_##x##_8_generic
#include "winograd43_impl.h"
#undef W_NAME
#undef W43_WL

const fc_winograd_kernels_t fc_winograd_generic = {
    0, w_input_tiles_generic, w_output_tiles_generic, w_grad_tiles_generic,
    {w_input43_16_generic, w_input43_8_generic}, {w_output43_16_generic, w_output43_8_generic},
};
