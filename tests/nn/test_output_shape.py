"""Every layer's output_shape(input_shape) equals the shape its forward returns, and
rejects what the forward rejects, with the same message."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import models, nn

LAYERS = [
    (nn.Conv2d(3, 8, 3, stride=2, padding=1), (2, 3, 11, 9)),
    (nn.Conv2d(4, 4, (3, 5), padding="same", stride=2, groups=4), (1, 4, 7, 10)),
    (nn.Conv2d(2, 6, 1, dilation=2, padding_mode="reflect", padding=1), (1, 2, 5, 5)),
    (nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1, output_padding=1, groups=2), (2, 4, 5, 3)),
    (nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), (1, 2, 9, 8)),
    (nn.AvgPool2d((2, 3), padding=1, ceil_mode=True), (2, 2, 7, 6)),
    (nn.AdaptiveAvgPool2d((3, None)), (1, 3, 8, 5)),
    (nn.Upsample(scale_factor=1.5, mode="bilinear"), (1, 2, 5, 4)),
    (nn.Upsample(size=(7, 3)), (1, 2, 5, 4)),
    (nn.BatchNorm2d(3), (2, 3, 4, 4)),
    (nn.SyncBatchNorm(3), (2, 3, 4)),
    (nn.InstanceNorm2d(3, track_running_stats=True), (2, 3, 1, 1)),
    (nn.ReLU(), (2, 3, 4)),
    (nn.Flatten(1, 2), (2, 3, 4, 5)),
    (nn.Linear(5, 7), (3, 4, 5)),
    (nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())), (1, 3, 6, 6)),
    (models.ConvBlock(3, 8, stride=2), (1, 3, 9, 9)),
    (models.SmoothUpsample(3, 4), (1, 3, 5, 5)),
    (models.camera_classifier(), (2, 3, 32, 40)),
]


@pytest.mark.parametrize("m, shape", LAYERS, ids=[type(m).__name__ for m, _ in LAYERS])
def test_output_shape_matches_forward(m, shape, rng):
    with fc.no_grad():
        y = m.eval()(rng.standard_normal(shape).astype(np.float32))
    assert m.output_shape(shape) == y.shape


@pytest.mark.parametrize("m, shape", [(nn.Conv2d(3, 8, 5), (1, 3, 4, 4)),
                                      (nn.Conv2d(3, 8, 3), (1, 4, 8, 8)),
                                      (nn.MaxPool2d(4), (1, 1, 3, 3)),
                                      (nn.SyncBatchNorm(3), (2, 4, 5)),
                                      (nn.Linear(5, 2), (3, 4))])
def test_output_shape_rejects_what_forward_rejects(m, shape):
    with pytest.raises(ValueError) as shape_err:
        m.output_shape(shape)
    with pytest.raises(ValueError) as fwd_err:
        m(np.zeros(shape, np.float32))
    assert type(m).__name__ in str(shape_err.value)
    assert str(shape_err.value) == str(fwd_err.value)
