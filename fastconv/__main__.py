"""Command line: ``python -m fastconv <command>``.

    train     train the camera classifier (built-in synthetic data by default), or
              fine-tune a torchvision network from its weights (--model, --init, --freeze)
    predict   classify images or frames with a checkpoint: alarms, latency, frames/s
    evaluate  a checkpoint's accuracy, false alarms and person recall by distance
    export    write a checkpoint's model as ONNX
    quantize  write an int8 inference model of a checkpoint (predict runs it)
    summary   print a model's per-layer summary (the camera classifier's by default)
    bench     time fastconv against PyTorch CPU (when torch is installed)

Each command has --help; bad arguments give a one-line error and exit status 2.
"""
import argparse
import os
import sys
import warnings


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line: 'python -m fastconv X: error: ...'."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _cmd_summary(args):
    from . import analysis
    from .train import TrainConfig, build_model
    model = build_model(TrainConfig(model=args.model, image_size=args.image_size,
                                    width=args.width, pool=args.pool).check(False),
                        args.num_classes)
    print(analysis.summary(model, (args.batch, 3, args.image_size, args.image_size)))
    return 0


# train options that define the run; with --resume they must match the checkpoint
_RUN_OPTIONS = ("data", "image_size", "epochs", "batch_size", "lr", "optimizer", "seed",
                "val_split", "weight_decay", "model", "width", "pool", "synthetic_size",
                "label_smoothing", "augment", "fresh", "out", "init", "freeze", "normalize",
                "alarm_fpr", "precision")


def _cmd_train(args):
    from . import train as T
    given = {k: getattr(args, k) for k in _RUN_OPTIONS if getattr(args, k) is not None}
    if args.resume is not None:
        if not os.path.isfile(args.resume):
            raise ValueError(f"--resume: no checkpoint file {args.resume!r}")
        meta, _, _ = T.load_checkpoint(args.resume)
        cfg = T.TrainConfig.saved(meta["config"])
        saved = dict(meta["config"])
        if cfg.model == "camera":               # unset means the default: compare values
            saved["width"], saved["pool"] = cfg.camera_shape
        for k, v in given.items():
            if saved.get(k) != v:
                raise ValueError(f"--resume continues the run saved in {args.resume}; "
                                 f"--{k.replace('_', '-')} {v} differs from its {saved.get(k)}")
        config = None
    else:
        config = T.TrainConfig(**given).check()
    try:
        result = T.train(config, resume=args.resume, progress=not args.no_progress,
                         threads=args.threads)
    except KeyboardInterrupt:            # a second Ctrl-C: the last checkpoint stands
        print("interrupted", file=sys.stderr)
        return 130
    return 130 if result["interrupted"] else 0


def _cmd_export(args):
    import json

    from .onnx_export import export_onnx
    from .train import load_model
    model, meta = load_model(args.checkpoint)
    size = int(meta["image_size"])
    mean, std = meta.get("mean"), meta.get("std")
    export_onnx(model, args.output, (1, 3, size, size), metadata=dict(
        classes=json.dumps(list(meta["classes"])), image_size=size, mean=json.dumps(mean),
        std=json.dumps(std), input="float32 (N, 3, H, W): (RGB / 255 - mean) / std"))
    print(f"wrote {args.output}: input (N, 3, {size}, {size}) float32 = (RGB pixel / 255 - "
          f"mean) / std with mean {mean}, std {std}; output (N, {len(meta['classes'])}) "
          f"logits for {', '.join(meta['classes'])}")
    return 0


def _join_mpi_job():
    """Started by mpirun / mpiexec / srun: join the job (the trainer then runs data
    parallel).  Returns its ProcessGroup, or None in a plain process."""
    from . import distributed
    if not distributed.launched_by_mpi():
        return None
    try:
        return distributed.init()
    except ImportError as e:
        raise ImportError(f"started by an MPI launcher, but {e}") from None


def _on_every_rank(func, args):
    """func(args) on one rank of a job of several: any error ends the whole job (the
    other ranks would otherwise wait in a collective for ever), with this rank's message
    on stderr and status 2 (bad arguments) or 1."""
    from . import distributed
    try:
        return func(args)
    except SystemExit:
        raise
    except BaseException as e:
        import traceback
        one_line = isinstance(e, (ValueError, TypeError, ImportError, FloatingPointError))
        if one_line:
            print(f"python -m fastconv {args.command} (rank {distributed.get_rank()}): "
                  f"error: {e}", file=sys.stderr)
        else:
            print(f"python -m fastconv {args.command}: rank {distributed.get_rank()} failed:",
                  file=sys.stderr)
            traceback.print_exc()
        distributed.abort(2 if one_line else 1)


def _cmd_quantize(args):
    import time

    import numpy as np
    from . import data
    from .quantization import quantize
    from .train import (TrainConfig, _renormalizer, build_dataset, build_splits, load_model,
                        predict)
    if not os.path.isfile(args.checkpoint):
        raise ValueError(f"no checkpoint file {args.checkpoint!r}")
    model, meta = load_model(args.checkpoint)
    config = TrainConfig.saved(meta["config"])
    train_for, val = build_splits(config, build_dataset(config))
    calib = train_for(0)
    n = min(args.calibration, len(calib))
    prepare = _renormalizer(meta.get("mean", data.MEAN), meta.get("std", data.STD))
    loader = data.DataLoader(data.Subset(calib, np.arange(n)), min(64, n))
    batches = [x if prepare is None else prepare(x) for x, _ in loader.epoch(0)]
    t = time.perf_counter()
    float_layers = tuple(args.float_layers.split(",")) if args.float_layers else ()
    qm = quantize(model, batches, observer=args.observer, report=args.report,
                  float_layers=float_layers)
    print(f"calibrated on {n} training images ({args.observer}) in "
          f"{time.perf_counter() - t:.1f} s")
    if args.report:
        print(qm.report)
    out = args.output or os.path.splitext(args.checkpoint)[0] + "_int8.npz"
    qm.save(out, metadata=meta)
    prec = [p for _, k, p in qm.precisions() if k in ("conv", "linear")]
    print(f"wrote {out}: {prec.count('int8')} of {len(prec)} convolution / Linear layers "
          f"in int8")
    if args.validate:
        vl = data.DataLoader(val, 256)
        _, zf = predict(model, vl, prepare=prepare)
        _, zq = predict(qm, vl, prepare=prepare)
        labels = np.asarray(val.labels)
        af, aq = float((zf.argmax(1) == labels).mean()), float((zq.argmax(1) == labels).mean())
        print(f"validation accuracy ({len(labels)} images): float32 {100 * af:.2f}%, "
              f"int8 {100 * aq:.2f}% ({100 * (aq - af):+.2f} points); top-1 agreement "
              f"{100 * float((zf.argmax(1) == zq.argmax(1)).mean()):.2f}%")
    return 0


def _cmd_predict(args):
    import time

    import numpy as np
    from ._grad import no_grad
    from .data.frames import frames
    from .train import load_model, person_scores, prepare_input
    if not os.path.isfile(args.checkpoint):
        raise ValueError(f"no checkpoint file {args.checkpoint!r}")
    if not (args.images or args.watch or args.raw):
        raise ValueError("nothing to classify: give image files or folders, --watch FOLDER "
                         "or --raw WxH (frames on standard input)")
    if args.watch and not os.path.isdir(args.watch):
        raise ValueError(f"--watch: no folder {args.watch!r}")
    from .frozen import freeze
    from .quantization import is_quantized_file, load_quantized
    if is_quantized_file(args.checkpoint):          # quantize's int8 model
        from .train import TrainConfig, build_model
        from .quantization.model import read_metadata
        meta = read_metadata(args.checkpoint)
        model, _ = load_quantized(args.checkpoint, build_model(
            TrainConfig.saved(meta["config"]), len(meta["classes"])))
    else:
        model, meta = load_model(args.checkpoint)
        model.eval()
    frozen = None               # a float model runs frozen (fc.freeze), planned on frame 1
    classes, size = meta["classes"], meta["image_size"]
    person = "person" in classes and len(classes) == 2
    threshold = args.threshold
    if threshold is not None and not person:
        raise ValueError(f"--threshold needs a person / no-person checkpoint; its classes are "
                         f"{', '.join(classes)}")
    if threshold is None and person:
        alarm = meta.get("alarm")
        threshold = None if alarm is None else alarm["threshold"]
        if threshold is None:
            print("(this checkpoint holds no alarm threshold: the most probable class decides; "
                  "retrain, or give --threshold)", file=sys.stderr)
    failed, times = 0, []
    t_start = time.perf_counter()
    try:
        for name, img in frames(args.images, size, args.watch, args.raw, poll=args.poll,
                                max_frames=args.max_frames):
            if isinstance(img, Exception):
                print(f"{name}: error: {str(img).split(': ', 1)[-1]}", file=sys.stderr)
                failed += 1
                continue
            t = time.perf_counter()
            x = prepare_input(img[None], meta)
            if frozen is None:
                frozen = model if is_quantized_file(args.checkpoint) else \
                    freeze(model, x.shape[1:])
            with no_grad():
                logits = np.asarray(frozen(x), np.float64)
            dt = time.perf_counter() - t
            times.append(dt)
            if person and threshold is not None:
                k, p = person_scores(classes, logits)
                p = float(p[0])
                hit = p > threshold
                print(f"{name}: {classes[k] if hit else classes[1 - k]} p(person) {p:.3f} "
                      f"{'>' if hit else '<='} {threshold:.3f}{' ALARM' if hit else ''}  "
                      f"{1e3 * dt:.1f} ms", flush=True)
            else:
                z = logits[0]
                q = np.exp(z - z.max())
                q /= q.sum()
                k = int(q.argmax())
                print(f"{name}: {classes[k]} {q[k]:.3f}  {1e3 * dt:.1f} ms", flush=True)
    except KeyboardInterrupt:
        pass
    wall = time.perf_counter() - t_start
    if times:
        ms = 1e3 * np.asarray(times)
        print(f"{len(times)} frames{f', {failed} unreadable' if failed else ''}: latency "
              f"{ms.mean():.1f} ms mean, {np.percentile(ms, 95):.1f} ms p95 (the network); "
              f"{len(times) / wall:.1f} frames/s sustained (reading and resizing included)",
              file=sys.stderr)
    return 1 if failed else 0


def _frame_size(s):
    try:
        w, h = (int(v) for v in s.lower().split("x"))
        if w < 1 or h < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x360, got {s!r}") \
            from None
    return w, h


def _heights(s):
    try:
        lo, hi = (float(v) for v in s.replace(",", "-").split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO-HI (fractions of the frame's height, "
                                         f"e.g. 0.15-0.3), got {s!r}") from None
    return lo, hi


class _Relabelled:
    """A data set with its labels mapped to another class order (a folder's classes
    to a checkpoint's)."""

    def __init__(self, inner, order):
        import numpy as np
        self.inner, self.labels = inner, np.asarray(order, np.int64)[inner.labels]

    def __len__(self):
        return len(self.inner)

    def images(self, idx):
        return self.inner.images(idx)


def _cmd_evaluate(args):
    import json
    from . import data, evaluation
    from ._runtime import set_num_threads
    from .train import _renormalizer, load_model, score, synthetic_test_set
    if args.threads is not None:
        set_num_threads(args.threads)
    if not os.path.isfile(args.checkpoint):
        raise ValueError(f"no checkpoint file {args.checkpoint!r}")
    model, meta = load_model(args.checkpoint)
    classes, size = list(meta["classes"]), meta["image_size"]
    if "person" not in classes or len(classes) != 2:
        raise ValueError(f"{args.checkpoint}: evaluate scores person detectors (classes "
                         f"no_person and person); this checkpoint's are {classes}")
    if args.data == "synthetic":
        if args.sizes is not None:
            raise ValueError("--sizes is for an image folder; the synthetic scenes know theirs")
        spec = dict(evaluation.HARD_TEST if args.hard else evaluation.TEST)
        for k in ("scenes", "seed", "heights"):
            v = getattr(args, k)
            if v is not None:
                spec["n" if k == "scenes" else k] = v
        ds, sizes = synthetic_test_set(size, **spec)
        what = (f"{ds.n} synthetic scenes (seed {ds.seed}), persons and stand-ins "
                f"{ds.heights[0]:g}-{ds.heights[1]:g} H, {size}x{size}")
    else:
        if args.hard or args.heights is not None or args.scenes is not None or \
                args.seed is not None:
            raise ValueError("--hard, --heights, --scenes and --seed choose synthetic scenes; "
                             "with --data FOLDER give --sizes CSV for sizes")
        if not os.path.isdir(args.data):
            raise ValueError(f"--data must be 'synthetic' or an image folder, got {args.data!r}")
        ds = data.ImageFolder(args.data, size)
        unknown = [c for c in ds.classes if c not in classes]
        if unknown:
            raise ValueError(f"{args.data}: class folders {unknown} are not among the "
                             f"checkpoint's classes {classes}")
        sizes = evaluation.read_sizes(args.sizes, ds) if args.sizes else None
        what = f"{len(ds)} images of {args.data}, {size}x{size}"
        ds = _Relabelled(ds, [classes.index(c) for c in ds.classes])
    prepare = _renormalizer(meta.get("mean", data.MEAN), meta.get("std", data.STD))
    report = score(model, ds, sizes, classes, prepare, args.batch_size)
    print(evaluation.format_report(report, f"{args.checkpoint}: {what}"))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(checkpoint=args.checkpoint, data=what, **report), fh, indent=1)
    return 0


def _cmd_bench(args):
    from . import bench
    bench.run(threads=args.threads, reps=args.reps)
    return 0


def _positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _float(s):
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None


def build_parser():
    from .train import MODELS, TrainConfig
    d = TrainConfig()
    parser = _Parser(prog="python -m fastconv",
                     description="fastconv: CNN building blocks for the CPU")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train the camera classifier",
                       description="Train the camera classifier (person / no person). With no "
                       "arguments: the built-in synthetic scenes at 64x64. Writes "
                       "<out>/checkpoint.npz every epoch (and on Ctrl-C), metrics.json, "
                       "curve.png and sample images.")
    p.add_argument("--data", help="'synthetic' or a folder root/<class>/*.png|jpg "
                   f"(default {d.data})")
    p.add_argument("--image-size", type=_positive_int, help=f"input height and width ({d.image_size})")
    p.add_argument("--epochs", type=_positive_int, help=f"epochs ({d.epochs})")
    p.add_argument("--batch-size", type=_positive_int, help=f"batch size ({d.batch_size})")
    p.add_argument("--lr", type=_float, help=f"peak learning rate ({d.lr:g})")
    p.add_argument("--optimizer", choices=["adamw", "adam", "sgd"], help=f"({d.optimizer})")
    p.add_argument("--weight-decay", type=_float, help=f"({d.weight_decay:g})")
    p.add_argument("--label-smoothing", type=_float, help=f"({d.label_smoothing:g})")
    p.add_argument("--threads", type=_positive_int, help="OpenMP threads (default: all cores "
                   "or OMP_NUM_THREADS)")
    p.add_argument("--seed", type=int, help=f"seed for data, init, shuffling ({d.seed})")
    p.add_argument("--out", help=f"output folder ({d.out})")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in CHECKPOINT")
    p.add_argument("--val-split", type=_float, help=f"held-out fraction ({d.val_split:g})")
    p.add_argument("--model", choices=list(MODELS),
                   help="camera classifier, the linear baseline on pixels, or a torchvision "
                   "network (same keys; trained on the tape) (camera)")
    p.add_argument("--width", type=_float, help=f"camera classifier: channel multiplier "
                   f"({d.camera_shape[0]:g}; 1: the article's 64, 128, 256 channels)")
    p.add_argument("--pool", choices=["avg", "max"], help=f"camera classifier: global "
                   f"pooling before the head ({d.camera_shape[1]}; avg: the article's)")
    p.add_argument("--init", metavar="PATH",
                   help="start from a torchvision-format state_dict: .pt/.pth (read with "
                   "weights_only, needs torch) or .npz (a state_dict or a fastconv "
                   "checkpoint); the classifier head (resnet fc, mobilenet's last "
                   "classifier Linear) is replaced for the data's classes, every other "
                   "key must match")
    p.add_argument("--freeze", metavar="K|STAGE|all",
                   help="freeze the leading stages: a count, a stage name and all before it "
                   "(resnet: stem layer1 .. layer4; mobilenet: features.0 ..; camera: its 6 "
                   "blocks, by count), or 'all' but the head. Frozen parameters get no gradient and no "
                   "update, and their BatchNorm stays in eval mode (pretrained statistics)")
    p.add_argument("--normalize", choices=["camera", "imagenet"],
                   help="input normalisation: (p - 0.5) / 0.25, or torchvision's ImageNet "
                   "mean/std (default: imagenet for a torchvision model with --init, else "
                   "camera)")
    p.add_argument("--synthetic-size", type=_positive_int,
                   help=f"synthetic scenes per epoch, validation included ({d.synthetic_size})")
    p.add_argument("--augment", dest="augment", action="store_const", const=True,
                   help="random crops, flips and brightness in the loader (default for "
                   "image folders)")
    p.add_argument("--no-augment", dest="augment", action="store_const", const=False,
                   help="no augmentation (default for the synthetic scenes, which the "
                   "renderer already varies)")
    p.add_argument("--fixed-scenes", dest="fresh", action="store_const", const=False,
                   help="synthetic data: train on the same scenes every epoch (default: "
                   "new scenes each epoch)")
    p.add_argument("--alarm-fpr", type=_float, help=f"share of empty scenes allowed to raise "
                   f"an alarm: the validation set picks the person-probability threshold "
                   f"that keeps to it, stored in the checkpoint for predict ({d.alarm_fpr:g})")
    p.add_argument("--precision", choices=["float32", "bf16"],
                   help=f"bf16: convolutions and Linear multiply in bf16 with float32 sums "
                   f"while training (weights, optimiser, BatchNorm, loss and the checkpoint "
                   f"stay float32) ({d.precision})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("export", help="write a checkpoint's model as ONNX",
                       description="Write the model of a checkpoint written by train as an "
                       "ONNX file (opset 17, dynamic batch) for ONNX Runtime and other "
                       "runtimes; its metadata holds the classes and the input "
                       "normalisation. Needs the onnx package (pip install 'fastconv[onnx]').")
    p.add_argument("checkpoint", help="a checkpoint.npz written by train")
    p.add_argument("output", help="the .onnx file to write")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("quantize", help="write an int8 inference model of a checkpoint",
                       description="Post-training int8 quantisation: calibrate on the "
                       "first N images of the checkpoint's training data, fold BatchNorm, "
                       "quantise every convolution to int8 (the classifier head stays "
                       "float32 unless --float-layers says otherwise) and write the model "
                       "with the checkpoint's metadata; predict runs the file it writes.")
    p.add_argument("checkpoint", help="a checkpoint.npz written by train")
    p.add_argument("--calibration", type=_positive_int, default=256, metavar="N",
                   help="calibration images from the training data (256)")
    p.add_argument("-o", "--output", help="the file to write (default: "
                   "CHECKPOINT without .npz + _int8.npz)")
    p.add_argument("--observer", choices=("minmax", "percentile"), default="minmax",
                   help="activation ranges: min/max (default) or the 99.99th percentile")
    p.add_argument("--float-layers", default="head", metavar="NAMES",
                   help="comma-separated layers kept in float32; 'first' and 'head' name "
                   "the first and last convolution / Linear ('head'; '' for none)")
    p.add_argument("--report", action="store_true",
                   help="print the per-layer error (SQNR) on the first calibration batch")
    p.add_argument("--validate", action="store_true",
                   help="score float32 and int8 on the validation set")
    p.set_defaults(func=_cmd_quantize)

    p = sub.add_parser("predict", help="classify images or frames with a checkpoint",
                       description="One line per frame: for a person detector, whether it "
                       "raises an alarm (p(person) above the threshold chosen on validation "
                       "by train --alarm-fpr, or --threshold), else the most probable class; "
                       "and the network's latency. At the end, on stderr: mean and p95 "
                       "latency and the frames per second sustained. Frames: image files, "
                       "folders, a folder watched for new images, raw RGB frames on standard "
                       "input. Unreadable files get a one-line error and a non-zero exit "
                       "status.")
    p.add_argument("checkpoint", help="a checkpoint.npz written by train")
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="image files (png, jpg, ...) or folders of them")
    p.add_argument("--threshold", type=_float,
                   help="alarm when p(person) is above this (default: the checkpoint's)")
    p.add_argument("--watch", metavar="FOLDER", help="then classify each new image that "
                   "appears in FOLDER, until Ctrl-C or --max-frames")
    p.add_argument("--raw", type=_frame_size, metavar="WxH",
                   help="read raw RGB24 frames of WxH from standard input (e.g. ffmpeg -i "
                   "CAMERA -f rawvideo -pix_fmt rgb24 -s 640x360 -)")
    p.add_argument("--poll", type=_float, default=0.2, help="--watch: seconds between looks (0.2)")
    p.add_argument("--max-frames", type=_positive_int, help="stop after this many frames")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="a checkpoint's person recall by distance",
                       description="Score a person / no-person checkpoint: accuracy, false "
                       "alarms, and person recall by the tallest person's height (0.15-0.3, "
                       "0.3-0.5, 0.5-0.75, 0.75-1.05 of the frame), by person count, partly "
                       "hidden and cut by the frame. Default data: 800 synthetic scenes "
                       "(seed 12345) with persons at every distance; --hard: the far-end set "
                       "(0.15-0.3 H).")
    p.add_argument("checkpoint", help="a checkpoint.npz written by train")
    p.add_argument("--data", default="synthetic", help="'synthetic' or an image folder "
                   "root/<class>/*.png|jpg with the checkpoint's class names (synthetic)")
    p.add_argument("--sizes", metavar="CSV", help="image folder: a CSV with columns file, "
                   "height (tallest person / image height; empty for none) and optionally "
                   "persons, occluded, cropped")
    p.add_argument("--hard", action="store_true", help="the far-end test set: persons and "
                   "stand-ins 0.15-0.3 of the frame's height")
    p.add_argument("--heights", type=_heights, metavar="LO-HI",
                   help="synthetic: the figures' height range (0.15-1.05)")
    p.add_argument("--scenes", type=_positive_int, help="synthetic: scenes (800)")
    p.add_argument("--seed", type=int, help="synthetic: seed (12345)")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="(256)")
    p.add_argument("--threads", type=_positive_int, help="OpenMP threads")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("summary", help="print a model's per-layer summary",
                       description="Per-layer output shapes, parameters, multiply-adds and "
                                   "receptive fields of the camera classifier (or --model).")
    p.add_argument("--image-size", type=_positive_int, default=d.image_size,
                   help=f"input height and width ({d.image_size})")
    p.add_argument("--batch", type=_positive_int, default=1, help="batch size (1)")
    p.add_argument("--num-classes", type=_positive_int, default=2, help="output classes (2)")
    p.add_argument("--model", choices=list(MODELS), default="camera",
                   help="the network (camera)")
    p.add_argument("--width", type=_float, help="camera classifier: channel "
                   f"multiplier ({d.camera_shape[0]:g})")
    p.add_argument("--pool", choices=["avg", "max"],
                   help=f"camera classifier: global pooling ({d.camera_shape[1]})")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("bench", help="time fastconv against PyTorch CPU",
                       description="The camera classifier's training step and inference, and "
                       "its main layers, timed side by side with PyTorch (when installed).")
    p.add_argument("--threads", type=_positive_int, help="threads for both libraries")
    p.add_argument("--reps", type=_positive_int, default=7, help="interleaved runs (7)")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    # read_image refuses images over Pillow's pixel limit with its own one-line error;
    # Pillow's warning about them would only repeat it
    warnings.filterwarnings("ignore", message=r".*could be decompression bomb",
                            module=r"PIL\.")
    try:
        if args.command == "train":
            group = _join_mpi_job()
            if group is not None and group.size > 1:
                return _on_every_rank(args.func, args)
        return args.func(args)
    except (ValueError, TypeError, ImportError, FloatingPointError) as e:   # one line
        print(f"python -m fastconv {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
