"""Whole networks people train, fastconv vs PyTorch CPU, side by side.

    python benchmarks/bench_networks.py [--set issue12|grid|all] [--nets resnet18,...]
        [--threads 2,1] [--reps 5] [--kinds train,eval] [--breakdown] [--memory]
        [--wait-policy default|passive|active] [--json out.json]

Each network is built once in fastconv and converted with ``fastconv.to_torch`` (the
same module tree, names and weights; plain forwards are traced to torch.fx), so both
libraries run the same computation.  A training step is forward, loss (cross-entropy:
per image, or per pixel for the segmentation nets), backward through every parameter
and an SGD-momentum step; eval is the forward in eval mode without gradients.  Both
libraries run in this one process with the same thread count and
``OMP_WAIT_POLICY=PASSIVE``, interleaved after a warm-up; the ratio is the median of
per-pair ratios torch time / fastconv time (> 1: fastconv faster).  OpenMP's wait
policy is the runtimes' default (what a user of either library gets);
``--wait-policy passive`` makes idle threads sleep at once, which keeps each library's
pool off the cores the other needs but makes every barrier a sleep and a wake-up
(fastconv's GEMM has more barriers than oneDNN's convolutions, so passive costs it
more).

--breakdown prints where each library spends a case's time: fastconv's profiler by
layer type (forward / backward) and torch's profiler by aten op (self time).
--memory runs each library alone in a fresh process and reports the peak resident
memory its training steps add: the peak (VmHWM, reset after model creation through
/proc/self/clear_refs) minus the resident memory at that point.

Sets: "issue12" is resnet18 N=16 112x112, mobilenet_v2 N=32 96x96 and unet N=8
128x128 (2 classes per pixel); "grid" is resnet18, mobilenet_v2 (widths 0.5 and 1.0)
and the strided/dilated encoder-decoder at 64x64 N=32, 128x128 N=16 and 224x224 N=8.
"""
import os
import sys

# OpenMP's wait policy is read when the runtimes load: --wait-policy passive (or the
# environment's OMP_WAIT_POLICY) must be set before torch and fastconv are imported
if "--wait-policy" in sys.argv and sys.argv[sys.argv.index("--wait-policy") + 1] != "default":
    os.environ["OMP_WAIT_POLICY"] = sys.argv[sys.argv.index("--wait-policy") + 1].upper()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import fastconv as fc  # noqa: E402
from fastconv import nn, ops  # noqa: E402


class EncDec(nn.Module):
    """A small segmentation encoder-decoder with the layers real ones use: stride-2 and
    dilated 3x3 convolutions, a 4x4 stride-2 ConvTranspose2d, bilinear-then-conv
    upsampling and additive skips; (N, 3, H, W) -> (N, classes, H, W)."""

    def __init__(self, classes=2, width=32):
        super().__init__()
        w = width

        def cbr(cin, cout, **kw):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, bias=False, **kw), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True))

        self.stem = cbr(3, w, padding=1)
        self.down1 = cbr(w, 2 * w, stride=2, padding=1)
        self.down2 = cbr(2 * w, 4 * w, stride=2, padding=1)
        self.context = nn.Sequential(cbr(4 * w, 4 * w, padding=2, dilation=2),
                                     cbr(4 * w, 4 * w, padding=4, dilation=4))
        self.up1 = nn.Sequential(nn.ConvTranspose2d(4 * w, 2 * w, 4, stride=2, padding=1,
                                                    bias=False),
                                 nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True))
        self.up2 = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear",
                                             align_corners=False),
                                 cbr(2 * w, w, padding=1))
        self.head = nn.Conv2d(w, classes, 1)

    def forward(self, x):
        s0 = self.stem(x)
        s1 = self.down1(s0)
        x = self.context(self.down2(s1))
        x = self.up1(x) + s1
        return self.head(self.up2(x) + s0)


NETS = {
    "resnet18": (lambda: fc.models.resnet18(num_classes=2), "image"),
    "mobilenet_v2": (lambda: fc.models.mobilenet_v2(num_classes=2), "image"),
    "mobilenet_v2_0.5": (lambda: fc.models.mobilenet_v2(num_classes=2, width_mult=0.5),
                         "image"),
    "unet": (lambda: fc.models.unet(classes=2), "pixel"),
    "encdec": (lambda: EncDec(), "pixel"),
}

SETS = {
    "issue12": [("resnet18", 16, 112), ("mobilenet_v2", 32, 96), ("unet", 8, 128)],
    "grid": [(net, n, s) for net in ("resnet18", "mobilenet_v2_0.5", "mobilenet_v2", "encdec")
             for n, s in ((32, 64), (16, 128), (8, 224))],
}
SETS["all"] = SETS["issue12"] + SETS["grid"]


def _data(target, n, size, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, size, size)).astype(np.float32)
    y = rng.integers(0, 2, (n,) if target == "image" else (n, size, size))
    return x, y


def fc_runner(model, x, y, kind):
    """A no-argument callable: one fastconv training step (tape) or eval forward."""
    if kind == "eval":
        model.eval()

        def run():
            with fc.no_grad():
                model(fc.Tensor(x))
        return run
    model.train()
    crit = nn.CrossEntropyLoss()
    opt = fc.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def run():
        opt.zero_grad()
        crit(model(fc.Tensor(x)), y).backward()
        opt.step()
    return run


def torch_runner(torch, model, x, y, kind):
    """fc_runner's twin for the converted torch module."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if kind == "eval":
        model.eval()

        def run():
            with torch.no_grad():
                model(xt)
        return run
    model.train()
    crit = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def run():
        opt.zero_grad()
        crit(model(xt), yt).backward()
        opt.step()
    return run


def build(torch, net, n, size):
    fc.manual_seed(0)
    make, target = NETS[net]
    model = make()
    tmodel = fc.to_torch(model, example_input=(n, 3, size, size))
    x, y = _data(target, n, size)
    return model, tmodel, x, y


def time_pair(f, g, reps):
    f()
    g()
    tf, tt = [], []
    for i in range(reps):
        for fn, acc in (((f, tf), (g, tt)) if i % 2 == 0 else ((g, tt), (f, tf))):
            t = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t)
    return tf, tt


def breakdown(torch, model, tmodel, x, y, kind):
    """The two profiles of one case, as text."""
    f = fc_runner(model, x, y, kind)
    g = torch_runner(torch, tmodel, x, y, kind)
    f()
    g()
    with fc.profiler.profile() as prof:
        f()
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as tprof:
        g()
    ttab = tprof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14)
    return "fastconv, by layer type:\n" + prof.table() + "\n\ntorch, by aten op:\n" + ttab


_CHILD = r"""
import os, sys
sys.path.insert(0, os.path.dirname({script!r}))
import bench_networks as B
import fastconv as fc, torch
lib, net, n, size, threads, steps = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
fc.set_num_threads(threads); torch.set_num_threads(threads)
def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
model, tmodel, x, y = B.build(torch, net, n, size)
if lib == "fastconv":
    del tmodel
    run = B.fc_runner(model, x, y, "train")
else:
    del model
    run = B.torch_runner(torch, tmodel, x, y, "train")
base = status_kb("VmRSS")
with open("/proc/self/clear_refs", "w") as f:     # the peak (VmHWM) restarts from here
    f.write("5")
for _ in range(steps):
    run()
print((status_kb("VmHWM") - base) / 1024)
"""


def peak_mib(lib, net, n, size, threads, steps=3):
    code = _CHILD.format(script=os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", code, lib, net, str(n), str(size),
                          str(threads), str(steps)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="issue12", choices=sorted(SETS))
    ap.add_argument("--nets", default=None, help="only these networks (comma-separated)")
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--kinds", default="train,eval")
    ap.add_argument("--breakdown", action="store_true")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--wait-policy", default="default",
                    help="OMP_WAIT_POLICY for both libraries (read at start-up)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import torch

    cases = SETS[args.set]
    if args.nets:
        keep = set(args.nets.split(","))
        cases = [c for c in cases if c[0] in keep]
    rows = []
    print(f"{'network':18s} {'input':>12s} {'kind':5s} {'thr':>3s} {'fastconv ms':>11s} "
          f"{'torch ms':>9s} {'ratio':>6s}" + ("  peak MiB fc / torch" if args.memory else ""))
    for threads in map(int, args.threads.split(",")):
        fc.set_num_threads(threads)
        torch.set_num_threads(threads)
        for net, n, size in cases:
            model, tmodel, x, y = build(torch, net, n, size)
            for kind in args.kinds.split(","):
                f = fc_runner(model, x, y, kind)
                g = torch_runner(torch, tmodel, x, y, kind)
                tf, tt = time_pair(f, g, args.reps)
                ratio = statistics.median(b / a for a, b in zip(tf, tt))
                row = dict(net=net, batch=n, size=size, kind=kind, threads=threads,
                           fastconv_ms=statistics.median(tf) * 1e3,
                           torch_ms=statistics.median(tt) * 1e3, ratio=ratio)
                mem = ""
                if args.memory and kind == "train":
                    row["fastconv_peak_mib"] = peak_mib("fastconv", net, n, size, threads)
                    row["torch_peak_mib"] = peak_mib("torch", net, n, size, threads)
                    mem = f"  {row['fastconv_peak_mib']:8.0f} / {row['torch_peak_mib']:.0f}"
                rows.append(row)
                print(f"{net:18s} {f'{n}x{size}x{size}':>12s} {kind:5s} {threads:3d} "
                      f"{row['fastconv_ms']:11.1f} {row['torch_ms']:9.1f} {ratio:6.2f}{mem}",
                      flush=True)
                if args.breakdown:
                    print(breakdown(torch, model, tmodel, x, y, kind), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(command=" ".join(sys.argv), rows=rows), fh, indent=1)


if __name__ == "__main__":
    main()
