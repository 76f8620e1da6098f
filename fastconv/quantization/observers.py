"""Activation range observers for post-training quantisation, and the u8 parameters
of a range.

An observer sees every calibration batch's values of one tensor (``observe(x)``, any
shape) and gives the range to quantise (``range() -> (lo, hi)``).  ``qparams`` turns
a range into u8's (scale, zero point): real = (q - zero_point) * scale."""
import numpy as np

__all__ = ["MinMaxObserver", "PercentileObserver", "OBSERVERS", "qparams"]


class MinMaxObserver:
    """The exact minimum and maximum over all batches: nothing is ever clipped, so
    a rare outlier stretches the step for every other value."""

    def __init__(self):
        self.lo, self.hi, self.count = np.inf, -np.inf, 0

    def observe(self, x):
        x = np.asarray(x)
        if x.size:
            self.lo = min(self.lo, float(x.min()))
            self.hi = max(self.hi, float(x.max()))
            self.count += x.size

    def range(self):
        return self.lo, self.hi


class PercentileObserver(MinMaxObserver):
    """The range that keeps all but the (100 - percentile)% most extreme values on each
    side, estimated from a sample of every batch (``samples`` values drawn with a fixed
    seed, so calibration is reproducible): a few outliers are clipped so the rest get a
    finer step.  Never wider than the min/max range."""

    def __init__(self, percentile=99.99, samples=16384, seed=0):
        super().__init__()
        if not 50 < percentile <= 100:
            raise ValueError(f"PercentileObserver: percentile must be in (50, 100], "
                             f"got {percentile!r}")
        self.percentile, self.samples = float(percentile), int(samples)
        self._rng = np.random.default_rng(seed)
        self._kept = []

    def observe(self, x):
        x = np.asarray(x).reshape(-1)
        super().observe(x)
        if x.size > self.samples:
            x = x[self._rng.integers(0, x.size, self.samples)]
        self._kept.append(np.array(x, np.float32))

    def range(self):
        if not self._kept:
            return self.lo, self.hi
        v = np.concatenate(self._kept)
        lo, hi = np.percentile(v, [100 - self.percentile, self.percentile])
        return max(float(lo), self.lo), min(float(hi), self.hi)


OBSERVERS = {"minmax": MinMaxObserver, "percentile": PercentileObserver}


def qparams(lo, hi):
    """u8 (scale float32, zero point int) for the range [lo, hi], widened to hold 0
    exactly (zero padding and ReLU's zero must be representable)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError(f"qparams: the observed range ({lo}, {hi}) is not finite")
    if hi - lo < 1e-12:
        return np.float32(1.0), 0
    scale = np.float32((hi - lo) / 255.0)
    zp = int(np.clip(np.rint(-lo / float(scale)), 0, 255))
    return scale, zp
