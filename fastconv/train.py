"""The camera-classifier trainer behind ``python -m fastconv train`` and ``predict``.

    from fastconv.train import TrainConfig, train
    result = train(TrainConfig(epochs=2, out="runs/try"))

Transfer learning: ``TrainConfig(model="resnet18", init="resnet18.pt", freeze="layer2")``
starts from a torchvision-format state_dict (the classifier head replaced for the
data's classes), freezes the stages up to layer2 (no gradient, no update, BatchNorm in
eval mode) and feeds ImageNet-normalised inputs.

One run = one TrainConfig.  Everything random (initialisation, split, shuffle,
augmentation) comes from ``config.seed``, so the same config on the same machine
gives the same weights bit for bit, and a run resumed from any checkpoint (saved at
the end of each epoch, or at the batch where Ctrl-C arrived) ends exactly where the
uninterrupted run ends."""
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time

import numpy as np

from . import __version__, _group, data, distributed, evaluation, models, nn, optim
from ._grad import no_grad
from ._precision import autocast
from ._random import manual_seed
from ._runtime import get_num_threads, set_num_threads
from .autograd import Tensor
from .interop import _atomic_write, _load_into, _read_npz, import_torch

CHECKPOINT = "checkpoint.npz"
_FORMAT = 1

# the networks with torchvision's keys (trained on the tape) and the trainer's own two
TORCHVISION_MODELS = ("resnet18", "resnet34", "mobilenet_v2", "mobilenet_v3_small",
                      "mobilenet_v3_large")
MODELS = ("camera", "linear") + TORCHVISION_MODELS
# the camera classifier's default shape (TrainConfig.width / pool unset): measured
# against the article's 1.0 / "avg" at 64x64 in the README's training section
CAMERA_WIDTH, CAMERA_POOL = 0.5, "max"
# torchvision's ImageNet statistics: what its pretrained weights expect
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint).

    data: "synthetic" or a folder ``root/<class>/*.png|jpg``; synthetic_size: scenes
    per epoch in the synthetic set (val_split of them held out); fresh: render new
    training scenes every epoch (the held-out ones stay fixed), so the network never
    sees a scene twice - better accuracy for the same time; model: "camera" (the camera classifier;
    width and pool set its channel multiplier and global pooling: the default, half
    the article's channels at 96x96 with global max pooling, finds far persons better
    than the article's 64x64 network in the same time, see the README),
    "linear" (logistic regression on pixels, the baseline) or one of TORCHVISION_MODELS
    ("resnet18", "mobilenet_v3_small", ...: torchvision's networks, trained on the
    tape); init: a torchvision-format state_dict (.pt/.pth, or .npz: a state_dict or a
    fastconv checkpoint) to start from, its classifier head replaced for the data's
    classes; freeze: the leading stages to freeze ("2": the first two (a number is
    always a count), a stage name such as "layer2": up to and including it, "all":
    every stage but the head; see model_stages), their parameters untrained and their
    BatchNorm in eval mode;
    normalize: "camera" (pixels (p - 0.5) / 0.25) or "imagenet" (torchvision's
    statistics); None means "imagenet" for a torchvision model with init, else
    "camera"; optimizer: "adamw",
    "adam" or "sgd" (momentum 0.9, Nesterov); the learning rate warms up linearly
    for ``warmup`` of the first epoch then follows a cosine to zero.  augment: random
    crops, flips and brightness in the loader; None means on for image folders and
    off for the synthetic scenes, whose renderer already varies framing, light and
    camera (and augmenting them on top slows learning: 84% vs 75% validation accuracy
    after the same two short epochs).  alarm_fpr: the share of empty validation scenes
    allowed to raise an alarm; the person-probability threshold that keeps to it is
    chosen on validation every epoch, stored in the checkpoint (``meta["alarm"]``) and
    used by ``predict``.  precision: "float32", or "bf16" (the training forward and
    backward under ``fastconv.autocast("bf16")``: convolutions and Linear multiply in
    bf16 with float32 sums; weights, optimiser, BatchNorm, loss, evaluation and the
    checkpoint stay float32)."""
    data: str = "synthetic"
    synthetic_size: int = 7200
    image_size: int = 96
    model: str = "camera"
    width: float = None
    pool: str = None
    epochs: int = 7
    batch_size: int = 32
    lr: float = 4e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.05
    label_smoothing: float = 0.0
    warmup: float = 0.3
    augment: bool = None
    fresh: bool = True
    val_split: float = 0.111
    seed: int = 0
    out: str = "runs/camera"
    init: str = None
    freeze: str = None
    normalize: str = None
    alarm_fpr: float = 0.02
    precision: str = "float32"

    @classmethod
    def saved(cls, config):
        """The TrainConfig of a checkpoint's saved ``config`` dict.  Checkpoints from
        before ``width`` and ``pool`` existed hold the article's network (1.0, avg)."""
        config = dict(config)
        if config.get("model", "camera") == "camera":
            config.setdefault("width", 1.0)
            config.setdefault("pool", "avg")
        else:                                   # they shape the camera classifier only
            config.pop("width", None)
            config.pop("pool", None)
        return cls(**config)

    @property
    def camera_shape(self):
        """(width, pool) of the camera classifier: the defaults 0.5 and "max" where unset."""
        return (CAMERA_WIDTH if self.width is None else self.width,
                CAMERA_POOL if self.pool is None else self.pool)

    @property
    def augment_on(self):
        return self.data != "synthetic" if self.augment is None else bool(self.augment)

    @property
    def input_stats(self):
        """(mean, std) per channel the network's inputs are normalised with."""
        kind = self.normalize
        if kind is None:
            kind = "imagenet" if self.init is not None and self.model in TORCHVISION_MODELS \
                else "camera"
        return (IMAGENET_MEAN, IMAGENET_STD) if kind == "imagenet" else \
            (tuple(data.MEAN), tuple(data.STD))

    def check(self, require_data=True):
        """Raise ValueError naming the first bad field.  require_data=False skips the
        check that an image folder exists (not needed to rebuild a saved model)."""
        def positive_int(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer, got {v!r}")
        for name in ("synthetic_size", "image_size", "epochs", "batch_size"):
            positive_int(name)
        if self.image_size < 16:
            raise ValueError(f"image-size must be >= 16 (the classifier downsamples 8x), "
                             f"got {self.image_size}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}; got {self.model!r}")
        if self.init is not None and not (isinstance(self.init, str) and self.init):
            raise ValueError(f"init must be a file path, got {self.init!r}")
        if isinstance(self.freeze, (int, np.integer)) and not isinstance(self.freeze, bool) \
                and self.freeze >= 0:
            self.freeze = str(int(self.freeze))           # a count; kept as text (JSON)
        if self.freeze is not None and not (isinstance(self.freeze, str) and self.freeze):
            raise ValueError(f"freeze must be a stage count, a stage name or 'all', "
                             f"got {self.freeze!r}")
        if self.width is not None and (isinstance(self.width, bool) or not isinstance(
                self.width, (int, float)) or not 0 < self.width <= 4):
            raise ValueError(f"width must be a number in (0, 4], got {self.width!r}")
        if self.pool not in (None, "avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {self.pool!r}")
        if self.model != "camera" and (self.width is not None or self.pool is not None):
            raise ValueError(f"width and pool shape the camera classifier; model is "
                             f"{self.model!r}")
        if self.normalize not in (None, "camera", "imagenet"):
            raise ValueError(f"normalize must be 'camera' or 'imagenet', got {self.normalize!r}")
        if self.optimizer not in ("adamw", "adam", "sgd"):
            raise ValueError(f"optimizer must be adamw, adam or sgd, got {self.optimizer!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0 <= self.weight_decay < 1:
            raise ValueError(f"weight-decay must be in [0, 1), got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.warmup <= 1:
            raise ValueError(f"warmup must be in [0, 1] (a fraction of the first epoch), "
                             f"got {self.warmup}")
        if self.precision not in ("float32", "bf16"):
            raise ValueError(f"precision must be 'float32' or 'bf16', got {self.precision!r}")
        if not (isinstance(self.alarm_fpr, (int, float)) and 0 < self.alarm_fpr < 1):
            raise ValueError(f"alarm-fpr must be in (0, 1), got {self.alarm_fpr!r}")
        if not 0 < self.val_split < 1:
            raise ValueError(f"val-split must be in (0, 1), got {self.val_split}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) \
                or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not isinstance(self.data, str):
            raise ValueError(f"data must be 'synthetic' or an image folder, got {self.data!r}")
        if require_data and self.data != "synthetic" and not os.path.isdir(self.data):
            raise ValueError(f"data must be 'synthetic' or an image folder, got {self.data!r} "
                             "(no such directory)")
        return self


def build_dataset(config):
    """The full data set of a config: synthetic scenes or an ImageFolder."""
    if config.data == "synthetic":
        n_val, n_train = _synthetic_sizes(config)
        fresh = config.fresh
        return data.SyntheticCameraDataset(n_val + n_train * (config.epochs if fresh else 1),
                                           config.image_size, config.seed, cache=not fresh)
    return data.ImageFolder(config.data, config.image_size)


def _synthetic_sizes(config):
    n_val = 2 * round(config.synthetic_size * config.val_split / 2)   # aligned pairs
    return n_val, config.synthetic_size - n_val


def build_splits(config, dataset):
    """-> (train_for(epoch) -> data set of that epoch, validation data set).  Synthetic
    data: validation = scenes [0, n_val), epoch e trains on its own fresh slice (or on
    one fixed slice with fresh=False); folders: a stratified seeded split."""
    if config.data == "synthetic":
        n_val, n_train = _synthetic_sizes(config)
        val = data.Subset(dataset, np.arange(n_val))
        if not config.fresh:
            fixed = data.Subset(dataset, n_val + np.arange(n_train))
            return (lambda epoch: fixed), val
        return (lambda epoch: data.Subset(dataset, n_val + epoch * n_train +
                                          np.arange(n_train))), val
    train_set, val_set = data.train_val_split(dataset, config.val_split, config.seed)
    return (lambda epoch: train_set), val_set


def build_model(config, num_classes):
    """The network of a config, initialised from config.seed (config.init is not read
    here: see load_init)."""
    manual_seed(config.seed)
    if config.model == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * config.image_size ** 2, num_classes))
    if config.model in TORCHVISION_MODELS:
        return getattr(models, config.model)(num_classes=num_classes)
    width, pool = config.camera_shape
    return models.camera_classifier(num_classes, width=width, pool=pool)


# ------------------------------------------------------------ transfer learning

def model_stages(config, model):
    """-> (stages, head): the network's parameterised stages in input-to-output order, as
    (name, [modules]) pairs, and the state_dict prefix of its classifier head.

    resnet: stem (conv1, bn1), layer1 .. layer4, head fc; mobilenet_v2: features.0 ..
    features.18, head classifier.1; mobilenet_v3: features.0 .. features.N, then
    classifier.0 (the pretrained hidden Linear), head classifier.3; camera: its six
    Conv-BN-ReLU blocks, named by index (0, 1, 3, 4, 6, 7; freeze them by count), head
    10; linear: no stages, head 1."""
    name = config.model
    if name.startswith("resnet"):
        return ([("stem", [model.conv1, model.bn1])] +
                [(f"layer{i}", [getattr(model, f"layer{i}")]) for i in range(1, 5)], "fc")
    if name.startswith("mobilenet"):
        stages = [(f"features.{i}", [m]) for i, m in enumerate(model.features)]
        if name == "mobilenet_v2":
            return stages, "classifier.1"
        return stages + [("classifier.0", [model.classifier[0]])], "classifier.3"
    children = list(model.named_children())
    head = children[-1][0]
    return [(n, [m]) for n, m in children[:-1] if any(True for _ in m.parameters())], head


def freeze_stages(config, model):
    """Freeze the stages config.freeze names (see TrainConfig): requires_grad False on
    their parameters (no gradient, so no optimiser update or weight decay).  Returns the
    frozen (name, [modules]) stages, whose BatchNorm _train_mode keeps in eval mode.
    ValueError naming the valid choices for anything else."""
    spec = config.freeze
    if spec is None:
        return []
    stages, _ = model_stages(config, model)
    names = [n for n, _ in stages]
    if not names:
        raise ValueError(f"freeze: the {config.model} model has no stages before its head")
    if spec == "all":
        k = len(stages)
    elif spec.isdecimal():
        k = int(spec)
        if k > len(stages):
            raise ValueError(f"freeze: {config.model} has {len(stages)} stages ({', '.join(names)}), "
                             f"got {k}")
    elif spec in names:
        k = names.index(spec) + 1
    else:
        raise ValueError(f"freeze: expected a stage count 0-{len(stages)}, 'all' or a stage of "
                         f"{config.model} ({', '.join(names)}); got {spec!r}")
    for _, mods in stages[:k]:
        for m in mods:
            for p in m.parameters():
                p.requires_grad = False
    return stages[:k]


def _train_mode(model, frozen):
    """model.train(), except BatchNorm (every module) of the frozen stages: eval mode,
    so their running statistics stay the pretrained ones."""
    model.train()
    for _, mods in frozen:
        for m in mods:
            m.eval()


class _InitTarget:
    """What interop's safe loaders (import_torch, _load_into) load an init file into:
    the model with its head left out.  The file's head entries are skipped (the model's
    head has the data's classes); every other key must match (strict)."""

    def __init__(self, model, head):
        self.model, self.head, self.skipped = model, head, []

    def load_state_dict(self, state, strict=True):
        own = self.model.state_dict()
        prefix = self.head + "."

        def is_head(k):
            return k.startswith(prefix)
        self.skipped = [(k, tuple(v.shape)) for k, v in state.items() if is_head(k)]
        body = {k: v for k, v in state.items() if not is_head(k)}
        body.update({k: v for k, v in own.items() if is_head(k)})
        return self.model.load_state_dict(body, strict=True)


def load_init(config, model, log=print):
    """Load config.init (a torchvision-format state_dict: ``.pt``/``.pth`` through
    import_torch, read with weights_only; ``.npz``: a state_dict, or a fastconv
    checkpoint's model) into model, all but its classifier head.  ValueError naming
    the file for a missing or unreadable file, or keys or shapes that do not fit (the
    model is then unchanged)."""
    path = config.init
    if not os.path.isfile(path):
        raise ValueError(f"init: no such file {path!r} (expected a .pt, .pth or .npz state_dict)")
    _, head = model_stages(config, model)
    # named like the model, so a mismatch reads "does not fit this ResNet: ..."
    target = type(type(model).__name__, (_InitTarget,), {})(model, head)
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext in (".pt", ".pth"):
            import_torch(target, path)
        elif ext == ".npz":
            state = _read_npz(path, "state_dict")
            if "meta" in state:         # a fastconv checkpoint: its model/* entries
                state = {k[6:]: v for k, v in state.items() if k.startswith("model/")}
            _load_into(target, state, path, strict=True)
        else:
            raise ValueError(f"expected a .pt, .pth or .npz state_dict file, got {path!r}")
    except ValueError as e:
        raise ValueError(f"init: {e} (a torchvision-format state_dict of {config.model}; "
                         f"its head {head}.* is replaced)") from None
    skipped = ", ".join(f"{k} {s}" for k, s in target.skipped) or "none in the file"
    n_classes = model.state_dict()[f"{head}.weight"].shape[0]
    log(f"init: {config.model} weights from {path}; head skipped ({skipped}), "
        f"a new {head} for {n_classes} classes")


def _renormalizer(mean, std):
    """x (normalised with data.MEAN / STD, as the loaders give it) -> x normalised with
    mean / std instead; None when they are the same."""
    if tuple(mean) == tuple(data.MEAN) and tuple(std) == tuple(data.STD):
        return None
    a = (np.float64(data.STD) / np.float64(std)).astype(np.float32).reshape(1, 3, 1, 1)
    b = ((np.float64(data.MEAN) - np.float64(mean)) / np.float64(std)).astype(
        np.float32).reshape(1, 3, 1, 1)
    return lambda x: x * a + b


def prepare_input(images, meta):
    """Images (N, H, W, 3), uint8 or float in [0, 1] -> the network input (N, 3, H, W)
    float32 of the checkpoint whose meta is given (its normalisation)."""
    x = data.normalize(images)
    f = _renormalizer(meta.get("mean", data.MEAN), meta.get("std", data.STD))
    return x if f is None else f(x)


def build_optimizer(config, params):
    if config.optimizer == "sgd":
        return optim.SGD(params, config.lr, momentum=0.9, nesterov=True,
                         weight_decay=config.weight_decay)
    cls = optim.AdamW if config.optimizer == "adamw" else optim.Adam
    return cls(params, config.lr, weight_decay=config.weight_decay)


def learning_rate(config, step, steps_per_epoch):
    """Linear warm-up over ``warmup`` of the first epoch, then cosine to zero."""
    total = config.epochs * steps_per_epoch
    warm = int(config.warmup * steps_per_epoch)
    if step < warm:
        return config.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


# ------------------------------------------------------------------ checkpoints

def save_checkpoint(path, model, optimizer, meta):
    """Write model state, optimiser state and ``meta`` (JSON-able: epoch, step, config,
    metrics...) to one ``.npz``, atomically (a crash never leaves a corrupt file)."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    st = optimizer.state_dict()
    scalars = []
    for i, s in enumerate(st["state"]):
        for k, v in s.items():
            if isinstance(v, np.ndarray):
                arrays[f"optim/{i}/{k}"] = v
            else:
                scalars.append([i, k, v])
    meta = dict(meta, format=_FORMAT, fastconv=__version__,
                optimizer_defaults=st["defaults"], optimizer_scalars=scalars)
    arrays["meta"] = np.array(json.dumps(meta))
    _atomic_write(path, lambda fh: np.savez(fh, **arrays))


def load_checkpoint(path):
    """-> (meta dict, model state dict, optimiser state dict) from save_checkpoint's file.

    Reads plain arrays and JSON only (never unpickles) and checks the file's structure,
    so a missing, truncated, corrupted or foreign file raises ValueError naming it."""
    path = os.fspath(path)
    files = _read_npz(path, "checkpoint")
    if "meta" not in files:
        raise ValueError(f"{path!r} is not a fastconv checkpoint (no 'meta' entry)")
    try:
        return _parse_checkpoint(files)
    except (KeyError, TypeError, ValueError, RecursionError) as e:   # JSON of the wrong shape
        reason = f"no {e}" if isinstance(e, KeyError) else e
        raise ValueError(f"{path!r} is not a valid fastconv checkpoint: {reason}") from None


def _parse_checkpoint(files):
    """load_checkpoint's work on the file's arrays; raises on anything malformed."""
    raw = files.pop("meta")
    if raw.ndim != 0 or raw.dtype.kind != "U":
        raise ValueError(f"'meta' must be a JSON string, got {raw.dtype} {raw.shape}")
    try:
        meta = json.loads(str(raw))
    except ValueError as e:
        raise ValueError(f"'meta' is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"'meta' must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != _FORMAT:
        raise ValueError(f"format {meta.get('format')!r}, expected {_FORMAT} (written by "
                         f"fastconv {meta.get('fastconv')})")
    config = TrainConfig.saved(meta["config"]).check(require_data=False)
    count, epoch, step = meta["num_params"], meta["epoch"], meta["step"]
    for name, v in (("num_params", count), ("epoch", epoch), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"'{name}' must be an integer >= 0, got {v!r}")
    classes = meta["classes"]
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise ValueError(f"'classes' must be a list of class names, got {classes!r:.80}")
    if meta["image_size"] != config.image_size:
        raise ValueError(f"'image_size' {meta['image_size']!r} differs from the config's "
                         f"{config.image_size}")
    if not isinstance(meta["metrics"], list):
        raise ValueError(f"'metrics' must be a list, got {meta['metrics']!r:.80}")
    partial = meta["partial"]
    if partial is not None and not (isinstance(partial, dict) and all(
            isinstance(partial.get(k), (int, float)) for k in ("loss_sum", "correct", "seen",
                                                              "time"))):
        raise ValueError(f"'partial' must be null or hold loss_sum, correct, seen, time; "
                         f"got {partial!r:.80}")
    model_state, state = {}, {}
    for k, v in files.items():
        kind, _, rest = k.partition("/")
        if kind == "model":
            model_state[rest] = v
            continue
        i, _, name = rest.partition("/")
        if kind != "optim" or not i.isdecimal() or int(i) >= count or not name:
            raise ValueError(f"unexpected entry {k!r}")
        state.setdefault(int(i), {})[name] = v
    for i, k, v in meta.pop("optimizer_scalars"):
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < count:
            raise ValueError(f"optimizer scalar {k!r}: no parameter {i!r} of {count}")
        state.setdefault(i, {})[k] = v
    defaults = meta.pop("optimizer_defaults")
    if not isinstance(defaults, dict):
        raise ValueError(f"'optimizer_defaults' must be an object, got {defaults!r:.80}")
    if "betas" in defaults:
        defaults["betas"] = tuple(defaults["betas"])
    opt_state = {"defaults": defaults, "state": [state.get(i, {}) for i in range(count)]}
    return meta, model_state, opt_state


def _restore(checkpoint, path, model, optimizer=None):
    """Copy a load_checkpoint() result into model (and optimizer), all or nothing."""
    _, model_state, opt_state = checkpoint
    try:    # the optimiser state is checked first, the model checks its own before copying
        opt = None if optimizer is None else optimizer._parse_state(opt_state)
    except ValueError as e:
        raise ValueError(f"checkpoint {os.fspath(path)!r} does not fit this optimiser: "
                         f"{e}") from None
    _load_into(model, model_state, path, strict=True)
    if optimizer is not None:
        optimizer.defaults, optimizer.state = opt


def restore_checkpoint(path, model, optimizer=None):
    """Load checkpoint ``path`` into model (and optimizer) and return its meta dict.

    All or nothing: the file is read and every array checked against the model and the
    optimiser before either changes, so a truncated, corrupted or mismatched
    checkpoint raises ValueError naming it and leaves both untouched."""
    checkpoint = load_checkpoint(path)
    _restore(checkpoint, path, model, optimizer)
    return checkpoint[0]


def load_model(path):
    """-> (model in eval mode, meta) from a checkpoint: what ``predict`` uses."""
    checkpoint = load_checkpoint(path)
    meta = checkpoint[0]
    model = build_model(TrainConfig.saved(meta["config"]), len(meta["classes"]))
    _restore(checkpoint, path, model)
    model.eval()
    return model, meta


# ---------------------------------------------------------------------- progress

class _Progress:
    """tqdm when installed and enabled, else nothing (epoch lines still print)."""

    def __init__(self, enabled, total, desc, initial=0):
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, initial=initial, desc=desc, unit="batch",
                                leave=False, dynamic_ncols=True, file=sys.stderr)
            except ImportError:
                pass

    def update(self, **stats):
        if self.bar is not None:
            self.bar.set_postfix_str("  ".join(f"{k} {v}" for k, v in stats.items()),
                                     refresh=False)
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class _StopFlag:
    """SIGINT sets a flag the loop checks between steps, so Ctrl-C never lands in the
    middle of an optimiser update; a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.set = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


# ------------------------------------------------------------------------- train

def predict(model, loader, criterion=None, prepare=None, group=None):
    """(mean loss or None, logits float32 (n, classes)) of model over a loader, in eval
    mode without gradients; prepare: applied to each input batch (a renormalisation)
    when given.  group (a distributed.ProcessGroup): the loader is this rank's shard;
    every rank gets the whole set's logits, in order, and the whole set's loss."""
    model.eval()
    loss_sum, seen, logits = 0.0, 0, []
    with no_grad():
        for x, y in loader.epoch(0):
            if len(y) == 0:             # a rank's empty part of a short last batch
                continue
            out = model(x if prepare is None else prepare(x))
            if criterion is not None:
                loss_sum += criterion(out, y) * len(y)
            logits.append(np.asarray(out, np.float32))
            seen += len(y)
    model.train()
    z = np.concatenate(logits) if logits else np.zeros((0, 0), np.float32)
    if group is not None:
        loss_sum, seen = group.sum([loss_sum, seen])
        z = _gather_batches(group, loader, z)
    return (loss_sum / max(seen, 1) if criterion is not None else None), z


def _gather_batches(group, loader, z):
    """Every rank's logits of a sharded, unshuffled loader -> the whole set's, in order
    (rank r holds its part of each batch, one after another)."""
    parts = group.comm.allgather(z)
    out, taken = [], [0] * group.size
    n, B = len(loader.dataset), loader.batch_size
    for k in range(len(loader)):
        total = min(B, n - k * B)
        for r in range(group.size):
            lo, hi = data.loader.shard_bounds(total, r, group.size)
            m = hi - lo
            if m:
                out.append(parts[r][taken[r]:taken[r] + m])
            taken[r] += m
    return np.concatenate(out) if out else z


def evaluate(model, loader, criterion, prepare=None):
    """(mean loss, accuracy) of model over a loader, in eval mode without gradients;
    prepare: applied to each input batch (a renormalisation) when given."""
    loss, z = predict(model, loader, criterion, prepare)
    return loss, float((z.argmax(1) == loader.dataset.labels).mean()) if len(z) else 0.0


def _size_sets(config, dataset, val_set):
    """-> (validation set, its SceneSizes or None).  Synthetic data: the validation
    scenes are rendered once, with their truth (persons' heights), and kept."""
    if config.data != "synthetic":
        return val_set, None
    val = data.SyntheticCameraDataset(len(val_set), config.image_size, config.seed,
                                      with_masks=True)
    assert np.array_equal(val.labels, val_set.labels)         # the same scenes [0, n_val)
    return val, evaluation.synthetic_sizes(val)


def synthetic_test_set(image_size, **spec):
    """(SyntheticCameraDataset rendered with its truth, its SceneSizes): spec is
    evaluation.TEST, evaluation.HARD_TEST or any n, seed and heights."""
    ds = data.SyntheticCameraDataset(image_size=image_size, with_masks=True, **spec)
    return ds, evaluation.synthetic_sizes(ds)


def score(model, dataset, sizes=None, classes=data.CLASSES, prepare=None, batch_size=256,
          group=None, false_alarm_target=0.02):
    """The size_report of a person detector on a data set (``dataset.labels`` in the
    order of ``classes``); sizes: its SceneSizes or None.  group: each rank scores its
    share, every rank gets the report."""
    loader = data.DataLoader(dataset, batch_size, shard=_shard(group))
    _, z = predict(model, loader, prepare=prepare, group=group)
    return _person_report(classes, dataset.labels, z, sizes, false_alarm_target)


def hard_test(model, image_size, prepare=None, classes=data.CLASSES, group=None):
    """The fixed far-end test set (evaluation.HARD_TEST) scored with model: a
    size_report dict."""
    ds, sizes = synthetic_test_set(image_size, **evaluation.HARD_TEST)
    return score(model, ds, sizes, classes, prepare, group=group)


def _shard(group):
    return None if group is None else (group.rank, group.size)


def _quiet(*args, **kwargs):
    pass


def train(config=None, resume=None, progress=True, threads=None, log=print, on_step=None,
          far_test=True, group=None):
    """Train per ``config`` (or continue the run in checkpoint ``resume``).

    Writes ``<out>/checkpoint.npz`` every epoch and on Ctrl-C, ``metrics.json`` and
    ``curve.png`` (with matplotlib) at the end, and a few validation images under
    ``<out>/samples`` (with Pillow) to try ``predict`` on.  Returns a dict: model,
    metrics (one dict per epoch), interrupted, checkpoint path, wall time.

    On the synthetic scenes each epoch's metrics hold ``val_report``, the validation
    set's evaluation.size_report (false alarms, person recall per height bucket...),
    and the end of the run scores the fixed far-end test set (evaluation.HARD_TEST;
    ``far_test=False`` skips it) into ``result["hard_test"]`` and metrics.json.

    Data-parallel (``group``, a distributed.ProcessGroup of more than one rank; default:
    the group of ``fastconv.distributed.init()``): every rank trains the model wrapped in
    DistributedDataParallel, its BatchNorm layers made SyncBatchNorm, on its part of
    each global batch of ``batch_size``; the log, the progress bar, the checkpoints and
    the reports come from rank 0, the metrics reduced over the ranks, and ``threads`` is
    per rank.  The result equals one process's on the same global batches up to the
    rounding of reordered sums."""
    group = _group.resolve(group)
    rank0 = group is None or group.rank == 0
    if not rank0:
        log, progress = _quiet, False
    if threads is not None:
        set_num_threads(threads)
    state = None
    if resume is not None:
        meta, model_state, opt_state = load_checkpoint(resume)
        config = TrainConfig.saved(meta["config"])
        state = (meta, model_state, opt_state)
    config = (config or TrainConfig()).check()
    os.makedirs(config.out, exist_ok=True)
    ckpt_path = os.path.join(config.out, CHECKPOINT)

    dataset = build_dataset(config)
    train_for, val_set = build_splits(config, dataset)
    train_set = train_for(0)
    if len(train_set) == 0 or len(val_set) == 0:
        raise ValueError(f"val-split {config.val_split} of {len(dataset)} images leaves an "
                         "empty train or validation set")
    if group is not None and min(config.batch_size, len(train_set)) < group.size:
        raise ValueError(f"batch size {min(config.batch_size, len(train_set))} is smaller than "
                         f"the {group.size} ranks: every rank needs a part of each batch")

    def train_loader(epoch):
        return data.DataLoader(train_for(epoch), config.batch_size, shuffle=True,
                               seed=config.seed,
                               augment=data.Augment() if config.augment_on else None,
                               drop_last=len(train_set) >= config.batch_size,
                               shard=_shard(group))
    val_set, val_sizes = _size_sets(config, dataset, val_set)
    val_loader = data.DataLoader(val_set, 256, shard=_shard(group))
    model = build_model(config, len(dataset.classes))
    if config.init is not None and state is None:     # a resumed run has its own weights
        load_init(config, model, log)
    if group is not None:           # batch statistics over the global batch
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    frozen = freeze_stages(config, model)
    mean, std = config.input_stats
    prepare = _renormalizer(mean, std)
    # the trainer's chains keep their explicit backward (the default run's bits); the
    # torchvision models, and any frozen model, train on the tape, which records
    # nothing for the frozen stages
    tape = config.model in TORCHVISION_MODELS or bool(frozen)
    params = list(model.parameters())
    opt = build_optimizer(config, params)
    crit = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    steps = len(train_loader(0))

    epoch, start, metrics, partial, last_val = 0, 0, [], None, None
    if state is not None:
        _restore(state, resume, model, opt)
        meta = state[0]
        epoch, start, metrics, partial = meta["epoch"], meta["step"], meta["metrics"], \
            meta["partial"]
        if start > steps:
            raise ValueError(f"checkpoint {resume!r}: batch {start} is past the epoch's "
                             f"{steps} batches")
        log(f"resuming {resume}: epoch {epoch + 1}/{config.epochs}, batch {start}/{steps}")
    # the forward and backward go through net: under MPI the wrapper that averages the
    # gradients (rank 0's weights on every rank from here)
    # (SyncBatchNorm keeps the running statistics equal on every rank: no broadcast)
    net = model if group is None else distributed.DistributedDataParallel(
        model, group, broadcast_buffers=False)

    def meta(epoch, step, partial):
        last = metrics[-1].get("val_report") if metrics else None
        alarm = None if last is None else dict(
            fpr=config.alarm_fpr, threshold=last["operating_point"]["threshold"],
            epoch=metrics[-1]["epoch"])
        return dict(config=dataclasses.asdict(config), classes=list(dataset.classes),
                    epoch=epoch, step=step, metrics=metrics, partial=partial,
                    num_params=len(params), image_size=config.image_size,
                    mean=list(mean), std=list(std), alarm=alarm)

    log(f"fastconv {__version__}: {config.model} model, {len(train_set)} train"
        f"{' (new scenes each epoch)' if config.data == 'synthetic' and config.fresh else ''}"
        f" / {len(val_set)} val images ({config.data}, {config.image_size}x{config.image_size}), "
        f"{config.epochs} epochs x {steps} batches of {config.batch_size}, "
        f"{config.optimizer} lr {config.lr:g}, {get_num_threads()} threads" +
        (f" x {group.size} ranks (MPI)" if group is not None else "") +
        (", bf16 products" if config.precision == "bf16" else ""))
    n_all = sum(p.data.size for p in params)
    n_train = sum(p.data.size for p in params if p.requires_grad)
    log(f"trainable parameters: {n_train:,} of {n_all:,}" + (
        f" (frozen: {', '.join(n for n, _ in frozen)}; their BatchNorm in eval mode)"
        if frozen else ""))
    t_run = time.perf_counter()
    interrupted = False
    with _StopFlag() as stop:
        while epoch < config.epochs and not interrupted:
            # the sums so far (a resumed epoch's) start on rank 0 only: a reduction over
            # the ranks then counts them once
            loss_sum, correct, seen, t_prev = (partial["loss_sum"], partial["correct"],
                                               partial["seen"], partial["time"]) \
                if partial and rank0 else (0.0, 0, 0, partial["time"] if partial else 0.0)
            bar = _Progress(progress, steps, f"epoch {epoch + 1}/{config.epochs}", start)
            t0 = time.perf_counter()
            _train_mode(model, frozen)
            k = start
            loader = train_loader(epoch)
            for x, y in loader.epoch(epoch, start):
                opt.lr = learning_rate(config, epoch * steps + k, steps)
                opt.zero_grad()
                if prepare is not None:
                    x = prepare(x)
                # the backward multiplies in the precision its forward recorded
                with autocast("bf16", enabled=config.precision == "bf16"):
                    if tape:
                        # dropout masks from (seed, epoch, batch): a resumed run draws the same
                        manual_seed(int(np.random.SeedSequence([config.seed, epoch, k, 0xd40])
                                        .generate_state(1)[0]))
                        logits_t = net(Tensor(x))
                        loss_t = crit(logits_t, y)
                        logits, loss = logits_t.data, float(loss_t)
                    else:
                        logits = net(x)
                        loss = crit(logits, y)
                if not math.isfinite(loss):
                    raise FloatingPointError(f"training diverged: loss {loss} at epoch "
                                             f"{epoch + 1}, batch {k + 1} (try a lower --lr)")
                # a rank's mean loss weighted so that the ranks' average is the global
                # batch's mean (parts may differ by one image)
                w = 1.0 if group is None else \
                    len(y) * group.size / min(config.batch_size, len(loader.dataset) -
                                              k * config.batch_size)
                if tape:
                    (loss_t if w == 1.0 else loss_t * w).backward()
                else:
                    g = crit.backward()
                    net.backward(g if w == 1.0 else g * g.dtype.type(w), input_grad=False)
                opt.step()
                k += 1
                loss_sum += loss * len(y)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
                dt = t_prev + time.perf_counter() - t0
                bar.update(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}",
                           img_s=f"{seen * (1 if group is None else group.size) / max(dt, 1e-9):.0f}")
                if on_step is not None:
                    on_step(epoch, k)
                if stop.set if group is None else group.any(stop.set):
                    stop.set = True         # every rank stops at the same batch
                    break
            bar.close()
            elapsed = t_prev + time.perf_counter() - t0
            if group is not None:
                loss_sum, correct, seen = group.sum([loss_sum, correct, seen])
                correct, seen = int(correct), int(seen)
            if stop.set and k < steps:
                partial = dict(loss_sum=loss_sum, correct=correct, seen=seen, time=elapsed)
                if rank0:
                    save_checkpoint(ckpt_path, model, opt, meta(epoch, k, partial))
                log(f"interrupted at epoch {epoch + 1}, batch {k}/{steps}: saved {ckpt_path} "
                    f"(continue with --resume {ckpt_path})")
                interrupted = True
                break
            val_loss, logits = predict(model, val_loader, crit, prepare, group)
            val_acc = float((logits.argmax(1) == val_set.labels).mean())
            report = _person_report(dataset.classes, val_set.labels, logits, val_sizes,
                                    config.alarm_fpr)
            last_val = logits
            _train_mode(model, frozen)
            metrics.append(dict(epoch=epoch + 1, train_loss=loss_sum / seen,
                                train_acc=correct / seen, val_loss=val_loss, val_acc=val_acc,
                                lr=opt.lr, epoch_seconds=elapsed, images_per_s=seen / elapsed,
                                **({} if report is None else dict(val_report=report))))
            log(f"epoch {epoch + 1}/{config.epochs}  train loss {loss_sum / seen:.4f} "
                f"acc {correct / seen:.4f}  val loss {val_loss:.4f} acc {val_acc:.4f}  "
                f"{elapsed:.1f} s ({seen / elapsed:.0f} images/s)")
            if report is not None:
                op = report["operating_point"]
                log(f"    {evaluation.bucket_line(report)}; at <= {100 * op['target']:g}% "
                    f"false alarms: recall {100 * op['recall']:.1f}%")
            epoch, start, partial = epoch + 1, 0, None
            if group is not None:       # a Ctrl-C during validation reached some ranks
                stop.set = group.any(stop.set)
            if rank0:
                save_checkpoint(ckpt_path, model, opt, meta(epoch, 0, None))
            if stop.set:
                interrupted = epoch < config.epochs
                if interrupted:
                    log(f"interrupted after epoch {epoch}: saved {ckpt_path} "
                        f"(continue with --resume {ckpt_path})")
    tests = {}
    if not interrupted and metrics and metrics[-1].get("val_report"):
        log(evaluation.format_report(metrics[-1]["val_report"], "validation:"))
        op = metrics[-1]["val_report"]["operating_point"]
        log(f"alarm threshold: p(person) > {op['threshold']:.4f} keeps validation false "
            f"alarms at {100 * op['false_alarm']:.1f}% (--alarm-fpr {config.alarm_fpr:g}); "
            f"stored in the checkpoint for predict")
    if not interrupted and metrics and config.data == "synthetic" and far_test:
        tests["hard_test"] = hard_test(model, config.image_size, prepare, dataset.classes,
                                       group)
        log(evaluation.format_report(tests["hard_test"], "far-end test set (persons and "
                                     "stand-ins 0.15-0.3 H, 800 scenes, seed 12345):"))
        _train_mode(model, frozen)
    wall = time.perf_counter() - t_run
    result = dict(model=model, metrics=metrics, interrupted=interrupted, checkpoint=ckpt_path,
                  wall_seconds=wall, classes=dataset.classes, **tests)
    if not interrupted and rank0:
        _write_reports(config, metrics, val_set, dataset, log, dict(tests, wall_seconds=wall),
                       last_val)
        if metrics:
            log(f"done: val accuracy {metrics[-1]['val_acc']:.4f} after {len(metrics)} epochs, "
                f"{wall:.0f} s this session; checkpoint {ckpt_path}")
    return result


def person_scores(classes, logits):
    """(index of "person", its softmax probability per row) of a person / no-person
    model's logits (n, 2), or None for other classes."""
    if "person" not in classes or len(classes) != 2:
        return None
    k = list(classes).index("person")
    z = np.asarray(logits, np.float64)
    return k, 1 / (1 + np.exp(z[:, 1 - k] - z[:, k]))


def _person_report(classes, labels, logits, sizes, false_alarm_target=0.02):
    """The per-size report of a person / no-person run from its logits (n, 2), or
    None for other classes."""
    ps = person_scores(classes, logits)
    if ps is None:
        return None
    k, score = ps
    return evaluation.size_report(labels, logits.argmax(1), sizes, positive=k, scores=score,
                                  false_alarm_target=false_alarm_target)


def _write_reports(config, metrics, val_set, dataset, log, tests=None, val_logits=None):
    with open(os.path.join(config.out, "metrics.json"), "w") as fh:
        json.dump(dict(config=dataclasses.asdict(config), classes=list(dataset.classes),
                       epochs=metrics, **(tests or {})), fh, indent=1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("(matplotlib not installed: no curve.png; pip install 'fastconv[plot]')")
    else:
        e = [m["epoch"] for m in metrics]
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
        a.plot(e, [m["train_loss"] for m in metrics], "o-", label="train")
        a.plot(e, [m["val_loss"] for m in metrics], "o-", label="val")
        a.set(xlabel="epoch", ylabel="loss", title="loss")
        b.plot(e, [m["train_acc"] for m in metrics], "o-", label="train")
        b.plot(e, [m["val_acc"] for m in metrics], "o-", label="val")
        b.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
        for ax in (a, b):
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(config.out, "curve.png"), dpi=100)
        plt.close(fig)
        ps = None if val_logits is None else person_scores(dataset.classes, val_logits)
        if ps is not None and metrics and metrics[-1].get("val_report"):
            evaluation.plot_curves(val_set.labels, ps[1], os.path.join(config.out, "roc_pr.png"),
                                   metrics[-1]["val_report"]["operating_point"]["threshold"],
                                   positive=ps[0], title="validation, last epoch")
    if config.data == "synthetic":
        try:
            folder = os.path.join(config.out, "samples")
            os.makedirs(folder, exist_ok=True)
            for j in range(min(8, len(val_set))):
                img, label = val_set[j]
                data.write_image(os.path.join(folder, f"val{j}_{dataset.classes[label]}.png"), img)
        except ImportError:
            pass
