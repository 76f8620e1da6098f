"""Person detection by distance: the size report, the scenes' size law, sizes from a
CSV, and ``python -m fastconv evaluate``."""
import json

import numpy as np
import pytest

from fastconv import data
from fastconv.__main__ import main
from fastconv.data import SyntheticCameraDataset, synthetic
from fastconv.evaluation import (HEIGHT_BUCKETS, SceneSizes, format_report, read_sizes,
                                 size_report, synthetic_sizes)
from fastconv.train import TrainConfig, train

NAN = np.nan


def _sizes(height, persons, occluded=None, cropped=None):
    n = len(height)
    return SceneSizes(np.array(height, np.float32), np.array(persons, np.int64),
                      np.zeros(n, bool) if occluded is None else np.array(occluded),
                      np.zeros(n, bool) if cropped is None else np.array(cropped))


def test_size_report_counts_by_the_definitions():
    #          persons at heights ...................  no person
    labels = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    pred = [1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 0]
    h = [0.2, 0.25, 0.3, 1.05, 0.6, 0.1, NAN, NAN, NAN, NAN, NAN]
    persons = [1, 2, 1, 3, 1, 1, 0, 0, 0, 0, 0]
    occluded = [True, True, False, False, False, False, False, False, False, False, False]
    r = size_report(labels, pred, _sizes(h, persons, occluded, [False] * 10 + [True]))
    assert r["n"] == 11 and r["accuracy"] == pytest.approx(8 / 11)
    assert r["false_alarm"] == pytest.approx(1 / 4) and r["negatives"] == 4
    assert r["recall"] == pytest.approx(5 / 7) and r["positives"] == 7
    b = r["buckets"]
    # 0.3 starts the second range; 1.05 closes the last; 0.1 lies outside all four
    assert [(x["n"], x["rate"]) for x in b[:4]] == [(2, 0.5), (1, 1.0), (1, 0.0), (1, 1.0)]
    assert b[4]["other"] and (b[4]["n"], b[4]["rate"]) == (1, 1.0)
    assert r["persons"] == {"0": {"n": 1, "rate": 1.0}, "1": {"n": 4, "rate": 0.75},
                            "2": {"n": 1, "rate": 0.0}, "3": {"n": 1, "rate": 1.0}}
    assert r["occluded"] == {"n": 2, "rate": 0.5}
    assert r["cropped"] == {"n": 0, "rate": None}            # only a negative is cropped
    text = format_report(r, "t")
    assert "0.15-0.30 H" in text and "50.0%" in text and "outside the ranges" in text
    json.dumps(r)                                            # JSON-able, for metrics.json
    # the operating point: the alarm threshold that keeps false alarms at most 25 %
    scores = [0.95, 0.3, 0.6, 0.8, 0.55, 0.4, 0.7, 0.9, 0.5, 0.2, 0.1]
    op = size_report(labels, pred, _sizes(h, persons), scores=scores,
                     false_alarm_target=0.25)["operating_point"]
    assert op["threshold"] == 0.5 and op["false_alarm"] == 0.25     # only the 0.9 alarms
    assert op["recall"] == pytest.approx(5 / 7)                     # 0.3 and 0.4 missed
    assert [(x["n"], x["rate"]) for x in op["buckets"][:4]] == [(2, 0.5), (1, 1.0), (1, 1.0),
                                                                (1, 1.0)]
    assert "at most 25% false alarms (alarm when p(person) > 0.500)" in format_report(
        size_report(labels, pred, _sizes(h, persons), scores=scores, false_alarm_target=0.25))
    strict = size_report(labels, pred, scores=scores, false_alarm_target=0.0)["operating_point"]
    assert strict["threshold"] == 0.9 and strict["false_alarm"] == 0.0
    assert strict["recall"] == pytest.approx(1 / 7)
    plain = size_report(labels, pred)
    assert "buckets" not in plain and plain["accuracy"] == r["accuracy"]
    with pytest.raises(ValueError, match="11 labels but 3"):
        size_report(labels, pred[:3])


def test_synthetic_sizes_are_the_scenes_truth():
    ds = SyntheticCameraDataset(30, 32, seed=2, with_masks=True)
    sizes = synthetic_sizes(ds)
    for i in range(30):
        s = ds.scene(i)
        assert sizes.persons[i] == len(s.heights)
        if len(s.heights):
            assert sizes.height[i] == s.heights.max()
        else:
            assert np.isnan(sizes.height[i])
        assert sizes.occluded[i] == s.occluded.any() and sizes.cropped[i] == s.cropped.any()


def test_heights_range_bounds_every_person():
    ds = SyntheticCameraDataset(40, 32, seed=5, heights=(0.15, 0.3))
    hs = np.concatenate([ds.scene(i).heights for i in range(40)])
    assert len(hs) > 15 and hs.min() >= 0.15 - 1e-6 and hs.max() <= 0.3 + 1e-6
    assert "heights=(0.15, 0.3)" in repr(ds)
    for bad in [(0.3, 0.15), (0.0, 0.5), (0.2, 1.5), "far", (0.2,)]:
        with pytest.raises(ValueError, match="SyntheticCameraDataset: heights"):
            SyntheticCameraDataset(4, 16, heights=bad)


def test_persons_and_their_stand_ins_share_one_size_law(monkeypatch):
    """Record the height every figure is drawn at: persons and the objects of the
    no-person scenes come from the same law on 0.15-1.05 H, far ones more often, so
    that size alone predicts nothing."""
    drawn = {"person": [], "object": []}

    def recorder(fn, kind):
        def draw(rng, img, base, fx, h):
            drawn[kind].append(h / img.shape[0])
            return fn(rng, img, base, fx, h)
        return draw

    monkeypatch.setattr(synthetic, "_person", recorder(synthetic._person, "person"))
    monkeypatch.setattr(synthetic, "_HARD", [recorder(f, "object") for f in synthetic._HARD])
    monkeypatch.setattr(synthetic, "_OBJECTS", [recorder(f, "object")
                                                for f in synthetic._OBJECTS])
    for i in range(300):
        synthetic.render_scene(np.random.default_rng([7, i]), 24, i % 2 == 0)
    for kind, hs in drawn.items():
        hs = np.array(hs)
        assert hs.min() >= 0.15 - 1e-6 and hs.max() <= 1.05 + 1e-6, kind
        counts = np.histogram(hs, [b[0] for b in HEIGHT_BUCKETS] + [1.05])[0]
        assert counts[0] > counts[-1] > 0.1 * len(hs), (kind, counts)     # far: more often
    p, o = np.log(drawn["person"]), np.log(drawn["object"])
    # log-uniform on [0.15, 1.05]: mean log 0.397, spread 0.56
    for logs in (p, o):
        assert abs(np.exp(logs.mean()) - np.sqrt(0.15 * 1.05)) < 0.05
    assert abs(p.std() - o.std()) < 0.08


def _folder(tmp_path):
    PIL = pytest.importorskip("PIL.Image")
    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for c in ("no_person", "person"):
        (root / c).mkdir(parents=True)
        for k in range(3):
            PIL.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                root / c / f"{c[0]}{k}.png")
    return root


def test_read_sizes_from_a_csv(tmp_path):
    root = _folder(tmp_path)
    ds = data.ImageFolder(str(root), 16)
    csv = tmp_path / "sizes.csv"
    csv.write_text("file,height,persons,occluded\nperson/p0.png,0.2,2,1\np1.png,0.8,,\n"
                   "no_person/n0.png,,0,\n")
    s = read_sizes(str(csv), ds)
    files = [f.replace("\\", "/").split("/")[-1] for f in ds.files]
    at = {f: i for i, f in enumerate(files)}
    assert s.height[at["p0.png"]] == pytest.approx(0.2) and s.persons[at["p0.png"]] == 2
    assert s.occluded[at["p0.png"]] and not s.occluded[at["p1.png"]]
    assert s.height[at["p1.png"]] == pytest.approx(0.8) and s.persons[at["p1.png"]] == 1
    assert np.isnan(s.height[at["n0.png"]]) and s.persons[at["n0.png"]] == 0
    assert np.isnan(s.height[at["p2.png"]]) and s.persons[at["p2.png"]] == -1   # not named
    for text, msg in [("file,size\n", "must name the columns"),
                      ("file,height\nperson/zz.png,0.3\n", "line 2: 'person/zz.png' is not"),
                      ("file,height\np0.png,tall\n", "height must be a number"),
                      ("file,height\np0.png,-1\n", "height must be >= 0")]:
        csv.write_text(text)
        with pytest.raises(ValueError, match=msg):
            read_sizes(str(csv), ds)
    with pytest.raises(ValueError, match="no CSV file"):
        read_sizes(str(tmp_path / "none.csv"), ds)


def test_cli_evaluate_synthetic_and_folder(tmp_path, capsys):
    out = tmp_path / "run"
    train(TrainConfig(synthetic_size=40, image_size=16, epochs=1, out=str(out)),
          progress=False, log=lambda *a: None, far_test=False)
    ckpt = str(out / "checkpoint.npz")
    js = tmp_path / "r.json"
    assert main(["evaluate", ckpt, "--scenes", "40", "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "40 synthetic scenes (seed 12345)" in text and "0.15-0.30 H" in text
    r = json.loads(js.read_text())
    assert r["n"] == 40 and sum(b["n"] for b in r["buckets"]) <= r["positives"] == 20
    assert main(["evaluate", ckpt, "--hard", "--scenes", "20", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert "0.15-0.3 H" in text and "0.15-0.30 H" in text and "0.30-0.50 H" not in text
    root = _folder(tmp_path)
    csv = tmp_path / "s.csv"
    csv.write_text("file,height\np0.png,0.4\np1.png,0.9\n")
    assert main(["evaluate", ckpt, "--data", str(root), "--sizes", str(csv)]) == 0
    o = capsys.readouterr().out
    assert "6 images of" in o and "(1 scenes)" in o
    for argv, msg in [(["--sizes", str(csv)], "--sizes is for an image folder"),
                      (["--data", str(root), "--hard"], "choose synthetic scenes"),
                      (["--data", str(tmp_path / "no")], "must be 'synthetic' or an image")]:
        assert main(["evaluate", ckpt, *argv]) == 2
        assert msg in capsys.readouterr().err
    (root / "person").rename(root / "dog")
    assert main(["evaluate", ckpt, "--data", str(root)]) == 2
    assert "class folders ['dog'] are not among" in capsys.readouterr().err
