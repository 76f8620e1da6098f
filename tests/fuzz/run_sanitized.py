"""Fuzz fastconv under AddressSanitizer + UndefinedBehaviorSanitizer, many seeds at once.

    python tests/fuzz/run_sanitized.py --seeds 0-19 --examples 1250 [--jobs 2]
        [--build build/asan] [--out fuzz-crashes] [--no-build]

1. Copies the package source to --build and compiles it there with
   FASTCONV_SANITIZE=1 (-fsanitize=address,undefined), leaving the checkout's own
   build alone.
2. Runs tests/fuzz/fuzz_layers.py once per seed (all layer families, --examples cases
   each), --jobs subprocesses at a time, with libasan/libubsan preloaded and
   halt_on_error, so the first bad read or write, or undefined behaviour, kills the
   process with a report.
3. A run that dies leaves the case it was running in its case file.  That case is
   shrunk (smaller shape, contiguous float32 input, one thread) while it still
   crashes, and written to --out as a replayable case plus the sanitizer report:
       python tests/fuzz/fuzz_layers.py --replay fuzz-crashes/seed-7.case
4. Prints the calls per outcome summed over seeds, the wall time and the crashes.
   Exit status 0 only when every seed finished clean.

Needs GCC (for libasan and libubsan), hypothesis and torch.
"""
import argparse
import ast
import collections
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FUZZER = os.path.join(HERE, "fuzz_layers.py")


def seeds(spec):
    """'0-19' or '3,5,8' -> a list of ints."""
    out = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def build(dest):
    """Compile a sanitizer build of the checkout's source into dest."""
    os.makedirs(dest, exist_ok=True)
    for item in ("fastconv", "setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
        src, dst = os.path.join(ROOT, item), os.path.join(dest, item)
        if os.path.isdir(src):
            shutil.copytree(src, dst, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
            # the C sources of the kernels are real sources, not Cython output
            shutil.copytree(os.path.join(src, "_kernels", "src"),
                            os.path.join(dst, "_kernels", "src"), dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    env = dict(os.environ, FASTCONV_SANITIZE="1")
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-j",
                    str(os.cpu_count() or 1)], cwd=dest, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def sanitizer_env(build_dir, threads):
    libs = [subprocess.run(["gcc", f"-print-file-name={lib}"], capture_output=True,
                           text=True, check=True).stdout.strip()
            for lib in ("libasan.so", "libubsan.so")]
    return dict(os.environ, PYTHONPATH=build_dir, LD_PRELOAD=" ".join(libs),
                OMP_NUM_THREADS=str(threads),
                ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0",
                UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")


def crashed(p):
    """A sanitizer report or a signal, not an ordinary test failure (a Python
    AssertionError from a wrong answer is reported as such, not shrunk)."""
    return p.returncode < 0 or "Sanitizer" in p.stderr or "runtime error:" in p.stderr


def replay(case_path, env, timeout=300):
    return subprocess.run([sys.executable, FUZZER, "--replay", case_path], env=env,
                          capture_output=True, text=True, timeout=timeout)


def shrink(case, path, env):
    """Smaller variants of a crashing case, greedily, while they still crash."""
    def still_crashes(c):
        with open(path, "w") as f:
            f.write(repr(c) + "\n")
        return crashed(replay(path, env))

    layer, (shape, dtype, layout, s, train) = case
    best = (layer, (tuple(shape), dtype, layout, s, train))
    changed = True
    while changed:
        changed = False
        shape, dtype, layout, s, train = best[1]
        tries = []
        for i, d in enumerate(shape):
            for v in sorted({1, d // 2, d - 1}):
                if 0 <= v < d:
                    tries.append(shape[:i] + (v,) + shape[i + 1:])
        cands = [(best[0], (t, dtype, layout, s, train)) for t in tries]
        if layout != "c":
            cands.append((best[0], (shape, dtype, "c", s, train)))
        if dtype != "float32":
            cands.append((best[0], (shape, "float32", layout, s, train)))
        for c in cands:
            if still_crashes(c):
                best, changed = c, True
                break
    with open(path, "w") as f:
        f.write(repr(best) + "\n")
    return best


def run_seed(seed, args, env):
    case_file = os.path.join(args.out, f"seed-{seed}.last")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, FUZZER, "--examples", str(args.examples),
                        "--seed", str(seed), "--case-file", case_file,
                        "--families", args.families],
                       env=env, capture_output=True, text=True, timeout=args.timeout)
    dt = time.perf_counter() - t0
    counts = collections.Counter()
    m = re.search(r"fuzz: (\d+) cases tried; (.*)", p.stdout)
    if m:
        counts["cases"] = int(m.group(1))
        for part in m.group(2).split("; "):
            n, _, what = part.partition(" ")
            counts[what] += int(n)
    verified = [ln.strip() for ln in p.stdout.splitlines() if "fastconv verified:" in ln]
    result = dict(seed=seed, rc=p.returncode, seconds=dt, counts=counts, verified=verified)
    if p.returncode != 0:
        result["stderr"] = p.stderr[-4000:] + p.stdout[-2000:]
        if crashed(p) and os.path.exists(case_file):
            with open(case_file) as f:
                case = ast.literal_eval(f.read().strip())
            one = dict(env, OMP_NUM_THREADS="1")
            final = os.path.join(args.out, f"seed-{seed}.case")
            result["case"] = shrink(case, final, one)
            with open(os.path.join(args.out, f"seed-{seed}.report"), "w") as f:
                f.write(replay(final, one).stderr)
            result["case_file"] = final
    if os.path.exists(case_file):
        os.remove(case_file)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-19", help="e.g. 0-19 or 3,5,8")
    ap.add_argument("--examples", type=int, default=1250, help="cases per family per seed")
    ap.add_argument("--families", default="conv,conv_transpose,pool,other",
                    help="layer families to fuzz (fuzz_layers.py --families)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads per fuzzer")
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "asan"))
    ap.add_argument("--no-build", action="store_true", help="reuse the build in --build")
    ap.add_argument("--out", default=os.path.join(ROOT, "fuzz-crashes"))
    ap.add_argument("--timeout", type=int, default=7200, help="seconds per seed")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    if not args.no_build:
        print(f"building the sanitizer build in {args.build} ...", flush=True)
        build(args.build)
    env = sanitizer_env(os.path.abspath(args.build), args.threads)
    total, results = collections.Counter(), []
    with ThreadPoolExecutor(args.jobs) as pool:
        for r in pool.map(lambda s: run_seed(s, args, env), seeds(args.seeds)):
            results.append(r)
            total.update(r["counts"])
            state = "clean" if r["rc"] == 0 else f"FAILED rc={r['rc']}"
            print(f"seed {r['seed']}: {r['counts']['cases']} cases, {r['seconds']:.0f} s, "
                  f"{state}", flush=True)
    wall = time.perf_counter() - t0
    cases = total.pop("cases", 0)
    print(f"\n{cases} fuzzed calls over {len(results)} seeds ({args.seeds}) in {wall:.0f} s "
          f"wall, {args.jobs} jobs, under ASan+UBSan:")
    for what, n in total.most_common():
        print(f"  {n:7d} {what}")
    verified = [v for r in results for v in r["verified"]]
    if verified:
        print(f"\n{len(verified)} disagreements with torch settled by the float64 referee:")
        for v in verified:
            print(f"  {v}")
    bad = [r for r in results if r["rc"] != 0]
    for r in bad:
        print(f"\nseed {r['seed']} failed (rc {r['rc']}):\n{r['stderr']}")
        if "case_file" in r:
            print(f"minimal case: {r['case']}\nreplay: python {os.path.relpath(FUZZER)} "
                  f"--replay {r['case_file']}")
    print(f"\n{'CLEAN' if not bad else f'{len(bad)} seed(s) FAILED'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
