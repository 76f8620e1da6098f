"""torch's default initialisation, drawn from fastconv's seeded generator."""
import math

import numpy as np

from .._random import generator


def uniform(shape, bound, dtype=np.float32):
    """U(-bound, bound) samples of the given shape."""
    return generator().uniform(-bound, bound, size=shape).astype(dtype)


def kaiming_uniform_bound(fan_in):
    """kaiming_uniform_(a=sqrt(5)) reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
