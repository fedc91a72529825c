"""The Region Proposal Network and Faster R-CNN in pure PyTorch."""

from .anchors import AnchorGenerator
from .backbones import build_backbone, load_backbone_weights
from .config import (
    AnchorConfig,
    BackboneConfig,
    FasterRCNNConfig,
    RoIHeadsConfig,
    RPNConfig,
    TransformConfig,
)
from .model import FasterRCNN
from .torchvision_checkpoint import load_torchvision_checkpoint, read_torchvision_state_dict

__all__ = [
    "AnchorConfig",
    "AnchorGenerator",
    "BackboneConfig",
    "FasterRCNN",
    "FasterRCNNConfig",
    "RPNConfig",
    "RoIHeadsConfig",
    "TransformConfig",
    "build_backbone",
    "load_backbone_weights",
    "load_torchvision_checkpoint",
    "read_torchvision_state_dict",
]
