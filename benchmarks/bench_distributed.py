"""Data-parallel training on MPI: 2 ranks x 1 thread against 1 process x 2 threads.

    python benchmarks/bench_distributed.py [--models camera,resnet18,mobilenet_v2]
        [--reps 3] [--steps 8] [--json out.json] [--markdown]

For each model (camera classifier N=64 64x64, resnet18 N=32 64x64, mobilenet_v2 N=32
64x64 by default: ``--batch`` / ``--size`` change them) the same global batch trains
(forward, cross-entropy, backward, SGD-momentum step) in two set-ups, launched one
after the other and interleaved over ``--reps``:

- one process with 2 OpenMP threads (plain BatchNorm2d: what a single-process user runs);
- ``mpiexec -n 2`` with 1 thread per rank: DistributedDataParallel, SyncBatchNorm, each
  rank half of the batch.

It prints images/s of both and their ratio (median over reps), and for the MPI run the
backward time and the time a step then waits for the gradient reduction
(``DistributedDataParallel.last_wait_seconds``: what the overlap did not hide), as a
share of the backward.

Then "scale on paper": from the measured compute time per image (one process, 2
threads, assumed to scale linearly to 16 cores, which flatters compute and so
understates efficiency) and the gradient's size, a ring-allreduce model over 10 and
100 Gb/s links predicts the efficiency of 2-64 nodes of 16 cores at a few per-node
batches, and the smallest per-node batch that keeps 90 %.

The worker (``--worker``) is this script run by itself or under mpiexec.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

MODELS = {            # name: (global batch, image size, classes)
    "camera": (64, 64, 2),
    "resnet18": (32, 64, 10),
    "mobilenet_v2": (32, 64, 10),
}
# as root in a container; Open MPI picks its transports (shared memory on one machine)
MPI_ENV = dict(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_plm_ssh_agent="false",
               PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe")


def build(name, classes):
    """-> (model, tape): the trainer's way of running it (camera: explicit chain)."""
    from fastconv import models
    if name == "camera":
        return models.camera_classifier(classes), False
    if name == "resnet18":
        return models.resnet18(classes), True
    if name == "mobilenet_v2":
        return models.mobilenet_v2(classes), True
    raise ValueError(f"unknown model {name!r}")


def worker(args):
    import fastconv as fc
    from fastconv import distributed as dist
    from fastconv import nn, optim
    from fastconv.data.loader import shard_bounds
    group = dist.init() if dist.launched_by_mpi() else None
    size, rank = (1, 0) if group is None else (group.size, group.rank)
    fc.set_num_threads(args.threads)
    B, S, classes = args.batch, args.size, MODELS[args.model][2]
    model, tape = build(args.model, classes)
    net = model
    if size > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = dist.DistributedDataParallel(model, group, broadcast_buffers=False)  # as train
    opt = optim.SGD(list(model.parameters()), 0.01, momentum=0.9)
    crit = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, 3, S, S)).astype(np.float32)
    y = rng.integers(0, classes, B)
    lo, hi = shard_bounds(B, rank, size)
    x, y = x[lo:hi], y[lo:hi]

    def step():
        opt.zero_grad()
        if tape:
            loss = crit(net(fc.Tensor(x)), y)
            t = time.perf_counter()
            loss.backward()
        else:
            crit(net(x), y)
            t = time.perf_counter()
            net.backward(crit.backward(), input_grad=False)
        bwd = time.perf_counter() - t
        opt.step()
        wait = net.last_wait_seconds if size > 1 else 0.0
        return bwd, wait

    for _ in range(args.warmup):
        step()
    if group is not None:
        group.barrier()
    t0 = time.perf_counter()
    bwd, wait = [], []
    for _ in range(args.steps):
        b, w = step()
        bwd.append(b - w)
        wait.append(w)
    if group is not None:
        group.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        print(json.dumps(dict(images_per_s=B * args.steps / dt, step_s=dt / args.steps,
                              backward_s=statistics.median(bwd),
                              wait_s=statistics.median(wait),
                              params=int(sum(p.data.size for p in model.parameters())))),
              flush=True)


def _mpiexec():
    near = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return near if os.path.exists(near) else shutil.which("mpiexec")


def launch(model, ranks, threads, args):
    B, S, _ = MODELS[model]
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--model", model,
           "--batch", str(args.batch or B), "--size", str(args.size or S),
           "--threads", str(threads), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if ranks > 1:
        env.update(MPI_ENV)
        cmd = [_mpiexec(), "-n", str(ranks), "--bind-to", "none"] + cmd
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ring_seconds(nbytes, nodes, gbit, latency):
    """A ring allreduce of nbytes over nodes: 2 (n-1)/n of the data each way, 2 (n-1)
    message latencies."""
    if nodes == 1:
        return 0.0
    return 2 * (nodes - 1) / nodes * nbytes / (gbit * 1e9 / 8) + 2 * (nodes - 1) * latency


def scale_on_paper(name, per_image_s, backward_share, params):
    """Predicted efficiency rows for 2-64 nodes of 16 cores."""
    from fastconv.distributed import bucket_size
    nbytes = 4 * params
    cap = bucket_size(nbytes)
    last = nbytes - cap * (-(-nbytes // cap) - 1)        # the last bucket waits for the end
    rows = []
    per_image_16 = per_image_s * 2 / 16                   # 2 threads measured -> 16 cores
    for gbit, latency in ((10, 30e-6), (100, 5e-6)):
        for batch in (16, 32, 64, 128):
            compute = batch * per_image_16
            eff = []
            for nodes in (2, 4, 8, 16, 32, 64):
                comm = sum(ring_seconds(min(cap, nbytes - k * cap), nodes, gbit, latency)
                           for k in range(-(-nbytes // cap)))
                tail = ring_seconds(last, nodes, gbit, latency)
                exposed = max(comm - backward_share * compute, tail)
                eff.append(compute / (compute + exposed))
            need = None
            for b in range(1, 4097):
                c = b * per_image_16
                comm = sum(ring_seconds(min(cap, nbytes - k * cap), 64, gbit, latency)
                           for k in range(-(-nbytes // cap)))
                exposed = max(comm - backward_share * c, ring_seconds(last, 64, gbit, latency))
                if c / (c + exposed) >= 0.9:
                    need = b
                    break
            rows.append((name, gbit, batch, eff, need))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", action="store_true")
    p.add_argument("--model", default="camera")
    p.add_argument("--models", default="camera,resnet18,mobilenet_v2")
    p.add_argument("--batch", type=int)
    p.add_argument("--size", type=int)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json")
    args = p.parse_args()
    if args.worker:
        args.batch = args.batch or MODELS[args.model][0]
        args.size = args.size or MODELS[args.model][1]
        return worker(args)
    if _mpiexec() is None:
        sys.exit("bench_distributed: mpiexec not found (pip install 'fastconv[mpi]')")
    results = {}
    print(f"images/s of a training step, same global batch; median of {args.reps} "
          f"interleaved runs of {args.steps} steps")
    print(f"{'model':<14}{'batch':>12}{'1 proc x 2 thr':>16}{'2 ranks x 1 thr':>17}"
          f"{'ratio':>7}{'backward':>10}{'MPI wait':>10}{'wait/bwd':>9}")
    for name in args.models.split(","):
        single, multi = [], []
        for rep in range(args.reps):
            pair = [(1, 2), (2, 1)] if rep % 2 == 0 else [(2, 1), (1, 2)]
            for ranks, threads in pair:
                (single if ranks == 1 else multi).append(launch(name, ranks, threads, args))
        ratio = statistics.median(m["images_per_s"] / s["images_per_s"]
                                  for s, m in zip(single, multi))
        med = {k: statistics.median(r[k] for r in multi) for k in multi[0]}
        med1 = {k: statistics.median(r[k] for r in single) for k in single[0]}
        B, S, _ = MODELS[name]
        results[name] = dict(batch=args.batch or B, size=args.size or S, single=single,
                             mpi=multi, ratio=ratio)
        print(f"{name:<14}{f'{args.batch or B} x {args.size or S}^2':>12}"
              f"{med1['images_per_s']:>16.1f}{med['images_per_s']:>17.1f}{ratio:>7.2f}"
              f"{1e3 * med['backward_s']:>8.1f}ms{1e3 * med['wait_s']:>8.2f}ms"
              f"{100 * med['wait_s'] / med['backward_s']:>8.1f}%", flush=True)
    print("\nscale on paper: predicted efficiency, nodes of 16 cores, per-node batch b "
          "(compute per image from the 2-thread run / 8; ring allreduce per bucket, "
          "DistributedDataParallel's buckets overlapped with the backward, the last not)")
    print(f"{'model':<14}{'link':>8}{'b':>5}" + "".join(f"{n:>7}" for n in (2, 4, 8, 16, 32, 64))
          + "   b for 90% at 64 nodes")
    for name, r in results.items():
        s = r["single"]
        per_image = statistics.median(x["step_s"] for x in s) / r["batch"]
        share = statistics.median(x["backward_s"] / x["step_s"] for x in s)
        for row in scale_on_paper(name, per_image, share, s[0]["params"]):
            _, gbit, b, eff, need = row
            print(f"{name:<14}{gbit:>5}Gb/s{b:>5}" + "".join(f"{100 * e:>6.0f}%" for e in eff)
                  + f"   {need}")
        r["scale"] = [dict(gbit=g, batch=b, efficiency=e, batch_for_90=n)
                      for _, g, b, e, n in scale_on_paper(name, per_image, share,
                                                          s[0]["params"])]
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
