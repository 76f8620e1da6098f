"""bf16 mixed precision: the camera classifier's training step (and an eval forward)
in fastconv float32, fastconv bf16 (``fc.autocast("bf16")``), torch float32 and torch
bf16 autocast (``torch.autocast("cpu", torch.bfloat16)``), interleaved in one process.

    python benchmarks/bench_bf16.py [--threads 1,2] [--cases 64x64:64,224x224:16] [--reps 7]
        [--models camera,resnet18,mobilenet_v2]

The camera classifier trains on arrays (module backward: its activations kept in bf16);
the torchvision-shaped networks train on the tape.

Prints images/s for each and the medians of per-round ratios: fastconv bf16 over its
float32 (speed-up), and torch bf16 (and float32) time over fastconv bf16 time (> 1:
fastconv faster).
Results: benchmarks/results/bf16.txt.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import fastconv as fc  # noqa: E402
from fastconv.bench import runner_fc, runner_torch  # noqa: E402


def _wrapped(run, ctx):
    def f():
        with ctx():
            run()
    return f


def _tape_runner(model, x, kind, precision):
    crit = fc.nn.CrossEntropyLoss()
    y = np.arange(len(x)) % 2
    if kind == "eval":
        model.eval()

        def run():
            with fc.no_grad(), fc.autocast("bf16", enabled=precision == "bf16"):
                model(fc.Tensor(x))
        return run
    model.train()

    def run():
        model.zero_grad()
        with fc.autocast("bf16", enabled=precision == "bf16"):
            loss = crit(model(fc.Tensor(x)), y)
        loss.backward()
    return run


def case(kind, size, n, reps, name="camera"):
    x = np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32)
    fc.manual_seed(0)
    if name == "camera":
        m = fc.models.camera_classifier()
        tm = fc.to_torch(m)
        fc32 = runner_fc(m, x, kind)
        fc16 = _wrapped(runner_fc(m, x, kind), lambda: fc.autocast("bf16"))
    else:
        m = getattr(fc.models, name)(num_classes=2)
        tm = fc.to_torch(m, example_input=x.shape)
        fc32, fc16 = _tape_runner(m, x, kind, "float32"), _tape_runner(m, x, kind, "bf16")
    runs = {
        "fc f32": fc32,
        "fc bf16": fc16,
        "torch f32": runner_torch(torch, tm, x, kind),
        "torch bf16": _wrapped(runner_torch(torch, tm, x, kind),
                               lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
    }
    for f in runs.values():
        f()
    times = {k: [] for k in runs}
    for _ in range(reps):
        for k, f in runs.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    speedup = statistics.median(a / b for a, b in zip(times["fc f32"], times["fc bf16"]))
    vs_torch = statistics.median(a / b for a, b in zip(times["torch bf16"], times["fc bf16"]))
    vs_torch32 = statistics.median(a / b for a, b in zip(times["torch f32"], times["fc bf16"]))
    line = (f"{name:12s} {kind:5s} {size}x{size} N={n:3d}: " +
            ", ".join(f"{k} {n / v:6.1f}" for k, v in med.items()) +
            f" img/s | fc bf16/f32 {speedup:.2f}x, vs torch bf16 {vs_torch:.2f}x, "
            f"vs torch f32 {vs_torch32:.2f}x")
    return line


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--cases", default="64x64:64,224x224:16")
    ap.add_argument("--kinds", default="train,eval")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--models", default="camera")
    args = ap.parse_args()
    from fastconv._kernels import _gemm
    print(f"fastconv bf16 kernel: {_gemm.bf16_kernel_name()}; torch {torch.__version__}")
    for nt in map(int, args.threads.split(",")):
        fc.set_num_threads(nt)
        torch.set_num_threads(nt)
        print(f"--- {nt} thread(s)")
        for spec in args.cases.split(","):
            hw, n = spec.split(":")
            size = int(hw.split("x")[0])
            for name in args.models.split(","):
                for kind in args.kinds.split(","):
                    print(case(kind, size, int(n), args.reps, name), flush=True)


if __name__ == "__main__":
    main()
