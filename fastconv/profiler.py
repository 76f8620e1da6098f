"""Where a forward and backward on the tape spend their time, per layer type and op.

    with fastconv.profiler.profile() as prof:
        loss = crit(model(fc.Tensor(x)), y)
        loss.backward()
    print(prof.table())

Each recorded layer call and op is timed around its compiled work (forward) and its
``op_backward`` (backward); Python between calls shows up as the gap between the
wall time and the sum.  Nothing is timed outside the ``with`` block, and the hooks
cost one attribute test per call when no profile is open.
"""
import contextlib
import time
from collections import defaultdict

from . import autograd

__all__ = ["profile", "Profile"]


class Profile:
    """Seconds and call counts by (name, "forward" | "backward"); ``wall`` is the
    time the ``with`` block took."""

    def __init__(self, detail=False):
        self.detail = detail
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self.wall = 0.0

    def add(self, name, phase, seconds):
        self.seconds[name, phase] += seconds
        self.calls[name, phase] += 1

    def by_name(self):
        """{name: (forward s, backward s, calls)} sorted by total time, largest first."""
        names = {n for n, _ in self.seconds}
        rows = {n: (self.seconds[n, "forward"], self.seconds[n, "backward"],
                    self.calls[n, "forward"]) for n in names}
        return dict(sorted(rows.items(), key=lambda kv: -(kv[1][0] + kv[1][1])))

    def table(self):
        """A text table: per layer type / op, forward and backward milliseconds, calls,
        share of the wall time."""
        w = max([24] + [len(n) for n, _ in self.seconds])
        lines = [f"{'layer / op':{w}s} {'calls':>6s} {'fwd ms':>9s} {'bwd ms':>9s} {'share':>6s}"]
        total = 0.0
        for name, (f, b, n) in self.by_name().items():
            total += f + b
            share = (f + b) / self.wall if self.wall else 0.0
            lines.append(f"{name:{w}s} {n:6d} {f * 1e3:9.2f} {b * 1e3:9.2f} {share:6.1%}")
        lines.append(f"{'(between calls)':{w}s} {'':6s} {'':9s} {'':9s} "
                     f"{max(self.wall - total, 0.0) / self.wall if self.wall else 0.0:6.1%}")
        lines.append(f"wall {self.wall * 1e3:.2f} ms")
        return "\n".join(lines)


@contextlib.contextmanager
def profile(detail=False):
    """Time every taped layer call and op inside the block; yields a Profile.  By layer
    type, or with ``detail`` by layer configuration and input size (e.g.
    ``Conv2d(64, 128, kernel_size=(3, 3), stride=(2, 2), ...) @64x28x28``)."""
    prof = Profile(detail)
    prev, autograd._profiler = autograd._profiler, prof
    t = time.perf_counter()
    try:
        yield prof
    finally:
        prof.wall = time.perf_counter() - t
        autograd._profiler = prev
