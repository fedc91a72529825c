"""Build a backbone from its :class:`~faster_rcnn.config.BackboneConfig`."""

from __future__ import annotations

from torch import nn

from faster_rcnn.backbones.mobilenet import MobileNetV2FPNBackbone
from faster_rcnn.backbones.resnet import ResNetFPNBackbone
from faster_rcnn.backbones.small import SmallFPNBackbone
from faster_rcnn.backbones.vgg import VGG16Backbone
from faster_rcnn.config import BackboneConfig

# Stages trained when the config leaves ``trainable_layers`` at None: torchvision's and
# py-faster-rcnn's defaults for ImageNet-initialised backbones, everything for the small
# backbone that is trained from scratch.
DEFAULT_TRAINABLE_LAYERS = {"vgg16": 3, "resnet50_fpn": 3, "mobilenet_v2_fpn": 3, "small": 5}


def build_backbone(cfg: BackboneConfig) -> nn.Module:
    """The backbone ``cfg.name`` names, with freshly initialised weights.

    Every backbone has an ``out_channels`` attribute and maps ``(N, 3, H, W)`` images to an
    ordered dict of feature maps with that many channels, finest first.

    Raises:
        ValueError: an unknown name or an out-of-range ``trainable_layers``.
    """
    if cfg.name not in DEFAULT_TRAINABLE_LAYERS:
        raise ValueError(
            f"unknown backbone {cfg.name!r}; choose one of {sorted(DEFAULT_TRAINABLE_LAYERS)}"
        )
    trainable_layers = cfg.trainable_layers
    if trainable_layers is None:
        trainable_layers = DEFAULT_TRAINABLE_LAYERS[cfg.name]
    if cfg.name == "vgg16":
        return VGG16Backbone(trainable_layers)
    if cfg.name == "resnet50_fpn":
        return ResNetFPNBackbone(cfg.out_channels, trainable_layers, cfg.frozen_batch_norm)
    if cfg.name == "mobilenet_v2_fpn":
        return MobileNetV2FPNBackbone(cfg.out_channels, trainable_layers, cfg.frozen_batch_norm)
    return SmallFPNBackbone(cfg.out_channels, trainable_layers, cfg.frozen_batch_norm)
