"""torch twins of fastconv.zoo's networks, written from torchvision's source
(torchvision/models/resnet.py: BasicBlock, ResNet; mobilenetv2.py; mobilenetv3.py with
torchvision.ops.misc's Conv2dNormActivation and SqueezeExcitation), for key-for-key and
output-for-output checks where torchvision itself is not installed."""
from functools import partial

import torch
from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, layers, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def _make_layer(self, planes, blocks, stride=1):
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                                 nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _make_divisible(v, divisor=8):
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class Conv2dNormActivation(nn.Sequential):      # torchvision.ops.misc, ReLU6 variant
    def __init__(self, cin, cout, kernel_size=3, stride=1, groups=1):
        super().__init__(nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2,
                                   groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden, 1))
        layers.extend([Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden),
                       nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)])
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=1000, width_mult=1.0, dropout=0.2):
        super().__init__()
        setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                   [6, 160, 3, 2], [6, 320, 1, 1]]
        cin = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult))
        features = [Conv2dNormActivation(3, cin, stride=2)]
        for t, c, n, s in setting:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(Conv2dNormActivation(cin, self.last_channel, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel,
                                                                       num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


# ---------------------------------------------------------------- MobileNetV3

class ConvNormActivation(nn.Sequential):      # torchvision.ops.misc.Conv2dNormActivation
    def __init__(self, cin, cout, kernel_size=3, stride=1, groups=1, norm_layer=None,
                 activation_layer=nn.ReLU):
        layers = [nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2,
                            groups=groups, bias=False), norm_layer(cout)]
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):            # torchvision.ops.misc, Hardsigmoid scale
    def __init__(self, input_channels, squeeze_channels):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class InvertedResidualV3(nn.Module):
    # cnf: (input, kernel, expanded, out, use_se, use_hs, stride), channels already adjusted
    def __init__(self, cnf, norm_layer):
        super().__init__()
        cin, k, exp, cout, use_se, use_hs, stride = cnf
        self.use_res_connect = stride == 1 and cin == cout
        act = nn.Hardswish if use_hs else nn.ReLU
        layers = []
        if exp != cin:
            layers.append(ConvNormActivation(cin, exp, 1, norm_layer=norm_layer,
                                             activation_layer=act))
        layers.append(ConvNormActivation(exp, exp, k, stride, groups=exp, norm_layer=norm_layer,
                                         activation_layer=act))
        if use_se:
            layers.append(SqueezeExcitation(exp, _make_divisible(exp // 4, 8)))
        layers.append(ConvNormActivation(exp, cout, 1, norm_layer=norm_layer,
                                         activation_layer=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        result = self.block(x)
        if self.use_res_connect:
            result += x
        return result


class MobileNetV3(nn.Module):
    def __init__(self, setting, last_channel, num_classes=1000, dropout=0.2):
        super().__init__()
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        layers = [ConvNormActivation(3, setting[0][0], 3, 2, norm_layer=norm,
                                     activation_layer=nn.Hardswish)]
        layers += [InvertedResidualV3(c, norm) for c in setting]
        last_in = setting[-1][3]
        layers.append(ConvNormActivation(last_in, 6 * last_in, 1, norm_layer=norm,
                                         activation_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(6 * last_in, last_channel),
                                        nn.Hardswish(inplace=True),
                                        nn.Dropout(p=dropout, inplace=True),
                                        nn.Linear(last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _mobilenet_v3_conf(arch, width_mult=1.0):
    def bneck(cin, k, exp, cout, se, act, s):
        a = partial(_make_divisible, divisor=8)
        return (a(cin * width_mult), k, a(exp * width_mult), a(cout * width_mult), se,
                act == "HS", s)
    if arch == "mobilenet_v3_large":
        setting = [bneck(16, 3, 16, 16, False, "RE", 1), bneck(16, 3, 64, 24, False, "RE", 2),
                   bneck(24, 3, 72, 24, False, "RE", 1), bneck(24, 5, 72, 40, True, "RE", 2),
                   bneck(40, 5, 120, 40, True, "RE", 1), bneck(40, 5, 120, 40, True, "RE", 1),
                   bneck(40, 3, 240, 80, False, "HS", 2), bneck(80, 3, 200, 80, False, "HS", 1),
                   bneck(80, 3, 184, 80, False, "HS", 1), bneck(80, 3, 184, 80, False, "HS", 1),
                   bneck(80, 3, 480, 112, True, "HS", 1), bneck(112, 3, 672, 112, True, "HS", 1),
                   bneck(112, 5, 672, 160, True, "HS", 2), bneck(160, 5, 960, 160, True, "HS", 1),
                   bneck(160, 5, 960, 160, True, "HS", 1)]
        last = 1280
    else:
        setting = [bneck(16, 3, 16, 16, True, "RE", 2), bneck(16, 3, 72, 24, False, "RE", 2),
                   bneck(24, 3, 88, 24, False, "RE", 1), bneck(24, 5, 96, 40, True, "HS", 2),
                   bneck(40, 5, 240, 40, True, "HS", 1), bneck(40, 5, 240, 40, True, "HS", 1),
                   bneck(40, 5, 120, 48, True, "HS", 1), bneck(48, 5, 144, 48, True, "HS", 1),
                   bneck(48, 5, 288, 96, True, "HS", 2), bneck(96, 5, 576, 96, True, "HS", 1),
                   bneck(96, 5, 576, 96, True, "HS", 1)]
        last = 1024
    return setting, _make_divisible(last * width_mult, 8)


def mobilenet_v3_small(num_classes=1000, width_mult=1.0, dropout=0.2):
    return MobileNetV3(*_mobilenet_v3_conf("mobilenet_v3_small", width_mult), num_classes,
                       dropout)


def mobilenet_v3_large(num_classes=1000, width_mult=1.0, dropout=0.2):
    return MobileNetV3(*_mobilenet_v3_conf("mobilenet_v3_large", width_mult), num_classes,
                       dropout)
