/* GEMM framework: one template (gemm_impl.h), instantiated for float, for float with
 * bf16 products and for double. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif
#include "dispatch.h"

/* the tiny unpacked path's operand rounding: bf16 of x, as a float */
static inline float bf16_value(float x)
{
    uint32_t r = fc_bf16_round(x) & 0xFFFF0000u;
    float f;
    memcpy(&f, &r, 4);
    return f;
}

/* Transposing packs (A read along rows, B along columns: weight gradients, Winograd's
 * transformed weights) are strided scalar stores in plain C; with AVX2 they go through
 * 8x8 register transposes: dst[q*ld + r] = src[r*rs + q] for r, q < 8.  Pure copies,
 * so the packed bits are the same either way. */
#if defined(__x86_64__)
#include <immintrin.h>
#include "gemm_ep_avx2.h"
/* dst[j * ld + r] = s[r][p + j] for an 8x8 block: eight rows anywhere (the transposed
 * im2col by offsets of a padded image, whose rows are c, kh, kw apart), or rs apart. */
__attribute__((target("avx2")))
static inline void fc_transpose8_rows_avx2(const float *const *s, fc_int p, float *dst,
                                           fc_int ld)
{
    __m256 r0 = _mm256_loadu_ps(s[0] + p), r1 = _mm256_loadu_ps(s[1] + p);
    __m256 r2 = _mm256_loadu_ps(s[2] + p), r3 = _mm256_loadu_ps(s[3] + p);
    __m256 r4 = _mm256_loadu_ps(s[4] + p), r5 = _mm256_loadu_ps(s[5] + p);
    __m256 r6 = _mm256_loadu_ps(s[6] + p), r7 = _mm256_loadu_ps(s[7] + p);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + ld, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
}

__attribute__((target("avx2")))
static void fc_transpose8_avx2(const float *src, fc_int rs, float *dst, fc_int ld)
{
    const float *s[8] = {src, src + rs, src + 2 * rs, src + 3 * rs, src + 4 * rs,
                         src + 5 * rs, src + 6 * rs, src + 7 * rs};
    fc_transpose8_rows_avx2(s, 0, dst, ld);
}
#define FC_TRANSPOSE8(src, rs, dst, ld) fc_transpose8_avx2(src, rs, dst, ld)
#define FC_TRANSPOSE8_ROWS(s, p, dst, ld) fc_transpose8_rows_avx2(s, p, dst, ld)
#define FC_HAS_TRANSPOSE8() fc_cpu_has(FC_CPU_AVX2)
#endif

/* Few columns (N <= 16: one frame's small planes): acc[r][j] = sum_k A[r, k] * Bp[k][j]
 * for rows < 4, straight from A's rows (no packing of A, which for a frame costs more
 * than the product), B packed [K][16].  The K order is fixed; the FMA version and the
 * portable one differ in rounding only (ISA paths may). */
static void fc_smalln_generic(int rows, fc_int K, const float *A, fc_int rsa, fc_int csa,
                              const float *Bp, float *acc)
{
    for (int i = 0; i < 4 * 16; i++) acc[i] = 0;
    for (int r = 0; r < rows; r++) {
        const float *a = A + r * rsa;
        float *o = acc + r * 16;
        for (fc_int k = 0; k < K; k++) {
            float v = a[k * csa];
            const float *b = Bp + k * 16;
            for (int j = 0; j < 16; j++) o[j] += v * b[j];
        }
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static void fc_smalln_avx2(int rows, fc_int K, const float *A, fc_int rsa, fc_int csa,
                           const float *Bp, float *acc)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00;
    __m256 c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    const float *a0 = A, *a1 = A + (rows > 1 ? rsa : 0), *a2 = A + (rows > 2 ? 2 * rsa : 0),
                *a3 = A + (rows > 3 ? 3 * rsa : 0);
    for (fc_int k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(Bp + k * 16), b1 = _mm256_loadu_ps(Bp + k * 16 + 8);
        fc_int o = k * csa;
        __m256 v = _mm256_set1_ps(a0[o]);
        c00 = _mm256_fmadd_ps(v, b0, c00); c01 = _mm256_fmadd_ps(v, b1, c01);
        v = _mm256_set1_ps(a1[o]);
        c10 = _mm256_fmadd_ps(v, b0, c10); c11 = _mm256_fmadd_ps(v, b1, c11);
        v = _mm256_set1_ps(a2[o]);
        c20 = _mm256_fmadd_ps(v, b0, c20); c21 = _mm256_fmadd_ps(v, b1, c21);
        v = _mm256_set1_ps(a3[o]);
        c30 = _mm256_fmadd_ps(v, b0, c30); c31 = _mm256_fmadd_ps(v, b1, c31);
    }
    _mm256_storeu_ps(acc, c00); _mm256_storeu_ps(acc + 8, c01);
    _mm256_storeu_ps(acc + 16, c10); _mm256_storeu_ps(acc + 24, c11);
    _mm256_storeu_ps(acc + 32, c20); _mm256_storeu_ps(acc + 40, c21);
    _mm256_storeu_ps(acc + 48, c30); _mm256_storeu_ps(acc + 56, c31);
}
#endif

/* N <= 8 and A's rows contiguous: C[i][j] = alpha * sum_k A[i][k] * Bt[j][k] (+ beta C),
 * vectorised along K (8 lanes, the lanes then added in a fixed order, then the K % 8
 * tail): per 8 values of A one load and N FMAs, all of B in L1.  Rows in a loop, N a
 * compile-time constant (the accumulators stay in registers). */
static inline float fc_lanes8_sum(const float *l)
{
    return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
}

static void fc_rowdot_generic(fc_int rows, const float *A, fc_int rsa, fc_int K,
                              const float *Bt, fc_int ldb, int N, float *C, fc_int ldc,
                              float alpha, float beta)
{
    fc_int K8 = K & ~(fc_int)7;
    for (fc_int i = 0; i < rows; i++) {
        const float *a = A + i * rsa;
        for (int j = 0; j < N; j++) {
            const float *b = Bt + j * ldb;
            float lane[8] = {0};
            for (fc_int k = 0; k < K8; k += 8)
                for (int l = 0; l < 8; l++) lane[l] += a[k + l] * b[k + l];
            float s = fc_lanes8_sum(lane);
            for (fc_int k = K8; k < K; k++) s += a[k] * b[k];
            float *c = C + i * ldc + j;
            *c = beta == 0 ? alpha * s : alpha * s + beta * *c;
        }
    }
}

#if defined(__x86_64__)
/* The lane sums of four accumulators at once, each ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)) as
 * fc_lanes8_sum adds them (halves, then two horizontal adds): the same bits in a dozen
 * vector operations instead of a store and seven scalar adds each, which at small K cost
 * as much as the dot products themselves. */
__attribute__((target("avx2,fma")))
static inline __m128 fc_lanes8_sum4(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m128 a4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    __m128 b4 = _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1));
    __m128 c4 = _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1));
    __m128 d4 = _mm_add_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
    /* [a: (0+4)+(1+5), (2+6)+(3+7); b: the same], then each pair added */
    return _mm_hadd_ps(_mm_hadd_ps(a4, b4), _mm_hadd_ps(c4, d4));
}

/* RR rows at once: RR*NN independent FMA chains hide the FMA latency (one row of 4
 * columns alone waits on it); a row's arithmetic is the same in either form. */
#define FC_DEFINE_ROWDOT(TARGET, NN, RR, NAME, PF)                                           \
__attribute__((target(TARGET)))                                                            \
static fc_int NAME(fc_int rows, const float *A, fc_int rsa, fc_int K, const float *Bt,     \
                   fc_int ldb, float *C, fc_int ldc, float alpha, float beta)              \
{                                                                                          \
    enum { NA = RR * NN, NA4 = (NA + 3) / 4 * 4 };                                         \
    fc_int K8 = K & ~(fc_int)7, i = 0;                                                     \
    for (; i + RR <= rows; i += RR) {                                                      \
        __m256 acc[NA4];                                                                   \
        for (int q = 0; q < NA4; q++) acc[q] = _mm256_setzero_ps();                        \
        for (fc_int k = 0; k < K8; k += 8) {                                               \
            __m256 bv[NN];                                                                 \
            for (int j = 0; j < NN; j++) bv[j] = _mm256_loadu_ps(Bt + j * ldb + k);        \
            for (int r = 0; r < RR; r++) {                                                 \
                if (PF && (k & 8)) _mm_prefetch((const char *)(A + (i + r) * rsa + k + PF), \
                                                _MM_HINT_T1);                              \
                __m256 av = _mm256_loadu_ps(A + (i + r) * rsa + k);                        \
                for (int j = 0; j < NN; j++)                                               \
                    acc[r * NN + j] = _mm256_fmadd_ps(av, bv[j], acc[r * NN + j]);         \
            }                                                                              \
        }                                                                                  \
        float sums[NA4];                                                                   \
        for (int q = 0; q < NA4; q += 4)                                                   \
            _mm_storeu_ps(sums + q, fc_lanes8_sum4(acc[q], acc[q + 1], acc[q + 2],         \
                                                   acc[q + 3]));                           \
        for (int r = 0; r < RR; r++) {                                                     \
            const float *a = A + (i + r) * rsa;                                            \
            for (int j = 0; j < NN; j++) {                                                 \
                float s = sums[r * NN + j];                                                \
                const float *b = Bt + j * ldb;                                             \
                for (fc_int k = K8; k < K; k++) s = __builtin_fmaf(a[k], b[k], s);         \
                float *c = C + (i + r) * ldc + j;                                          \
                *c = beta == 0 ? alpha * s : alpha * s + beta * *c;                        \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    return i;                                                                              \
}
#define FC_AVX2 "avx2,fma"
/* Two or more columns make each row's pass compute-bound enough that the out-of-order
 * window holds too few of A's cache misses when the weights stream from memory (a
 * 512x4608 layer at one frame: 11 GB/s, against 25 for one column): prefetch A 8 KB
 * ahead into L2. */
#define FC_ROWDOT_PF 2048
FC_DEFINE_ROWDOT(FC_AVX2, 1, 1, fc_rowdot1_1, 0)
FC_DEFINE_ROWDOT(FC_AVX2, 2, 1, fc_rowdot1_2, FC_ROWDOT_PF)
FC_DEFINE_ROWDOT(FC_AVX2, 3, 1, fc_rowdot1_3, FC_ROWDOT_PF)
FC_DEFINE_ROWDOT(FC_AVX2, 4, 1, fc_rowdot1_4, FC_ROWDOT_PF)
FC_DEFINE_ROWDOT(FC_AVX2, 5, 1, fc_rowdot1_5, 0)
FC_DEFINE_ROWDOT(FC_AVX2, 6, 1, fc_rowdot1_6, 0)
FC_DEFINE_ROWDOT(FC_AVX2, 7, 1, fc_rowdot1_7, 0)
FC_DEFINE_ROWDOT(FC_AVX2, 8, 1, fc_rowdot1_8, 0)
FC_DEFINE_ROWDOT(FC_AVX2, 1, 4, fc_rowdot4_1, 0)
FC_DEFINE_ROWDOT(FC_AVX2, 2, 4, fc_rowdot4_2, FC_ROWDOT_PF)
FC_DEFINE_ROWDOT(FC_AVX2, 3, 2, fc_rowdot2_3, FC_ROWDOT_PF)
FC_DEFINE_ROWDOT(FC_AVX2, 4, 2, fc_rowdot2_4, FC_ROWDOT_PF)
/* With AVX-512VL the same 8-lane code has 32 vector registers: more rows per pass share
 * each load of B (from L2 at K in the thousands), and more loads of A are in flight
 * (streaming weights at one frame).  A row's arithmetic is unchanged, so the bits are
 * the AVX2 kernels'. */
#define FC_AVX512VL "avx512f,avx512vl,fma"
FC_DEFINE_ROWDOT(FC_AVX512VL, 1, 8, fc_rowdot8_1v, 0)
FC_DEFINE_ROWDOT(FC_AVX512VL, 2, 8, fc_rowdot8_2v, FC_ROWDOT_PF)
FC_DEFINE_ROWDOT(FC_AVX512VL, 3, 6, fc_rowdot6_3v, FC_ROWDOT_PF)
FC_DEFINE_ROWDOT(FC_AVX512VL, 4, 5, fc_rowdot5_4v, FC_ROWDOT_PF)
FC_DEFINE_ROWDOT(FC_AVX512VL, 5, 4, fc_rowdot4_5v, FC_ROWDOT_PF)
FC_DEFINE_ROWDOT(FC_AVX512VL, 6, 3, fc_rowdot3_6v, FC_ROWDOT_PF)
FC_DEFINE_ROWDOT(FC_AVX512VL, 7, 3, fc_rowdot3_7v, FC_ROWDOT_PF)
FC_DEFINE_ROWDOT(FC_AVX512VL, 8, 2, fc_rowdot2_8v, FC_ROWDOT_PF)

typedef fc_int (*fc_rowdot_fn)(fc_int, const float *, fc_int, fc_int, const float *, fc_int,
                               float *, fc_int, float, float);
#endif

/* The float epilogue (c = relu?(c * scale[i] + bias[i]) per row) in 16-lane vectors:
 * compiled without an ISA target the template's loops are 4-wide SSE, and at one frame
 * a 1x1 convolution's epilogue cost 60% of its GEMM.  The same multiply, then add, then
 * select as the scalar loops (no FMA contraction in ISO C), so the same bits. */
#if defined(__x86_64__)
typedef float fc_ep_vec __attribute__((vector_size(64)));
#define FC_DEFINE_EPILOGUE(TARGET, NAME)                                                   \
__attribute__((target(TARGET)))                                                            \
static void NAME(float *c, fc_int ldc, int m, int n, const float *bias, const float *scale,\
                 int relu)                                                                 \
{                                                                                          \
    for (int i = 0; i < m; i++) {                                                          \
        float *ci = c + i * ldc, b = bias ? bias[i] : 0, a = scale ? scale[i] : 1;         \
        int j = 0;                                                                         \
        for (; j + 16 <= n; j += 16) {                                                     \
            fc_ep_vec v;                                                                   \
            __builtin_memcpy(&v, ci + j, sizeof v);                                        \
            if (scale) v = v * a;                                                          \
            v = v + b;                                                                     \
            if (relu) {                 /* v <= 0 ? 0 : v (NaN kept) */                    \
                __typeof__(v <= v) keep = ~(v <= (fc_ep_vec){0});                          \
                v = (fc_ep_vec)((__typeof__(keep))v & keep);                               \
            }                                                                              \
            if (relu == 2) {            /* then v >= 6 ? 6 : v */                          \
                const fc_ep_vec six = (fc_ep_vec){0} + 6;                                  \
                __typeof__(v <= v) hi = v >= six;                                          \
                v = (fc_ep_vec)(((__typeof__(hi))v & ~hi) | ((__typeof__(hi))six & hi));   \
            }                                                                              \
            __builtin_memcpy(ci + j, &v, sizeof v);                                        \
        }                                                                                  \
        for (; j < n; j++) {                                                               \
            float v = ci[j];                                                               \
            if (scale) v *= a;                                                             \
            v += b;                                                                        \
            ci[j] = relu && v <= 0 ? 0 : (relu == 2 && v >= 6 ? 6 : v);                    \
        }                                                                                  \
    }                                                                                      \
}
FC_DEFINE_EPILOGUE("avx512f", fc_epilogue_avx512)

/* AVX2 in intrinsics: GCC lowers the 64-byte vector comparisons above to scalar compares
 * and lane extracts without AVX-512 (the epilogue took 15% of a one-frame MobileNetV2,
 * more than its 1x1 GEMMs).  Same operations in the same order, so the same bits. */
__attribute__((target("avx2")))
static void fc_epilogue_avx2(float *c, fc_int ldc, int m, int n, const float *bias,
                             const float *scale, int relu)
{
    for (int i = 0; i < m; i++) {
        float *ci = c + i * ldc, b = bias ? bias[i] : 0, a = scale ? scale[i] : 1;
        const __m256 av = _mm256_set1_ps(a), bv = _mm256_set1_ps(b);
        int j = 0;
        for (; j + 8 <= n; j += 8)
            _mm256_storeu_ps(ci + j, fc_ep_avx2(_mm256_loadu_ps(ci + j), scale != NULL, av,
                                                bv, relu));
        for (; j < n; j++) {
            float v = ci[j];
            if (scale) v *= a;
            v += b;
            ci[j] = relu && v <= 0 ? 0 : (relu == 2 && v >= 6 ? 6 : v);
        }
    }
}

static int fc_epilogue_f32(float *c, fc_int ldc, int m, int n, const float *bias,
                           const float *scale, int relu)
{
    if (fc_cpu_has(FC_CPU_AVX512F)) {
        fc_epilogue_avx512(c, ldc, m, n, bias, scale, relu);
        return 1;
    }
    if (fc_cpu_has(FC_CPU_AVX2)) {
        fc_epilogue_avx2(c, ldc, m, n, bias, scale, relu);
        return 1;
    }
    return 0;
}
#define FC_EPILOGUE_VEC fc_epilogue_f32
#endif

static void fc_rowdot_f32(fc_int rows, const float *A, fc_int rsa, fc_int K, const float *Bt,
                          fc_int ldb, int N, float *C, fc_int ldc, float alpha, float beta)
{
#if defined(__x86_64__)
    if (fc_cpu_has(FC_CPU_AVX2 | FC_CPU_FMA)) {
        static const fc_rowdot_fn one[8] = {fc_rowdot1_1, fc_rowdot1_2, fc_rowdot1_3,
                                            fc_rowdot1_4, fc_rowdot1_5, fc_rowdot1_6,
                                            fc_rowdot1_7, fc_rowdot1_8};
        static const fc_rowdot_fn many[4] = {fc_rowdot4_1, fc_rowdot4_2, fc_rowdot2_3,
                                             fc_rowdot2_4};
        static const fc_rowdot_fn wide[8] = {fc_rowdot8_1v, fc_rowdot8_2v, fc_rowdot6_3v,
                                             fc_rowdot5_4v, fc_rowdot4_5v, fc_rowdot3_6v,
                                             fc_rowdot3_7v, fc_rowdot2_8v};
        fc_int done = fc_cpu_has(FC_CPU_AVX512F | FC_CPU_AVX512VL)
            ? wide[N - 1](rows, A, rsa, K, Bt, ldb, C, ldc, alpha, beta)
            : N <= 4 ? many[N - 1](rows, A, rsa, K, Bt, ldb, C, ldc, alpha, beta) : 0;
        one[N - 1](rows - done, A + done * rsa, rsa, K, Bt, ldb, C + done * ldc, ldc, alpha,
                   beta);
        return;
    }
#endif
    fc_rowdot_generic(rows, A, rsa, K, Bt, ldb, N, C, ldc, alpha, beta);
}

static void fc_smalln_f32(int rows, fc_int K, const float *A, fc_int rsa, fc_int csa,
                          const float *Bp, float *acc)
{
#if defined(__x86_64__)
    if (fc_cpu_has(FC_CPU_AVX2 | FC_CPU_FMA)) {
        fc_smalln_avx2(rows, K, A, rsa, csa, Bp, acc);
        return;
    }
#endif
    fc_smalln_generic(rows, K, A, rsa, csa, Bp, acc);
}

#define FC_TA float
#define FC_TB float
#define FC_TC float
#define FC_TPA float
#define FC_TPB float
#define FC_SFX s
#define FC_GATHER_VEC 1         /* float B packed as float: the vector table gather */
#define FC_DIRECT_B 1
#define FC_DIRECT_B_MAX_M 128
#define FC_EP_KERNEL 1          /* fc_skernel_t's ukr_ep / ukr_b_ep, where a kernel has them */
#define FC_SMALLN_KERNEL fc_smalln_f32
#define FC_ROWDOT_KERNEL fc_rowdot_f32
#define FC_KT fc_skernel_t
#define FC_KERNEL() (fc_dispatch.gemm.s)
#define FC_GEMM fc_sgemm
#define FC_GEMM_EX fc_sgemm_ex
#define FC_CONV_TAPS fc_sconv_taps
#define FC_CONV_TAPS_WGRAD fc_sconv_taps_wgrad
#include "gemm_impl.h"
#undef FC_TA
#undef FC_TB
#undef FC_TC
#undef FC_TPA
#undef FC_TPB
#undef FC_SFX
#undef FC_GATHER_VEC
#undef FC_DIRECT_B
#undef FC_EP_KERNEL
#undef FC_KT
#undef FC_KERNEL
#undef FC_GEMM
#undef FC_GEMM_EX
#undef FC_CONV_TAPS
#undef FC_CONV_TAPS_WGRAD
#undef FC_SMALLN_KERNEL
#undef FC_ROWDOT_KERNEL

/* bf16: A and B staged as float (the same packing code), then paired; the unpacked path
 * for tiny products rounds each operand the same way. */
#define FC_TA float
#define FC_TB float
#define FC_TC float
#define FC_TPA float
#define FC_TPB float
#define FC_SFX b
#define FC_GATHER_VEC 1
#define FC_KT fc_bkernel_t
#define FC_KERNEL() (fc_dispatch.gemm.b)
#define FC_GEMM fc_bgemm
#define FC_GEMM_EX fc_bgemm_ex
#define FC_PAIRS 1
#define FC_UKP const uint32_t *
#define FC_A2C(x) bf16_value(x)
#define FC_B2C(x) bf16_value(x)
#include "gemm_impl.h"
#undef FC_TA
#undef FC_TB
#undef FC_TC
#undef FC_TPA
#undef FC_TPB
#undef FC_SFX
#undef FC_KT
#undef FC_KERNEL
#undef FC_GEMM
#undef FC_GEMM_EX
#undef FC_PAIRS
#undef FC_GATHER_VEC
#undef FC_TRANSPOSE8
#undef FC_TRANSPOSE8_ROWS
#undef FC_HAS_TRANSPOSE8

#undef FC_EPILOGUE_VEC
#define FC_TA double
#define FC_TB double
#define FC_TC double
#define FC_TPA double
#define FC_TPB double
#define FC_SFX d
#define FC_KT fc_dkernel_t
#define FC_KERNEL() (fc_dispatch.gemm.d)
#define FC_GEMM fc_dgemm
#define FC_GEMM_EX fc_dgemm_ex
#define FC_CONV_TAPS fc_dconv_taps
#define FC_CONV_TAPS_WGRAD fc_dconv_taps_wgrad
#include "gemm_impl.h"
