"""Build a backbone from its :class:`~faster_rcnn.config.BackboneConfig`."""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from faster_rcnn.backbones.mobilenet import MobileNetV2FPNBackbone
from faster_rcnn.backbones.mobilenet_v3 import MobileNetV3FPNBackbone
from faster_rcnn.backbones.resnet import ResNetFPNBackbone
from faster_rcnn.backbones.small import SmallFPNBackbone
from faster_rcnn.backbones.vgg import VGG16Backbone
from faster_rcnn.config import CUSTOM_BACKBONE, BackboneConfig, FasterRCNNConfig


def build_backbone(cfg: BackboneConfig) -> nn.Module:
    """The backbone ``cfg.name`` names, with freshly initialised weights.

    Every backbone has an ``out_channels`` attribute and maps ``(N, 3, H, W)`` images to an
    ordered dict of feature maps with that many channels, finest first (their names are
    ``cfg.feature_maps()``).

    Raises:
        ValueError: the config names a custom backbone, which only its user can build.
    """
    if cfg.name == CUSTOM_BACKBONE:
        raise ValueError(
            "backbone 'custom' is built by its user: pass it as FasterRCNN(backbone, config)"
        )
    trainable_layers = cfg.resolved_trainable_layers()
    assert trainable_layers is not None  # every named backbone has a default
    if cfg.name == "vgg16":
        return VGG16Backbone(trainable_layers)
    if cfg.name == "small":
        return SmallFPNBackbone(cfg.out_channels, trainable_layers, cfg.frozen_batch_norm)
    returned = cfg.resolved_returned_layers()
    assert returned is not None  # the ResNets and MobileNets have a default
    if cfg.name in ("resnet50_fpn", "resnet50_fpn_v2"):
        fpn_norm = nn.BatchNorm2d if cfg.name == "resnet50_fpn_v2" else None
        return ResNetFPNBackbone(
            cfg.out_channels, trainable_layers, cfg.frozen_batch_norm, fpn_norm, returned
        )
    mobilenet = {
        "mobilenet_v2_fpn": MobileNetV2FPNBackbone,
        "mobilenet_v3_large_fpn": MobileNetV3FPNBackbone,
    }[cfg.name]
    return mobilenet(cfg.out_channels, trainable_layers, cfg.frozen_batch_norm, returned)


def check_backbone_matches(backbone: nn.Module, cfg: BackboneConfig) -> None:
    """Refuse a backbone that is not the one ``cfg`` describes, so that a model's config
    always rebuilds the network it belongs to.

    A named backbone must be of the class ``cfg.name`` builds, with the same parameter
    and buffer names and shapes (which settle ``out_channels`` and ``frozen_batch_norm``);
    a custom one must have ``cfg.out_channels`` output channels.

    Raises:
        ValueError: naming what differs.
    """
    channels = getattr(backbone, "out_channels", None)
    if channels != cfg.out_channels:
        raise ValueError(
            f"the backbone has out_channels={channels} but config.backbone.out_channels is "
            f"{cfg.out_channels}"
        )
    if cfg.name == CUSTOM_BACKBONE:
        return
    with torch.device("meta"):
        expected = build_backbone(cfg)
    if type(backbone) is not type(expected):
        raise ValueError(
            f"the backbone is a {type(backbone).__name__} but config.backbone.name is "
            f"{cfg.name!r} ({type(expected).__name__}); use name 'custom' for your own"
        )
    ours = {k: tuple(v.shape) for k, v in backbone.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in expected.state_dict().items()}
    if ours != theirs:
        differing = sorted(set(ours.items()) ^ set(theirs.items()))
        raise ValueError(
            f"the {cfg.name} backbone differs from the one config.backbone describes "
            f"({cfg}): first difference {differing[0]}"
        )


def check_custom_feature_maps(backbone: nn.Module, config: FasterRCNNConfig) -> None:
    """Refuse a custom backbone whose feature maps do not fit ``config``'s anchor levels
    and pooled maps (:meth:`FasterRCNNConfig.check_feature_maps`), or have another width
    than ``config.backbone.out_channels``, when the model is built rather than at its
    first forward pass. The maps are those of a batch of the config's smallest size, run
    on the meta device (:func:`probed_feature_maps`).

    Raises:
        ValueError: naming what does not fit and the backbone's maps.
    """
    if config.backbone.name != CUSTOM_BACKBONE:
        return
    maps = custom_feature_maps(backbone, config)
    if maps is None:
        return
    config.check_feature_maps(tuple(maps))
    channels = config.backbone.out_channels
    wider = {name: width for name, width in maps.items() if width != channels}
    if wider:
        raise ValueError(
            f"the backbone's feature maps have {wider} channels (by name), but its "
            f"out_channels and config.backbone.out_channels are {channels}"
        )


def custom_feature_maps(backbone: nn.Module, config: FasterRCNNConfig) -> dict[str, int] | None:
    """The feature maps ``backbone`` returns for a batch of ``config``'s smallest size, as
    name -> channels (:func:`probed_feature_maps`); ``None`` where it cannot be probed."""
    divisor = config.transform.size_divisible
    side = math.ceil(min(config.transform.min_size) / divisor) * divisor
    return probed_feature_maps(backbone, side)


def probed_feature_maps(backbone: nn.Module, side: int) -> dict[str, int] | None:
    """The feature maps ``backbone`` returns for a ``(2, 3, side, side)`` batch (two
    images: a training batch norm refuses one value a channel), as name -> channels (a
    single tensor is map ``"0"``), found on the meta device: nothing is computed and its
    weights and statistics are untouched. ``None`` where it does not run there (one that
    reads values, say), so that its first forward pass says what is wrong."""
    tensors = itertools.chain(backbone.named_parameters(), backbone.named_buffers())
    on_meta = {name: tensor.to("meta") for name, tensor in tensors}
    images = torch.empty(2, 3, side, side, device="meta")
    try:
        with torch.no_grad():
            features = torch.func.functional_call(backbone, on_meta, (images,))
    except Exception:  # a user's module may fail on the meta device in any way
        return None
    if isinstance(features, Tensor):
        features = {"0": features}
    if not isinstance(features, dict) or not all(
        isinstance(f, Tensor) and f.dim() == 4 for f in features.values()
    ):
        return None
    return {str(name): int(f.shape[1]) for name, f in features.items()}
