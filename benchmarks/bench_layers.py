"""fastconv vs PyTorch CPU, side by side: every layer (fwd and fwd+bwd), the composite
blocks, and the camera classifier's training step and inference.

    python benchmarks/bench_layers.py [--threads 2] [--reps 15] [--only conv] [--quick]
                                      [--json out.json] [--png out.png]

Both libraries run in one process with the same thread count; runs are interleaved
(fastconv, torch, fastconv, ...) and the reported ratio is the median of per-pair
ratios torch_time / fastconv_time (> 1: fastconv faster), which cancels most of a
shared machine's drift.  Effective GFLOP/s (direct-convolution FLOPs / time; Winograd
layers can exceed 100%) and % of the FMA peak measured here (not a spec-sheet number)
are given for convolutions.  OMP_WAIT_POLICY=PASSIVE keeps each
library's idle OpenMP threads from spinning on the cores the other one needs.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import fastconv as fc  # noqa: E402
from fastconv import models  # noqa: E402
from fastconv.bench import fma_peak_gflops, isa_name  # noqa: E402
from fastconv.interop import to_torch  # noqa: E402


def conv_flops(m, x_shape, y_shape):
    """2 * multiply-adds of a forward pass."""
    if isinstance(m, fc.nn.ConvTranspose2d):
        n, c, h, w = x_shape
        return 2 * n * h * w * c * (m.out_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
    n, c, oh, ow = y_shape
    return 2 * n * oh * ow * c * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]


def model_flops(model, x):
    """Forward FLOPs of every conv and linear layer in a model (shapes from a dry run)."""
    total = 0
    shapes = {}
    training = model.training
    model.train()            # the plain (unfolded) path, so every conv runs as a layer
    try:
        orig = {}
        for m in model.modules():
            if isinstance(m, (fc.nn.Conv2d, fc.nn.ConvTranspose2d, fc.nn.Linear)):
                orig[m] = m.forward

                def wrapped(inp, _m=m, _f=m.forward):
                    out = _f(inp)
                    shapes[_m] = (np.shape(inp), out.shape)
                    return out
                m.forward = wrapped
        model(x)
        for m, f in orig.items():
            del m.forward
    finally:
        model.train(training)
    for m, (xs, ys) in shapes.items():
        if isinstance(m, fc.nn.Linear):
            total += 2 * int(np.prod(xs[:-1])) * m.in_features * m.out_features
        else:
            total += conv_flops(m, xs, ys)
    return total


# name, fastconv module factory, input shape, kind ("layer" | "block" | "train" | "eval")
CASES = [
    ("conv3x3 64->64 @56", lambda: fc.nn.Conv2d(64, 64, 3, padding=1, bias=False), (16, 64, 56, 56)),
    ("conv3x3 s2 128->256 @56", lambda: fc.nn.Conv2d(128, 256, 3, 2, 1, bias=False), (16, 128, 56, 56)),
    ("conv1x1 256->64 @56", lambda: fc.nn.Conv2d(256, 64, 1, bias=False), (16, 256, 56, 56)),
    ("depthwise3x3 256 @28", lambda: fc.nn.Conv2d(256, 256, 3, 1, 1, groups=256, bias=False),
     (16, 256, 28, 28)),
    ("first conv3x3 3->64 @224", lambda: fc.nn.Conv2d(3, 64, 3, padding=1, bias=False),
     (16, 3, 224, 224)),
    ("convT3x3 s2 64->32 @28", lambda: fc.nn.ConvTranspose2d(64, 32, 3, 2, 1, 1), (16, 64, 28, 28)),
    ("maxpool2 64 @112", lambda: fc.nn.MaxPool2d(2), (16, 64, 112, 112)),
    ("avgpool2 64 @112", lambda: fc.nn.AvgPool2d(2), (16, 64, 112, 112)),
    ("batchnorm(train) 64 @112", lambda: fc.nn.BatchNorm2d(64), (16, 64, 112, 112)),
    ("relu 64 @112", lambda: fc.nn.ReLU(), (16, 64, 112, 112)),
    ("upsample bilinear x2 64 @56", lambda: fc.nn.Upsample(scale_factor=2, mode="bilinear"),
     (16, 64, 56, 56)),
    ("linear 256->2", lambda: fc.nn.Linear(256, 2), (16, 256)),
    ("tiny conv3x3 16 @8 N=1", lambda: fc.nn.Conv2d(16, 16, 3, padding=1), (1, 16, 8, 8)),
    ("tiny linear 256->2 N=1", lambda: fc.nn.Linear(256, 2), (1, 256)),
    ("ConvBlock 64->64 @56", lambda: models.ConvBlock(64, 64), (16, 64, 56, 56)),
    ("DepthwiseSeparable 128 @56", lambda: models.DepthwiseSeparableConv(128, 128), (16, 128, 56, 56)),
    ("Bottleneck 256/64 @56", lambda: fc.nn.Residual(models.Bottleneck(256, 64)), (16, 256, 56, 56)),
    ("SmoothUpsample 64->32 @28", lambda: models.SmoothUpsample(64, 32), (16, 64, 28, 28)),
]
MODEL_CASES = [
    ("camera train step 64x64 N=64", "train", (64, 3, 64, 64)),
    ("camera train step 224x224 N=16", "train", (16, 3, 224, 224)),
    ("camera eval 64x64 N=64", "eval", (64, 3, 64, 64)),
    ("camera eval 224x224 N=16", "eval", (16, 3, 224, 224)),
]


def _timeit(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paired(fc_fn, t_fn, reps, warmup=2):
    for _ in range(warmup):
        fc_fn()
        t_fn()
    tf, tt, ratios = [], [], []
    for i in range(reps):
        if i % 2 == 0:
            a = _timeit(fc_fn)
            b = _timeit(t_fn)
        else:
            b = _timeit(t_fn)
            a = _timeit(fc_fn)
        tf.append(a)
        tt.append(b)
        ratios.append(b / a)
    return statistics.median(tf), statistics.median(tt), statistics.median(ratios)


def layer_fns(torch, m, tm, x, mode):
    tx = torch.from_numpy(x)
    if mode == "fwd":
        def f():
            with fc.no_grad():
                m(x)

        def t():
            with torch.no_grad():
                tm(tx)
        return f, t
    rng = np.random.default_rng(0)
    with fc.no_grad():
        gy = rng.standard_normal(m(x).shape).astype(np.float32)
    tgy = torch.from_numpy(gy)
    txg = tx.clone().requires_grad_(True)

    def f():
        m(x)
        m.backward(gy)

    def t():
        txg.grad = None
        tm(txg).backward(tgy)
    return f, t


def model_fns(torch, kind, x):
    fc.manual_seed(0)
    m = models.camera_classifier()
    tm = to_torch(m)
    tx = torch.from_numpy(x)
    y = np.arange(x.shape[0]) % 2
    ty = torch.from_numpy(y)
    if kind == "eval":
        m.eval()
        tm.eval()
        return layer_fns(torch, m, tm, x, "fwd") + (m,)
    crit, tcrit = fc.nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    opt = fc.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    topt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)

    def f():
        opt.zero_grad()
        crit(m(x), y)
        m.backward(crit.backward(), input_grad=False)   # torch: x needs no grad either
        opt.step()

    def t():
        topt.zero_grad()
        tcrit(tm(tx), ty).backward()
        topt.step()
    return f, t, m


def main(argv=None):
    ap = argparse.ArgumentParser(description="fastconv vs PyTorch CPU benchmark")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--only", default=None, help="substring filter on case names")
    ap.add_argument("--quick", action="store_true", help="fewer reps, skip 224x224 models")
    ap.add_argument("--json", default=None)
    ap.add_argument("--png", default=None)
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("bench: PyTorch is not installed (pip install torch==2.13.0)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    fc.set_num_threads(args.threads)
    reps = 5 if args.quick else args.reps
    # the first parallel region starts the OpenMP team: warm it up, then best of three
    fma_peak_gflops(args.threads, 1_000_000)
    peak = max(fma_peak_gflops(args.threads, 5_000_000) for _ in range(3))
    print(f"fastconv {fc.__version__} ({isa_name()}), torch {torch.__version__}, "
          f"{args.threads} threads, measured FMA peak {peak:.0f} GFLOP/s")
    head = (f"{'case':34s} {'mode':7s} {'fastconv ms':>11s} {'torch ms':>9s} {'ratio':>6s} "
            f"{'fc GF/s':>8s} {'%peak':>6s} {'torch GF/s':>10s}")
    print(head)
    print("-" * len(head))
    rows = []
    rng = np.random.default_rng(0)

    def report(name, mode, tf, tt, ratio, flops, extra=""):
        gf = flops / tf / 1e9 if flops else None
        tgf = flops / tt / 1e9 if flops else None
        rows.append(dict(case=name, mode=mode, fastconv_ms=tf * 1e3, torch_ms=tt * 1e3,
                         ratio=ratio, fastconv_gflops=gf, torch_gflops=tgf,
                         pct_peak=(100 * gf / peak if gf else None), note=extra))
        gfs = f"{gf:8.1f} {100 * gf / peak:5.0f}% {tgf:10.1f}" if flops else f"{'':8s} {'':6s} {'':10s}"
        print(f"{name:34s} {mode:7s} {tf * 1e3:11.2f} {tt * 1e3:9.2f} {ratio:6.2f} {gfs} {extra}",
              flush=True)

    for name, make, shape in CASES:
        if args.only and args.only not in name:
            continue
        fc.manual_seed(0)
        m = make()
        tm = to_torch(m)
        x = rng.standard_normal(shape).astype(np.float32)
        flops = model_flops(m, x)
        for mode in ("fwd", "fwd+bwd"):
            f, t = layer_fns(torch, m, tm, x, mode)
            n = reps * (4 if shape[0] == 1 else 1)
            tf, tt, ratio = paired(f, t, n)
            report(name, mode, tf, tt, ratio, (flops if mode == "fwd" else 3 * flops) or None)
    for name, kind, shape in MODEL_CASES:
        if args.only and args.only not in name:
            continue
        if args.quick and shape[2] == 224:
            continue
        x = rng.standard_normal(shape).astype(np.float32)
        f, t, m = model_fns(torch, kind, x)
        flops = model_flops(m, x) * (3 if kind == "train" else 1)
        n = max(3, reps // (3 if shape[2] == 224 else 1))
        tf, tt, ratio = paired(f, t, n, warmup=1)
        report(name, kind, tf, tt, ratio, flops,
               f"{shape[0] / tf:.1f} vs {shape[0] / tt:.1f} img/s")
    result = dict(threads=args.threads, peak_gflops=peak, isa=isa_name(),
                  torch=torch.__version__, fastconv=fc.__version__, rows=rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    if args.png:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("bench: matplotlib not installed; no chart", file=sys.stderr)
        else:
            labels = [f"{r['case']} [{r['mode']}]" for r in rows]
            fig, ax = plt.subplots(figsize=(9, 0.28 * len(rows) + 1))
            ax.barh(range(len(rows)), [r["ratio"] for r in rows],
                    color=["tab:green" if r["ratio"] >= 1 else "tab:red" for r in rows])
            ax.axvline(1, color="k", lw=0.8)
            ax.set_yticks(range(len(rows)), labels, fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel(f"speed-up over PyTorch {torch.__version__} ({args.threads} threads)")
            fig.tight_layout()
            fig.savefig(args.png, dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
