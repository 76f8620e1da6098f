"""Peak memory of a camera-classifier training step: fastconv vs PyTorch CPU.

    python benchmarks/bench_memory.py [--size 64] [--batch 64] [--steps 3] [--threads 2]
        [--bf16]

--bf16 adds each library's bf16 mixed precision (``fc.autocast("bf16", save_bf16=True)``,
``torch.autocast("cpu", torch.bfloat16)``) and the bf16 / float32 ratios.

Each library runs alone in a fresh process (so neither's allocations hide in the
other's).  Reported: peak resident memory (ru_maxrss) minus the process's resident
memory after imports and model creation, i.e. what the training steps themselves
added (activations, gradients, workspaces, allocator caches).
"""
import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, os, resource, sys
import numpy as np
import contextlib
lib, size, batch, steps, threads = sys.argv[1], *map(int, sys.argv[2:6])
bf16 = sys.argv[6] == "bf16"
def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
rng = np.random.default_rng(0)
x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
y = (np.arange(batch) % 2).astype(np.int64)
if lib == "fastconv":
    import fastconv as fc
    fc.set_num_threads(threads)
    m = fc.models.camera_classifier()
    crit = fc.nn.CrossEntropyLoss()
    opt = fc.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    base = rss_kb()
    for _ in range(steps):
        opt.zero_grad()
        with fc.autocast("bf16", enabled=bf16, save_bf16=True):
            crit(m(x), y)
        m.backward(crit.backward(), input_grad=False)
        opt.step()
else:
    import torch
    from fastconv.interop import to_torch
    import fastconv as fc
    torch.set_num_threads(threads)
    m = to_torch(fc.models.camera_classifier())
    crit = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    base = rss_kb()
    for _ in range(steps):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = crit(m(tx), ty)
        loss.backward()
        opt.step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"lib": lib + (" bf16" if bf16 else ""), "base_mib": base / 1024, "peak_mib": peak / 1024,
                  "step_mib": (peak - base) / 1024}))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for prec in ("float32", "bf16") if args.bf16 else ("float32",):
        for lib in ("fastconv", "torch"):
            r = subprocess.run([sys.executable, "-c", CHILD, lib, str(args.size), str(args.batch),
                                str(args.steps), str(args.threads), prec], capture_output=True,
                               text=True)
            if r.returncode != 0:
                print(f"bench_memory: {lib} failed:\n{r.stderr}", file=sys.stderr)
                return 1
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(f"camera classifier training step, {args.size}x{args.size}, batch {args.batch}, "
          f"{args.steps} steps, {args.threads} threads")
    for row in rows:
        print(f"  {row['lib']:9s} peak RSS added by training: {row['step_mib']:8.1f} MiB "
              f"(process peak {row['peak_mib']:.1f} MiB)")
    ratio = rows[0]["step_mib"] / rows[1]["step_mib"]
    print(f"  fastconv / torch: {ratio:.2f}")
    if args.bf16:
        print(f"  bf16 / float32: fastconv {rows[2]['step_mib'] / rows[0]['step_mib']:.2f}, "
              f"torch {rows[3]['step_mib'] / rows[1]['step_mib']:.2f}; "
              f"fastconv bf16 / torch bf16: {rows[2]['step_mib'] / rows[3]['step_mib']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
