"""Choosing the alarm threshold: ROC / PR curves, precision, recall, F1 and confusion
counts at a threshold, the trainer's stored threshold (--alarm-fpr), and ``predict`` on
files, folders, a watched folder and raw frames on standard input."""
import io
import os
import threading
import time

import numpy as np
import pytest

from fastconv import evaluation as E
from fastconv.__main__ import main
from fastconv.data import frames as F


def _scores(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.round(rng.normal(y * 1.2, 1.0), 1)     # rounding makes ties


def test_curves_match_their_definitions():
    """ROC AUC = P(person scene outscores an empty one) (+ half the ties); average
    precision = sum over thresholds of (recall step) x precision, computed by brute
    force here."""
    for positive in (1, 0):
        y, s = _scores(seed=positive)
        if positive == 0:
            s = -s
        c = E.curves(y, s, positive)
        P, N = s[y == positive], s[y != positive]
        auc = (P[:, None] > N[None, :]).mean() + 0.5 * (P[:, None] == N[None, :]).mean()
        ap, prev = 0.0, 0.0
        for t in sorted(set(s), reverse=True):
            alarm = s >= t
            tp = (alarm & (y == positive)).sum()
            r = tp / (y == positive).sum()
            ap += (r - prev) * tp / alarm.sum()
            prev = r
        assert c["roc_auc"] == pytest.approx(auc, abs=1e-12)
        assert c["average_precision"] == pytest.approx(ap, abs=1e-12)
        assert c["fpr"][0] == 0 and c["tpr"][-1] == 1 and c["fpr"][-1] == 1
        assert np.all(np.diff(c["fpr"]) >= 0) and np.all(np.diff(c["tpr"]) >= 0)


def test_alarm_metrics_count_the_confusion():
    y, s = _scores()
    for t in (-1.0, 0.35, 0.6, 5.0):
        m = E.alarm_metrics(y, s, t)
        alarm, pos = s > t, y == 1
        c = m["confusion"]
        assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (
            (alarm & pos).sum(), (alarm & ~pos).sum(), (~alarm & pos).sum(), (~alarm & ~pos).sum())
        if c["tp"] + c["fp"]:
            assert m["precision"] == c["tp"] / (c["tp"] + c["fp"])
            p, r = m["precision"], m["recall"]
            assert m["f1"] == pytest.approx(2 * p * r / (p + r)) if p + r else m["f1"] is None
        else:
            assert m["precision"] is None and m["f1"] is None


@pytest.mark.parametrize("target", [0.0, 0.01, 0.05, 0.2, 0.999])
def test_alarm_threshold_keeps_to_the_target_and_no_lower_does(target):
    y, s = _scores(seed=3)
    t = E.alarm_threshold(y, s, target)
    neg = s[y == 0]
    assert (neg > t).mean() <= target + 1e-12
    lower = np.sort(np.unique(s[s < t]))
    if len(lower):                      # the next lower threshold breaks the target
        assert (neg > lower[-1]).mean() > target


def test_size_report_carries_the_alarm_figures():
    y, s = _scores()
    r = E.size_report(y, (s > 0.5).astype(int), scores=s, false_alarm_target=0.05)
    op = r["operating_point"]
    m = E.alarm_metrics(y, s, op["threshold"])
    assert op["confusion"] == m["confusion"] and op["precision"] == m["precision"]
    assert op["false_alarm"] <= 0.05 and r["roc_auc"] == E.curves(y, s)["roc_auc"]
    text = E.format_report(r)
    assert "ROC AUC" in text and "precision" in text and "F1" in text


# ------------------------------------------------------------------ frames

def _png(path, value):
    from fastconv.data import write_image
    write_image(str(path), np.full((20, 30, 3), value, np.uint8))


def test_frames_from_files_folders_and_a_stream(tmp_path):
    pytest.importorskip("PIL")
    (tmp_path / "d").mkdir()
    for k in (2, 1):
        _png(tmp_path / "d" / f"{k}.png", 10 * k)
    (tmp_path / "d" / "notes.txt").write_text("not an image")
    _png(tmp_path / "a.png", 99)
    raw = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    got = list(F.frames([str(tmp_path / "a.png"), str(tmp_path / "d")], 8, raw=(6, 4),
                        stream=io.BytesIO(raw.tobytes() + b"\\x01\\x02")))
    names = [n for n, _ in got]
    assert names == [str(tmp_path / "a.png"), str(tmp_path / "d" / "1.png"),
                     str(tmp_path / "d" / "2.png"), "frame 0", "frame 1", "frame 2"]
    assert [int(f[0, 0, 0]) for _, f in got[:3]] == [99, 10, 20]
    from fastconv.data.folder import fit_image
    np.testing.assert_array_equal(got[3][1], fit_image(raw[0], 8))
    assert isinstance(got[5][1], ValueError) and "ended inside frame 2" in str(got[5][1])
    assert len(list(F.frames([str(tmp_path / "d")], 8, max_frames=1))) == 1


def test_a_watched_folder_yields_new_images(tmp_path):
    pytest.importorskip("PIL")
    watched, staging = tmp_path / "camera", tmp_path / "staging"
    watched.mkdir(), staging.mkdir()
    _png(watched / "old.png", 1)

    def camera():
        for k in range(3):
            time.sleep(0.15)
            _png(staging / f"new{k}.png", 50 + k)      # written, then moved in whole
            os.replace(staging / f"new{k}.png", watched / f"new{k}.png")
    t = threading.Thread(target=camera, daemon=True)
    t.start()
    got = list(F.frames((), 8, watch=str(watched), poll=0.05, max_frames=3))
    t.join()
    assert [os.path.basename(n) for n, _ in got] == ["new0.png", "new1.png", "new2.png"]
    assert [int(f[0, 0, 0]) for _, f in got] == [50, 51, 52]


# ------------------------------------------------------------------ trainer and predict

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--synthetic-size", "64", "--image-size", "16", "--epochs", "1",
                 "--batch-size", "16", "--out", str(out), "--no-progress",
                 "--alarm-fpr", "0.25"]) == 0
    return out


def test_the_trainer_stores_the_threshold_validation_chose(trained):
    import json
    from fastconv.train import load_checkpoint
    meta = load_checkpoint(str(trained / "checkpoint.npz"))[0]
    report = json.load(open(trained / "metrics.json"))["epochs"][-1]["val_report"]
    op = report["operating_point"]
    assert meta["alarm"]["fpr"] == 0.25 == op["target"]
    assert meta["alarm"]["threshold"] == op["threshold"] and op["false_alarm"] <= 0.25
    if importlib_has("matplotlib"):
        assert os.path.getsize(trained / "roc_pr.png") > 0


def importlib_has(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None


def test_predict_alarms_above_the_threshold(trained, tmp_path, capsys):
    pytest.importorskip("PIL")
    from fastconv.train import load_checkpoint
    threshold = load_checkpoint(str(trained / "checkpoint.npz"))[0]["alarm"]["threshold"]
    capsys.readouterr()
    assert main(["predict", str(trained / "checkpoint.npz"), str(trained / "samples")]) == 0
    o = capsys.readouterr()
    lines = o.out.strip().splitlines()
    assert len(lines) == len(os.listdir(trained / "samples"))
    for line in lines:
        name, rest = line.split(": ", 1)
        cls, _, p, cmp, t = rest.split()[:5]
        assert float(t) == pytest.approx(threshold, abs=5e-4)
        alarm = cmp == ">"              # decided on the unrounded probability
        assert cmp in (">", "<=") and (cls == "person") == alarm and ("ALARM" in rest) == alarm
        assert (float(p) >= threshold - 5e-4) if alarm else (float(p) <= threshold + 5e-4)
        assert rest.endswith(" ms")
    assert "frames/s sustained" in o.err and "p95" in o.err
    # --threshold overrides: everything alarms above 0, nothing above 1
    for t, want in (("0", True), ("1", False)):
        assert main(["predict", str(trained / "checkpoint.npz"), str(trained / "samples"),
                     "--threshold", t]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert all(("ALARM" in line) == want for line in lines)


def test_predict_needs_something_to_read(trained, capsys):
    assert main(["predict", str(trained / "checkpoint.npz")]) == 2
    assert "nothing to classify" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:           # argparse's own one-line error
        main(["predict", str(trained / "checkpoint.npz"), "--raw", "0x3"])
    assert e.value.code == 2 and "WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["predict", str(trained / "checkpoint.npz"), "--watch", "/no/such"]) == 2
