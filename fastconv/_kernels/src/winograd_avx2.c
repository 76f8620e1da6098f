/* Winograd transforms, AVX2 + FMA: the templates, vectorised for 256-bit vectors. */
#include "cpu.h"
#include "winograd.h"

/* The transforms copy 16-lane rows in loops: keep them as vector moves, not memcpy calls */
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#include "winograd_tiles.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define W_NAME(x) w_##x##_avx2
#include "winograd23_impl.h"
#undef W_NAME
#define W43_WL 16
#define W_NAME(x) w_##x##_16_avx2
#include "winograd43_impl.h"
#undef W_NAME
#undef W43_WL
#define W43_WL 8
#define W_NAME(x) w_##x##_8_avx2
#include "winograd43_impl.h"
#undef W_NAME
#undef W43_WL

const fc_winograd_kernels_t fc_winograd_avx2 = {
    FC_PATH_AVX2, w_input_tiles_avx2, w_output_tiles_avx2, w_grad_tiles_avx2,
    {w_input43_16_avx2, w_input43_8_avx2}, {w_output43_16_avx2, w_output43_8_avx2},
};
#pragma GCC pop_options
#endif
