"""``python -m fastconv bench``: fastconv vs PyTorch CPU on the camera classifier and
its main layers, side by side in one process.

Both libraries get the same thread count; runs alternate (fastconv, torch, ...) and
the ratio printed is the median of per-pair ratios torch / fastconv (> 1: fastconv
faster), which cancels most of a shared machine's drift.  The full per-layer suite
lives in the source tree's ``benchmarks/bench_layers.py``."""
import os
import statistics
import time

import numpy as np

from . import models, nn
from ._grad import no_grad
from ._runtime import fma_peak_gflops, get_num_threads, isa_name, set_num_threads  # noqa: F401

# name, factory, input shape, kind: "layer" (fwd + bwd), "train" (step), "eval"
CASES = [
    ("camera train step 64x64 N=32", models.camera_classifier, (32, 3, 64, 64), "train"),
    ("camera eval 64x64 N=64", models.camera_classifier, (64, 3, 64, 64), "eval"),
    ("conv3x3 64->64 @56 N=8", lambda: nn.Conv2d(64, 64, 3, padding=1), (8, 64, 56, 56), "layer"),
    ("conv1x1 256->64 @28 N=8", lambda: nn.Conv2d(256, 64, 1), (8, 256, 28, 28), "layer"),
    ("depthwise3x3 128 @56 N=8", lambda: nn.Conv2d(128, 128, 3, padding=1, groups=128),
     (8, 128, 56, 56), "layer"),
    ("maxpool2 64 @112 N=8", lambda: nn.MaxPool2d(2), (8, 64, 112, 112), "layer"),
    ("batchnorm 64 @112 N=8", lambda: nn.BatchNorm2d(64), (8, 64, 112, 112), "layer"),
]


def runner_fc(m, x, kind):
    """A no-argument callable running fastconv module m on x once: kind "layer"
    (forward + backward), "train" (forward, loss, backward, SGD step) or "eval"."""
    crit = nn.CrossEntropyLoss()
    y = np.arange(len(x)) % 2
    if kind == "eval":
        m.eval()

        def run():
            with no_grad():
                m(x)
    elif kind == "train":
        def run():
            m.zero_grad()
            crit(m(x), y)
            m.backward(crit.backward(), input_grad=False)
    else:
        def run():
            out = m(x)
            m.backward(np.ones_like(out))
    return run


def runner_torch(torch, m, x, kind):
    """runner_fc's twin for a torch module m (the same work in torch)."""
    xt = torch.from_numpy(x)
    if kind == "eval":
        m.eval()

        def run():
            with torch.no_grad():
                m(xt)
    elif kind == "train":
        y = torch.from_numpy(np.arange(len(x)) % 2)
        crit = torch.nn.CrossEntropyLoss()

        def run():
            m.zero_grad()
            crit(m(xt), y).backward()
    else:
        xg = xt.clone().requires_grad_(True)

        def run():
            out = m(xg)
            out.backward(torch.ones_like(out))
    return run


def _time(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(threads=None, reps=7, log=print):
    """Time each case; returns a list of dicts (name, fastconv_ms, torch_ms, ratio)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if threads is not None:
        set_num_threads(threads)
    threads = get_num_threads()
    try:
        import torch
        from .interop import to_torch
        torch.set_num_threads(threads)
    except ImportError:
        torch = None
        log("PyTorch is not installed: timing fastconv alone "
            "(pip install torch==2.13.0 for the side-by-side ratios)")
    log(f"{threads} threads, median of {reps} interleaved runs; ratio = torch / fastconv")
    log(f"{'case':34s} {'fastconv ms':>12s} {'torch ms':>10s} {'ratio':>7s}")
    rows = []
    rng = np.random.default_rng(0)
    for name, factory, shape, kind in CASES:
        m = factory()
        x = rng.standard_normal(shape).astype(np.float32)
        f = runner_fc(m, x, kind)
        g = runner_torch(torch, to_torch(m), x, kind) if torch else None
        f()
        if g:
            g()
        tf, tt = [], []
        for _ in range(reps):
            tf.append(_time(f))
            if g:
                tt.append(_time(g))
        a = statistics.median(tf) * 1e3
        b = statistics.median(tt) * 1e3 if g else None
        ratio = statistics.median(y / x for x, y in zip(tf, tt)) if g else None
        rows.append(dict(name=name, fastconv_ms=a, torch_ms=b, ratio=ratio))
        log(f"{name:34s} {a:12.2f} " + (f"{b:10.2f} {ratio:7.2f}" if g else f"{'-':>10s} {'-':>7s}"))
    return rows
