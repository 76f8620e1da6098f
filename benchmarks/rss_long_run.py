"""Resident memory over a long training run: it must stay flat.

    python benchmarks/rss_long_run.py [--iters 2000] [--batch 8] [--size 64] [--every 100]

Runs the camera classifier's forward + backward + SGD step ``--iters`` times on one
batch and prints the process's resident set size (VmRSS) every ``--every``
iterations, then after ``fastconv.empty_cache()``.  A leak shows as a rising RSS;
the allocator cache and the GEMM workspaces show as a plateau reached in the first
iterations.  --json writes the curve.
"""
import argparse
import json
import time

import numpy as np

import fastconv as fc


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        fc.set_num_threads(args.threads)
    fc.manual_seed(0)
    rng = np.random.default_rng(0)
    model = fc.models.camera_classifier()
    crit = fc.nn.CrossEntropyLoss()
    opt = fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    y = np.arange(args.batch) % 2
    curve = [(0, rss_mib())]
    print(f"camera classifier, batch {args.batch} x 3 x {args.size} x {args.size}, "
          f"{fc.get_num_threads()} threads; RSS after set-up {curve[0][1]:.1f} MiB")
    t0 = time.perf_counter()
    for i in range(1, args.iters + 1):
        opt.zero_grad()
        crit(model(x), y)
        model.backward(crit.backward(), input_grad=False)
        opt.step()
        if i % 10 == 0:                     # eval passes too: the folded inference path
            model.eval()
            with fc.no_grad():
                model(x)
            model.train()
        if i % args.every == 0:
            curve.append((i, rss_mib()))
            print(f"iter {i:5d}  RSS {curve[-1][1]:8.1f} MiB  ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    fc.empty_cache()
    after = rss_mib()
    s = fc.memory_stats()
    plateau = [r for i, r in curve if i >= args.every]
    print(f"RSS from iter {args.every} to {args.iters}: min {min(plateau):.1f}, "
          f"max {max(plateau):.1f} MiB (growth {plateau[-1] - plateau[0]:+.1f} MiB); "
          f"after empty_cache(): {after:.1f} MiB; cache idle {s['idle_bytes'] / 2**20:.1f} MiB")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(args=vars(args), curve=curve, after_empty_cache=after), fh)


if __name__ == "__main__":
    main()
