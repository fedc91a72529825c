"""The Region Proposal Network and Faster R-CNN in pure PyTorch.

The names below are imported when first used (PEP 562's module ``__getattr__``), so that
``import faster_rcnn`` loads nothing heavy: the ``faster-rcnn`` program starts, and
answers Ctrl-C in one line, before PyTorch has loaded (see :mod:`faster_rcnn.__main__`).
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as type checkers and editors see them
    from .anchors import AnchorGenerator as AnchorGenerator
    from .backbones import build_backbone as build_backbone
    from .backbones import load_backbone_weights as load_backbone_weights
    from .config import AnchorConfig as AnchorConfig
    from .config import BackboneConfig as BackboneConfig
    from .config import FasterRCNNConfig as FasterRCNNConfig
    from .config import RoIHeadsConfig as RoIHeadsConfig
    from .config import RPNConfig as RPNConfig
    from .config import TransformConfig as TransformConfig
    from .model import FasterRCNN as FasterRCNN
    from .torchvision_checkpoint import load_torchvision_checkpoint as load_torchvision_checkpoint
    from .torchvision_checkpoint import read_torchvision_state_dict as read_torchvision_state_dict
    from .train.initial_weights import load_initial_weights as load_initial_weights

# Each public name and the module that defines it.
_HOMES = {
    "AnchorConfig": ".config",
    "AnchorGenerator": ".anchors",
    "BackboneConfig": ".config",
    "FasterRCNN": ".model",
    "FasterRCNNConfig": ".config",
    "RPNConfig": ".config",
    "RoIHeadsConfig": ".config",
    "TransformConfig": ".config",
    "build_backbone": ".backbones",
    "load_backbone_weights": ".backbones",
    "load_initial_weights": ".train.initial_weights",
    "load_torchvision_checkpoint": ".torchvision_checkpoint",
    "read_torchvision_state_dict": ".torchvision_checkpoint",
}

__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name], __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    """The public names, the submodules imported so far and the module's own dunders:
    not the helpers this file imports for itself (``import_module``, ``Any``)."""
    shown = {name for name, value in globals().items() if isinstance(value, ModuleType)}
    shown |= {name for name in globals() if name.startswith("__")}
    return sorted({*shown, *__all__})
