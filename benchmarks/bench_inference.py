"""Inference across precisions and runtimes: fastconv float32 (the model called under
no_grad, and ``fastconv.freeze``'s frozen program) and bf16 (and int8 where
``fastconv.quantize`` exists) against ONNX Runtime and OpenVINO on the same model
(exported with ``fc.export_onnx``) and PyTorch float32 (``fc.to_torch``), same threads,
interleaved.

    python benchmarks/bench_inference.py [--models camera] [--sizes 64,224]
        [--batches 1,64] [--threads 1,2] [--reps 15] [--wait-policy default|passive]

OpenVINO is run twice: with its default on this CPU (bf16 where the CPU has
AVX512_BF16: its ``INFERENCE_PRECISION_HINT``) and forced to f32.  Each runtime that
is not installed is left out.  Prints milliseconds per batch (median of interleaved
rounds) and images/s, and every runtime's time over fastconv bf16's (> 1: fastconv
bf16 faster).  Results: benchmarks/results/inference.txt.

Interleaving is by rounds: each runtime runs about 50 ms of calls in a row (its mean per
call is the round's time), then the next runtime.  Calls alternating one by one would time
each runtime right after another runtime's threads, which keep spinning for a while after
they finish; before each round the machine is left idle for SETTLE seconds (ONNX Runtime's
pool was measured to spin for longer than a 100 ms round).  ``--wait-policy`` sets OpenMP's (fastconv's, torch's) and ONNX Runtime's
spinning alike: ``default`` is what a user gets out of the box (both spin briefly between
parallel regions); ``passive`` makes every idle thread sleep at once (OMP_WAIT_POLICY=PASSIVE,
ONNX Runtime ``session.intra_op.allow_spinning=0``).
"""
import os
import sys

# read by the OpenMP runtimes when they load: set before torch and fastconv are imported
WAIT_POLICY = (sys.argv[sys.argv.index("--wait-policy") + 1]
               if "--wait-policy" in sys.argv else "default")
if WAIT_POLICY != "default":
    os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY.upper()

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import fastconv as fc  # noqa: E402

F32_ONLY = False
# seconds of idleness before each runtime's round: ONNX Runtime's pool keeps spinning
# long after its run returns (measured here: fastconv's next 100 ms round 46% slower
# right after ONNX Runtime's, unchanged after a 0.3 s pause)
SETTLE = 0.3


def build(name):
    if name == "camera":
        return fc.models.camera_classifier()
    return getattr(fc.models, name)(num_classes=2)


def fastconv_runner(model, x, precision):
    model.eval()

    def run():
        with fc.no_grad(), fc.autocast("bf16", enabled=precision == "bf16"):
            model(x)
    return run


def ort_runner(path, x, nt):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    so = ort.SessionOptions()
    so.intra_op_num_threads = nt
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if WAIT_POLICY == "passive":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda: sess.run(None, {name: x})


def torch_runner(model, x, nt):
    """The same model in torch (fastconv.to_torch: same tree and weights), eval, no grad."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(nt)
    tm = fc.to_torch(model, x.shape).eval()
    xt = torch.from_numpy(x)

    def run():
        with torch.no_grad():
            tm(xt)
    return run


def openvino_runner(path, x, nt, precision):
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    m = core.read_model(path)
    m.reshape(list(x.shape))
    config = {"INFERENCE_NUM_THREADS": nt, "PERFORMANCE_HINT": "LATENCY"}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = core.compile_model(m, "CPU", config)
    req = compiled.create_infer_request()
    return lambda: req.infer([x])


def case(model_name, size, n, nt, reps, tmp):
    fc.set_num_threads(nt)
    model = build(model_name)
    x = np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32)
    path = os.path.join(tmp, f"{model_name}.onnx")
    fc.export_onnx(model, path, (1, 3, size, size))
    runs = {"fastconv f32": fastconv_runner(model, x, "float32")}
    frozen = fc.freeze(model.eval(), x.shape[1:])      # the deployment form: fc.freeze
    runs["fastconv frozen f32"] = lambda: frozen(x)
    if not F32_ONLY:
        runs["fastconv bf16"] = fastconv_runner(model, x, "bf16")
    quantize = getattr(fc, "quantize", None)
    if quantize is not None and not F32_ONLY:
        try:
            qm = quantize(model, [x[:8]])
            runs["fastconv int8"] = lambda: qm(x)
        except Exception as e:          # a model the quantizer cannot take yet
            print(f"  (fastconv int8 skipped: {e})")
    extra = {"torch f32": torch_runner(model, x, nt),
             "onnxruntime f32": ort_runner(path, x, nt),
             "openvino default": None if F32_ONLY else openvino_runner(path, x, nt, None),
             "openvino f32": openvino_runner(path, x, nt, "f32")}
    runs.update({k: v for k, v in extra.items() if v is not None})
    calls = {}
    for k, f in runs.items():          # warm up, and size each runtime's round (~50 ms)
        f()
        t = time.perf_counter()
        f()
        calls[k] = max(1, min(200, int(0.05 / max(time.perf_counter() - t, 1e-6))))
    times = {k: [] for k in runs}
    for _ in range(reps):
        for k, f in runs.items():
            time.sleep(SETTLE)
            t = time.perf_counter()
            for _ in range(calls[k]):
                f()
            times[k].append((time.perf_counter() - t) / calls[k])
    refname = "fastconv f32" if F32_ONLY else "fastconv bf16"
    ref = times[refname]
    print(f"{model_name} {size}x{size} N={n} threads={nt}")
    for k, v in times.items():
        med = statistics.median(v)
        ratio = statistics.median(a / b for a, b in zip(v, ref))
        print(f"  {k:18s} {1e3 * med:9.2f} ms  {n / med:8.1f} img/s  {ratio:5.2f}x {refname}",
              flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="camera")
    ap.add_argument("--sizes", default="64,224")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--wait-policy", choices=("default", "passive"), default="default",
                    help="idle threads spin briefly (default) or sleep at once (passive), "
                         "for every runtime alike")
    ap.add_argument("--f32-only", action="store_true",
                    help="fastconv float32 against torch, ONNX Runtime and OpenVINO f32 only")
    args = ap.parse_args()
    global F32_ONLY
    F32_ONLY = args.f32_only
    from fastconv._kernels import _gemm
    print(f"fastconv {fc.__version__}, bf16 kernel {_gemm.bf16_kernel_name()}; "
          f"wait policy {WAIT_POLICY}; the machine is shared: ratios of interleaved rounds, "
          "not lone times")
    with tempfile.TemporaryDirectory() as tmp:
        for nt in map(int, args.threads.split(",")):
            for model_name in args.models.split(","):
                for size in map(int, args.sizes.split(",")):
                    for n in map(int, args.batches.split(",")):
                        case(model_name, size, n, nt, args.reps, tmp)


if __name__ == "__main__":
    main()
