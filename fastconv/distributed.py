"""Data-parallel training on MPI: every rank runs the same model on its part of each
batch, and the gradients are averaged across ranks before each step.

    from fastconv import distributed as dist
    group = dist.init()                            # the job mpirun / srun started
    model = dist.DistributedDataParallel(model)    # rank 0's weights on every rank
    loader = fc.data.DataLoader(ds, 64, shuffle=True, shard=(group.rank, group.size))
    for x, y in loader.epoch(e):                   # this rank's part of each batch of 64
        opt.zero_grad()
        loss = crit(model(fc.Tensor(x)), y)
        loss.backward()                            # gradients averaged while it runs
        opt.step()

Launch with ``mpirun -n 4 python train.py`` (the README's "Training on many machines"
covers hostfiles and Slurm).  Needs mpi4py and an MPI: ``pip install 'fastconv[mpi]'``.

Reductions have a fixed order.  A gradient bucket is split into ``size`` chunks; chunk j
goes to rank j (Alltoall), which adds the ranks' pieces in rank order 0, 1, ..., size-1
and divides by size; the results are shared (Allgather).  Every element is the same sum
in the same order whatever algorithm the MPI library picks, so the bits of a run do not
depend on it, and each rank moves 2 (size-1)/size of the bucket, as a ring allreduce
does.  SyncBatchNorm's per-channel statistics gather every rank's values and add them in
rank order too.
"""
import os
import sys
import time

import numpy as np

from . import _group, autograd
from .nn.module import Module

__all__ = ["ProcessGroup", "DistributedDataParallel", "init", "is_initialized", "get_rank",
           "get_world_size", "launched_by_mpi", "abort", "bucket_size"]

# environment variables that MPI launchers (Open MPI, MPICH / Hydra, Intel MPI, MVAPICH,
# PMIx under Slurm's srun) set in every process they start
_LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS",
                  "MV2_COMM_WORLD_SIZE")


def launched_by_mpi():
    """True when this process was started by an MPI launcher (mpirun, mpiexec, srun with
    PMI/PMIx), judged from the environment it set; nothing is imported."""
    return any(v in os.environ for v in _LAUNCHER_VARS)


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            "fastconv.distributed needs mpi4py and an MPI library: pip install "
            "'fastconv[mpi]' (mpi4py with Open MPI from the package index), or "
            f"pip install mpi4py against a system MPI ({e})") from None
    return MPI


class ProcessGroup:
    """The processes of one MPI communicator: ``rank``, ``size``, ``comm`` (an
    mpi4py communicator), and the reductions fastconv needs, each in a fixed order."""

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def __repr__(self):
        return f"ProcessGroup(rank={self.rank}, size={self.size})"

    def barrier(self):
        self.comm.Barrier()

    def allgather(self, values):
        """Every rank's 1-D float64 ``values`` (the same length on all) -> (size, len)."""
        values = np.ascontiguousarray(values, np.float64)
        out = np.empty((self.size, values.size))
        self.comm.Allgather(values, out)
        return out

    def sum(self, values):
        """The sum over ranks of 1-D float64 ``values``, added in rank order (the same
        bits on every rank)."""
        rows = self.allgather(values)
        acc = rows[0].copy()
        for r in range(1, self.size):
            acc += rows[r]
        return acc

    def any(self, flag):
        """True on every rank when ``flag`` is true on any."""
        return bool(self.comm.allreduce(bool(flag), op=_mpi().LOR))

    def gather_rows(self, array):
        """Every rank's ``array`` (the same shape past axis 0) concatenated along axis 0
        in rank order, on every rank."""
        parts = self.comm.allgather(np.ascontiguousarray(array))
        return np.concatenate(parts) if parts else array

    def broadcast_(self, arrays, root=0):
        """Overwrite ``arrays`` (ndarrays, in place) with ``root``'s: one Bcast per dtype."""
        by_dtype = {}
        for a in arrays:
            by_dtype.setdefault(a.dtype.str, []).append(a)
        for key in sorted(by_dtype):
            group = by_dtype[key]
            flat = np.concatenate([a.reshape(-1) for a in group]) if group else None
            self.comm.Bcast(flat, root=root)
            k = 0
            for a in group:
                a[...] = flat[k:k + a.size].reshape(a.shape)
                k += a.size

    def gradient_comms(self):
        """Two duplicates of comm, made once (a collective call): one carries the
        buckets' Alltoalls, one their Allgathers.  Ranks must start the collectives of a
        communicator in the same order; an Allgather starts when its Alltoall has
        completed, which is a matter of timing, so each phase has its own."""
        if getattr(self, "_grad_comms", None) is None:
            self._grad_comms = (self.comm.Dup(), self.comm.Dup())
        return self._grad_comms


def _mean_buffers(n, dtype, p):
    """(send, recv, mine) for averaging n values over p ranks: send and recv padded to
    p equal chunks (the padding zero), mine one chunk."""
    c = -(-n // p)
    return np.zeros(p * c, dtype), np.empty(p * c, dtype), np.empty(c, dtype)


class _Mean:
    """One bucket's average in fixed order: Ialltoall of the chunks of ``send``, the
    rank-order sum of this rank's chunk into ``mine``, Iallgather of the sums into
    ``send``.  ``test()`` advances what can advance without waiting (Open MPI progresses
    a collective only inside MPI calls).  The Allgathers start in bucket order
    (``after``), on their own communicator."""

    def __init__(self, group, send, recv, mine, n, after=None):
        self.group, self.n, self.after = group, n, after
        self.send, self.recv, self.mine = send, recv, mine
        self.scatter_comm, self.gather_comm = group.gradient_comms()
        self.req = self.scatter_comm.Ialltoall(send, recv)
        self.stage = 0

    def _reduce_chunk(self):
        p = self.group.size
        pieces = self.recv.reshape(p, -1)
        acc = self.mine
        np.copyto(acc, pieces[0])
        for r in range(1, p):
            acc += pieces[r]
        acc /= acc.dtype.type(p)
        # the send buffer is free again: the shared result lands in it
        self.req = self.gather_comm.Iallgather(acc, self.send)
        self.stage = 1
        self.after = None

    def _may_gather(self):
        return self.after is None or self.after.stage >= 1

    def test(self):
        if self.stage == 0 and self._may_gather() and self.req.Test():
            self._reduce_chunk()
        if self.stage == 1 and self.req.Test():
            self.stage = 2
        return self.stage == 2

    def wait(self):
        if self.stage == 0:
            if self.after is not None:
                self.after.wait()
            self.req.Wait()
            self._reduce_chunk()
        if self.stage == 1:
            self.req.Wait()
            self.stage = 2
        return self.send[:self.n]


def _excepthook(exc_type, exc, tb):
    # an uncaught error on one rank must end the job, not leave the others waiting
    # in a collective (what mpi4py's ``python -m mpi4py`` does too)
    sys.__excepthook__(exc_type, exc, tb)
    abort(1)


def init(comm=None, abort_on_error=True):
    """Join the MPI job this process belongs to: returns its ProcessGroup (rank, size,
    comm) and makes it the default group (DistributedDataParallel, SyncBatchNorm).

    comm: an mpi4py communicator (default MPI.COMM_WORLD).  abort_on_error: an uncaught
    exception on any rank aborts the whole job with a non-zero status instead of
    leaving the other ranks blocked in a collective.  Calling init again returns the
    default group.  Raises ImportError naming the package when mpi4py is missing."""
    if _group.default() is not None and comm is None:
        return _group.default()
    MPI = _mpi()
    group = ProcessGroup(MPI.COMM_WORLD if comm is None else comm)
    _group.set_default(group)
    if abort_on_error and group.size > 1:
        sys.excepthook = _excepthook
    return group


def is_initialized():
    """Whether init() ran in this process."""
    return _group.default() is not None


def get_rank():
    """This process's rank in the default group (0 outside a distributed job)."""
    g = _group.default()
    return 0 if g is None else g.rank


def get_world_size():
    """Processes in the default group (1 outside a distributed job)."""
    g = _group.default()
    return 1 if g is None else g.size


def abort(code=1):
    """End every rank of the job now with exit status ``code`` (MPI_Abort); in a single
    process, exit."""
    sys.stderr.flush()
    sys.stdout.flush()
    g = _group.default()
    if g is not None and g.size > 1:
        g.comm.Abort(code)
    os._exit(code)


def bucket_size(total_bytes, cap_mb=None):
    """Bytes per gradient bucket: cap_mb MiB, or by default an eighth of the gradient
    within [1, 25] MiB.  torch's fixed 25 MiB would put a small CNN's whole gradient
    (the camera classifier's 4.6 MB) in one bucket, which can only start when the
    backward has ended; eight let seven of them overlap it."""
    if cap_mb is not None:
        return max(1, int(cap_mb * (1 << 20)))
    return int(min(25 << 20, max(1 << 20, total_bytes // 8)))


class _Bucket:
    """Parameters whose gradients are averaged together, with the buffers the
    reduction runs in, made once (a fresh multi-MiB array per step would cost a page
    fault per 4 KiB)."""

    def __init__(self, params, ranks):
        self.params = params
        self.size = sum(p.data.size for p in params)
        self.send, self.recv, self.mine = _mean_buffers(self.size, params[0].data.dtype, ranks)

    def start(self, group, after):
        """Copy the gradients into the send buffer (zeros for a missing one) and start
        their _Mean."""
        k = 0
        for p in self.params:
            n = p.data.size
            if p.grad is None:
                self.send[k:k + n] = 0
            else:
                self.send[k:k + n] = p.grad.reshape(-1)
            k += n
        self.send[k:] = 0
        return _Mean(group, self.send, self.recv, self.mine, self.size, after)

    def scatter(self, mean):
        k = 0
        for p in self.params:
            n = p.data.size
            g = mean[k:k + n].reshape(p.data.shape)
            if p.grad is None or p.grad.shape != p.data.shape:
                p.grad = g.copy()
            else:
                p.grad[...] = g
            k += n


class _Reducer:
    """Averages a model's gradients bucket by bucket while its backward runs: buckets
    start in their fixed order (the reverse of the parameters', as the backward produces
    them) as soon as every gradient in them is complete, move on between layers, and
    finish before the backward returns."""

    def __init__(self, group, buckets):
        self.group, self.buckets = group, buckets
        self.where = {id(p): i for i, b in enumerate(buckets) for p in b.params}
        self.reset()

    def reset(self):
        self.missing = [len(b.params) for b in self.buckets]
        self.seen = set()
        self.started = []           # _Mean per started bucket, in bucket order
        self.finished = False
        self.wait_seconds = 0.0

    def ready(self, p):
        i = self.where.get(id(p))
        if i is None or id(p) in self.seen:
            return
        self.seen.add(id(p))
        self.missing[i] -= 1
        while len(self.started) < len(self.buckets) and self.missing[len(self.started)] == 0:
            self._start()

    def _start(self):
        b = self.buckets[len(self.started)]
        self.started.append(b.start(self.group, self.started[-1] if self.started else None))

    def progress(self):
        for m in self.started:
            m.test()

    def finish(self):
        """Start what is left (a parameter no node used gets a zero gradient), wait,
        and write the means into ``.grad``."""
        t = time.perf_counter()
        while len(self.started) < len(self.buckets):
            self._start()
        for b, m in zip(self.buckets, self.started):
            b.scatter(m.wait())
        self.finished = True
        self.wait_seconds = time.perf_counter() - t

    def backward_done(self):
        """The armed backward ended: finish and disarm."""
        if self in autograd._reducers:
            autograd._reducers.remove(self)
            if not self.finished:
                self.finish()

    def abandon(self):
        """The backward raised: disarm without reducing (the job is ending)."""
        if self in autograd._reducers:
            autograd._reducers.remove(self)


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over ``process_group`` (default: the
    group of ``init()``), like torch.nn.parallel.DistributedDataParallel.

    At construction every rank checks that its model has rank 0's parameter names and
    shapes, then takes rank 0's parameters and buffers.  Each training forward (with
    gradients enabled) arms the reduction: the backward that follows (``loss.backward()``
    on the tape, or this wrapper's ``backward(grad)`` for an explicit chain) averages
    every trainable parameter's ``.grad`` over the ranks, in buckets of at most
    ``bucket_cap_mb`` MiB (None: ``bucket_size``'s choice) started while the backward
    still runs; when it returns, every
    rank holds the same gradients and ``optimizer.step()`` may run.  A trainable
    parameter that got no gradient on a rank counts as zero there.

    broadcast_buffers: rank 0's buffers (BatchNorm running statistics) are copied to
    every rank at each training forward, as torch does.  ``no_sync()`` skips the
    reduction (gradient accumulation: the last backward before a step runs outside it).
    ``module`` is the wrapped model: save ``ddp.module.state_dict()`` (this wrapper's own
    keys start with ``module.``, as torch's)."""

    def __init__(self, module, process_group=None, bucket_cap_mb=None, broadcast_buffers=True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a fastconv Module, got "
                            f"{type(module).__name__}")
        if bucket_cap_mb is not None and not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0 or None, got "
                             f"{bucket_cap_mb}")
        group = process_group if process_group is not None else _group.default()
        if group is None:
            raise RuntimeError("DistributedDataParallel: no process group; call "
                               "fastconv.distributed.init() first")
        self.module = module
        object.__setattr__(self, "process_group", group)
        object.__setattr__(self, "broadcast_buffers", bool(broadcast_buffers))
        object.__setattr__(self, "_sync", True)
        self._check_same_model(group)
        group.gradient_comms()
        group.broadcast_([p.data for p in module.parameters()] + self._buffers_now())
        params = [p for p in module.parameters() if p.requires_grad]
        cap = bucket_size(sum(p.data.nbytes for p in params), bucket_cap_mb)
        buckets, cur, nbytes = [], [], 0
        for p in reversed(params):          # the backward produces the last layer's first
            if cur and (nbytes + p.data.nbytes > cap or p.data.dtype != cur[0].data.dtype):
                buckets.append(_Bucket(cur, group.size))
                cur, nbytes = [], 0
            cur.append(p)
            nbytes += p.data.nbytes
        if cur:
            buckets.append(_Bucket(cur, group.size))
        object.__setattr__(self, "_reducer", _Reducer(group, buckets))

    def _buffers_now(self):
        return [b for b in self.module.buffers() if isinstance(b, np.ndarray)]

    def _check_same_model(self, group):
        mine = [(n, p.data.shape, p.data.dtype.str, p.requires_grad)
                for n, p in self.module.named_parameters()]
        ref = group.comm.bcast(mine, root=0)
        if mine != ref:
            diff = next(((a, b) for a, b in zip(mine, ref) if a != b),
                        (f"{len(mine)} parameters", f"{len(ref)} parameters"))
            raise ValueError(f"DistributedDataParallel: rank {group.rank}'s model differs from "
                             f"rank 0's: {diff[0]} against {diff[1]}")

    @property
    def last_wait_seconds(self):
        """How long the last backward waited for the reduction after its own work ended
        (what overlapping did not hide)."""
        return self._reducer.wait_seconds

    @property
    def buckets(self):
        """The gradient buckets, in reduction order: lists of parameter counts."""
        return [len(b.params) for b in self._reducer.buckets]

    def _arm(self):
        r = self._reducer
        if r in autograd._reducers:
            autograd._reducers.remove(r)
        r.reset()
        autograd._reducers.append(r)

    def _disarm(self):
        r = self._reducer
        if r in autograd._reducers:
            autograd._reducers.remove(r)

    def forward(self, *args, **kwargs):
        """The wrapped module's forward; in training with gradients enabled it first
        takes rank 0's buffers and arms the gradient reduction of the next backward."""
        from ._grad import is_grad_enabled
        if self.training and is_grad_enabled():
            if self.broadcast_buffers:
                self.process_group.broadcast_(self._buffers_now())
            if self._sync:
                self._arm()
        return self.module(*args, **kwargs)

    def backward(self, grad_output, input_grad=True):
        """An explicit chain's backward: the wrapped module's, then the averaged
        gradients (started layer by layer while it ran)."""
        try:
            gx = self.module.backward(grad_output, input_grad)
        except BaseException:
            self._reducer.abandon()
            raise
        self._reducer.backward_done()
        return gx

    class _NoSync:
        def __init__(self, ddp):
            self.ddp = ddp

        def __enter__(self):
            object.__setattr__(self.ddp, "_sync", False)
            self.ddp._disarm()

        def __exit__(self, *exc):
            object.__setattr__(self.ddp, "_sync", True)

    def no_sync(self):
        """A context in which forwards do not arm the reduction: gradients accumulate
        locally (torch's no_sync)."""
        return DistributedDataParallel._NoSync(self)

    def extra_repr(self):
        return f"ranks={self.process_group.size}, buckets={len(self._reducer.buckets)}"

