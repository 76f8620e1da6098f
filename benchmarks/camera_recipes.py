"""The camera classifier's recipes side by side: accuracy, false alarms and person
recall per height bucket, on validation and on the far-end test set, against the
wall time of each run.

    python benchmarks/camera_recipes.py RUN_DIR [RUN_DIR ...] [--markdown]

Each RUN_DIR is the ``--out`` of a ``python -m fastconv train`` run (its metrics.json).
The runs behind the README's table, on 2 threads (``--threads 1`` gives the same bits,
slower):

    python -m fastconv train --out runs/w1-64                       # the article's, 5 epochs
    python -m fastconv train --pool max --out runs/w1-64-max
    python -m fastconv train --width 0.5 --pool max --image-size 96 --epochs 7 --out ...
"""
import argparse
import json
import os

from fastconv.train import TrainConfig


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f}"


def row(run):
    with open(os.path.join(run, "metrics.json")) as fh:
        m = json.load(fh)
    c, last = m["config"], m["epochs"][-1]
    val = last.get("val_report", {})
    hard = m.get("hard_test", {})
    seen = sum(round(e["images_per_s"] * e["epoch_seconds"]) for e in m["epochs"])
    buckets = [_pct(b["rate"]) for b in val.get("buckets", []) if not b.get("other")]
    cfg = TrainConfig.saved(c)
    shape = " w{:g} {}".format(*cfg.camera_shape) if cfg.model == "camera" else ""
    setting = (f"{c['model']}{shape} "
               f"{c['image_size']}px {c['epochs']}x{seen // max(c['epochs'], 1)} "
               f"b{c['batch_size']}{' aug' if c.get('augment') else ''}"
               f"{' fixed' if c.get('fresh') is False else ''}")
    wall = m.get("wall_seconds")
    return [setting, "-" if wall is None else f"{wall:.0f}", _pct(last["val_acc"]),
            _pct(val.get("false_alarm")), *buckets, _pct(hard.get("recall")),
            _pct(hard.get("false_alarm"))]


HEAD = ["setting", "wall s", "val acc %", "false alarms %", "recall 0.15-0.3 H",
        "0.3-0.5", "0.5-0.75", "0.75-1.05", "far set recall", "far set false alarms"]


def curve(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for run in runs:
        with open(os.path.join(run, "metrics.json")) as fh:
            m = json.load(fh)
        seen, xs, acc, far = 0, [], [], []
        for e in m["epochs"]:
            seen += round(e["images_per_s"] * e["epoch_seconds"])
            xs.append(seen / 1000)
            acc.append(100 * e["val_acc"])
            far.append(100 * e["val_report"]["buckets"][0]["rate"])
        label = row(run)[0]
        ax.plot(xs, acc, "o-", label=label)
        bx.plot(xs, far, "o-", label=label)
    ax.set(xlabel="training images (thousands)", ylabel="validation accuracy %",
           title="accuracy")
    bx.set(xlabel="training images (thousands)", ylabel="recall %",
           title="person recall, 0.15-0.3 H")
    for x in (ax, bx):
        x.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--curve", metavar="PNG", help="plot validation accuracy and far-person "
                   "recall against the images each run has trained on (matplotlib)")
    a = p.parse_args()
    if a.curve:
        curve(a.runs, a.curve)
    rows = [row(r) for r in a.runs]
    if a.markdown:
        print("| " + " | ".join(HEAD) + " |")
        print("|" + "---|" * len(HEAD))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = [max(len(str(x)) for x in col) for col in zip(HEAD, *rows)]
        for r in [HEAD, *rows]:
            print("  ".join(str(x).ljust(k) for x, k in zip(r, w)))


if __name__ == "__main__":
    main()
