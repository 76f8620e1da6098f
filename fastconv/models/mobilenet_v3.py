"""MobileNetV3 (Howard et al. 2019), small and large, with torchvision's module tree (so
its state_dict keys and weights load directly), hyper-parameters and initialisation,
any width; a plain forward trained on the tape,
``loss = crit(model(fc.Tensor(x)), y); loss.backward()``."""
from functools import partial

from .. import ops
from ..nn import (AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Hardsigmoid, Hardswish,
                  Linear, Module, ReLU, Sequential)
from ..nn import _init
from .mobilenet import ConvBNActivation, _make_divisible

__all__ = ["SqueezeExcitation", "InvertedResidualConfig", "InvertedResidual", "MobileNetV3",
           "mobilenet_v3_small", "mobilenet_v3_large"]


class SqueezeExcitation(Module):
    """torchvision.ops.SqueezeExcitation with MobileNetV3's gate: global average pool,
    1x1 conv to ``squeeze_channels``, ReLU, 1x1 conv back, Hardsigmoid; the input scaled
    per channel by that gate.  (N, C, H, W) -> (N, C, H, W); keys fc1.*, fc2.*."""

    def __init__(self, input_channels, squeeze_channels):
        super().__init__()
        self.avgpool = AdaptiveAvgPool2d(1)
        self.fc1 = Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = Conv2d(squeeze_channels, input_channels, 1)
        self.activation = ReLU()
        self.scale_activation = Hardsigmoid()

    def forward(self, x):
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return ops.mul(self.scale_activation(scale), x)     # (N, C, 1, 1) gate broadcast

    def output_shape(self, input_shape):
        return tuple(int(v) for v in input_shape)


class InvertedResidualConfig:
    """One row of the paper's Tables 1 and 2: channels (scaled by width_mult and rounded
    by _make_divisible), kernel, squeeze-and-excitation, activation ("RE": ReLU, "HS":
    Hardswish), stride."""

    def __init__(self, input_channels, kernel, expanded_channels, out_channels, use_se,
                 activation, stride, width_mult=1.0):
        if activation not in ("RE", "HS"):
            raise ValueError(f"InvertedResidualConfig: activation must be 'RE' or 'HS', "
                             f"got {activation!r}")
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidualConfig: stride must be 1 or 2, got {stride!r}")
        self.input_channels = self.adjust_channels(input_channels, width_mult)
        self.kernel = kernel
        self.expanded_channels = self.adjust_channels(expanded_channels, width_mult)
        self.out_channels = self.adjust_channels(out_channels, width_mult)
        self.use_se = bool(use_se)
        self.use_hs = activation == "HS"
        self.stride = stride

    @staticmethod
    def adjust_channels(channels, width_mult):
        return _make_divisible(channels * width_mult, 8)


class InvertedResidual(Module):
    """MobileNetV3's block (``block.N`` keys): 1x1 expansion (unless the expanded width
    equals the input's), k x k depthwise, squeeze-and-excitation (where the row says),
    1x1 linear projection; the input added back when stride 1 keeps the shape.
    (N, cin, H, W) -> (N, cout, H / stride, W / stride)."""

    def __init__(self, cnf, norm_layer):
        super().__init__()
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        act = Hardswish if cnf.use_hs else ReLU
        layers = []
        if cnf.expanded_channels != cnf.input_channels:
            layers.append(ConvBNActivation(cnf.input_channels, cnf.expanded_channels, 1,
                                           activation_layer=act, norm_layer=norm_layer))
        layers.append(ConvBNActivation(cnf.expanded_channels, cnf.expanded_channels, cnf.kernel,
                                       cnf.stride, groups=cnf.expanded_channels,
                                       activation_layer=act, norm_layer=norm_layer))
        if cnf.use_se:
            layers.append(SqueezeExcitation(cnf.expanded_channels,
                                            _make_divisible(cnf.expanded_channels // 4, 8)))
        layers.append(ConvBNActivation(cnf.expanded_channels, cnf.out_channels, 1,
                                       activation_layer=None, norm_layer=norm_layer))
        self.block = Sequential(*layers)
        self.out_channels = cnf.out_channels

    def forward(self, x):
        y = self.block(x)
        return ops.add(y, x) if self.use_res_connect else y

    def output_shape(self, input_shape):
        return self.block.output_shape(input_shape)


# (input, kernel, expanded, output, squeeze-and-excitation, activation, stride): the
# paper's Tables 1 and 2, as torchvision's _mobilenet_v3_conf lists them
_SMALL = [(16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2),
          (24, 3, 88, 24, False, "RE", 1), (24, 5, 96, 40, True, "HS", 2),
          (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
          (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1),
          (48, 5, 288, 96, True, "HS", 2), (96, 5, 576, 96, True, "HS", 1),
          (96, 5, 576, 96, True, "HS", 1)]
_LARGE = [(16, 3, 16, 16, False, "RE", 1), (16, 3, 64, 24, False, "RE", 2),
          (24, 3, 72, 24, False, "RE", 1), (24, 5, 72, 40, True, "RE", 2),
          (40, 5, 120, 40, True, "RE", 1), (40, 5, 120, 40, True, "RE", 1),
          (40, 3, 240, 80, False, "HS", 2), (80, 3, 200, 80, False, "HS", 1),
          (80, 3, 184, 80, False, "HS", 1), (80, 3, 184, 80, False, "HS", 1),
          (80, 3, 480, 112, True, "HS", 1), (112, 3, 672, 112, True, "HS", 1),
          (112, 5, 672, 160, True, "HS", 2), (160, 5, 960, 160, True, "HS", 1),
          (160, 5, 960, 160, True, "HS", 1)]


class MobileNetV3(Module):
    """torchvision's MobileNetV3: (N, 3, H, W) -> logits (N, num_classes).

    features: a 3x3 stride-2 stem (Hardswish), one InvertedResidual per config, a 1x1
    conv to 6x the last block's channels (Hardswish); global average pool; classifier:
    Linear to last_channel, Hardswish, Dropout(dropout), Linear to num_classes.
    BatchNorm eps 0.001, momentum 0.01; the network downsamples 32x."""

    def __init__(self, inverted_residual_setting, last_channel, num_classes=1000, dropout=0.2):
        super().__init__()
        if not inverted_residual_setting or not all(
                isinstance(c, InvertedResidualConfig) for c in inverted_residual_setting):
            raise TypeError(f"MobileNetV3: inverted_residual_setting must be a non-empty list of "
                            f"InvertedResidualConfig, got {inverted_residual_setting!r:.80}")
        norm = partial(BatchNorm2d, eps=0.001, momentum=0.01)
        first = inverted_residual_setting[0].input_channels
        layers = [ConvBNActivation(3, first, 3, 2, activation_layer=Hardswish, norm_layer=norm)]
        layers += [InvertedResidual(c, norm) for c in inverted_residual_setting]
        last_in = inverted_residual_setting[-1].out_channels
        layers.append(ConvBNActivation(last_in, 6 * last_in, 1, activation_layer=Hardswish,
                                       norm_layer=norm))
        self.features = Sequential(*layers)
        self.avgpool = AdaptiveAvgPool2d(1)
        self.classifier = Sequential(Linear(6 * last_in, last_channel), Hardswish(inplace=True),
                                     Dropout(dropout), Linear(last_channel, num_classes))
        for m in self.modules():                  # torchvision's initialisation
            if isinstance(m, Conv2d):
                m.weight.data = _init.kaiming_normal_fan_out(m.weight.shape)
                if m.bias is not None:
                    m.bias.data[...] = 0
            elif isinstance(m, Linear):
                m.weight.data = _init.normal(m.weight.shape, 0.01)
                m.bias.data[...] = 0

    def forward(self, x):
        return self.classifier(ops.flatten(self.avgpool(self.features(x)), 1))

    def output_shape(self, input_shape):
        return (int(input_shape[0]), self.classifier[3].out_features)


def _mobilenet_v3(rows, last_channel, num_classes, width_mult, dropout):
    if not (isinstance(width_mult, (int, float)) and not isinstance(width_mult, bool)
            and width_mult > 0):
        raise ValueError(f"MobileNetV3: width_mult must be a positive number, got {width_mult!r}")
    setting = [InvertedResidualConfig(*r, width_mult=width_mult) for r in rows]
    return MobileNetV3(setting, InvertedResidualConfig.adjust_channels(last_channel, width_mult),
                       num_classes, dropout)


def mobilenet_v3_small(num_classes=1000, width_mult=1.0, dropout=0.2):
    """MobileNetV3-Small (2.54 M parameters at width 1.0 and 1000 classes):
    (N, 3, H, W) -> (N, num_classes)."""
    return _mobilenet_v3(_SMALL, 1024, num_classes, width_mult, dropout)


def mobilenet_v3_large(num_classes=1000, width_mult=1.0, dropout=0.2):
    """MobileNetV3-Large (5.48 M parameters at width 1.0 and 1000 classes):
    (N, 3, H, W) -> (N, num_classes)."""
    return _mobilenet_v3(_LARGE, 1280, num_classes, width_mult, dropout)
