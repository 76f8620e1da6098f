"""Every number of the article fastconv follows, computed with fastconv's own layers."""
import numpy as np
import pytest

from fastconv import analysis, models, nn


def n_params(m):
    return sum(p.data.size for p in m.parameters())


def test_vertical_edge_toy():
    """A 5x5 image, bright on the left, and a 3x3 vertical-edge kernel give the 3x3
    feature map [[3, 3, 0]] * 3: the edge shows up where the window straddles it."""
    image = np.array([[1, 1, 0, 0, 0]] * 5, np.float32).reshape(1, 1, 5, 5)
    conv = nn.Conv2d(1, 1, 3, bias=False)
    conv.weight.data = np.array([[1, 0, -1]] * 3, np.float32).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(conv(image)[0, 0], [[3, 3, 0], [3, 3, 0], [3, 3, 0]])


@pytest.mark.parametrize("layer,count", [
    (lambda: nn.Conv2d(3, 16, 3), 448),
    # the fully-connected layer mapping a 32x32x3 image to a 28x28 map (what a 5x5
    # convolution produces) without weight sharing
    (lambda: nn.Linear(32 * 32 * 3, 28 * 28, bias=False), 2_408_448),
    (lambda: nn.Conv2d(3, 64, 7), 9_472),
    (lambda: nn.Conv2d(64, 128, 3), 73_856),
    (lambda: nn.Conv2d(512, 512, 3), 2_359_808),
    (lambda: nn.Conv2d(256, 256, 3), 590_080),
    (lambda: models.DepthwiseSeparableConv(256, 256), 67_840),
    (lambda: models.Bottleneck(256, 64), 70_400),
    (models.camera_classifier, 1_146_818),
])
def test_parameter_counts(layer, count):
    assert n_params(layer()) == count


def test_depthwise_separable_saving():
    ratio = n_params(nn.Conv2d(256, 256, 3)) / n_params(models.DepthwiseSeparableConv(256, 256))
    assert round(ratio, 1) == 8.7


def test_camera_classifier_parameters_per_stage():
    m = models.camera_classifier()
    per_stage = [n_params(m[i]) for i in range(len(m))]
    assert per_stage == [1_856, 36_992, 0, 73_984, 147_712, 0, 295_424, 590_336, 0, 0, 514]
    assert sum(per_stage) == 1_146_818


def test_output_sizes():
    x = np.zeros((1, 3, 224, 224), np.float32)
    assert nn.Conv2d(3, 8, 3, padding="same")(x).shape[2:] == (224, 224)
    assert nn.Conv2d(3, 8, 3, stride=2, padding=1)(x).shape[2:] == (112, 112)
    assert nn.Conv2d(3, 8, 7, stride=2, padding=3)(x).shape[2:] == (112, 112)   # ResNet stem
    assert nn.ConvTranspose2d(3, 8, 4, stride=2, padding=1)(
        np.zeros((1, 3, 14, 14), np.float32)).shape[2:] == (28, 28)
    x32 = np.zeros((1, 3, 32, 32), np.float32)
    for d in (1, 2, 4):
        assert nn.Conv2d(3, 8, 3, dilation=d, padding=d)(x32).shape[2:] == (32, 32)
    assert analysis.conv_output_size(224, 7, 2, 3) == 112


def test_receptive_field_growth_table():
    table = [analysis.receptive_field(nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1)
                                                      for _ in range(L)]), (1, 1, 32, 32))[0]
             for L in range(1, 11)]
    assert table == [2 * L + 1 for L in range(1, 11)]      # RF = L(k-1) + 1
    assert analysis.receptive_field(models.camera_classifier(), (1, 3, 64, 64)) == (96, 96)
