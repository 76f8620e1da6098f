"""fastconv: fast CNN building blocks for the CPU, with a torch.nn-like API.

Every layer has a compiled (Cython/C, OpenMP) forward and backward::

    import fastconv as fc
    m = fc.nn.Conv2d(3, 16, 3, padding=1)
    y = m(x)                 # x: float32 ndarray (N, 3, H, W)
    gx = m.backward(gy)      # parameter grads accumulate into m.weight.grad
"""
from . import distributed, functional, models, nn, ops, optim, profiler
from .autograd import Tensor, tensor
from .ops import cat, chunk, split, stack
from ._grad import is_grad_enabled, no_grad
from ._precision import autocast, autocast_dtype
from ._random import manual_seed
from ._runtime import (empty_cache, get_num_threads, memory_stats, set_num_threads,
                       show_config)
from .onnx_export import export_onnx
from .interop import (export_torch, import_torch, load_state_dict, save_state_dict,
                      to_torch)
from . import quantization
from .quantization import QuantizedModel, quantize
from .frozen import FrozenModel, freeze

__version__ = "0.1.0"

__all__ = ["nn", "optim", "models", "functional", "ops", "profiler", "distributed", "Tensor", "tensor", "cat", "stack",
           "split", "chunk", "no_grad", "is_grad_enabled", "autocast", "autocast_dtype", "manual_seed",
           "set_num_threads", "get_num_threads", "show_config", "empty_cache", "memory_stats",
           "export_torch", "export_onnx", "import_torch", "save_state_dict", "load_state_dict", "to_torch",
           "quantization", "quantize", "QuantizedModel", "freeze", "FrozenModel", "__version__"]

