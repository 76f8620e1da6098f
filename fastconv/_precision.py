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

_state = threading.local()

_NAMES = {"bf16": "bf16", "bfloat16": "bf16"}


def autocast_dtype():
    """'bf16' inside ``autocast("bf16")``, else None (per Python thread)."""
    return getattr(_state, "dtype", None)


def bf16_enabled():
    return getattr(_state, "dtype", None) == "bf16"


@contextlib.contextmanager
def autocast(dtype="bf16", enabled=True):
    """Context manager: convolutions and Linear inside it multiply in ``dtype`` ('bf16',
    or 'bfloat16'; NumPy has no bf16 type, so it is named by string) and sum in float32.
    enabled=False runs float32 (one code path for both, like ``torch.autocast``).
    Nests; per Python thread."""
    name = _NAMES.get(dtype) if isinstance(dtype, str) else None
    if name is None:
        raise ValueError(f"autocast: dtype must be 'bf16' (or 'bfloat16'); got {dtype!r}")
    prev = getattr(_state, "dtype", None)
    _state.dtype = name if enabled else None
    try:
        yield
    finally:
        _state.dtype = prev
