"""ResNet-18 / ResNet-34 with torchvision's module tree (so its state_dict keys and
weights load directly), written as a plain forward: train it on the tape,
``loss = crit(model(fc.Tensor(x)), y); loss.backward()``."""
import numpy as np

from .. import functional as F, ops
from ..nn import (AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d, Module, ReLU,
                  Sequential)
from ..nn import _init
from ..nn.container import batch_norm_activation
from ..nn.conv import folded_conv_bn

__all__ = ["BasicBlock", "ResNet", "resnet18", "resnet34"]


def _torchvision_init(model):
    """torchvision's initialisation: convolutions kaiming-normal (fan_out, ReLU),
    BatchNorm weight 1 and bias 0, Linear torch's default."""
    for m in model.modules():
        if isinstance(m, Conv2d):
            m.weight.data = _init.kaiming_normal_fan_out(m.weight.shape)
    return model


class BasicBlock(Module):
    """Two 3x3 convolutions with BatchNorm, ReLU, and the identity (or a 1x1 strided
    projection, ``downsample``) added before the last ReLU."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.relu = ReLU(inplace=True)
        self.conv2 = Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        if downsample is None:
            self.add_module("downsample", None)
        else:
            self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        # eval under no_grad: each Conv-BN(-ReLU) as one convolution (folded_conv_bn)
        out = folded_conv_bn(self.conv1, self.bn1, x, relu=True)
        if out is None:
            out = batch_norm_activation(self.bn1, self.relu, self.conv1(x))
        y = folded_conv_bn(self.conv2, self.bn2, out)
        out = self.bn2(self.conv2(out)) if y is None else y
        identity = x if self.downsample is None else self.downsample(x)
        if (type(y) is np.ndarray and type(identity) is np.ndarray and y.shape == identity.shape
                and y.dtype == identity.dtype):
            return F.add_relu_(y, identity)     # folded: y is ours, add and ReLU in one pass
        return self.relu(ops.add(out, identity))

    def output_shape(self, input_shape):
        return self.bn2.output_shape(self.conv2.output_shape(self.conv1.output_shape(input_shape)))


class ResNet(Module):
    """torchvision's ResNet with BasicBlocks: (N, 3, H, W) -> logits (N, num_classes)."""

    def __init__(self, layers, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = BatchNorm2d(64)
        self.relu = ReLU(inplace=True)
        self.maxpool = MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 2)
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.fc = Linear(512, num_classes)
        _torchvision_init(self)

    def _make_layer(self, planes, blocks, stride=1):
        down = None
        if stride != 1 or self.inplanes != planes:
            down = Sequential(Conv2d(self.inplanes, planes, 1, stride, bias=False),
                              BatchNorm2d(planes))
        out = [BasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        out += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return Sequential(*out)

    def forward(self, x):
        y = folded_conv_bn(self.conv1, self.bn1, x, relu=True)
        x = self.maxpool(batch_norm_activation(self.bn1, self.relu, self.conv1(x))
                         if y is None else y)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(ops.flatten(self.avgpool(x), 1))

    def output_shape(self, input_shape):
        return (int(input_shape[0]), self.fc.out_features)


def resnet18(num_classes=1000):
    """ResNet-18 (11.7 M parameters at 1000 classes), torchvision's keys."""
    return ResNet([2, 2, 2, 2], num_classes)


def resnet34(num_classes=1000):
    """ResNet-34 (21.8 M parameters at 1000 classes), torchvision's keys."""
    return ResNet([3, 4, 6, 3], num_classes)
