"""The caching allocator (fastconv._kernels._memory) in a training loop."""
import os
import subprocess
import sys

import fastconv

_STEPS = r"""
import numpy as np
import fastconv as fc
from fastconv._kernels import _memory
fc.set_num_threads(1)
fc.manual_seed(0)
m = fc.models.mobilenet_v2(num_classes=2)
x = np.random.default_rng(0).standard_normal((32, 3, 96, 96)).astype(np.float32)
y = np.arange(32) % 2
crit = fc.nn.CrossEntropyLoss()
misses = []
for _ in range(4):
    before = _memory.stats()["misses"]
    m.zero_grad()
    crit(m(fc.Tensor(x)), y).backward()
    misses.append(_memory.stats()["misses"] - before)
s = _memory.stats()
print(misses, s["peak_live_bytes"], s["idle_bytes"])
"""


def test_training_steps_reuse_every_block_after_the_first():
    # a fresh process (the peak live total is process-wide): once one step has run, every
    # multi-MiB array of the next steps comes from the cache (a fresh block costs its
    # first touch: 12 ms instead of 6 for one depthwise gradient), and idle memory stays
    # within a quarter of the peak live total above it
    # the fastconv this session imported (an installed wheel or the in-place build), run
    # away from a source checkout that would shadow it
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([pkg_root,
                                                       os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _STEPS], capture_output=True, text=True,
                         timeout=300, env=env, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert out.returncode == 0, out.stderr
    misses, peak, idle = out.stdout.strip().rsplit(" ", 2)
    misses = eval(misses)
    assert misses[0] > 0 and misses[2:] == [0, 0], misses
    assert int(idle) <= int(peak) * 1.25 + (32 << 20)
