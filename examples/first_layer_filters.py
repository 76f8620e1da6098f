"""The first-layer filters of a trained camera classifier, as an image grid.

    python examples/first_layer_filters.py [CHECKPOINT]

CHECKPOINT defaults to runs/camera/checkpoint.npz, what `python -m fastconv train`
writes.  Without one, a short run trains a model first (two epochs on 1,600 synthetic
scenes at 32x32, under a minute: its filters are rougher than a full run's).

Training turns random 3x3 noise into smoother edge and blob detectors; the script
measures that against the run's own initialisation:
  * structure: how much of a filter's energy is in its smooth part (the projection
    onto constant, x-ramp and y-ramp patterns per channel) - about 1/3 for random
    3x3 noise (3 of 9 directions), more for edge and blob detectors (0.30 -> 0.46
    for the default 5-epoch run);
  * colour: filters whose three channel kernels disagree (colour-opponent) rather
    than agree (luminance edges) - random filters are mostly "opponent" by chance;
    training makes more of them luminance detectors (57 -> 47 of 64).
A 5-epoch run moves the filters only part of the way: the grid still looks noisy.
"""
import os
import sys
import tempfile

import numpy as np

from _plotting import figure
from fastconv.train import TrainConfig, build_model, load_model, train

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join("runs", "camera", "checkpoint.npz")
if os.path.isfile(path):
    model, meta = load_model(path)
    config = TrainConfig.saved(meta["config"])
    print(f"{path}: trained {meta['epoch']} epochs, val accuracy "
          f"{meta['metrics'][-1]['val_acc']:.4f}" if meta["metrics"] else path)
else:
    print(f"no checkpoint at {path}: training a small model first (2 epochs, 32x32)")
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(synthetic_size=1600, image_size=32, epochs=2, out=out,
                             width=1.0, pool="avg")               # the article's network
        r = train(config, progress=False, log=lambda *a: None)
    model = r["model"]
    print(f"trained: val accuracy {r['metrics'][-1]['val_acc']:.4f}")

w = model[0].conv.weight.data.astype(np.float64)            # (64 * width, 3, 3, 3)
w0 = build_model(config, 2)[0].conv.weight.data.astype(np.float64)    # its initialisation


def smooth_share(w):
    """Fraction of each filter's energy in the constant + linear-ramp subspace."""
    g = np.arange(3) - 1.0
    basis = np.stack([np.ones((3, 3)), np.tile(g, (3, 1)), np.tile(g[:, None], (1, 3))])
    basis = basis.reshape(3, 9) / np.linalg.norm(basis.reshape(3, 9), axis=1, keepdims=True)
    f = w.reshape(len(w), 3, 9)
    proj = np.einsum("ncp,bp->ncb", f, basis)
    return (proj ** 2).sum(axis=(1, 2)) / (f ** 2).sum(axis=(1, 2))


def colour_opponent(w):
    """Filters whose channel kernels are not all positively correlated."""
    f = w.reshape(len(w), 3, 9)
    f = f - f.mean(axis=2, keepdims=True)
    f /= np.linalg.norm(f, axis=2, keepdims=True) + 1e-12
    corr = np.einsum("ncp,ndp->ncd", f, f)
    return (corr[:, [0, 0, 1], [1, 2, 2]].min(axis=1) < 0).sum()


s_trained, s_init = smooth_share(w), smooth_share(w0)
print(f"smooth (edge / blob) share of filter energy: trained {s_trained.mean():.2f}, "
      f"initialisation {s_init.mean():.2f} (random 3x3: 0.33)")
print(f"colour-opponent filters: trained {colour_opponent(w)}/{len(w)}, "
      f"initialisation {colour_opponent(w0)}/{len(w0)}")
assert s_trained.mean() > s_init.mean(), "training should make the filters smoother"

order = np.argsort(-np.abs(w).sum(axis=(1, 2, 3)))          # strongest filters first


def draw(plt):
    for i, k in enumerate(order):
        f = w[k].transpose(1, 2, 0)
        f = 0.5 + f / (2 * np.abs(f).max() + 1e-12)          # zero -> grey
        ax = plt.subplot(8, 8, i + 1)
        ax.imshow(f, interpolation="nearest")
        ax.axis("off")
    plt.suptitle("camera classifier: first-layer 3x3 filters (RGB, grey = 0)", fontsize=10)


figure("first_layer_filters.png", draw, (6, 6.3))
