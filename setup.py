"""Build fastconv's compiled kernels (Cython + C, OpenMP).

Flags are portable x86-64 (no -march=native): ISA-specific code is selected at
run time by the C dispatch layer, so one wheel runs on any x86-64 CPU.

Environment switches:
  FASTCONV_BUILD_JOBS=N     compile with N jobs (default: every core)
  FASTCONV_NO_OPENMP=1      build without OpenMP (sequential kernels, loud warning)
  FASTCONV_DEBUG_CYTHON=1   turn Cython bounds/wraparound checks back on
"""
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading

from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

KDIR = os.path.join("fastconv", "_kernels")
SRC = os.path.join(KDIR, "src")


def _openmp_flags():
    """Return (compile, link) OpenMP flags, or ([], []) if the compiler lacks OpenMP."""
    if os.environ.get("FASTCONV_NO_OPENMP"):
        return [], []
    if sys.platform == "darwin":
        cflags, lflags = ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    elif sys.platform == "win32":
        return ["/openmp"], []
    else:
        cflags, lflags = ["-fopenmp"], ["-fopenmp"]
    cc = os.environ.get("CC", "cc")
    code = textwrap.dedent("""
        #include <omp.h>
        int main(void) { int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1; }
    """)
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as f:
            f.write(code)
        r = subprocess.run([cc, *cflags, src, "-o", os.path.join(tmp, "t"), *lflags],
                           capture_output=True)
        ok = r.returncode == 0
    except OSError:
        ok = False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not ok:
        print("\n" + "*" * 72 + "\nWARNING: the C compiler does not support OpenMP; "
              "fastconv will run single-threaded.\n" + "*" * 72 + "\n", file=sys.stderr)
        return [], []
    return cflags, lflags


def extensions():
    omp_c, omp_l = _openmp_flags()
    base_c = ["-O3", "-std=c11", "-fno-math-errno", "-Wno-unused-function",
              "-Wno-unreachable-code", "-Wno-maybe-uninitialized"]
    if os.environ.get("FASTCONV_SANITIZE"):
        base_c += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
        omp_l = omp_l + ["-fsanitize=address,undefined"]
    elif not os.environ.get("FASTCONV_DEBUG_CYTHON"):
        # Python's CFLAGS carry -g: a release wheel ships no debug info (about 4x smaller)
        base_c += ["-g0"]
        omp_l = omp_l + ["-Wl,--strip-all"]
    # every C source links into _cpu, which fills the dispatch table the other modules
    # call through (one copy of the CPU flags, the kernels and the workspace)
    kernel_sources = [os.path.join(SRC, f) for f in (
        "cpu.c", "dispatch.c", "workspace.c", "peak.c",
        "gemm.c", "gemm_generic.c", "gemm_avx2.c", "gemm_avx512.c", "gemm_neon.c", "gemm_bf16.c",
        "winograd.c", "winograd_generic.c", "winograd_avx2.c", "winograd_avx512.c",
        "depthwise.c", "pool.c", "norm.c", "wgrad_direct.c",
        "qgemm.c", "qgemm_vnni.c", "qgemm_avx2.c")]
    families = {
        "_openmp_helpers": [],
        "_memory": [],
        "_cpu": kernel_sources,
        "_gemm": [],
        "_winograd": [],
        "_conv": [],
        "_pad": [],
        "_depthwise": [],
        "_pool": [],
        "_norm": [],
        "_elementwise": [],
        "_upsample": [],
        "_linear": [],
        "_loss": [],
        "_optim": [],
        "_quant": [],
    }
    # headers are templates included by the C sources: a change must rebuild everything
    headers = sorted(os.path.join(SRC, f) for f in os.listdir(SRC) if f.endswith(".h"))
    exts = []
    for name, extra in families.items():
        exts.append(Extension(
            f"fastconv._kernels.{name}",
            sources=[os.path.join(KDIR, name + ".pyx"), *extra],
            depends=headers,
            include_dirs=[SRC],
            extra_compile_args=base_c + omp_c,
            extra_link_args=omp_l,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        ))
    from Cython.Build import cythonize
    debug = bool(os.environ.get("FASTCONV_DEBUG_CYTHON"))
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={
            "boundscheck": debug, "wraparound": debug, "initializedcheck": debug,
            "nonecheck": False, "cdivision": True, "cpow": True,
        },
    )


def _jobs():
    return max(1, int(os.environ.get("FASTCONV_BUILD_JOBS", 0)) or os.cpu_count() or 1)


class build_ext(_build_ext):
    """build_ext on every core by default (``-j N`` or FASTCONV_BUILD_JOBS=N to choose):
    the extensions build side by side, and the C sources of one extension (the kernels
    linked into _cpu) compile side by side too."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None or self.parallel is True:
            self.parallel = _jobs()

    def build_extensions(self):
        compiler, compile_one = self.compiler, self.compiler.compile
        jobs = self.parallel if isinstance(self.parallel, int) else 1
        slots = threading.Semaphore(jobs)       # at most `jobs` compilers at any time

        def compile_source(src, args, kwargs):
            with slots:
                return compile_one([src], *args, **kwargs)

        def compile_all(sources, *args, **kwargs):
            with ThreadPoolExecutor(max(1, min(jobs, len(sources)))) as pool:
                parts = pool.map(lambda src: compile_source(src, args, kwargs), sources)
                return [obj for part in parts for obj in part]
        compiler.compile = compile_all
        try:
            super().build_extensions()
        finally:
            compiler.compile = compile_one


setup(ext_modules=extensions(), cmdclass={"build_ext": build_ext})
