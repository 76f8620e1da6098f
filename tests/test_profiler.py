"""fastconv.profiler: every taped layer call and op is counted once per phase."""
import numpy as np

import fastconv as fc
from fastconv import nn, ops


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        h = self.relu(self.conv(x))
        return ops.cat([h, self.relu(self.conv(x))], 1).mean()


def test_counts_calls_and_phases():
    m = _Net()
    x = fc.Tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32))
    with fc.profiler.profile() as prof:
        m(x).backward()
    rows = prof.by_name()
    assert prof.calls["Conv2d", "forward"] == 2 and prof.calls["Conv2d", "backward"] == 2
    assert prof.calls["ReLU", "forward"] == 2 and prof.calls["cat", "forward"] == 1
    assert prof.calls["mean", "backward"] == 1
    assert rows["Conv2d"][0] > 0 and rows["Conv2d"][1] > 0
    assert prof.wall >= sum(f + b for f, b, _ in rows.values())
    assert "Conv2d" in prof.table() and "wall" in prof.table()
    # nothing is recorded once the block is left
    m(x).backward()
    assert prof.calls["Conv2d", "forward"] == 2


def test_detail_names_each_configuration_and_size():
    m = _Net()
    x = fc.Tensor(np.zeros((1, 3, 5, 6), np.float32))
    with fc.profiler.profile(detail=True) as prof:
        m(x).backward()
    names = {n for n, _ in prof.seconds}
    conv = [n for n in names if n.startswith("Conv2d(")]
    assert conv == ["Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)) @3x5x6"]
    assert prof.calls[conv[0], "backward"] == 2
