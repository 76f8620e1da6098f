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


def kaiming_normal_fan_out(shape, dtype=np.float32):
    """kaiming_normal_(mode='fan_out', nonlinearity='relu'): N(0, 2 / fan_out), fan_out =
    shape[0] * prod(shape[2:]) (torchvision's ResNet and MobileNet convolutions)."""
    fan_out = shape[0] * int(np.prod(shape[2:]))
    return (generator().standard_normal(shape) * math.sqrt(2.0 / fan_out)).astype(dtype)


def normal(shape, std, dtype=np.float32):
    """N(0, std^2) samples of the given shape."""
    return (generator().standard_normal(shape) * std).astype(dtype)
