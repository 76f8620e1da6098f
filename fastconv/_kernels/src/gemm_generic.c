/* Baseline x86-64 / any-CPU micro-kernels (the reference tier). */
#include "cpu.h"
#include "gemm.h"

#define UKR_T float
#define UKR_MR 4
#define UKR_NR 8
#define UKR_NAME sukr_generic_4x8
#include "ukr_template.h"
#undef UKR_T
#undef UKR_MR
#undef UKR_NR
#undef UKR_NAME

#define UKR_T double
#define UKR_MR 4
#define UKR_NR 4
#define UKR_NAME dukr_generic_4x4
#include "ukr_template.h"

const fc_skernel_t fc_skernel_generic = {"generic_4x8", 0, 4, 8, 128, 256, 2048, sukr_generic_4x8};
const fc_dkernel_t fc_dkernel_generic = {"generic_4x4", 0, 4, 4, 128, 256, 2048, dukr_generic_4x4};
