"""Models: the article's building blocks and camera classifier (chains with an explicit
backward), and networks people train (plain forwards, trained on the tape) with
torchvision's state_dict keys where torchvision has the model.

    ConvBlock, DepthwiseSeparableConv, Bottleneck, SmoothUpsample, camera_classifier
    resnet18, resnet34, mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large
        (torchvision keys, hyper-parameters and initialisation), unet

fastconv.models.mobilenet_v3.InvertedResidual is MobileNetV3's block (the package's
InvertedResidual is MobileNetV2's, as in torchvision's two modules).
"""
from .article import (Bottleneck, ConvBlock, DepthwiseSeparableConv, SmoothUpsample,
                      camera_classifier)
from .mobilenet import ConvBNActivation, InvertedResidual, MobileNetV2, mobilenet_v2
from .mobilenet_v3 import (InvertedResidualConfig, MobileNetV3, SqueezeExcitation,
                           mobilenet_v3_large, mobilenet_v3_small)
from .resnet import BasicBlock, ResNet, resnet18, resnet34
from .unet import UNet, unet

__all__ = ["ConvBlock", "DepthwiseSeparableConv", "Bottleneck", "SmoothUpsample",
           "camera_classifier", "BasicBlock", "ResNet", "resnet18", "resnet34", "UNet", "unet",
           "ConvBNActivation", "InvertedResidual", "MobileNetV2", "mobilenet_v2",
           "SqueezeExcitation", "InvertedResidualConfig", "MobileNetV3", "mobilenet_v3_small",
           "mobilenet_v3_large"]
