/* AArch64 NEON micro-kernel: float 8x12 (24 of the 32 q-register accumulators, each
 * k step two A loads whose lanes meet three B vectors by fused lane multiply-adds, as
 * BLIS's armv8a sgemm kernel).  Doubles use the generic kernel, which GCC vectorises
 * with NEON anyway. */
#include "cpu.h"
#include "gemm.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#define ROW(i, av, lane)                                             \
    acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, av, lane);            \
    acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, av, lane);            \
    acc[i][2] = vfmaq_laneq_f32(acc[i][2], b2, av, lane);

static void sukr_neon_8x12(fc_int k, const float *restrict a, const float *restrict b,
                           float *restrict c, fc_int ldc, int m, int n, float alpha, float beta)
{
    float32x4_t acc[8][3];
    for (int i = 0; i < 8; i++) acc[i][0] = acc[i][1] = acc[i][2] = vdupq_n_f32(0);
    for (fc_int p = 0; p < k; p++) {
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
        ROW(0, a0, 0) ROW(1, a0, 1) ROW(2, a0, 2) ROW(3, a0, 3)
        ROW(4, a1, 0) ROW(5, a1, 1) ROW(6, a1, 2) ROW(7, a1, 3)
        a += 8;
        b += 12;
    }
    /* the accumulators leave their registers once, by constant indices: a loop over
     * them in the epilogue would make GCC keep them in memory inside the k loop */
    float tile[8][12];
    float32x4_t va = vdupq_n_f32(alpha);
#define OUT(i)                                                       \
    vst1q_f32(tile[i], vmulq_f32(va, acc[i][0]));                    \
    vst1q_f32(tile[i] + 4, vmulq_f32(va, acc[i][1]));                \
    vst1q_f32(tile[i] + 8, vmulq_f32(va, acc[i][2]));
    OUT(0) OUT(1) OUT(2) OUT(3) OUT(4) OUT(5) OUT(6) OUT(7)
#undef OUT
    for (int i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (n == 12 && beta == 0) {
            for (int j = 0; j < 12; j += 4) vst1q_f32(ci + j, vld1q_f32(tile[i] + j));
        } else if (n == 12) {
            for (int j = 0; j < 12; j += 4)
                vst1q_f32(ci + j, vfmaq_n_f32(vld1q_f32(tile[i] + j), vld1q_f32(ci + j), beta));
        } else if (beta == 0) {
            for (int j = 0; j < n; j++) ci[j] = tile[i][j];
        } else {
            for (int j = 0; j < n; j++) ci[j] = __builtin_fmaf(beta, ci[j], tile[i][j]);
        }
    }
}
#undef ROW

const fc_skernel_t fc_skernel_neon = {"neon_8x12", FC_PATH_NEON, 8, 12, 128, 256, 4080,
                                      sukr_neon_8x12};
#endif
