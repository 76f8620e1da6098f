"""Shape arithmetic and argument checks: the one source of truth.

Every layer and ``fastconv.analysis`` use these helpers, so an output-size formula or
an error message exists exactly once.  Errors name the layer, what was expected and
what came, and for convolutions and pooling show the formula with the numbers filled
in.
"""
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def pair(value, name, layer, minimum=0):
    """Normalise an int or a 2-sequence of ints to a tuple (a, b), each >= minimum."""
    if _is_int(value):
        out = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        out = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{layer}: {name} must be an int or a pair of ints, got {value!r}")
    if min(out) < minimum:
        raise ValueError(f"{layer}: {name} must be >= {minimum}, got {value!r}")
    return out


def positive_int(value, name, layer, minimum=1):
    """Check an int argument (channels, features) is an int >= minimum."""
    if not _is_int(value):
        raise TypeError(f"{layer}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{layer}: {name} must be >= {minimum}, got {value}")
    return int(value)


# ------------------------------------------------------------------ output sizes

def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """floor((size + 2*padding - dilation*(kernel_size - 1) - 1) / stride) + 1.

    The effective (dilated) kernel is kernel_size + (kernel_size - 1)*(dilation - 1).
    ``padding`` may also be a (before, after) pair for asymmetric padding."""
    total = padding[0] + padding[1] if isinstance(padding, tuple) else 2 * padding
    return (size + total - dilation * (kernel_size - 1) - 1) // stride + 1


def conv_transpose_output_size(size, kernel_size, stride=1, padding=0, output_padding=0,
                               dilation=1):
    """(size - 1)*stride - 2*padding + dilation*(kernel_size - 1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def pool_output_size(size, kernel_size, stride, padding=0, dilation=1, ceil_mode=False):
    """PyTorch's pooling size: conv_output_size, rounded up under ceil_mode, except that
    the last window must start inside the input or the left padding."""
    num = size + 2 * padding - dilation * (kernel_size - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = num // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def same_padding(size, kernel_size, stride=1, dilation=1):
    """(before, after) padding for 'same': output ceil(size / stride); the odd pixel
    goes after (bottom/right), as TensorFlow does and torch does for stride 1."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel_size - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def _empty_error(layer, dim, size, k, s, p, d, out, formula=None):
    if formula is None:
        if isinstance(p, tuple):
            formula = (f"floor(({dim} + pad_before + pad_after - dilation*(kernel_size-1) - 1)"
                       f" / stride) + 1 = floor(({size} + {p[0]} + {p[1]} - {d}*({k}-1) - 1) / {s})"
                       f" + 1 = {out}")
        else:
            formula = (f"floor(({dim} + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1"
                       f" = floor(({size} + 2*{p} - {d}*({k}-1) - 1) / {s}) + 1 = {out}")
    return ValueError(f"{layer}: output {dim} would be {out} (must be >= 1): {formula}; "
                      f"the input is too small for this kernel size, dilation and padding")


def checked_conv_output(layer, dim, size, k, s, p, d):
    """conv_output_size that raises a ValueError with the formula when it is < 1."""
    out = conv_output_size(size, k, s, p, d)
    if out < 1:
        raise _empty_error(layer, dim, size, k, s, p, d, out)
    return out


def checked_pool_output(layer, dim, size, k, s, p, d, ceil_mode):
    if size < 1:            # padding would make windows of nothing (torch refuses)
        raise ValueError(f"{layer}: input {dim} is {size}; pooling needs a non-empty input")
    out = pool_output_size(size, k, s, p, d, ceil_mode)
    if out < 1:
        rnd = "ceil" if ceil_mode else "floor"
        formula = (f"{rnd}(({dim} + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1"
                   f" = {rnd}(({size} + 2*{p} - {d}*({k}-1) - 1) / {s}) + 1 = {out}")
        raise _empty_error(layer, dim, size, k, s, p, d, out, formula)
    return out


def check_conv_planes(layer, shape, padding_mode, padded):
    """Empty planes are allowed only in an empty batch with zero padding (as in torch):
    otherwise padding would invent an output from no pixels, and replicate padding
    would read outside the array."""
    N, C, H, W = shape
    if (H == 0 or W == 0) and (N * C or (padding_mode != "zeros" and padded)):
        raise ValueError(f"{layer}: input planes are {H}x{W}; a convolution needs non-empty "
                         "planes (only an empty batch may have them, and not with "
                         f"{padding_mode} padding)")


def padding_mode_code(mode):
    """The kernels' code for a padding mode: its index in PADDING_MODES."""
    return PADDING_MODES.index(mode)


def check_padding_fits(layer, mode, pads, h, w):
    """reflect padding must be smaller than the plane, circular no larger (torch's rules)."""
    pt, pb, pl, pr = pads
    if mode == "reflect" and (max(pt, pb) >= h or max(pl, pr) >= w):
        raise ValueError(f"{layer}: reflect padding ({pt}, {pb}, {pl}, {pr}) must be smaller "
                         f"than the input size {h}x{w}")
    if mode == "circular" and (max(pt, pb) > h or max(pl, pr) > w):
        raise ValueError(f"{layer}: circular padding ({pt}, {pb}, {pl}, {pr}) must not exceed "
                         f"the input size {h}x{w}")


def checked_conv_transpose_output(layer, dim, size, k, s, p, op, d):
    if size < 1:            # the formula would give an output for no input (torch refuses)
        raise ValueError(f"{layer}: input {dim} is {size}; a transposed convolution needs "
                         f"a non-empty input")
    out = conv_transpose_output_size(size, k, s, p, op, d)
    if out < 1:
        formula = (f"({dim} - 1)*stride - 2*padding + dilation*(kernel_size-1) + output_padding"
                   f" + 1 = ({size} - 1)*{s} - 2*{p} + {d}*({k}-1) + {op} + 1 = {out}")
        raise ValueError(f"{layer}: output {dim} would be {out} (must be >= 1): {formula}")
    return out


# ------------------------------------------------------------------ arrays

def as_input(layer, x, ndim, layout="(N, C, H, W)"):
    """Validate an activation: a float32/float64 array with ``ndim`` dims; returns a
    C-contiguous array (copied only when needed; never modified)."""
    if not isinstance(x, np.ndarray):
        if isinstance(x, (numbers.Number, str, bytes)) or x is None:
            raise TypeError(f"{layer}: expected a NumPy array of shape {layout}, "
                            f"got {type(x).__name__}")
        x = np.asarray(x)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{layer}: expected a float32 or float64 array, got dtype {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{layer}: expected a {ndim}-D input {layout}, got shape {x.shape}")
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    return x


def as_shape(layer, shape, ndim, channels=None, layout="(N, C, H, W)"):
    """Validate an input *shape* (for ``output_shape``): ndim ints >= 0, and the
    channel count at axis 1 when given.  Returns a tuple of ints."""
    try:
        shape = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{layer}: expected an input shape {layout}, got {shape!r}") from None
    if len(shape) != ndim or min(shape, default=0) < 0:
        raise ValueError(f"{layer}: expected a {ndim}-D input shape {layout}, got {shape}")
    if channels is not None and shape[1] != channels:
        raise _channels_error(layer, channels, "(N, {c}, H, W)", shape)
    return shape


def check_channels(layer, x, channels, layout="(N, {c}, H, W)", axis=1):
    if x.shape[axis] != channels:
        raise _channels_error(layer, channels, layout, x.shape)


def _channels_error(layer, channels, layout, shape):
    return ValueError(f"{layer}: expected input with {channels} channels, shape "
                      f"{layout.format(c=channels)}, got shape {tuple(shape)}")


def as_grad(layer, g, shape, dtype):
    """Validate an output gradient against the last output's shape; cast to dtype."""
    if not isinstance(g, np.ndarray):
        g = np.asarray(g)
    if g.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{layer}.backward: expected a float32 or float64 gradient, "
                        f"got dtype {g.dtype}")
    if g.shape != tuple(shape):
        raise ValueError(f"{layer}.backward: gradient shape {g.shape} does not match the "
                         f"last output's shape {tuple(shape)}")
    return np.asarray(g, dtype=dtype, order="C")     # (keeps a 0-d loss gradient 0-d)


def plane_limit(layer, h, w):
    """Max pooling stores argmax as int32 plane offsets."""
    if h * w >= 2 ** 31:
        raise ValueError(f"{layer}: input planes of {h}x{w} pixels exceed 2**31 elements")
