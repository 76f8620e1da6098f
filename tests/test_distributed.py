"""fastconv.distributed: data-parallel training on MPI.

The MPI tests start real jobs with mpiexec (Open MPI from the package index in CI, as
root in a container: the environment below), 2 and 3 ranks; they are skipped where
mpi4py or mpiexec is missing.  The rest runs in this process, without MPI."""
import importlib.util
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import fastconv as fc
from fastconv import _group, data, distributed, nn

HERE = os.path.dirname(os.path.abspath(__file__))
MPI_DIR = os.path.join(HERE, "mpi")


def _mpiexec():
    for name in ("mpiexec", "mpirun"):
        near = os.path.join(os.path.dirname(sys.executable), name)   # the venv's own
        if os.path.exists(near):
            return near
        found = shutil.which(name)
        if found:
            return found
    return None


MPIEXEC = _mpiexec()
# the processes import the fastconv this test imports (the installed one in CI, the
# built checkout in development), never the uncompiled source tree of the working folder
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fc.__file__)))


def _env(**extra):
    return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
                **extra)


def run_python(args, **kw):
    """``python args...`` in one process, from tests/mpi (not the checkout's top)."""
    return subprocess.run([sys.executable, *args], env=_env(), cwd=MPI_DIR,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason="mpi4py and an MPI launcher are needed (pip install 'fastconv[mpi]')")


def mpirun(n, args, timeout=240, threads=1):
    """Run ``python args...`` on n ranks; -> CompletedProcess (stdout + stderr text)."""
    env = _env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl="tcp,self", OMPI_MCA_plm_ssh_agent="false",
               PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe",
               OMP_NUM_THREADS=str(threads))
    return subprocess.run([MPIEXEC, "-n", str(n), "--bind-to", "none", sys.executable, *args],
                          env=env, cwd=MPI_DIR, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace",
                          timeout=timeout)


def train_args(out, *extra):
    return ["-m", "fastconv", "train", "--synthetic-size", "60", "--image-size", "32",
            "--batch-size", "16", "--epochs", "1", "--optimizer", "sgd", "--lr", "0.01",
            "--no-progress", "--threads", "1", "--out", str(out), *extra]


def weights(out):
    from fastconv.train import load_checkpoint
    return load_checkpoint(os.path.join(out, "checkpoint.npz"))[1]


def worst_difference(a, b):
    """Largest |a - b| of any float entry, relative to that entry's largest |a|."""
    return max(float(np.max(np.abs(a[k] - b[k])) / (np.max(np.abs(a[k])) + 1e-12))
               for k in a if a[k].dtype.kind == "f")


# ------------------------------------------------------------------ without MPI

def test_init_names_the_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setattr(_group, "_default", None)
    with pytest.raises(ImportError, match=r"mpi4py.*fastconv\[mpi\]"):
        distributed.init()


def test_ddp_needs_a_group(monkeypatch):
    monkeypatch.setattr(_group, "_default", None)
    with pytest.raises(RuntimeError, match="distributed.init"):
        distributed.DistributedDataParallel(nn.Linear(2, 2))
    assert distributed.get_rank() == 0 and distributed.get_world_size() == 1
    assert not distributed.is_initialized()


def test_import_loads_no_mpi():
    """fastconv.distributed is importable everywhere: mpi4py (which initialises MPI) is
    imported by init() alone."""
    code = "import sys, fastconv; assert 'mpi4py' not in sys.modules; print(fastconv.distributed)"
    r = run_python(["-c", code])
    assert r.returncode == 0, r.stdout


def test_launcher_detected_from_its_environment(monkeypatch):
    for v in distributed._LAUNCHER_VARS:
        monkeypatch.delenv(v, raising=False)
    assert not distributed.launched_by_mpi()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert distributed.launched_by_mpi()


@pytest.mark.parametrize("size", [2, 3, 5])
def test_shards_make_the_whole_batch(size):
    """The ranks' parts of every batch, in rank order, are the one-process batch, with
    the same augmentation; part sizes differ by at most one."""
    ds = data.SyntheticCameraDataset(23, 16, seed=1)
    kw = dict(batch_size=7, shuffle=True, augment=data.Augment(), seed=4)
    full = data.DataLoader(ds, **kw)
    parts = [data.DataLoader(ds, shard=(r, size), **kw) for r in range(size)]
    for k in range(len(full)):
        x, y = full.batch(1, k)
        got = [p.batch(1, k) for p in parts]
        np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), x)
        np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), y)
        sizes = [len(g[1]) for g in got]
        assert max(sizes) - min(sizes) <= 1 and sum(sizes) == len(y)


def test_an_image_folder_rank_reads_only_its_files(tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        os.makedirs(tmp_path / c)
        for i in range(5):
            data.write_image(str(tmp_path / c / f"{i}.png"),
                             rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    ds = data.ImageFolder(str(tmp_path), image_size=8)
    read = []
    load = type(ds)._load
    monkeypatch.setattr(type(ds), "_load", lambda self, i: read.append(i) or load(self, i))
    loader = data.DataLoader(ds, 4, shuffle=True, seed=2, shard=(1, 2))
    mine = []
    for k in range(len(loader)):
        idx = loader.order(0)[k * 4:(k + 1) * 4]
        lo, hi = loader.shard_range(len(idx))
        mine.extend(idx[lo:hi])
        loader.batch(0, k)
    assert sorted(read) == sorted(mine) and len(read) < len(ds)


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0)])
def test_bad_shard_is_refused(shard):
    with pytest.raises(ValueError, match="shard"):
        data.DataLoader(data.SyntheticCameraDataset(4, 16), 2, shard=shard)


class _TwoRanks:
    """A stand-in group of 2 ranks inside one process: the 'other' rank's rows come
    from a second computation, so the reduction's arithmetic is checked without MPI."""
    size, rank = 2, 0

    def __init__(self):
        self.other = []

    def allgather(self, values):
        return np.stack([np.asarray(values, np.float64), self.other.pop(0)])

    def sum(self, values):
        return self.allgather(values).sum(axis=0)


def test_sync_statistics_combine_like_one_batch():
    """Two halves' statistics combined -> the whole batch's mean and biased variance,
    for halves of different sizes and means far from zero (the two-pass formula)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4, 5)) * 2 + 1e3
    b = rng.standard_normal((6, 4, 5)) * 5 + 1e3 + 3
    g = _TwoRanks()

    def stats(x):
        return x.shape[0] * x.shape[2], x.mean(axis=(0, 2)), x.var(axis=(0, 2))
    nb, mb, vb = stats(b)
    g.other.append(np.concatenate([[nb], mb, vb]))
    n, m, v = fc.functional.sync_channel_stats(*stats(a), process_group=g)
    whole = np.concatenate([a, b])
    assert n == whole.shape[0] * whole.shape[2]
    np.testing.assert_allclose(m, whole.mean(axis=(0, 2)), rtol=1e-14)
    np.testing.assert_allclose(v, whole.var(axis=(0, 2)), rtol=1e-10)


# ------------------------------------------------------------------ MPI jobs

@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_data_parallel_equals_one_process(n):
    """tests/mpi/check_ddp.py on n ranks: SyncBatchNorm against BatchNorm2d on the
    concatenated batch (output, input and parameter gradients, running statistics),
    DistributedDataParallel's averaged gradients against one process's on the whole
    batch (tape and explicit chain, several buckets, uneven parts), no_sync, the
    sharded loader, a mismatched model refused."""
    r = mpirun(n, [os.path.join(MPI_DIR, "check_ddp.py")])
    assert r.returncode == 0, r.stdout[-3000:]
    oks = [line.split() for line in r.stdout.splitlines() if line.startswith("ok ")]
    assert sorted(int(o[1]) for o in oks) == list(range(n)), r.stdout[-3000:]
    assert all(int(o[2]) > 50 for o in oks)


@needs_mpi
def test_train_under_mpirun(tmp_path):
    """``mpiexec -n 2 python -m fastconv train``: logs once (rank 0), the same bits when
    run again and with 2 threads per rank, and one process's weights up to rounding
    (one step: later steps let max-pooling's choices amplify rounding, as in any two
    float32 runs that sum in different orders)."""
    one_step = ["--synthetic-size", "40", "--batch-size", "32"]
    r = mpirun(2, train_args(tmp_path / "a", *one_step))
    assert r.returncode == 0, r.stdout[-3000:]
    assert r.stdout.count("epoch 1/1 ") == 1 and "x 2 ranks (MPI)" in r.stdout
    assert r.stdout.count("far-end test set") == 1
    assert mpirun(2, train_args(tmp_path / "b", *one_step)).returncode == 0
    r = mpirun(2, train_args(tmp_path / "c", *one_step) + ["--threads", "2"], threads=2)
    assert r.returncode == 0, r.stdout[-3000:]
    single = run_python(train_args(tmp_path / "d", *one_step))
    assert single.returncode == 0, single.stdout[-3000:]
    a, b, c, d = (weights(tmp_path / k) for k in "abcd")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{k}: a second run differs")
        np.testing.assert_array_equal(a[k], c[k], err_msg=f"{k}: 2 threads per rank differ")
    assert worst_difference(d, a) < 1e-4


@needs_mpi
def test_resume_on_another_number_of_ranks(tmp_path):
    """Ctrl-C on rank 0 alone stops every rank at the same batch with a partial
    checkpoint; ``--resume`` on 3 ranks finishes the epoch as the uninterrupted run on
    2 did, up to rounding."""
    cut = tmp_path / "cut"
    r = mpirun(2, [os.path.join(MPI_DIR, "interrupt.py"), str(cut)])
    assert r.returncode == 0, r.stdout[-3000:]
    assert r.stdout.count("interrupted=True") == 2
    from fastconv.train import load_checkpoint
    meta = load_checkpoint(os.path.join(cut, "checkpoint.npz"))[0]
    assert (meta["epoch"], meta["step"]) == (0, 1)
    r = mpirun(3, ["-m", "fastconv", "train", "--resume", str(cut / "checkpoint.npz"),
                   "--no-progress", "--threads", "1"])
    assert r.returncode == 0, r.stdout[-3000:]
    assert "resuming" in r.stdout and "x 3 ranks" in r.stdout
    whole = tmp_path / "whole"
    assert mpirun(2, train_args(whole)).returncode == 0
    assert worst_difference(weights(whole), weights(cut)) < 1e-3


@needs_mpi
@pytest.mark.parametrize("mode", ["raise", "kill"])
def test_a_failing_rank_ends_the_job(mode):
    """A rank that raises or is killed while the other waits in a collective: the job
    ends within seconds with a non-zero status (and the error shown)."""
    t = time.perf_counter()
    r = mpirun(2, [os.path.join(MPI_DIR, "fault.py"), mode], timeout=60)
    assert r.returncode != 0
    assert time.perf_counter() - t < 30
    assert "got past the collective" not in r.stdout
    if mode == "raise":
        assert "rank 1 cannot go on" in r.stdout


@needs_mpi
def test_killed_rank_leaves_the_last_checkpoint_whole(tmp_path):
    r = mpirun(2, [os.path.join(MPI_DIR, "fault.py"), "train", str(tmp_path)], timeout=120)
    assert r.returncode != 0 and "the run finished" not in r.stdout
    from fastconv.train import load_checkpoint
    meta = load_checkpoint(os.path.join(tmp_path, "checkpoint.npz"))[0]
    assert (meta["epoch"], meta["step"]) == (1, 0)      # the first epoch's, intact


@needs_mpi
def test_bad_arguments_end_every_rank(tmp_path):
    """An error every rank meets (a batch smaller than the ranks) is one line per rank
    and status 2, not a hang."""
    r = mpirun(3, train_args(tmp_path, "--batch-size", "2"), timeout=60)
    assert r.returncode != 0
    assert "smaller than the 3 ranks" in r.stdout
