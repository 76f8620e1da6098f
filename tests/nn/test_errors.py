"""Every error of API.md's "Arrays" and "Modules" sections, with its message."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import nn

LAYERS_4D = [lambda: nn.Conv2d(3, 4, 3), lambda: nn.ConvTranspose2d(3, 4, 3), lambda: nn.MaxPool2d(2),
             lambda: nn.AvgPool2d(2), lambda: nn.AdaptiveAvgPool2d(1), lambda: nn.BatchNorm2d(3),
             lambda: nn.Upsample(scale_factor=2)]
ALL = LAYERS_4D + [lambda: nn.ReLU(), lambda: nn.Linear(3, 2), lambda: nn.Flatten(),
                   lambda: nn.Dropout(), lambda: nn.Identity()]


@pytest.mark.parametrize("make", ALL, ids=range(len(ALL)))
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.complex64, object, np.float16])
def test_bad_dtype_is_type_error_naming_layer_and_dtype(make, dtype):
    m = make()
    x = np.ones((2, 3, 4, 4)).astype(dtype) if dtype is not object else \
        np.empty((2, 3, 4, 4), dtype=object)
    name = type(m).__name__
    with pytest.raises(TypeError, match=f"{name}: expected a float32 or float64 array, got dtype "
                                        f"{np.dtype(dtype)}"):
        m(x)


@pytest.mark.parametrize("make", LAYERS_4D, ids=range(len(LAYERS_4D)))
def test_wrong_rank_is_value_error_with_shapes(make):
    """Like torch, the convolutions and pools also take an unbatched (C, H, W) input
    (tests/test_module.py); BatchNorm2d and Upsample want 4-D."""
    m = make()
    bad = (4, 4) if m._unbatched_ndim == 3 else (3, 4, 4)
    with pytest.raises(ValueError, match=rf"{type(m).__name__}: expected a 4-D input \(N, C, H, W\), "
                                         rf"got shape \({bad[0]}, {bad[1]}"):
        m(np.ones(bad, np.float32))


def test_wrong_channels_names_expected_and_actual():
    with pytest.raises(ValueError, match=r"Conv2d: expected input with 3 channels, shape "
                                         r"\(N, 3, H, W\), got shape \(2, 4, 8, 8\)"):
        nn.Conv2d(3, 8, 3)(np.ones((2, 4, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected input with 5 channels"):
        nn.BatchNorm2d(5)(np.ones((2, 4, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"Linear: expected input with 3 features, shape \(N, 3\), "
                                         r"got shape \(2, 4\)"):
        nn.Linear(3, 2)(np.ones((2, 4), np.float32))


def test_empty_output_shows_formula_with_numbers():
    with pytest.raises(ValueError, match=r"Conv2d: output height would be 0 \(must be >= 1\): "
                                         r"floor\(\(height \+ pad_before \+ pad_after - "
                                         r"dilation\*\(kernel_size-1\) - 1\) / stride\) \+ 1 = "
                                         r"floor\(\(4 \+ 0 \+ 0 - 2\*\(3-1\) - 1\) / 1\) \+ 1 = 0"):
        nn.Conv2d(1, 1, 3, dilation=2)(np.ones((1, 1, 4, 9), np.float32))
    with pytest.raises(ValueError, match=r"MaxPool2d: output width would be 0 .*floor\(\(1 \+ 2\*0 "
                                         r"- 1\*\(2-1\) - 1\) / 2\) \+ 1 = 0"):
        nn.MaxPool2d(2)(np.ones((1, 1, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"AvgPool2d: output height would be 0"):
        nn.AvgPool2d(3)(np.ones((1, 1, 2, 5), np.float32))
    with pytest.raises(ValueError, match=r"ConvTranspose2d: output height would be -1 .*"
                                         r"\(1 - 1\)\*1 - 2\*1 \+ 1\*\(1-1\) \+ 0 \+ 1 = -1"):
        nn.ConvTranspose2d(1, 1, 1, padding=1)(np.ones((1, 1, 1, 1), np.float32))


def test_constructor_errors():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="invalid padding string 'full'"):
        nn.Conv2d(1, 1, 3, padding="full")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="stride must be >= 1"):
        nn.Conv2d(1, 1, 3, stride=0)
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        nn.Conv2d(1, 1, 2.5)
    with pytest.raises(ValueError, match="output_padding must be smaller than either stride or "
                                         "dilation"):
        nn.ConvTranspose2d(1, 1, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="pad should be smaller than or equal to half of kernel"):
        nn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="exactly one of size or scale_factor"):
        nn.Upsample()
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        nn.Upsample(scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match="in_features must be >= 1"):
        nn.Linear(0, 2)


def test_padding_mode_size_errors():
    with pytest.raises(ValueError, match="reflect padding .* must be smaller than the input size"):
        nn.Conv2d(1, 1, 3, padding=3, padding_mode="reflect")(np.ones((1, 1, 3, 3), np.float32))


def test_non_array_input_is_type_error():
    with pytest.raises(TypeError, match="Conv2d: expected a NumPy array"):
        nn.Conv2d(1, 1, 3)(None)
    # lists are converted like np.asarray; int lists then fail the dtype check
    with pytest.raises(TypeError, match="got dtype int64"):
        nn.Conv2d(1, 1, 1)([[[[1]]]])


def test_threads_api_errors():
    with pytest.raises(ValueError, match="n >= 1"):
        fc.set_num_threads(0)
    with pytest.raises(TypeError):
        fc.set_num_threads(1.5)


@pytest.mark.parametrize("make", [
    lambda: nn.Conv2d(1, 1, 1, padding=1, padding_mode="replicate"),
    lambda: nn.Conv2d(1, 1, 3, padding=1),
    lambda: nn.ConvTranspose2d(1, 1, 2),
    lambda: nn.MaxPool2d(4, padding=2),
    lambda: nn.AvgPool2d(4, padding=2, count_include_pad=False),
])
@pytest.mark.parametrize("shape", [(1, 1, 0, 0), (1, 1, 0, 3), (2, 1, 4, 0)])
def test_empty_planes_rejected_like_torch(make, shape):
    """Found by the fuzzer: padding made outputs out of no pixels (replicate padding
    read outside the array); torch refuses these inputs, and so does fastconv."""
    m = make()
    with pytest.raises(ValueError, match=type(m).__name__ + r": (.*non-empty|output .* would be 0)"):
        m(np.ones(shape, np.float32))


def test_empty_batch_with_empty_planes_zero_padding_is_allowed():
    y = nn.Conv2d(1, 2, 1, padding=1)(np.ones((0, 1, 0, 3), np.float32))
    assert y.shape == (0, 2, 2, 5)           # torch gives the same
    with pytest.raises(ValueError, match="replicate padding"):
        nn.Conv2d(1, 1, 1, padding=1, padding_mode="replicate")(np.ones((0, 1, 0, 3), np.float32))
