"""Transfer learning in the trainer: --init from a torchvision-format state_dict (a torch
twin's, saved with torch.save: nothing downloaded), --freeze, ImageNet normalisation,
checkpoints, resume and predict with the torchvision models."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import fastconv as fc
from fastconv.train import (IMAGENET_MEAN, IMAGENET_STD, TrainConfig, load_checkpoint,
                            load_model, prepare_input, train)
from helpers import assert_close, torch_or_skip



def _quiet(*a):
    pass


def _cfg(tmp_path, name, **kw):
    base = dict(synthetic_size=32, image_size=16, epochs=1, batch_size=8, val_split=0.2,
                out=str(tmp_path / name))
    base.update(kw)
    return TrainConfig(**base)


def _twin(torch, arch, rng):
    """A randomly initialised torch twin (1000 classes, like torchvision's weights) with
    non-trivial BatchNorm statistics, so a BatchNorm left in training mode would show."""
    import torch_models
    torch.manual_seed(0)
    t = torch_models.ResNet([2, 2, 2, 2], 1000) if arch == "resnet18" else \
        torch_models.MobileNetV2(1000) if arch == "mobilenet_v2" else \
        getattr(torch_models, arch)(1000)
    for m in t.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.tensor(rng.standard_normal(m.num_features) * 0.1))
            m.running_var.copy_(torch.tensor(rng.uniform(0.5, 2, m.num_features)))
    return t


def _save_twin(torch, arch, path, rng):
    state = _twin(torch, arch, rng).state_dict()
    torch.save(state, path)
    return {k: v.numpy().copy() for k, v in state.items()}


@pytest.mark.parametrize("arch, freeze, frozen_prefixes, first_trained", [
    ("mobilenet_v3_small", "features.3", [f"features.{i}." for i in range(4)], "features.4."),
    ("resnet18", "2", ["conv1.", "bn1.", "layer1."], "layer2."),
    ("mobilenet_v2", "features.5", [f"features.{i}." for i in range(6)], "features.6."),
])
def test_init_and_freeze_train_only_the_unfrozen_stages(arch, freeze, frozen_prefixes,
                                                        first_trained, tmp_path, rng):
    torch = torch_or_skip()
    init = _save_twin(torch, arch, tmp_path / "init.pt", rng)
    lines = []
    r = train(_cfg(tmp_path, "run", model=arch, init=str(tmp_path / "init.pt"), freeze=freeze),
              progress=False, log=lines.append)
    model = r["model"]
    head = {"resnet18": "fc", "mobilenet_v2": "classifier.1"}.get(arch, "classifier.3")
    after = model.state_dict()
    assert after[f"{head}.weight"].shape[0] == 2 == len(r["classes"])
    params = dict(model.named_parameters())
    frozen = [k for k in after if any(k.startswith(p) for p in frozen_prefixes)]
    trained = [k for k in after if k not in frozen and not k.startswith(head + ".")]
    assert frozen and trained and any(k.startswith(first_trained) for k in trained)
    for k in frozen:                 # weights and BatchNorm statistics: the file's bits
        assert np.array_equal(after[k], init[k]), k
        if k in params:
            assert not params[k].requires_grad and params[k].grad is None, k
    for k in trained:
        if k in params or k.endswith("running_mean"):
            assert not np.array_equal(after[k], init[k]), f"{k} did not train"
    n_frozen = sum(params[k].data.size for k in frozen if k in params)
    n_all = sum(p.data.size for p in params.values())
    assert any(f"trainable parameters: {n_all - n_frozen:,} of {n_all:,} (frozen: " in s
               for s in lines), lines
    assert any(s.startswith("init: ") and "head skipped" in s and f"{head}.weight (1000, "
               in s for s in lines), lines
    meta, _, _ = load_checkpoint(r["checkpoint"])
    assert meta["mean"] == list(IMAGENET_MEAN) and meta["std"] == list(IMAGENET_STD)
    assert meta["config"]["freeze"] == freeze and meta["config"]["model"] == arch


def test_npz_and_checkpoint_inits_equal_the_pt_init(tmp_path, rng):
    torch = torch_or_skip()
    init = _save_twin(torch, "mobilenet_v3_small", tmp_path / "init.pt", rng)
    np.savez(tmp_path / "init.npz", **init)
    kw = dict(model="mobilenet_v3_small", freeze="features.10", synthetic_size=24)
    a = train(_cfg(tmp_path, "pt", init=str(tmp_path / "init.pt"), **kw), progress=False,
              log=_quiet, far_test=False)
    b = train(_cfg(tmp_path, "npz", init=str(tmp_path / "init.npz"), **kw), progress=False,
              log=_quiet, far_test=False)
    sa, sb = a["model"].state_dict(), b["model"].state_dict()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    # a fastconv checkpoint's model as the init: every stage frozen, so its weights stay
    c = train(_cfg(tmp_path, "ckpt", init=a["checkpoint"], freeze="all", model=kw["model"],
                   synthetic_size=24), progress=False, log=_quiet, far_test=False)
    sc = c["model"].state_dict()
    assert all(np.array_equal(sc[k], sa[k]) for k in sa if not k.startswith("classifier.3."))


def test_bad_init_files_and_freeze_specs_say_what_is_wrong(tmp_path, rng):
    torch = torch_or_skip()
    state = _twin(torch, "mobilenet_v3_small", rng).state_dict()

    def run(path, **kw):
        kw.setdefault("model", "mobilenet_v3_small")
        return train(_cfg(tmp_path, "bad", init=str(path), **kw), progress=False, log=_quiet, far_test=False)

    missing = dict(state)
    del missing["features.1.block.0.0.weight"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"init: .*missing\.pt.* does not fit this MobileNetV3: "
                       r".*missing keys \['features\.1\.block\.0\.0\.weight'\], unexpected keys "
                       r"\[\].*torchvision-format state_dict of mobilenet_v3_small"):
        run(tmp_path / "missing.pt")
    extra = dict(state, **{"features.99.weight": torch.zeros(3)})
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match=r"unexpected keys \['features\.99\.weight'\]"):
        run(tmp_path / "extra.pt")
    wrong = dict(state, **{"features.0.0.weight": torch.zeros(16, 3, 5, 5)})
    np.savez(tmp_path / "wrong.npz", **{k: np.asarray(v) for k, v in wrong.items()})
    with pytest.raises(ValueError, match=r"shape mismatch for 'features\.0\.0\.weight': "
                       r"expected \(16, 3, 3, 3\), got \(16, 3, 5, 5\)"):
        run(tmp_path / "wrong.npz")
    torch.save(state, tmp_path / "v3.pt")          # mobilenet_v3 weights: wrong for a ResNet
    with pytest.raises(ValueError, match="does not fit this ResNet: .*missing keys"):
        run(tmp_path / "v3.pt", model="resnet18")
    for path, msg in [(tmp_path / "nowhere.pt", "init: no such file"),
                      (tmp_path, "init: no such file"),
                      (tmp_path / "v3.bin", "expected a .pt, .pth or .npz")]:
        if path.suffix == ".bin":
            path.write_bytes(b"x")
        with pytest.raises(ValueError, match=msg):
            run(path)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"init: import_torch: cannot read .*junk\.pt"):
        run(tmp_path / "junk.pt")
    for freeze, msg in [("layer9", r"expected a stage count 0-14, 'all' or a stage of "
                                   r"mobilenet_v3_small \(features\.0, .*classifier\.0\); "
                                   r"got 'layer9'"),
                        ("15", "mobilenet_v3_small has 14 stages")]:
        with pytest.raises(ValueError, match=msg):
            run(tmp_path / "v3.pt", freeze=freeze)
    with pytest.raises(ValueError, match="the linear model has no stages"):
        train(_cfg(tmp_path, "lin", model="linear", freeze="1"), progress=False, log=_quiet, far_test=False)
    with pytest.raises(ValueError, match="model must be one of camera, linear, resnet18"):
        _cfg(tmp_path, "x", model="vgg16").check()


def test_resume_with_init_and_freeze_equals_uninterrupted(tmp_path, rng):
    """Dropout (mobilenet_v3's classifier) draws its masks per batch from the seed, and
    the freeze is applied again on resume; the init file is no longer needed."""
    torch = torch_or_skip()
    _save_twin(torch, "mobilenet_v3_small", tmp_path / "init.pt", rng)
    kw = dict(model="mobilenet_v3_small", init=str(tmp_path / "init.pt"), freeze="features.8",
              epochs=2, synthetic_size=24)
    full = train(_cfg(tmp_path, "full", **kw), progress=False, log=_quiet, far_test=False)
    part = train(_cfg(tmp_path, "part", **kw), progress=False, log=_quiet, far_test=False,
                 on_step=lambda e, k: os.kill(os.getpid(), signal.SIGINT) if (e, k) == (1, 1)
                 else None)
    assert part["interrupted"]
    os.remove(tmp_path / "init.pt")
    rest = train(resume=part["checkpoint"], progress=False, log=_quiet, far_test=False)
    a, b = full["model"].state_dict(), rest["model"].state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert [m["train_loss"] for m in full["metrics"]] == [m["train_loss"] for m in rest["metrics"]]
    p = dict(rest["model"].named_parameters())
    assert not p["features.8.block.0.0.weight"].requires_grad
    assert p["features.9.block.0.0.weight"].requires_grad


def test_frozen_camera_classifier_trains_on_the_tape(tmp_path):
    """The trainer's own network freezes by block count; its default run (no freeze)
    keeps the explicit backward, whose bits the reproducibility tests pin."""
    r0 = train(_cfg(tmp_path, "a"), progress=False, log=_quiet, far_test=False)
    r = train(_cfg(tmp_path, "b", init=r0["checkpoint"], freeze="2"), progress=False,
              log=_quiet, far_test=False)
    before, after = r0["model"].state_dict(), r["model"].state_dict()
    for k in after:         # blocks 0 and 1 keep the init's bits; the rest (head too) train
        assert np.array_equal(before[k], after[k]) == k.startswith(("0.", "1.")), k
    meta, _, _ = load_checkpoint(r["checkpoint"])
    assert meta["mean"] == list(fc.data.MEAN)        # no ImageNet statistics for camera


def test_predict_uses_the_checkpoints_normalisation(tmp_path, rng):
    torch = torch_or_skip()
    _save_twin(torch, "mobilenet_v3_small", tmp_path / "init.pt", rng)
    r = train(_cfg(tmp_path, "run", model="mobilenet_v3_small", init=str(tmp_path / "init.pt"),
                   freeze="all", synthetic_size=24), progress=False, log=_quiet, far_test=False)
    model, meta = load_model(r["checkpoint"])
    assert type(model).__name__ == "MobileNetV3" and not model.training
    img = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    direct = ((img / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)).transpose(
        0, 3, 1, 2)
    x = prepare_input(img, meta)
    assert x.dtype == np.float32 and x.shape == (2, 3, 16, 16)
    assert_close(x, direct, 1e-6, "ImageNet normalisation")
    with fc.no_grad():
        assert_close(model(x), model(direct.astype(np.float32)), 1e-5, "logits")


def test_imagenet_normalisation_reaches_training_and_validation(tmp_path):
    """normalize="imagenet" on the camera classifier (whose logits react to its input):
    the first BatchNorm's running mean after an epoch at a negligible learning rate is
    the running average of its batches' means computed from ImageNet-normalised batches
    (the trainer's loader, rebuilt here), and the reported validation loss is the
    model's on ImageNet-normalised validation images."""
    from fastconv import data
    from fastconv.train import build_dataset, build_model, build_splits
    config = _cfg(tmp_path, "run", normalize="imagenet", lr=1e-12, synthetic_size=48,
                  width=1.0)
    r = train(config, progress=False, log=_quiet, far_test=False)
    train_for, val = build_splits(config, build_dataset(config))
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)

    def imagenet(imgs):
        return ((imgs / 255.0 - mean) / std).transpose(0, 3, 1, 2).astype(np.float32)

    conv0 = build_model(config, 2)[0].conv           # the initial weights: lr 1e-12 keeps them
    loader = data.DataLoader(train_for(0), config.batch_size, shuffle=True, seed=config.seed,
                             drop_last=True)
    want = {"imagenet": np.zeros(64), "camera": np.zeros(64)}
    for x, _ in loader.epoch(0):
        raw = np.clip(np.rint((x.transpose(0, 2, 3, 1) * np.array(data.STD) + np.array(
            data.MEAN)) * 255), 0, 255)             # the loader's uint8 pixels back
        for kind, inp in (("imagenet", imagenet(raw)), ("camera", x)):
            want[kind] = 0.9 * want[kind] + 0.1 * conv0(inp).mean(axis=(0, 2, 3))
    got = r["model"].state_dict()["0.bn.running_mean"]
    assert_close(got, want["imagenet"], 1e-4, "running mean")
    assert np.abs(got - want["camera"]).max() > 100 * 1e-4 * np.abs(got).max()
    model = r["model"].eval()
    imgs = val.images(np.arange(len(val)))
    with fc.no_grad():
        loss = fc.nn.CrossEntropyLoss()(model(imagenet(imgs)), val.labels)
        other = fc.nn.CrossEntropyLoss()(model(data.normalize(imgs)), val.labels)
    # a fresh head keeps the logits small: the two normalisations' losses differ by ~5e-5
    assert_close(loss, r["metrics"][-1]["val_loss"], 1e-6, "validation loss")
    assert abs(other - loss) > 1e-5 * loss


def test_cli_transfer_train_and_predict(tmp_path, capsys):
    """One subprocess (the real command line), then predict and errors in-process."""
    torch = torch_or_skip()
    pytest.importorskip("PIL")
    from fastconv.__main__ import main
    _save_twin(torch, "mobilenet_v3_small", tmp_path / "init.pt", np.random.default_rng(0))
    out = tmp_path / "run"
    # the fastconv under test (installed, or the built checkout), not the tests' folder
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fc.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [pkg_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    r = subprocess.run([sys.executable, "-m", "fastconv", "train", "--model",
                        "mobilenet_v3_small", "--init", str(tmp_path / "init.pt"), "--freeze",
                        "features.6", "--synthetic-size", "24", "--image-size", "16",
                        "--epochs", "1", "--batch-size", "8", "--out", str(out), "--no-progress"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "trainable parameters: " in r.stdout and "frozen: features.0, " in r.stdout
    assert "head skipped (classifier.3.weight (1000, 1024)" in r.stdout
    sample = sorted((out / "samples").iterdir())[0]
    assert main(["predict", str(out / "checkpoint.npz"), str(sample)]) == 0
    cls, _, p = capsys.readouterr().out.split(": ", 1)[1].split()[:3]
    assert cls in ("person", "no_person") and 0 <= float(p) <= 1
    rc = main(["train", "--model", "resnet18", "--init", str(tmp_path / "init.pt"),
               "--synthetic-size", "24", "--out", str(tmp_path / "bad"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "does not fit this ResNet" in err
    rc = main(["train", "--resume", str(out / "checkpoint.npz"), "--freeze", "2"])
    assert rc == 2 and "--freeze 2 differs from its features.6" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "BatchNorm stays in eval mode" in " ".join(capsys.readouterr().out.split())
