"""The trainer and the command line: reproducibility, checkpoints, resume, predict."""
import json
import os
import signal

import numpy as np
import pytest

from fastconv import data
from fastconv.__main__ import main
from fastconv.evaluation import HEIGHT_BUCKETS
from fastconv.train import TrainConfig, load_checkpoint, load_model, save_checkpoint, train


def _cfg(tmp_path, name, **kw):
    base = dict(synthetic_size=80, image_size=16, epochs=2, batch_size=16, val_split=0.2,
                out=str(tmp_path / name))
    base.update(kw)
    return TrainConfig(**base)


def _weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _quiet(*a):
    pass


def test_train_writes_everything_and_is_bitwise_reproducible(tmp_path):
    r1 = train(_cfg(tmp_path, "a"), progress=False, log=_quiet)
    r2 = train(_cfg(tmp_path, "b"), progress=False, log=_quiet, far_test=False)
    assert _same(_weights(r1["model"]), _weights(r2["model"]))
    assert [m["train_loss"] for m in r1["metrics"]] == [m["train_loss"] for m in r2["metrics"]]
    out = tmp_path / "a"
    assert (out / "checkpoint.npz").is_file() and (out / "metrics.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics["epochs"]] == [1, 2]
    assert metrics["config"]["image_size"] == 16
    # per-size validation each epoch, and the far-end test set at the end
    report = metrics["epochs"][-1]["val_report"]
    assert report["n"] == 16 and report["accuracy"] == metrics["epochs"][-1]["val_acc"]
    assert [b["range"] for b in report["buckets"]][:4] == [list(b) for b in HEIGHT_BUCKETS]
    assert metrics["hard_test"]["n"] == 800 and metrics["hard_test"] == r1["hard_test"]
    assert [b["n"] for b in metrics["hard_test"]["buckets"]] == [400, 0, 0, 0]
    assert not [f for f in os.listdir(out) if f.startswith(".tmp")]     # atomic writes
    r3 = train(_cfg(tmp_path, "c", seed=1), progress=False, log=_quiet, far_test=False)
    assert not _same(_weights(r1["model"]), _weights(r3["model"]))


def test_resume_from_epoch_checkpoint_equals_uninterrupted(tmp_path):
    full = train(_cfg(tmp_path, "full", epochs=3), progress=False, log=_quiet, far_test=False)
    first = train(_cfg(tmp_path, "part", epochs=3), progress=False, log=_quiet, far_test=False,
                  on_step=lambda e, k: os.kill(os.getpid(), signal.SIGINT) if (e, k) == (0, 4)
                  else None)
    assert first["interrupted"]                       # Ctrl-C at the end of epoch 1
    meta, _, _ = load_checkpoint(first["checkpoint"])
    assert (meta["epoch"], meta["step"]) == (1, 0)
    rest = train(resume=first["checkpoint"], progress=False, log=_quiet, far_test=False)
    assert not rest["interrupted"]
    assert _same(_weights(full["model"]), _weights(rest["model"]))
    assert full["metrics"][-1]["train_loss"] == rest["metrics"][-1]["train_loss"]


def test_resume_mid_epoch_equals_uninterrupted(tmp_path):
    full = train(_cfg(tmp_path, "full"), progress=False, log=_quiet, far_test=False)
    part = train(_cfg(tmp_path, "part"), progress=False, log=_quiet, far_test=False,
                 on_step=lambda e, k: os.kill(os.getpid(), signal.SIGINT) if (e, k) == (1, 2)
                 else None)
    assert part["interrupted"]
    meta, _, opt_state = load_checkpoint(part["checkpoint"])
    assert (meta["epoch"], meta["step"]) == (1, 2)
    assert opt_state["state"][0]["step"] == 6         # Adam's step count survives
    rest = train(resume=part["checkpoint"], progress=False, log=_quiet, far_test=False)
    assert _same(_weights(full["model"]), _weights(rest["model"]))
    assert [m["train_acc"] for m in full["metrics"]] == [m["train_acc"] for m in rest["metrics"]]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_checkpoint_round_trip_restores_optimizer(tmp_path, optimizer):
    r = train(_cfg(tmp_path, optimizer, epochs=1, optimizer=optimizer), progress=False,
              log=_quiet, far_test=False)
    meta, model_state, opt_state = load_checkpoint(r["checkpoint"])
    assert _same(model_state, _weights(r["model"]))
    assert meta["config"]["optimizer"] == optimizer and meta["classes"] == ["no_person", "person"]
    assert len(opt_state["state"]) == meta["num_params"]
    key = "momentum_buffer" if optimizer == "sgd" else "exp_avg"
    assert all(key in s for s in opt_state["state"])
    model, meta2 = load_model(r["checkpoint"])
    assert not model.training and meta2 == meta


def test_load_checkpoint_rejects_other_files(tmp_path):
    p = tmp_path / "plain.npz"
    np.savez(p, w=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastconv checkpoint"):
        load_checkpoint(p)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "junk.npz")


def test_save_checkpoint_never_leaves_a_partial_file(tmp_path, monkeypatch):
    r = train(_cfg(tmp_path, "a", epochs=1), progress=False, log=_quiet, far_test=False)
    before = (tmp_path / "a" / "checkpoint.npz").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(r["checkpoint"], r["model"], __import__("fastconv").optim.SGD(
            r["model"].parameters(), 0.1), {"num_params": 0})
    assert (tmp_path / "a" / "checkpoint.npz").read_bytes() == before
    assert os.listdir(tmp_path / "a").count("checkpoint.npz") == 1
    assert not [f for f in os.listdir(tmp_path / "a") if f.startswith(".tmp")]


def test_bad_config_fields_name_the_option(tmp_path):
    for kw, msg in [(dict(epochs=0), "epochs must be a positive integer"),
                    (dict(lr=-1.0), "lr must be a positive number"),
                    (dict(optimizer="rmsprop"), "optimizer must be"),
                    (dict(val_split=1.5), "val-split must be in"),
                    (dict(image_size=8), "image-size must be >= 16"),
                    (dict(width=0), "width must be a number"),
                    (dict(pool="sum"), "pool must be 'avg' or 'max'"),
                    (dict(model="linear", width=0.5), "width and pool shape the camera"),
                    (dict(data=str(tmp_path / "nowhere")), "no such directory")]:
        with pytest.raises(ValueError, match=msg):
            _cfg(tmp_path, "x", **kw).check()


def test_linear_baseline_model(tmp_path):
    r = train(_cfg(tmp_path, "lin", model="linear", epochs=1), progress=False, log=_quiet,
              far_test=False)
    assert [type(m).__name__ for m in r["model"]] == ["Flatten", "Linear"]


# ------------------------------------------------------------------ command line

def test_cli_train_predict(tmp_path, capsys):
    pytest.importorskip("PIL")
    out = tmp_path / "run"
    rc = main(["train", "--synthetic-size", "64", "--image-size", "16", "--epochs", "1",
               "--batch-size", "16", "--out", str(out), "--no-progress"])
    assert rc == 0
    assert "epoch 1/1" in capsys.readouterr().out
    samples = sorted((out / "samples").iterdir())
    assert samples
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    rc = main(["predict", str(out / "checkpoint.npz"), str(samples[0]), str(bad),
               str(tmp_path / "missing.png")])
    o = capsys.readouterr()
    assert rc == 1
    line = o.out.strip().splitlines()
    assert len(line) == 1 and line[0].startswith(str(samples[0]))
    cls, _, p = line[0].split(": ", 1)[1].split()[:3]
    assert cls in ("person", "no_person") and 0 <= float(p) <= 1
    errs = [e for e in o.err.strip().splitlines() if ": error: " in e]
    assert len(errs) == 2 and "1 frames, 2 unreadable" in o.err


def test_cli_resume_rejects_a_different_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--synthetic-size", "40", "--image-size", "16", "--epochs", "1",
                 "--batch-size", "16", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    rc = main(["train", "--resume", str(out / "checkpoint.npz"), "--lr", "0.5"])
    err = capsys.readouterr().err
    assert rc == 2 and "--lr 0.5 differs" in err and len(err.strip().splitlines()) == 1
    rc = main(["train", "--resume", str(out / "checkpoint.npz"), "--width", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "--width 1.0 differs from its 0.5" in err


@pytest.mark.parametrize("argv, msg", [
    (["train", "--epochs", "0"], "expected a positive integer"),
    (["train", "--epochs", "x"], "expected a positive integer"),
    (["train", "--lr", "-3"], "lr must be a positive number"),
    (["train", "--data", "/no/such/dir"], "no such directory"),
    (["train", "--resume", "/no/such.npz"], "no checkpoint file"),
    (["predict", "/no/such.npz", "a.png"], "no checkpoint file"),
    (["evaluate", "/no/such.npz"], "no checkpoint file"),
    (["evaluate", "x.npz", "--heights", "far"], "expected LO-HI"),
    (["train", "--bogus"], "unrecognized arguments"),
    (["frobnicate"], "invalid choice"),
])
def test_cli_bad_arguments_one_line_exit_2(argv, msg, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert msg in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_help_for_every_command(capsys):
    for cmd in ("train", "predict", "evaluate", "summary", "bench"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "usage: python -m fastconv " + cmd in capsys.readouterr().out


def test_default_shape_and_checkpoints_from_before_width():
    """Unset width / pool mean the measured default (0.5, max); a checkpoint saved
    before the fields existed holds the article's network (1.0, avg)."""
    assert TrainConfig().camera_shape == (0.5, "max")
    assert TrainConfig(width=1.0, pool="avg").camera_shape == (1.0, "avg")
    old = {k: v for k, v in TrainConfig(image_size=32).__dict__.items()
           if k not in ("width", "pool")}
    assert TrainConfig.saved(old).camera_shape == (1.0, "avg")
    assert TrainConfig.saved(dict(old, model="linear")).width is None
