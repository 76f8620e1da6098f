"""What the tape costs: the camera classifier's training step with the explicit
backward (``model.backward(crit.backward())``) against the same step on the tape
(``crit(model(fc.Tensor(x)), y).backward()``), interleaved, plus the per-call cost of
tiny ops against torch autograd's.

    python benchmarks/bench_tape.py [--threads 2] [--reps 20] [--batch 16]

Prints the median of per-pair time ratios (tape / explicit: 1.00 means free) and the
per-op microseconds of both libraries on tiny shapes.
"""
import argparse
import statistics
import time

import numpy as np

import fastconv as fc


def step_explicit(model, crit, opt, x, y):
    opt.zero_grad()
    crit(model(x), y)
    model.backward(crit.backward(), input_grad=False)
    opt.step()


def step_tape(model, crit, opt, x, y):
    opt.zero_grad()
    crit(model(fc.Tensor(x)), y).backward()
    opt.step()


def per_call_us(fn, reps=2000):
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    fc.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    fc.manual_seed(0)
    model = fc.models.camera_classifier()
    crit = fc.nn.CrossEntropyLoss()
    opt = fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    y = rng.integers(0, 2, args.batch)
    for f in (step_explicit, step_tape):
        f(model, crit, opt, x, y)
    ratios, te, tt = [], [], []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        step_explicit(model, crit, opt, x, y)
        t1 = time.perf_counter()
        step_tape(model, crit, opt, x, y)
        t2 = time.perf_counter()
        te.append(t1 - t0)
        tt.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    print(f"camera classifier step, N={args.batch}, {args.size}x{args.size}, "
          f"{args.threads} threads, {args.reps} interleaved pairs:")
    print(f"  explicit {statistics.median(te) * 1e3:.1f} ms, tape "
          f"{statistics.median(tt) * 1e3:.1f} ms, tape/explicit = "
          f"{statistics.median(ratios):.3f} (median of pairs)")
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(args.threads)
    a = np.random.rand(2, 8, 4, 4).astype(np.float32)
    b = np.random.rand(2, 8, 4, 4).astype(np.float32)
    fa, fb = fc.Tensor(a, requires_grad=True), fc.Tensor(b, requires_grad=True)
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    conv, tconv = fc.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1)
    cases = [
        ("a * b + a, backward", lambda: (fa * fb + fa).sum().backward(),
         lambda: (ta * tb + ta).sum().backward()),
        ("cat + mean, backward", lambda: fc.cat([fa, fb], 1).mean().backward(),
         lambda: torch.cat([ta, tb], 1).mean().backward()),
        ("conv 8->8 @4x4, backward", lambda: conv(fa).sum().backward(),
         lambda: tconv(ta).sum().backward()),
    ]
    # each taped op makes Python objects (a node, a Tensor), so Python's cyclic garbage
    # collector runs now and then; right after the camera steps its older generations
    # are full and each of its passes costs more: both states are shown
    import gc
    for state in ("right after the camera steps", "after gc.collect()"):
        if state.startswith("after"):
            gc.collect()
        print(f"tiny ops on the tape (N=2, 8x4x4), per call, forward + backward, {state}:")
        for name, f, t in cases:
            us_f, us_t = per_call_us(f), per_call_us(t)
            print(f"  {name:28s} fastconv {us_f:7.1f} us   torch {us_t:7.1f} us   "
                  f"torch/fastconv {us_t / us_f:.2f}")


if __name__ == "__main__":
    main()
