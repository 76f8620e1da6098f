"""Mixed precision: ``with fastconv.autocast("bf16"):`` runs convolutions and Linear on
bf16 operands with float32 sums.

Only the products change precision.  Arrays stay float32 at every layer boundary;
parameters, optimiser state, BatchNorm statistics, losses and reductions stay float32;
the GEMM packing rounds each operand to bf16 (round to nearest even) as it copies it,
and the micro-kernel accumulates in float32 (AVX512_BF16's ``vdpbf16ps`` where the CPU
has it, the same arithmetic on float32 FMAs where it does not: the bits are the same).
A forward records its precision, so its backward multiplies in bf16 too, wherever
``backward`` is called.  Layers without a bf16 kernel (depthwise convolutions, pooling,
normalisation, elementwise) run float32; ``fastconv.analysis.summary`` says which.
"""
import contextlib
import threading
import weakref

import numpy as np

from ._grad import is_grad_enabled
from ._kernels import _elementwise, _memory
from ._runtime import get_num_threads

_state = threading.local()

_NAMES = {"bf16": "bf16", "bfloat16": "bf16"}


def autocast_dtype():
    """'bf16' inside ``autocast("bf16")``, else None (per Python thread)."""
    return getattr(_state, "dtype", None)


# autocast contexts open in any thread: while none is, bf16_enabled() (asked by every
# convolution and Linear call) answers without the thread-local lookup
_open = 0
_open_lock = threading.Lock()


def bf16_enabled():
    return _open > 0 and getattr(_state, "dtype", None) == "bf16"


@contextlib.contextmanager
def autocast(dtype="bf16", enabled=True, save_bf16=False):
    """Context manager: convolutions and Linear inside it multiply in ``dtype`` ('bf16',
    or 'bfloat16'; NumPy has no bf16 type, so it is named by string) and sum in float32.
    enabled=False runs float32 (one code path for both, like ``torch.autocast``).
    save_bf16=True: keep the activations a backward reads as bf16 (about half a training
    step's saved memory and 0.69x its peak, for conversion passes that cost about a
    quarter of the camera classifier's step; see keep() below).  Nests; per Python
    thread."""
    name = _NAMES.get(dtype) if isinstance(dtype, str) else None
    if name is None:
        raise ValueError(f"autocast: dtype must be 'bf16' (or 'bfloat16'); got {dtype!r}")
    global _open
    prev = getattr(_state, "dtype", None), getattr(_state, "save", False)
    with _open_lock:
        _open += 1
    _state.dtype = name if enabled else None
    _state.save = bool(save_bf16)
    try:
        yield
    finally:
        _state.dtype, _state.save = prev
        with _open_lock:
            _open -= 1


# ------------------------------------------------------------------ activations kept in bf16
# A forward under autocast("bf16", save_bf16=True) keeps the activations its backward reads in bf16: half the
# memory of a training step's saved tensors.  The bf16 products would round them anyway
# (a convolution's weight gradient reads its input through the bf16 GEMM: bit for bit
# the same result; Winograd's transforms the rounded input, one more bf16 rounding);
# BatchNorm's input and fused-ReLU output are rounded like torch's
# autocast rounds them (the ReLU mask stays exact: bf16 keeps the sign, and only a
# subnormal positive output would read as zero).  One array saved by two layers (a
# BatchNorm-ReLU's output, the next convolution's input) shares one bf16 copy, checked
# against the array first so that an in-place write between them is never missed.  On
# the tape the graph holds every intermediate array anyway, so nothing is converted.

SAVE_AT_LEAST = 4096          # elements: below this the bookkeeping outweighs the bytes


class Bf16Saved:
    """A float32 array kept as bf16 bits for a backward: ``restore()`` gives float32."""

    __slots__ = ("bits", "shape")

    def __init__(self, bits, shape):
        self.bits, self.shape = bits, shape

    dtype = property(lambda self: np.dtype(np.float32))
    nbytes = property(lambda self: self.bits.nbytes)

    def restore(self):
        out = _memory.empty(self.shape, np.float32)
        _elementwise.from_bf16(self.bits, out.reshape(-1), get_num_threads())
        return out


def recording():
    """Context manager: a forward being recorded on the tape (keep() converts nothing)."""
    return _Recording()


class _Recording:
    __slots__ = ("prev",)

    def __enter__(self):
        self.prev = getattr(_state, "taped", False)
        _state.taped = True

    def __exit__(self, *exc):
        _state.taped = self.prev


def keep(a):
    """a as its backward should keep it: a Bf16Saved under autocast("bf16",
    save_bf16=True) with gradients on and off the tape (float32, large enough), else a
    itself."""
    if a is None or getattr(_state, "dtype", None) != "bf16" or getattr(_state, "taped", False) \
            or not getattr(_state, "save", False) or a.dtype != np.float32 \
            or a.size < SAVE_AT_LEAST or not is_grad_enabled():
        return a
    nt = get_num_threads()
    flat = a.reshape(-1)
    memo = _memo()
    hit = memo.get(id(a))
    if hit is not None and hit[0]() is a and hit[1].shape == a.shape \
            and _elementwise.matches_bf16(flat, hit[1].bits, nt):
        return hit[1]
    bits = _memory.empty((a.size,), np.uint16)
    _elementwise.to_bf16(flat, bits, nt)
    saved = Bf16Saved(bits, a.shape)
    key = id(a)

    def forget(ref, key=key):
        entry = memo.get(key)
        if entry is not None and entry[0] is ref:
            del memo[key]
    memo[key] = (weakref.ref(a, forget), saved)
    return saved


def restore(a):
    """The float32 array of keep()'s result (a itself if it was kept as is)."""
    return a.restore() if type(a) is Bf16Saved else a


def _memo():
    m = getattr(_state, "memo", None)
    if m is None:
        m = _state.memo = {}
    return m
