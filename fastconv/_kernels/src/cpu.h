/* CPU features as a set of flags, detected once and masked by FASTCONV_ISA:
 *     generic   no SIMD extension
 *     avx512f   AVX-512 without AVX512_BF16 and the VNNI dot products (emulated bf16,
 *               non-VNNI int8)
 *     avx2      the VEX-encoded ones (AVX2, FMA, F16C, AVX-VNNI): no AVX-512
 *     avx512    (or unset) all the CPU has (on AArch64: neon)
 * A kernel set names the flags it needs (its `requires`), and the dispatch table takes
 * the best set the flags allow; the ISA path reported (generic / avx2 / avx512) is the
 * GEMM's, derived from the same flags. */
#ifndef FASTCONV_CPU_H
#define FASTCONV_CPU_H
#include "base.h"

enum {
    FC_CPU_AVX2 = 1 << 0,
    FC_CPU_FMA = 1 << 1,
    FC_CPU_F16C = 1 << 2,
    FC_CPU_AVX_VNNI = 1 << 3,
    FC_CPU_AVX512F = 1 << 4,
    FC_CPU_AVX512DQ = 1 << 5,
    FC_CPU_AVX512BW = 1 << 6,
    FC_CPU_AVX512VL = 1 << 7,
    FC_CPU_AVX512_VNNI = 1 << 8,
    FC_CPU_AVX512_BF16 = 1 << 9,
    FC_CPU_NEON = 1 << 10,          /* AArch64's Advanced SIMD (always there) */
    FC_CPU_NFLAGS = 11
};

/* The ISA paths as flag sets: what the GEMM micro-kernels of each need. */
#define FC_PATH_AVX2 (FC_CPU_AVX2 | FC_CPU_FMA)
#define FC_PATH_AVX512 (FC_CPU_AVX512F | FC_CPU_FMA)
#define FC_PATH_NEON FC_CPU_NEON

unsigned fc_cpu_features(void);          /* detected on the first call, then cached */
int fc_cpu_has(unsigned flags);          /* all of them */
const char *fc_cpu_flag_name(int bit);   /* of flag 1 << bit, bit < FC_CPU_NFLAGS */
const char *fc_isa_name(void);           /* "avx512", "avx2", "neon" or "generic" */
const char *fc_compiler(void);           /* the compiler that built the kernels */

/* peak.c: FMA throughput probe on the ISA path's widest vectors; returns the FLOPs
 * done, accumulates a result into *sink. */
double fc_fma_probe(fc_int iters, double *sink);

#endif
