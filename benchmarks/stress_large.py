"""Tensors of more than 2**31 elements through cheap layers: proof of 64-bit indexing.

    python benchmarks/stress_large.py [--layers relu,maxpool,avgpool,bn] [--gib 8.5]

Each layer gets one float32 input of more than 2**31 elements (about 8.6 GB; the
pooling layers also need their quarter-size output) and is checked against NumPy on
rows at the start, in the middle, across the 2**31 boundary and at the end.  A 32-bit
index would wrap there and read or write the wrong place (or crash).  Needs about
11 GB of free memory per layer; the layers run one at a time.
"""
import argparse
import gc
import time

import numpy as np

import fastconv as fc

LIMIT = 2 ** 31


def rows_to_check(n_rows, row_len):
    """Row indices at the start, middle, around element 2**31 and at the end."""
    cross = LIMIT // row_len
    return sorted({0, 1, n_rows // 2, cross - 1, cross, min(cross + 1, n_rows - 1), n_rows - 1})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default="relu,maxpool,avgpool,bn")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        fc.set_num_threads(args.threads)
    # (N, C, H, W) with N*C*H*W > 2**31 and H, W even: 2 x 2 x 23170 x 23172
    shape = (2, 2, 23170, 23172)
    total = int(np.prod(shape))
    print(f"input {shape}: {total:,} elements ({total / LIMIT:.3f} x 2**31), "
          f"{total * 4 / 2 ** 30:.1f} GiB float32, {fc.get_num_threads()} threads")
    x = np.empty(shape, np.float32)
    rng = np.random.default_rng(0)
    flat = x.reshape(-1, shape[-1])                  # rows of W elements
    for r0 in range(0, flat.shape[0], 4096):         # fill in chunks (bounded temporaries)
        flat[r0:r0 + 4096] = rng.standard_normal((min(4096, flat.shape[0] - r0), shape[-1]),
                                                 dtype=np.float32)
    rows = rows_to_check(flat.shape[0], shape[-1])
    ok = True
    for name in args.layers.split(","):
        t = time.perf_counter()
        if name == "relu":
            ref = {r: np.maximum(flat[r], 0) for r in rows}
            y = fc.nn.ReLU(inplace=True)(x)           # in place: no second 8.6 GB array
            got = {r: y.reshape(-1, shape[-1])[r] for r in rows}
        elif name in ("maxpool", "avgpool"):
            m = fc.nn.MaxPool2d(2) if name == "maxpool" else fc.nn.AvgPool2d(2)
            with fc.no_grad():
                y = m(x)
            H = shape[2]
            yr = y.reshape(-1, shape[-1] // 2)
            ref, got = {}, {}
            # the output rows that read the checked input rows (2i, 2i+1 of a plane)
            for plane, i in sorted({(r // H, (r % H) // 2) for r in rows}):
                a = x.reshape(-1, H, shape[-1])[plane, 2 * i:2 * i + 2]
                a = a.reshape(2, -1, 2)
                o = plane * (H // 2) + i
                ref[o] = a.max(axis=(0, 2)) if name == "maxpool" else a.mean(axis=(0, 2))
                got[o] = yr[o]
        elif name == "bn":
            m = fc.nn.BatchNorm2d(shape[1]).eval()
            m.running_mean[:] = [0.5, -0.25]
            m.running_var[:] = [4.0, 0.25]
            with fc.no_grad():
                y = m(x)
            ref, got = {}, {}
            planes = x.reshape(-1, shape[2] * shape[3])
            for r in rows:
                c = (r // shape[2]) % shape[1]
                ref[r] = (flat[r] - m.running_mean[c]) / np.sqrt(m.running_var[c] + m.eps)
                got[r] = y.reshape(-1, shape[-1])[r]
            del planes
        else:
            raise SystemExit(f"unknown layer {name!r}")
        dt = time.perf_counter() - t
        bad = [r for r in ref if not np.allclose(got[r], ref[r], rtol=1e-5, atol=1e-5)]
        ok &= not bad
        print(f"{name:8s} {dt:6.2f} s  rows checked {len(ref)} (incl. across 2**31): "
              f"{'OK' if not bad else f'MISMATCH in rows {bad}'}")
        if name == "relu":                           # restore signed data for the next layers
            rng = np.random.default_rng(0)
            for r0 in range(0, flat.shape[0], 4096):
                flat[r0:r0 + 4096] = rng.standard_normal(
                    (min(4096, flat.shape[0] - r0), shape[-1]), dtype=np.float32)
        del y
        gc.collect()
        fc.empty_cache()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
