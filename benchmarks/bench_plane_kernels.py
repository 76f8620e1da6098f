"""The memory-bound plane kernels (pooling, BatchNorm, depthwise) on the ISA path in use:
run it twice, natively and with ``FASTCONV_ISA=generic``, and compare.

    python benchmarks/bench_plane_kernels.py [--shape 4,32,64,64] [--reps 5]
    FASTCONV_ISA=generic python benchmarks/bench_plane_kernels.py

Prints the kernel sets in use (``neon`` on AArch64, ``avx512``/``avx2`` on x86-64) and
the best-of-reps milliseconds of each layer's forward + backward.  Under qemu-user
(``.ci/aarch64_emulated``) the times are an instruction-count proxy, not hardware
timings.
"""
import argparse
import time

import numpy as np

import fastconv as fc
from fastconv._kernels import _cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="4,32,64,64")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    fc.set_num_threads(args.threads)
    shape = tuple(int(v) for v in args.shape.split(","))
    C = shape[1]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    layers = {
        "MaxPool2d(2)": fc.nn.MaxPool2d(2),
        "AvgPool2d(2)": fc.nn.AvgPool2d(2),
        "BatchNorm2d": fc.nn.BatchNorm2d(C),
        "depthwise 3x3": fc.nn.Conv2d(C, C, 3, padding=1, groups=C, bias=False),
    }
    print(f"ISA {_cpu.isa_name()}, kernel sets {_cpu.kernel_sets()}, input {shape}, "
          f"{args.threads} thread(s)")
    for name, m in layers.items():
        best = float("inf")
        for _ in range(args.reps):
            t = time.perf_counter()
            y = m(x)
            m.backward(np.ones_like(y))
            best = min(best, time.perf_counter() - t)
        print(f"  {name:14s} forward + backward {1e3 * best:8.2f} ms")


if __name__ == "__main__":
    main()
