"""Backbones: shared convolutional feature extractors, torchvision-compatible.

Each maps ``(N, 3, H, W)`` images to an ordered dict of feature maps, finest first, all
with ``out_channels`` channels.
"""

from faster_rcnn.backbones.build import (
    build_backbone,
    check_backbone_matches,
    check_custom_feature_maps,
)
from faster_rcnn.backbones.conv_norm_act import Conv2dNormActivation
from faster_rcnn.backbones.fpn import (
    BackboneWithFPN,
    FeaturePyramidNetwork,
    IntermediateLayerGetter,
    LastLevelMaxPool,
)
from faster_rcnn.backbones.frozen_bn import FrozenBatchNorm2d
from faster_rcnn.backbones.mobilenet import MobileNetV2FPNBackbone
from faster_rcnn.backbones.mobilenet_v3 import MobileNetV3FPNBackbone
from faster_rcnn.backbones.resnet import ResNetFPNBackbone
from faster_rcnn.backbones.small import SmallFPNBackbone
from faster_rcnn.backbones.vgg import VGG16Backbone
from faster_rcnn.backbones.weights import LoadReport, load_backbone_weights

__all__ = [
    "BackboneWithFPN",
    "Conv2dNormActivation",
    "FeaturePyramidNetwork",
    "FrozenBatchNorm2d",
    "IntermediateLayerGetter",
    "LastLevelMaxPool",
    "LoadReport",
    "MobileNetV2FPNBackbone",
    "MobileNetV3FPNBackbone",
    "ResNetFPNBackbone",
    "SmallFPNBackbone",
    "VGG16Backbone",
    "build_backbone",
    "check_backbone_matches",
    "check_custom_feature_maps",
    "load_backbone_weights",
]
