"""A job that fails on one rank (tests/test_distributed.py runs it under mpiexec):

    raise   rank 1 raises while rank 0 waits in a collective
    kill    rank 1 is killed (SIGKILL) while rank 0 waits in a collective
    train   rank 1 is killed during the second epoch of a training run whose first
            epoch's checkpoint is in OUT

The job must end with a non-zero status within seconds, never hang."""
import os
import signal
import sys

import numpy as np

from fastconv import distributed as dist

mode = sys.argv[1]
group = dist.init()
if mode in ("raise", "kill"):
    if group.rank == 1:
        if mode == "raise":
            raise ValueError("rank 1 cannot go on")
        os.kill(os.getpid(), signal.SIGKILL)
    group.allgather(np.zeros(3))        # rank 0 waits here for ever without an abort
    print("rank 0 got past the collective", flush=True)
elif mode == "train":
    from fastconv.train import TrainConfig, train

    def on_step(epoch, k):
        if epoch == 1 and k == 1 and group.rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    cfg = TrainConfig(image_size=32, synthetic_size=80, epochs=2, batch_size=16,
                      out=sys.argv[2]).check()
    train(cfg, progress=False, threads=1, far_test=False, on_step=on_step,
          log=lambda *a: None)
    print("the run finished", flush=True)
