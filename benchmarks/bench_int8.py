"""int8 inference: fastconv float32 vs fastconv int8 vs ONNX Runtime float32 and int8.

    python benchmarks/bench_int8.py [--model camera|resnet18|mobilenet_v2] [--width 1.0]
        [--sizes 64,224] [--batches 1,64] [--threads 1,2] [--reps 5] [--calibration 4]
        [--out benchmarks/results/int8.txt]

One model (random weights, BatchNorm statistics randomised so folding matters) is
quantised by ``fastconv.quantize`` and, exported with ``fastconv.export_onnx``, by
ONNX Runtime's ``quantize_static`` (QDQ format, per-channel s8 weights, u8 activations,
MinMax calibration) on the same calibration batches.  Every engine runs in this one
process with the same thread count; each repetition runs the four engines in turn
(interleaved), after a warm-up; times are medians and ratios are medians of per-repetition
ratios.  The agreement columns give each int8 engine's top-1 agreement with float32
and its logits' SQNR (dB) against fastconv float32 on the timed batch.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fastconv as fc  # noqa: E402
from fastconv.models import camera_classifier, mobilenet_v2, resnet18  # noqa: E402


def build(name, width, num_classes=2):
    fc.manual_seed(0)
    if name == "camera":
        m = camera_classifier(num_classes, width=width)
    elif name == "resnet18":
        m = resnet18(num_classes)
    else:
        m = mobilenet_v2(num_classes, width)
    rng = np.random.default_rng(0)
    for mod in m.modules():
        if isinstance(mod, fc.nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean[...] = rng.standard_normal(c) * 0.1
            mod.running_var[...] = rng.random(c) + 0.5
    return m.eval()


def ort_sessions(model, size, calib, threads, tmp):
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    f32 = os.path.join(tmp, f"m{size}.onnx")
    pre = os.path.join(tmp, f"m{size}_pre.onnx")
    q8 = os.path.join(tmp, f"m{size}_int8.onnx")
    fc.export_onnx(model, f32, (1, 3, size, size))
    quant_pre_process(f32, pre)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            b = next(self.it, None)
            return None if b is None else {"input": b}

    quantize_static(pre, q8, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    out = {}
    for nt in threads:
        so = ort.SessionOptions()
        so.intra_op_num_threads = nt
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        out[nt] = (ort.InferenceSession(f32, so, providers=["CPUExecutionProvider"]),
                   ort.InferenceSession(q8, so, providers=["CPUExecutionProvider"]))
    return out


def sqnr(f, q):
    return 20 * np.log10(np.linalg.norm(f) / max(np.linalg.norm(q - f), 1e-30))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="camera", choices=("camera", "resnet18", "mobilenet_v2"))
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--sizes", default="64,224")
    p.add_argument("--batches", default="1,64")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--calibration", type=int, default=4, help="calibration batches of 16")
    p.add_argument("--out", default=None, help="also write the table to this file")
    args = p.parse_args(argv)
    sizes = [int(v) for v in args.sizes.split(",")]
    batches = [int(v) for v in args.batches.split(",")]
    threads = [int(v) for v in args.threads.split(",")]
    model = build(args.model, args.width)
    rng = np.random.default_rng(1)
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    import onnxruntime
    compiling = os.popen("ps aux | grep -c '[c]c1'").read().strip()
    say(f"# bench_int8: {args.model} (width {args.width}), fastconv {fc.__version__} "
        f"(int8 kernel {fc._kernels._quant.kernel_info()[0]}), onnxruntime "
        f"{onnxruntime.__version__}; {os.cpu_count()} cores, a machine shared with other "
        f"work (compilers running at start: {compiling}); {args.reps} interleaved reps, "
        f"medians")
    say(f"# time ms: fastconv f32 / fastconv int8 / ORT f32 / ORT int8 (QDQ static);  "
        f"speed-up: f32/int8 = fastconv f32 over fastconv int8, vs ORT8 = ORT int8 over "
        f"fastconv int8 (> 1: fastconv int8 faster)")
    say(f"{'size':>4} {'N':>3} {'thr':>3} {'fc f32':>9} {'fc int8':>9} {'ORT f32':>9} "
        f"{'ORT int8':>9} {'f32/int8':>8} {'vs ORT8':>8} {'vs ORTf':>8}  "
        f"{'top1 fc8':>8} {'top1 ort8':>9} {'SQNR fc8':>8} {'SQNR ort8':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            calib = [rng.standard_normal((16, 3, size, size)).astype(np.float32)
                     for _ in range(args.calibration)]
            qm = fc.quantize(model, calib)
            sessions = ort_sessions(model, size, calib, threads, tmp)
            for n in batches:
                x = rng.standard_normal((n, 3, size, size)).astype(np.float32)
                for nt in threads:
                    fc.set_num_threads(nt)
                    s32, s8 = sessions[nt]

                    def f32():
                        with fc.no_grad():
                            return model(x)
                    engines = [f32, lambda: qm(x),
                               lambda: s32.run(None, {"input": x})[0],
                               lambda: s8.run(None, {"input": x})[0]]
                    outs = [np.asarray(e()) for e in engines]          # warm-up
                    t = [[] for _ in engines]
                    reps = args.reps if n * size * size <= 64 * 64 * 64 else max(2, args.reps // 2)
                    for _ in range(reps):
                        for i, e in enumerate(engines):
                            t0 = time.perf_counter()
                            e()
                            t[i].append(time.perf_counter() - t0)
                    t = np.asarray(t)
                    med = np.median(t, axis=1) * 1e3
                    r_fc = np.median(t[0] / t[1])
                    r_ort8 = np.median(t[3] / t[1])
                    r_ortf = np.median(t[2] / t[1])
                    top = [float((outs[0].argmax(1) == o.argmax(1)).mean()) for o in outs]
                    say(f"{size:>4} {n:>3} {nt:>3} {med[0]:9.2f} {med[1]:9.2f} {med[2]:9.2f} "
                        f"{med[3]:9.2f} {r_fc:8.2f} {r_ort8:8.2f} {r_ortf:8.2f}  "
                        f"{100 * top[1]:7.1f}% {100 * top[3]:8.1f}% "
                        f"{sqnr(outs[0], outs[1]):8.1f} {sqnr(outs[0], outs[3]):9.1f}")
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
