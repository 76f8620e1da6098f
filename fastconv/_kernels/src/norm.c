/* BatchNorm plane kernels (norm_impl.h), compiled per ISA and chosen by fc_isa(). */
#include "gemm.h"

#define N_NAME(x) n_##x##_generic
#include "norm_impl.h"
#undef N_NAME

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define N_NAME(x) n_##x##_avx2
#include "norm_impl.h"
#undef N_NAME
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl")
#define N_NAME(x) n_##x##_avx512
#include "norm_impl.h"
#undef N_NAME
#pragma GCC pop_options
#define PICK(fn) (fc_isa() == FC_ISA_AVX512 ? n_##fn##_avx512 : \
                  fc_isa() == FC_ISA_AVX2 ? n_##fn##_avx2 : n_##fn##_generic)
#else
#define PICK(fn) n_##fn##_generic
#endif

double fc_bn_sum(const float *x, fc_int n) { return PICK(sum)(x, n); }
double fc_bn_sqdev(const float *x, fc_int n, float mean) { return PICK(sqdev)(x, n, mean); }
void fc_bn_bwd_sums(const float *x, const float *dy, const float *y, fc_int n, float mean,
                    double *s1, double *s2)
{ PICK(bwd_sums)(x, dy, y, n, mean, s1, s2); }
void fc_bn_affine(const float *x, float *y, fc_int n, float m, float a, float b, int relu)
{ PICK(affine)(x, y, n, m, a, b, relu); }
void fc_bn_bwd_apply(const float *x, const float *dy, const float *y, float *dx, fc_int n,
                     double m, double a, double b, double ik)
{ PICK(bwd_apply)(x, dy, y, dx, n, m, a, b, ik); }
