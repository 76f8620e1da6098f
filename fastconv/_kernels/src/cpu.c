/* CPU feature detection, done once: fc_dispatch_init() calls it at import, before any
 * parallel region. */
#include <stdlib.h>
#include <string.h>
#include "cpu.h"
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static const char *const flag_names[FC_CPU_NFLAGS] = {
    "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512dq", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "neon",
};

static unsigned detect(void)
{
    unsigned f = 0;
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d, leaf7_max = 0;
    __builtin_cpu_init();
    /* the compiler's names also check that the OS saves the wider registers */
    if (__builtin_cpu_supports("avx2")) f |= FC_CPU_AVX2;
    if (__builtin_cpu_supports("fma")) f |= FC_CPU_FMA;
    if (__builtin_cpu_supports("avx512f")) f |= FC_CPU_AVX512F;
    if (__builtin_cpu_supports("avx512dq")) f |= FC_CPU_AVX512DQ;
    if (__builtin_cpu_supports("avx512bw")) f |= FC_CPU_AVX512BW;
    if (__builtin_cpu_supports("avx512vl")) f |= FC_CPU_AVX512VL;
    /* newer than some compilers' name lists: cpuid bits, valid when the register file
     * they work on is (AVX for F16C and AVX-VNNI, AVX-512F for the EVEX ones) */
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) && __builtin_cpu_supports("avx"))
        f |= FC_CPU_F16C;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        leaf7_max = a;
        if ((c & (1u << 11)) && (f & FC_CPU_AVX512F)) f |= FC_CPU_AVX512_VNNI;
    }
    if (leaf7_max >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        if ((a & (1u << 4)) && (f & FC_CPU_AVX2)) f |= FC_CPU_AVX_VNNI;
        if ((a & (1u << 5)) && (f & FC_CPU_AVX512F)) f |= FC_CPU_AVX512_BF16;
    }
#elif defined(__aarch64__)
    f |= FC_CPU_NEON;               /* mandatory in AArch64 */
#endif
    return f;
}

/* FASTCONV_ISA only removes flags: a path the CPU cannot run is never forced. */
static unsigned env_mask(void)
{
    const char *env = getenv("FASTCONV_ISA");
    if (env && !strcmp(env, "generic")) return 0;
    /* AVX-512 without the reduced-precision dot products: the emulated bf16 and the
     * non-VNNI int8 kernels on this CPU (what Skylake-X and Ice Lake clients run) */
    if (env && !strcmp(env, "avx512f"))
        return ~(unsigned)(FC_CPU_AVX512_BF16 | FC_CPU_AVX512_VNNI | FC_CPU_AVX_VNNI);
    if (env && !strcmp(env, "avx2"))
        return FC_CPU_AVX2 | FC_CPU_FMA | FC_CPU_F16C | FC_CPU_AVX_VNNI;
    return ~0u;
}

static int g_detected = 0;
static unsigned g_features = 0;

unsigned fc_cpu_features(void)
{
    if (!g_detected) {
        g_features = detect() & env_mask();
        g_detected = 1;
    }
    return g_features;
}

int fc_cpu_has(unsigned flags) { return (fc_cpu_features() & flags) == flags; }

const char *fc_cpu_flag_name(int bit)
{
    return bit >= 0 && bit < FC_CPU_NFLAGS ? flag_names[bit] : NULL;
}

const char *fc_isa_name(void)
{
    if (fc_cpu_has(FC_PATH_AVX512)) return "avx512";
    if (fc_cpu_has(FC_PATH_AVX2)) return "avx2";
    if (fc_cpu_has(FC_PATH_NEON)) return "neon";
    return "generic";
}

const char *fc_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#elif defined(_MSC_VER)
#define FC_STR2(x) #x
#define FC_STR(x) FC_STR2(x)
    return "msvc " FC_STR(_MSC_VER);
#else
    return "unknown";
#endif
}
