"""Loading files never runs code from them, and a bad file changes nothing.

Every loader gets files whose unpickling would create a marker file (a torch.save
pickle and .npz files with an object array), truncated and corrupted files, and files
that do not fit; each must refuse them with a ValueError naming the file, leave the
model and optimiser bit-identical, and never create the marker."""
import dataclasses
import json
import os
import pathlib
import re
import warnings

import numpy as np
import pytest

import fastconv as fc
from fastconv.__main__ import main
from fastconv.train import (TrainConfig, build_model, build_optimizer, load_checkpoint,
                            load_model, restore_checkpoint, save_checkpoint, train)


class _Touch:
    """Unpickling this creates ``marker``: the stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _setup(tmp_path, image_size=16):
    """A small trained-looking run: config, model, an optimiser with state, meta."""
    cfg = TrainConfig(model="linear", image_size=image_size, optimizer="adamw",
                      out=str(tmp_path / "run"))
    model = build_model(cfg, 2)
    opt = build_optimizer(cfg, list(model.parameters()))
    x = np.random.default_rng(0).random((4, 3, image_size, image_size), np.float32)
    crit = fc.nn.CrossEntropyLoss()
    crit(model(x), np.array([0, 1, 0, 1]))
    model.backward(crit.backward(), input_grad=False)
    opt.step()
    meta = dict(config=dataclasses.asdict(cfg), classes=["no_person", "person"], epoch=1,
                step=0, metrics=[], partial=None, num_params=2, image_size=image_size,
                mean=[0.5] * 3, std=[0.25] * 3)
    return cfg, model, opt, meta


def _snapshot(model, opt):
    st = opt.state_dict()
    return model.state_dict(), st["defaults"], st["state"]


def _assert_unchanged(before, model, opt):
    (m0, d0, s0), (m1, d1, s1) = before, _snapshot(model, opt)
    assert m0.keys() == m1.keys() and all(
        m0[k].dtype == m1[k].dtype and m0[k].tobytes() == m1[k].tobytes() for k in m0)
    assert d0 == d1 and len(s0) == len(s1)
    for a, b in zip(s0, s1):
        assert a.keys() == b.keys()
        for k in a:
            assert (a[k].tobytes() == b[k].tobytes()) if isinstance(a[k], np.ndarray) \
                else a[k] == b[k]


@pytest.fixture
def env(tmp_path):
    """Model, optimiser, a valid checkpoint, a valid image, and the crafted files."""
    cfg, model, opt, meta = _setup(tmp_path)
    good = tmp_path / "good.npz"
    save_checkpoint(good, model, opt, meta)
    # the model the loaders write into differs from the file, so a load would show
    _, model2, opt2, _ = _setup(tmp_path)
    for p in model2.parameters():
        p.data = p.data + 1
    marker = tmp_path / "MARKER"
    evil = {}
    evil["npz"] = tmp_path / "evil.npz"
    np.savez(evil["npz"], w=np.array([_Touch(marker)], dtype=object))
    arrays = dict(np.load(good))                # a real checkpoint, one entry poisoned
    arrays["model/1.weight"] = np.array([_Touch(marker)], dtype=object)
    evil["checkpoint"] = tmp_path / "evil_checkpoint.npz"
    np.savez(evil["checkpoint"], **arrays)
    try:
        import torch
        evil["pt"] = tmp_path / "evil.pt"
        torch.save({"1.weight": _Touch(marker)}, evil["pt"])
    except ImportError:
        pass
    return dict(model=model2, opt=opt2, good=good, marker=marker, evil=evil,
                tmp=tmp_path)


def test_crafted_files_do_run_code_when_unpickled(env):
    """The control: unpickling the crafted files really creates the marker."""
    np.load(env["evil"]["npz"], allow_pickle=True)["w"]
    assert env["marker"].exists()
    env["marker"].unlink()
    np.load(env["evil"]["checkpoint"], allow_pickle=True)["model/1.weight"]
    assert env["marker"].exists()
    if "pt" in env["evil"]:
        import torch
        env["marker"].unlink()
        torch.load(env["evil"]["pt"], weights_only=False)
        assert env["marker"].exists()


# every entry point that reads a weights file: name -> call(env, path)
LOADERS = {
    "load_state_dict": lambda e, p: fc.load_state_dict(e["model"], p),
    "import_torch": lambda e, p: fc.import_torch(e["model"], p),
    "load_checkpoint": lambda e, p: load_checkpoint(p),
    "restore_checkpoint": lambda e, p: restore_checkpoint(p, e["model"], e["opt"]),
    "train(resume)": lambda e, p: train(resume=p, progress=False, log=lambda *a: None),
    "load_model (predict)": lambda e, p: load_model(p),
}
CLI = {
    "cli train --resume": lambda p: ["train", "--resume", str(p), "--no-progress"],
    "cli predict": lambda p: ["predict", str(p), "image.png"],
}


def _refused(env, name, path, capsys):
    """Run loader ``name`` on path: a ValueError naming the file (for the command line:
    a one-line error and exit status 2, no traceback)."""
    if name in CLI:
        rc = main(CLI[name](path))
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and str(path) in err, err
        assert "Traceback" not in err
        return err
    if name == "import_torch":
        pytest.importorskip("torch")
    with pytest.raises(ValueError, match=re.escape(repr(str(path)))) as e:
        LOADERS[name](env, path)
    return str(e.value)


@pytest.mark.parametrize("name", [*LOADERS, *CLI])
@pytest.mark.parametrize("kind", ["npz", "checkpoint", "pt"])
def test_crafted_pickles_are_refused_and_never_run(env, name, kind, capsys):
    if kind not in env["evil"]:
        pytest.skip("needs torch to write the crafted .pt")
    before = _snapshot(env["model"], env["opt"])
    _refused(env, name, env["evil"][kind], capsys)
    assert not env["marker"].exists()
    _assert_unchanged(before, env["model"], env["opt"])


def test_import_torch_explains_the_refusal_and_trusted_loads_a_module(tmp_path):
    torch = pytest.importorskip("torch")
    t = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    with torch.no_grad():
        t[1].running_mean.add_(1.5)
    path = tmp_path / "whole.pt"
    torch.save(t, path)                                   # a whole pickled nn.Module
    m = fc.nn.Sequential(fc.nn.Conv2d(3, 4, 3), fc.nn.BatchNorm2d(4))
    before = m.state_dict()
    with pytest.raises(ValueError) as e:
        fc.import_torch(m, path)
    msg = str(e.value)
    assert "torch.nn.modules.container.Sequential" in msg and "run code" in msg
    assert "torch.save(model.state_dict(), path)" in msg and "trusted=True" in msg
    assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())
    fc.import_torch(m, path, trusted=True)
    for k, v in t.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k], v.numpy(), err_msg=k)


def _bad_copies(path, tmp_path):
    """Truncated, random-bytes and bit-flipped copies of a file."""
    data = path.read_bytes()
    flipped = bytearray(data)
    for i in range(len(data) // 3, len(data) // 3 + 64):
        flipped[i] ^= 0xFF
    out = {}
    for tag, b in (("truncated", data[:len(data) // 2]), ("empty", b""),
                   ("random", np.random.default_rng(0).bytes(len(data))),
                   ("flipped", bytes(flipped))):
        out[tag] = tmp_path / f"{tag}{path.suffix}"
        out[tag].write_bytes(b)
    return out


@pytest.mark.parametrize("name", ["load_state_dict", "import_torch", "restore_checkpoint",
                                  "load_model (predict)", "cli train --resume",
                                  "cli predict"])
def test_truncated_or_corrupted_file_is_refused_and_changes_nothing(env, name, capsys):
    source = env["good"]                                  # a checkpoint
    if name == "load_state_dict":
        source = env["tmp"] / "sd.npz"
        fc.save_state_dict(build_model(TrainConfig(model="linear", image_size=16), 2), source)
    elif name == "import_torch":
        pytest.importorskip("torch")
        source = env["tmp"] / "sd.pt"
        fc.export_torch(build_model(TrainConfig(model="linear", image_size=16), 2), source)
    before = _snapshot(env["model"], env["opt"])
    for path in _bad_copies(source, env["tmp"]).values():
        _refused(env, name, path, capsys)
        _assert_unchanged(before, env["model"], env["opt"])
    if name in ("load_state_dict", "import_torch", "restore_checkpoint"):
        LOADERS[name](env, source)                        # the intact file does load
        assert not np.array_equal(env["model"].state_dict()["1.weight"], before[0]["1.weight"])


def test_missing_file_is_a_clear_error(env, capsys):
    for name in [*LOADERS, *CLI]:
        msg = _refused(env, name, env["tmp"] / "nowhere.npz", capsys)
        assert "No such file" in msg or "no checkpoint file" in msg, msg


def _rewrite(src, dst, **changes):
    """Copy checkpoint src to dst with entries replaced (None: removed)."""
    arrays = dict(np.load(src))
    for k, v in changes.items():
        if v is None:
            del arrays[k]
        else:
            arrays[k] = v
    np.savez(dst, **arrays)
    return dst


def test_checkpoint_that_does_not_fit_changes_nothing(env, tmp_path):
    model, opt, good = env["model"], env["opt"], env["good"]
    before = _snapshot(model, opt)
    n = model.state_dict()["1.weight"].size
    raw = json.loads(str(np.load(good)["meta"]))
    cases = {
        # the model part fits but the optimiser state would overrun the kernels' buffers:
        # refused before the model is touched
        "exp_avg": _rewrite(good, tmp_path / "a.npz",
                            **{"optim/0/exp_avg": np.zeros(3, np.float32)}),
        "missing keys": _rewrite(good, tmp_path / "b.npz", **{"model/1.bias": None}),
        # numbers as strings: np.asarray would cast them, the loader must not
        "real numbers": _rewrite(good, tmp_path / "c.npz",
                                 **{"model/1.weight": np.full((2, n // 2), "1.0")}),
        "unexpected entry": _rewrite(good, tmp_path / "d.npz", junk=np.zeros(1)),
        "image_size": _rewrite(good, tmp_path / "e.npz",
                               meta=np.array(json.dumps(dict(raw, image_size=32)))),
        "format": _rewrite(good, tmp_path / "f.npz",
                           meta=np.array(json.dumps(dict(raw, format=99)))),
        "JSON": _rewrite(good, tmp_path / "g.npz", meta=np.array("{not json")),
    }
    for what, path in cases.items():
        with pytest.raises(ValueError, match=re.escape(repr(str(path)))) as e:
            restore_checkpoint(path, model, opt)
        assert what in str(e.value), str(e.value)
        _assert_unchanged(before, model, opt)
    # a checkpoint of a bigger model: shapes differ, for the optimiser as for the model
    _, m32, o32, meta32 = _setup(tmp_path, image_size=32)
    save_checkpoint(tmp_path / "big.npz", m32, o32, meta32)
    with pytest.raises(ValueError, match="does not fit this optimiser"):
        restore_checkpoint(tmp_path / "big.npz", model, opt)
    with pytest.raises(ValueError, match="shape mismatch"):
        restore_checkpoint(tmp_path / "big.npz", model)
    _assert_unchanged(before, model, opt)
    restore_checkpoint(good, model, opt)                 # the intact file does load
    assert not np.array_equal(model.state_dict()["1.weight"], before[0]["1.weight"])


def test_state_dict_file_that_does_not_fit_changes_nothing(tmp_path):
    m = fc.nn.Sequential(fc.nn.Conv2d(3, 4, 3), fc.nn.BatchNorm2d(4))
    before = m.state_dict()
    good = {k: v + 1 for k, v in before.items()}
    for what, state in [("unexpected keys", dict(good, extra=np.zeros(2))),
                        ("shape mismatch", dict(good, **{"0.bias": np.zeros(5)})),
                        ("real numbers", dict(good, **{"0.bias": np.array(["a"] * 4)})),
                        ("real numbers", dict(good, **{"0.bias": np.zeros(4, complex)}))]:
        np.savez(tmp_path / "s.npz", **state)
        with pytest.raises(ValueError, match=what):
            fc.load_state_dict(m, tmp_path / "s.npz")
        assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match="expected an .npz archive"):
        fc.load_state_dict(m, tmp_path / "one.npy")


def test_optimizer_refuses_state_that_does_not_fit():
    p = fc.nn.Linear(3, 2)
    opt = fc.optim.Adam(p.parameters(), 0.1)
    sd = opt.state_dict()
    for bad in [{"step": 1, "exp_avg": np.zeros(5, np.float32),
                 "exp_avg_sq": np.zeros(6, np.float32)},            # 6 values, 5 given
                {"step": 1, "exp_avg": np.zeros(6, np.float32)},     # one missing
                {"step": -1, "exp_avg": np.zeros(6), "exp_avg_sq": np.zeros(6)},
                {"step": 1, "exp_avg": np.zeros(6, object), "exp_avg_sq": np.zeros(6)}]:
        with pytest.raises(ValueError, match="Adam.load_state_dict: parameter 0"):
            opt.load_state_dict({"defaults": sd["defaults"], "state": [bad, {}]})
        assert opt.state == [{}, {}]
    with pytest.raises(ValueError, match="setting 'lr'"):
        opt.load_state_dict({"defaults": dict(sd["defaults"], lr="x"), "state": [{}, {}]})
    assert opt.defaults == sd["defaults"]


def _png(path, size):
    from PIL import Image
    Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(path)
    return path


def test_image_over_pillow_pixel_limit_is_an_unreadable_file(tmp_path, monkeypatch, capsys):
    Image = pytest.importorskip("PIL.Image")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    ok = _png(tmp_path / "ok.png", 8)                    # 64 pixels
    warn = _png(tmp_path / "warn.png", 12)               # 144: Pillow only warns
    bomb = _png(tmp_path / "bomb.png", 20)               # 400: Pillow raises
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    Image.new("RGB", (4, 4)).save(tmp_path / "ppm.png", "PPM")   # a decoder not allowed
    assert fc.data.read_image(ok, 8).shape == (8, 8, 3)
    for path in (warn, bomb, junk, tmp_path / "ppm.png"):
        for action in ("ignore", "error"):               # Pillow's warning made an error too
            with warnings.catch_warnings():
                warnings.simplefilter(action, Image.DecompressionBombWarning)
                with pytest.raises(ValueError, match=re.escape(f"cannot read image "
                                                               f"{str(path)!r}: ")) as e:
                    fc.data.read_image(path, 8)
        if path in (warn, bomb):
            assert "decompression bomb" in str(e.value)
    # predict: a one-line error per such file, the others still classified, exit status 1
    cfg, model, opt, meta = _setup(tmp_path)
    save_checkpoint(tmp_path / "ck.npz", model, opt, meta)
    rc = main(["predict", str(tmp_path / "ck.npz"), str(ok), str(warn), str(bomb), str(junk)])
    out = capsys.readouterr()
    assert rc == 1
    assert [line.split(":")[0] for line in out.out.splitlines()] == [str(ok)]
    errs = [e for e in out.err.strip().splitlines() if ": error: " in e]
    assert [e.split(": error: ")[0] for e in errs] == [str(warn), str(bomb), str(junk)]
    # ImageFolder gives the same error for the file in the folder
    for c in ("a", "b"):
        (tmp_path / "folder" / c).mkdir(parents=True)
        _png(tmp_path / "folder" / c / "x.png", 8)
    os.replace(bomb, tmp_path / "folder" / "b" / "y.png")
    ds = fc.data.ImageFolder(tmp_path / "folder", 8)
    with pytest.raises(ValueError, match=r"cannot read image .*y\.png': .*decompression bomb"):
        ds[2]
