"""Run under mpiexec (tests/test_distributed.py does): every rank checks data-parallel
training against one process that sees the whole batch, computed on each rank itself.

    mpiexec -n 3 python tests/mpi/check_ddp.py

Prints 'ok <rank> <checks>' per rank; any failure raises (and aborts the job)."""
import sys

import numpy as np

import fastconv as fc
from fastconv import distributed as dist
from fastconv import data, nn
from fastconv.data.loader import shard_bounds

group = dist.init()
rank, size = group.rank, group.size
checks = 0


def close(a, b, what, rtol=2e-5, atol=2e-6):
    global checks
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol):
        err = np.max(np.abs(a - b)) if a.shape == b.shape else f"shapes {a.shape} {b.shape}"
        raise AssertionError(f"rank {rank}: {what} differs from one process's: {err}")
    checks += 1


def same_on_all_ranks(a, what):
    global checks
    rows = group.comm.allgather(np.ascontiguousarray(a).tobytes())
    if any(r != rows[0] for r in rows):
        raise AssertionError(f"rank {rank}: {what} differs between ranks")
    checks += 1


def model(sync):
    bn = nn.SyncBatchNorm if sync else nn.BatchNorm2d
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), bn(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1), bn(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


# ---------------------------------------------------------------- SyncBatchNorm
rng = np.random.default_rng(7)
B = 2 * size + 1                    # uneven parts: sizes differ by one
x = rng.standard_normal((B, 5, 6, 7)).astype(np.float32) * 3 + 1
gy = rng.standard_normal(x.shape).astype(np.float32)
lo, hi = shard_bounds(B, rank, size)
ref = nn.BatchNorm2d(5)
ref.weight.data[:] = rng.uniform(0.5, 1.5, 5)
ref.bias.data[:] = rng.uniform(-1, 1, 5)
sbn = nn.SyncBatchNorm(5)
sbn.load_state_dict(ref.state_dict())
y_ref = ref(x)
gx_ref = ref.backward(gy)
y = sbn(x[lo:hi])
gx = sbn.backward(gy[lo:hi])
close(y, y_ref[lo:hi], "SyncBatchNorm output")
close(gx, gx_ref[lo:hi], "SyncBatchNorm input gradient")
close(sbn.running_mean, ref.running_mean, "SyncBatchNorm running_mean")
close(sbn.running_var, ref.running_var, "SyncBatchNorm running_var")
close(group.sum(sbn.weight.grad.astype(np.float64)), ref.weight.grad, "summed weight grad")
close(group.sum(sbn.bias.grad.astype(np.float64)), ref.bias.grad, "summed bias grad")
same_on_all_ranks(sbn.running_var, "SyncBatchNorm running_var")
# float64 too, and the fused ReLU path
sbn64, ref64 = nn.SyncBatchNorm(5).double(), nn.BatchNorm2d(5).double()
x64 = x.astype(np.float64)
close(sbn64.forward_relu(x64[lo:hi]), ref64.forward_relu(x64)[lo:hi], "fused float64", 1e-12,
      1e-12)
close(sbn64.backward(gy[lo:hi].astype(np.float64)),
      ref64.backward(gy.astype(np.float64))[lo:hi], "fused float64 gradient", 1e-10, 1e-12)

# ---------------------------------------------------------------- DDP, both backward paths
B = 4 * size + (1 if size > 1 else 0)
x = rng.standard_normal((B, 3, 12, 12)).astype(np.float32)
t = rng.integers(0, 3, B)
lo, hi = shard_bounds(B, rank, size)
weight = (hi - lo) * size / B       # a rank's mean loss, weighted to the global mean

for tape in (False, True):
    single = model(sync=False)
    fc.manual_seed(rank)            # different initial weights on every rank
    m = model(sync=True)
    for p in m.parameters():
        p.data[...] = np.random.default_rng(rank + 10).standard_normal(p.data.shape)
    ddp = dist.DistributedDataParallel(m, bucket_cap_mb=0.001)   # several buckets
    single.load_state_dict(m.state_dict())     # rank 0's, after the broadcast
    crit = nn.CrossEntropyLoss()
    if tape:
        loss = crit(single(fc.Tensor(x)), t)
        loss.backward()
        loss_d = crit(ddp(fc.Tensor(x[lo:hi])), t[lo:hi])
        (loss_d * weight).backward()
    else:
        single(x)
        crit(single(x), t)
        single.backward(crit.backward())
        crit(ddp(x[lo:hi]), t[lo:hi])
        ddp.backward(crit.backward() * np.float32(weight))
    for (name, p), (_, ps) in zip(m.named_parameters(), single.named_parameters()):
        close(p.grad, ps.grad, f"{'tape' if tape else 'chain'} grad of {name}", 1e-4, 1e-6)
        same_on_all_ranks(p.grad, f"grad of {name}")
    same_on_all_ranks(m.state_dict()["1.running_mean"], "running_mean")
    if not tape:
        assert len(ddp.buckets) > 1, ddp.buckets

# no_sync: local gradients only
m = model(sync=False)
ddp = dist.DistributedDataParallel(m)
with ddp.no_sync():
    loss = nn.CrossEntropyLoss()(ddp(fc.Tensor(x[lo:hi])), t[lo:hi])
    loss.backward()
local = m[0].weight.grad.copy()
m.zero_grad()
loss = nn.CrossEntropyLoss()(m(fc.Tensor(x[lo:hi])), t[lo:hi])
loss.backward()
close(local, m[0].weight.grad, "no_sync gradient", 0, 0)

# ---------------------------------------------------------------- sharded data
ds = data.SyntheticCameraDataset(40, 16, seed=3)
full = data.DataLoader(ds, 12, shuffle=True, augment=data.Augment(), seed=5)
part = data.DataLoader(ds, 12, shuffle=True, augment=data.Augment(), seed=5,
                          shard=(rank, size))
assert len(part) == len(full)
for k in range(len(full)):
    xb, yb = part.batch(2, k)
    xs = group.gather_rows(xb)
    ys = group.gather_rows(yb)
    xf, yf = full.batch(2, k)
    if not (np.array_equal(xs, xf) and np.array_equal(ys, yf)):
        raise AssertionError(f"rank {rank}: batch {k}'s parts do not make the whole batch")
    checks += 1

# a mismatched model is refused with the rank named
try:
    dist.DistributedDataParallel(nn.Linear(3, 4 if rank == 0 else 5))
except ValueError as e:
    assert rank != 0 and "differs from rank 0" in str(e), e
else:
    assert rank == 0 or size == 1
checks += 1
print(f"ok {rank} {checks}", flush=True)
