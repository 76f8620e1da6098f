"""One camera-classifier training step (forward, loss, backward; no data loading) at
several batch sizes, fastconv vs PyTorch, interleaved in one process.

    python benchmarks/bench_train_step.py [--batches 16,32,64] [--size 64] [--reps 7]

Prints images/s for each library and the median of per-pair ratios torch time /
fastconv time (> 1: fastconv faster).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import fastconv as fc  # noqa: E402
from fastconv.bench import runner_fc, runner_torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="16,32,64")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        fc.set_num_threads(args.threads)
    torch.set_num_threads(fc.get_num_threads())
    print(f"camera classifier training step, {args.size}x{args.size}, "
          f"{fc.get_num_threads()} threads")
    for n in map(int, args.batches.split(",")):
        m = fc.models.camera_classifier()
        x = np.random.default_rng(0).standard_normal((n, 3, args.size, args.size)).astype(np.float32)
        f = runner_fc(m, x, "train")
        g = runner_torch(torch, fc.to_torch(m), x, "train")
        f()
        g()
        tf, tt = [], []
        for _ in range(args.reps):
            t = time.perf_counter()
            f()
            tf.append(time.perf_counter() - t)
            t = time.perf_counter()
            g()
            tt.append(time.perf_counter() - t)
        ratio = statistics.median(b / a for a, b in zip(tf, tt))
        print(f"batch {n:3d}: fastconv {n / statistics.median(tf):6.1f} img/s, "
              f"torch {n / statistics.median(tt):6.1f} img/s, ratio {ratio:.2f}", flush=True)


if __name__ == "__main__":
    main()
