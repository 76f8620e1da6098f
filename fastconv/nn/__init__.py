"""Layers with a torch.nn-like API: ``y = m(x)``, ``gx = m.backward(gy)``."""
from .activation import (ELU, GELU, Dropout, Dropout2d, Flatten, Hardsigmoid, Hardswish, Identity,
                         LeakyReLU, Mish, PReLU, ReLU, ReLU6, Sigmoid, SiLU, Tanh)
from .container import Residual, Sequential
from .conv import Conv2d, ConvTranspose2d
from .linear import Linear
from .loss import (BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss,
                   SmoothL1Loss)
from .module import Module, Parameter
from .normalization import BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm, SyncBatchNorm
from .padding import (CircularPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d,
                      ZeroPad2d)
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d, MaxUnpool2d
from .upsampling import PixelShuffle, PixelUnshuffle, Upsample

__all__ = [
    "Module", "Parameter", "Conv2d", "ConvTranspose2d", "MaxPool2d", "MaxUnpool2d", "AvgPool2d",
    "AdaptiveAvgPool2d", "BatchNorm2d", "ReLU", "Linear", "Flatten", "Dropout", "Identity",
    "Upsample", "Sequential", "Residual", "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss",
    "MSELoss", "L1Loss", "SmoothL1Loss", "Dropout2d", "PixelShuffle", "PixelUnshuffle",
    "AdaptiveMaxPool2d", "GroupNorm", "InstanceNorm2d", "LayerNorm", "SyncBatchNorm", "ReLU6", "LeakyReLU", "ELU", "SiLU", "GELU", "Sigmoid", "Tanh", "Hardswish",
    "Hardsigmoid", "Mish", "PReLU", "ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d",
]
