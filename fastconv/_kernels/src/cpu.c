/* CPU feature detection, done once (before any parallel region: the Cython modules call
 * fc_isa() at import).  Compiled into every extension that dispatches on the ISA. */
#include <stdlib.h>
#include <string.h>
#include "gemm.h"

static int g_isa = -1;

int fc_cpu_supports(int isa)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    switch (isa) {
    case FC_ISA_AVX512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    case FC_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return 1;
    }
#else
    return isa == FC_ISA_GENERIC;
#endif
}

int fc_isa(void)
{
    if (g_isa >= 0) return g_isa;
    int best = FC_ISA_GENERIC;
    if (fc_cpu_supports(FC_ISA_AVX512)) best = FC_ISA_AVX512;
    else if (fc_cpu_supports(FC_ISA_AVX2)) best = FC_ISA_AVX2;
    const char *env = getenv("FASTCONV_ISA");
    if (env && *env) {
        int want = best;
        if (!strcmp(env, "generic")) want = FC_ISA_GENERIC;
        else if (!strcmp(env, "avx2")) want = FC_ISA_AVX2;
        else if (!strcmp(env, "avx512")) want = FC_ISA_AVX512;
        if (want < best) best = want;   /* never force a path the CPU cannot run */
    }
    g_isa = best;
    return g_isa;
}

const char *fc_isa_name(void)
{
    switch (fc_isa()) {
    case FC_ISA_AVX512: return "avx512";
    case FC_ISA_AVX2: return "avx2";
    default: return "generic";
    }
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
