"""Under mpiexec: a training run that rank 0 alone interrupts (SIGINT, as Ctrl-C) after
the first batch; every rank must stop at the same batch and rank 0 save the partial
epoch to OUT/checkpoint.npz.

    mpiexec -n 2 python tests/mpi/interrupt.py OUT"""
import os
import signal
import sys

from fastconv import distributed as dist
from fastconv.train import TrainConfig, train

group = dist.init()


def on_step(epoch, k):
    if k == 1 and group.rank == 0:
        os.kill(os.getpid(), signal.SIGINT)


cfg = TrainConfig(image_size=32, synthetic_size=60, epochs=1, batch_size=16, optimizer="sgd",
                  lr=0.01, out=sys.argv[1]).check()
res = train(cfg, progress=False, threads=1, far_test=False, on_step=on_step,
            log=lambda *a: None)
print(f"rank {group.rank} interrupted={res['interrupted']}", flush=True)
