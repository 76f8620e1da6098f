"""Models: the article's building blocks and camera classifier (chains with an explicit
backward), and networks people train (plain forwards, trained on the tape) with
torchvision's state_dict keys where torchvision has the model.

    ConvBlock, DepthwiseSeparableConv, Bottleneck, SmoothUpsample, camera_classifier
    resnet18, resnet34, mobilenet_v2 (torchvision keys), unet
"""
from .article import (Bottleneck, ConvBlock, DepthwiseSeparableConv, SmoothUpsample,
                      camera_classifier)
from .mobilenet import ConvBNActivation, InvertedResidual, MobileNetV2, mobilenet_v2
from .resnet import BasicBlock, ResNet, resnet18, resnet34
from .unet import UNet, unet

__all__ = ["ConvBlock", "DepthwiseSeparableConv", "Bottleneck", "SmoothUpsample",
           "camera_classifier", "BasicBlock", "ResNet", "resnet18", "resnet34", "UNet", "unet",
           "ConvBNActivation", "InvertedResidual", "MobileNetV2", "mobilenet_v2"]
