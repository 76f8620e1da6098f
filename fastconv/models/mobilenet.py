"""MobileNetV2 (Sandler et al. 2018) with torchvision's module tree (so its state_dict
keys and weights load directly), any width; a plain forward trained on the tape."""
from .. import ops
from ..nn import (AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Linear, Module, ReLU6,
                  Sequential)
from ..nn import _init

__all__ = ["ConvBNActivation", "InvertedResidual", "MobileNetV2", "mobilenet_v2"]


def _make_divisible(v, divisor=8):
    """torchvision's channel rounding: the nearest multiple of divisor, at least
    divisor, never more than 10% below v."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ConvBNActivation(Sequential):
    """Conv2d (bias-free, 'same' padding) -> norm_layer(cout) -> activation_layer
    (in place): torchvision's Conv2dNormActivation, keys 0.weight, 1.*.
    (N, cin, H, W) -> (N, cout, ceil(H / stride), ceil(W / stride)) for odd kernels.

    activation_layer: a layer class (ReLU6 for MobileNetV2; ReLU or Hardswish for V3),
    or None for none (a linear projection); norm_layer: a callable num_features ->
    layer (MobileNetV3 passes BatchNorm2d with eps 0.001, momentum 0.01)."""

    def __init__(self, cin, cout, kernel_size=3, stride=1, groups=1, activation_layer=ReLU6,
                 norm_layer=BatchNorm2d):
        layers = [Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2,
                         groups=groups, bias=False), norm_layer(cout)]
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)


class InvertedResidual(Module):
    """1x1 expansion (unless expand_ratio is 1), 3x3 depthwise, 1x1 linear projection;
    the input added back when the shape allows."""

    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = [ConvBNActivation(inp, hidden, 1)] if expand_ratio != 1 else []
        layers += [ConvBNActivation(hidden, hidden, stride=stride, groups=hidden),
                   Conv2d(hidden, oup, 1, bias=False), BatchNorm2d(oup)]
        self.conv = Sequential(*layers)
        self.stride, self.out_channels = stride, oup

    def forward(self, x):
        return ops.add(x, self.conv(x)) if self.use_res_connect else self.conv(x)


class MobileNetV2(Module):
    """torchvision's MobileNetV2: (N, 3, H, W) -> logits (N, num_classes)."""

    SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
               [6, 160, 3, 2], [6, 320, 1, 1]]        # expansion, channels, repeats, stride

    def __init__(self, num_classes=1000, width_mult=1.0, dropout=0.2):
        super().__init__()
        cin = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult))
        features = [ConvBNActivation(3, cin, stride=2)]
        for t, c, n, s in self.SETTING:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNActivation(cin, self.last_channel, 1))
        self.features = Sequential(*features)
        self.classifier = Sequential(Dropout(dropout), Linear(self.last_channel, num_classes))
        object.__setattr__(self, "_pool", AdaptiveAvgPool2d(1))    # not a child: no key
        for m in self.modules():                  # torchvision's initialisation
            if isinstance(m, Conv2d):
                m.weight.data = _init.kaiming_normal_fan_out(m.weight.shape)
            elif isinstance(m, Linear):
                m.weight.data = _init.normal(m.weight.shape, 0.01)
                m.bias.data[...] = 0

    def forward(self, x):
        return self.classifier(ops.flatten(self._pool(self.features(x)), 1))

    def output_shape(self, input_shape):
        return (int(input_shape[0]), self.classifier[1].out_features)


def mobilenet_v2(num_classes=1000, width_mult=1.0, dropout=0.2):
    """MobileNetV2 at any width (3.5 M parameters at 1.0 and 1000 classes)."""
    return MobileNetV2(num_classes, width_mult, dropout)
