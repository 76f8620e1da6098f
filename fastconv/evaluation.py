"""Person detection by distance: accuracy, false alarms and person recall per height.

A camera classifier that only finds people close to the lens is not a person
detector.  ``size_report`` splits a validation set's results by the height of the
tallest visible person in each scene (as a fraction of the frame's height), by the
number of persons, and by whether they are cut by the frame or partly hidden, so
that a miss at the far end shows up instead of averaging away.

    sizes = synthetic_sizes(dataset)                      # from the renderer's truth
    report = size_report(dataset.labels, predicted, sizes)
    print(format_report(report))

The synthetic scenes know their persons' sizes; for an image folder, ``read_sizes``
takes them from a CSV (``file,height[,persons][,occluded][,cropped]``)."""
import csv
import math
import os
from typing import NamedTuple

import numpy as np

HEIGHT_BUCKETS = ((0.15, 0.3), (0.3, 0.5), (0.5, 0.75), (0.75, 1.05))
"""Person height ranges (fractions of the frame's height) the reports split recall by;
a range holds lo <= height < hi (the last one also its hi)."""

HARD_TEST = dict(n=800, seed=12345, heights=(0.15, 0.3))
"""The fixed far-end test set: 800 synthetic scenes (seed 12345), every person and
every stand-in object 0.15-0.3 of the frame's height."""

TEST = dict(n=800, seed=12345)
"""The default test set of ``python -m fastconv evaluate``: 800 scenes the training
run never saw (training renders from its own seed), persons at every distance."""


class SceneSizes(NamedTuple):
    """Per-scene facts for the size metrics, each (n,).  height: the tallest visible
    person's full height / H (nan where no person is visible or the size is unknown);
    persons: visible persons (-1: unknown); occluded / cropped: some person is more
    than 5 % hidden / cut by the frame's edge."""

    height: np.ndarray
    persons: np.ndarray
    occluded: np.ndarray
    cropped: np.ndarray


def synthetic_sizes(dataset, indices=None):
    """SceneSizes of synthetic scenes (a SyntheticCameraDataset or a Subset of one),
    from the renderer's truth (one render per scene, or the cache of ``with_masks``)."""
    idx = np.arange(len(dataset)) if indices is None else np.asarray(indices, np.int64)
    out = _empty_sizes(len(idx))
    for k, i in enumerate(idx):
        _record(out, k, dataset.scene(int(i)))
    return out


def _empty_sizes(n):
    return SceneSizes(np.full(n, np.nan, np.float32), np.zeros(n, np.int64),
                      np.zeros(n, bool), np.zeros(n, bool))


def _record(sizes, k, scene):
    """Row k of ``sizes`` from a synthetic Scene."""
    if len(scene.heights):
        sizes.height[k] = scene.heights.max()
    sizes.persons[k] = len(scene.heights)
    sizes.occluded[k] = bool(scene.occluded.any())
    sizes.cropped[k] = bool(scene.cropped.any())


def read_sizes(path, dataset):
    """SceneSizes of an ImageFolder from a CSV with a header naming its columns:
    ``file`` (the image's path under the folder's root, e.g. ``person/0001.png``, or
    its file name when that is unique), ``height`` (the tallest person's height / the
    image's height; empty for none) and optionally ``persons`` (a count), ``occluded``
    and ``cropped`` (0/1).  Images the CSV does not name have unknown sizes."""
    if not os.path.isfile(path):
        raise ValueError(f"sizes: no CSV file {path!r}")
    files = [os.path.relpath(f, dataset.root).replace(os.sep, "/") for f in dataset.files]
    where = {f: i for i, f in enumerate(files)}
    names = {}
    for i, f in enumerate(files):
        names.setdefault(os.path.basename(f), []).append(i)
    out = _empty_sizes(len(files))
    out.persons[:] = -1
    with open(path, newline="") as fh:
        rows = csv.DictReader(fh)
        if rows.fieldnames is None or not {"file", "height"} <= set(rows.fieldnames):
            raise ValueError(f"sizes {path!r}: the header must name the columns 'file' and "
                             f"'height', got {rows.fieldnames}")
        for line, row in enumerate(rows, start=2):
            f = (row["file"] or "").strip().replace("\\", "/")
            i = where.get(f)
            if i is None:
                hits = names.get(os.path.basename(f), [])
                if len(hits) != 1:
                    why = "ambiguous: give its class folder" if hits else \
                        "not an image of the folder"
                    raise ValueError(f"sizes {path!r} line {line}: {f!r} is {why}")
                i = hits[0]
            out.height[i] = _number(row["height"], path, line, "height", allow_empty=True)
            n = row.get("persons")
            out.persons[i] = int(_number(n, path, line, "persons")) if n not in (None, "") \
                else int(math.isfinite(out.height[i]))
            for name in ("occluded", "cropped"):
                v = row.get(name)
                getattr(out, name)[i] = bool(_number(v, path, line, name)) if v not in (None, "") \
                    else False
    return out


def _number(text, path, line, column, allow_empty=False):
    text = (text or "").strip()
    if not text and allow_empty:
        return math.nan
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"sizes {path!r} line {line}: {column} must be a number, got "
                         f"{text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"sizes {path!r} line {line}: {column} must be >= 0, got {text!r}")
    return v


def _rate(hits, n):
    return dict(n=int(n), rate=float(hits) / int(n) if n else None)


def size_report(labels, predicted, sizes=None, positive=1, scores=None,
                false_alarm_target=0.02):
    """Scores of a person detector, as a JSON-able dict.

    labels, predicted: int (n,) classes (``positive`` is "person"); sizes: SceneSizes
    or None.  Returns n, accuracy, false_alarm (the share of scenes without a person
    called "person"), recall, and with sizes: ``buckets`` (recall of the person scenes
    whose tallest visible person falls in each HEIGHT_BUCKETS range, also one for
    heights outside them when there are some), ``persons`` (recall by 1, 2, 3...
    visible persons, 0 for person scenes whose figures are all hidden), ``occluded``
    and ``cropped`` (recall where some person is partly hidden / cut by the frame).
    Each recall is {"n": scenes, "rate": share found, or None when n is 0}.

    scores: float (n,), the detector's person probability; then ``operating_point``
    holds the same recalls at the alarm threshold that keeps this set's false alarms
    at most ``false_alarm_target`` (a scene alarms when its score is above the
    threshold): what the detector finds when it may cry wolf that rarely."""
    y = np.asarray(labels).reshape(-1)
    p = np.asarray(predicted).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"size_report: {len(y)} labels but {len(p)} predictions")
    pos, found = y == positive, p == positive
    r = dict(n=int(len(y)), accuracy=float((y == p).mean()) if len(y) else None,
             false_alarm=_rate((found & ~pos).sum(), (~pos).sum())["rate"],
             negatives=int((~pos).sum()), recall=_rate((found & pos).sum(), pos.sum())["rate"],
             positives=int(pos.sum()))
    if scores is not None:
        r["operating_point"] = _operating_point(y, scores, sizes, positive, false_alarm_target)
        if pos.any() and (~pos).any():
            c = curves(y, scores, positive)
            r["roc_auc"], r["average_precision"] = c["roc_auc"], c["average_precision"]
    if sizes is None:
        return r
    if len(sizes.height) != len(y):
        raise ValueError(f"size_report: {len(y)} labels but sizes of {len(sizes.height)} scenes")
    h = sizes.height
    known = pos & np.isfinite(h)
    buckets, inside = [], np.zeros(len(y), bool)
    for k, (lo, hi) in enumerate(HEIGHT_BUCKETS):
        last = k == len(HEIGHT_BUCKETS) - 1
        m = known & (h >= lo) & ((h <= hi + 1e-6) if last else (h < hi))
        inside |= m
        buckets.append(dict(range=[lo, hi], **_rate((found & m).sum(), m.sum())))
    rest = known & ~inside
    if rest.any():
        buckets.append(dict(range=[float(h[rest].min()), float(h[rest].max())], other=True,
                            **_rate((found & rest).sum(), rest.sum())))
    r["buckets"] = buckets
    counts = sizes.persons
    r["persons"] = {str(c): _rate((found & pos & (counts == c)).sum(), (pos & (counts == c)).sum())
                    for c in sorted(set(counts[pos & (counts >= 0)].tolist()))}
    for name in ("occluded", "cropped"):
        m = pos & getattr(sizes, name)
        r[name] = _rate((found & m).sum(), m.sum())
    if "operating_point" in r:                # after the recalls it repeats, in the JSON
        r["operating_point"] = r.pop("operating_point")
    return r


def alarm_threshold(labels, scores, false_alarm_target, positive=1):
    """The lowest alarm threshold (a scene alarms when its score is above it) that keeps
    the share of negative scenes alarming at or below false_alarm_target: the
    (floor(target * negatives) + 1)-th highest negative score (-inf: every scene may
    alarm)."""
    y = np.asarray(labels).reshape(-1)
    s = np.asarray(scores, np.float64).reshape(-1)
    neg = np.sort(s[y != positive])[::-1]
    allowed = int(np.floor(false_alarm_target * len(neg) + 1e-9))
    return float(neg[allowed]) if allowed < len(neg) else -np.inf


def alarm_metrics(labels, scores, threshold, positive=1):
    """Alarms (score > threshold) against the truth, as a JSON-able dict: threshold,
    precision (alarms that were persons), recall, f1, false_alarm, and the confusion
    counts tn, fp, fn, tp (None for a rate with nothing to count)."""
    y = np.asarray(labels).reshape(-1) == positive
    alarm = np.asarray(scores, np.float64).reshape(-1) > threshold
    tp, fp = int((alarm & y).sum()), int((alarm & ~y).sum())
    fn, tn = int((~alarm & y).sum()), int((~alarm & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) \
        if precision is not None and recall is not None and precision + recall > 0 else None
    return dict(threshold=float(threshold), precision=precision, recall=recall, f1=f1,
                false_alarm=fp / (fp + tn) if fp + tn else None,
                confusion=dict(tn=tn, fp=fp, fn=fn, tp=tp))


def curves(labels, scores, positive=1):
    """ROC and precision-recall curves of a detector, every distinct score a threshold
    (highest first): dict of arrays fpr, tpr (= recall), precision, thresholds, and the
    areas roc_auc (trapezoids; the chance a person scene outscores an empty one) and
    average_precision (sum of precision times recall steps, as scikit-learn)."""
    y = np.asarray(labels).reshape(-1) == positive
    s = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]   # the end of each tie group
    tp = np.cumsum(y)[last].astype(np.float64)
    fp = (last + 1 - tp).astype(np.float64)
    P, N = max(float(y.sum()), 1e-300), max(float((~y).sum()), 1e-300)
    tpr, fpr = np.r_[0.0, tp / P], np.r_[0.0, fp / N]
    precision = np.r_[1.0, tp / np.maximum(tp + fp, 1)]
    roc_auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    ap = float(np.sum(np.diff(tpr) * precision[1:]))
    return dict(fpr=fpr, tpr=tpr, precision=precision, thresholds=np.r_[np.inf, s[last]],
                roc_auc=roc_auc, average_precision=ap)


def plot_curves(labels, scores, path, threshold=None, positive=1, title=None):
    """ROC and precision-recall curves side by side in one PNG at path, with the alarm
    threshold's point marked.  Needs matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    c = curves(labels, scores, positive)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    a.plot(c["fpr"], c["tpr"], label=f"AUC {c['roc_auc']:.3f}")
    a.plot([0, 1], [0, 1], ":", color="grey")
    a.set(xlabel="false alarm rate (empty scenes alarming)", ylabel="person recall",
          title="ROC")
    b.plot(c["tpr"], c["precision"], label=f"AP {c['average_precision']:.3f}")
    b.set(xlabel="person recall", ylabel="precision (alarms that were persons)",
          title="precision-recall", ylim=(0, 1.02))
    if threshold is not None:
        m = alarm_metrics(labels, scores, threshold, positive)
        lbl = f"threshold {threshold:.3f}"
        if m["false_alarm"] is not None and m["recall"] is not None:
            a.plot([m["false_alarm"]], [m["recall"]], "o", color="C3", label=lbl)
        if m["recall"] is not None and m["precision"] is not None:
            b.plot([m["recall"]], [m["precision"]], "o", color="C3", label=lbl)
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _operating_point(y, scores, sizes, positive, target):
    s = np.asarray(scores, np.float64).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"size_report: {len(y)} labels but {len(s)} scores")
    threshold = alarm_threshold(y, s, target, positive)
    alarm = (s > threshold).astype(np.int64)
    r = size_report(y == positive, alarm, sizes, positive=1)
    keep = {k: r[k] for k in ("false_alarm", "recall", "buckets", "persons", "occluded",
                              "cropped") if k in r}
    m = alarm_metrics(y, s, threshold, positive)
    return dict(target=target, threshold=threshold, precision=m["precision"], f1=m["f1"],
                confusion=m["confusion"], **keep)


def _pct(v):
    return "   -  " if v is None else f"{100 * v:5.1f}%"


def format_report(report, title=None):
    """The report as a text table (what ``evaluate`` prints)."""
    lines = [title] if title else []
    lines.append(f"accuracy {_pct(report['accuracy']).strip()} on {report['n']} scenes; "
                 f"person recall {_pct(report['recall']).strip()} of {report['positives']}, "
                 f"false alarms {_pct(report['false_alarm']).strip()} of {report['negatives']}")
    if "buckets" in report:
        lines.append("  person recall by the tallest person's height (fraction of the frame):")
        for b in report["buckets"]:
            if b["n"] == 0 and any(x["n"] for x in report["buckets"]):
                continue                      # a set drawn at some distances only
            lo, hi = b["range"]
            name = f"{lo:.2f}-{hi:.2f} H" + (" (outside the ranges)" if b.get("other") else "")
            lines.append(f"    {name:<28} {_pct(b['rate'])}  ({b['n']} scenes)")
        parts = [f"{c} person{'s' if c != '1' else ''}: {_pct(v['rate']).strip()} ({v['n']})"
                 if c != "0" else f"all hidden: {_pct(v['rate']).strip()} ({v['n']})"
                 for c, v in report["persons"].items()]
        if parts:
            lines.append("  by count: " + ", ".join(parts))
        lines.append(f"  partly hidden: {_pct(report['occluded']['rate']).strip()} "
                     f"({report['occluded']['n']}), cut by the frame: "
                     f"{_pct(report['cropped']['rate']).strip()} ({report['cropped']['n']})")
    op = report.get("operating_point")
    if op is not None:
        lines.append(f"  at most {100 * op['target']:g}% false alarms (alarm when p(person) > "
                     f"{op['threshold']:.3f}): {_pct(op['false_alarm']).strip()} false "
                     f"alarms, person recall {_pct(op['recall']).strip()}"
                     + (f"; {bucket_line(op, alarms=False)}" if "buckets" in op else ""))
        if "confusion" in op:
            c = op["confusion"]
            f1 = "-" if op["f1"] is None else f"{op['f1']:.3f}"
            lines.append(f"    precision {_pct(op['precision']).strip()}, F1 {f1}; alarms on "
                         f"{c['tp']} person and {c['fp']} empty scenes, missed {c['fn']}, "
                         f"quiet on {c['tn']}")
    if "roc_auc" in report:
        lines.append(f"  ROC AUC {report['roc_auc']:.3f}, average precision "
                     f"{report['average_precision']:.3f}")
    return "\n".join(lines)


def bucket_line(report, alarms=True):
    """One line of per-bucket recall and false alarms (the trainer's epoch log)."""
    parts = [f"{b['range'][0]:.2f}-{b['range'][1]:.2f}H {_pct(b['rate']).strip()}"
             for b in report.get("buckets", ()) if not b.get("other") and b["n"]]
    line = f"recall {' | '.join(parts)}" if parts else ""
    if alarms:
        line += f"  false alarms {_pct(report['false_alarm']).strip()}"
    return line
