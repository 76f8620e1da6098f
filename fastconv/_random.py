"""The package's random state: parameter initialisation and dropout masks."""
import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed):
    """Seed fastconv's generator (initialisation, dropout), like torch.manual_seed."""
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: expected an int, got {seed!r}")
    _rng = np.random.default_rng(int(seed))


def generator():
    """The current numpy Generator."""
    return _rng
