"""Load torchvision ImageNet classification checkpoints into a backbone (and VGG's fc6/fc7).

Supported files are the published torchvision ones, ``resnet50-*.pth``,
``mobilenet_v2-*.pth``, ``mobilenet_v3_large-*.pth`` and ``vgg16-*.pth`` (or the same
state dicts as ``.safetensors``). Their keys are renamed to the detector's: ``features.N``
-> ``backbone.body.N`` for the MobileNets and VGG-16, ``conv1``/``layerN`` ->
``backbone.body.*`` for ResNet. The classifiers are dropped, except VGG-16's first two
fully connected layers, which become the box head's ``fc6`` and ``fc7`` as in the paper
(when the detector has such layers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from faster_rcnn.backbones.mobilenet import MobileNetV2FPNBackbone
from faster_rcnn.backbones.mobilenet_v3 import MobileNetV3FPNBackbone
from faster_rcnn.backbones.resnet import ResNetFPNBackbone
from faster_rcnn.backbones.vgg import VGG16Backbone
from faster_rcnn.state_dict_io import check_finite, read_state_dict

# The ImageNet classifier, left out of a detector (apart from VGG's fc6/fc7, below).
_CLASSIFIER_PREFIX = {
    "resnet50": "fc.",
    "mobilenet_v2": "classifier.",
    "mobilenet_v3_large": "classifier.",
    "vgg16": "classifier.",
}
# VGG-16's classifier: Linear(25088, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU,
# Dropout, Linear(4096, 1000). The first two are the paper's fc6 and fc7.
_VGG_FC_LAYERS = {
    "classifier.0.": "roi_heads.box_head.fc6.",
    "classifier.3.": "roi_heads.box_head.fc7.",
}

# A tensor that, of this shape, only each ImageNet checkpoint has (ResNet-101's and -152's
# layer4 is ResNet-50's: they are told by a layer3 block ResNet-50 lacks), and the
# presets whose backbone takes it: what the errors of a file given to another backbone
# name.
_SIGNATURES = {
    "resnet50": ("layer4.2.conv3.weight", (2048, 512, 1, 1), "layer3.6.conv1.weight"),
    "mobilenet_v2": ("features.18.0.weight", (1280, 320, 1, 1), None),
    "mobilenet_v3_large": ("features.16.0.weight", (960, 160, 1, 1), None),
    "vgg16": ("features.28.weight", (512, 512, 3, 3), "features.28.running_mean"),
}
_PRESETS_TAKING = {
    "resnet50": "the presets resnet50_fpn and resnet50_fpn_v2",
    "mobilenet_v2": "the preset mobilenet_v2_fpn",
    "mobilenet_v3_large": "the presets mobilenet_v3_large_fpn and mobilenet_v3_large_320_fpn",
    "vgg16": "the preset paper_vgg16",
}


@dataclass
class LoadReport:
    """What :func:`load_backbone_weights` did.

    Attributes:
        path: the checkpoint file.
        architecture: ``"resnet50"``, ``"mobilenet_v2"``, ``"mobilenet_v3_large"`` or
            ``"vgg16"``.
        loaded: model keys that received a tensor from the file.
        missing: model keys that the file should have provided but did not.
        unexpected: file keys that fit nowhere in the model.
        dropped: file keys left out on purpose (the ImageNet classifier, VGG's fc6/fc7
            when the model has no such layers, or a detector's tensors whose shapes
            differ from the model's).
        notes: sentences on what was loaded and why, printed under the first line.
    """

    path: str
    architecture: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.path}: loaded {len(self.loaded)} tensors ({self.architecture})"]
        lines += [f"  {note}" for note in self.notes]
        for title, keys in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("dropped", self.dropped),
        ):
            if keys:
                shown = ", ".join(keys[:8]) + (
                    f", ... ({len(keys) - 8} more)" if len(keys) > 8 else ""
                )
                lines.append(f"  {title} ({len(keys)}): {shown}")
        return "\n".join(lines)


def load_backbone_weights(model: nn.Module, path: str | Path) -> LoadReport:
    """Copy an ImageNet classification checkpoint into a detector's backbone, in place.

    The tensors are copied into the existing parameters and buffers, so they keep the
    model's device and dtype. ``FrozenBatchNorm2d`` buffers take batch norm's
    ``weight``/``bias``/``running_mean``/``running_var``; ``num_batches_tracked`` is ignored.

    Args:
        model: a detector with a ``backbone`` attribute (and possibly
            ``roi_heads.box_head.fc6``/``fc7``), or a bare backbone.
        path: a torchvision ``resnet50``, ``mobilenet_v2``, ``mobilenet_v3_large`` or
            ``vgg16`` checkpoint: its state dict, or a training checkpoint whose
            ``"model"`` entry is one.

    Returns:
        A :class:`LoadReport` of the loaded, missing, unexpected and dropped keys.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        ValueError: the file holds no state dict (see :func:`read_state_dict`), the
            backbone has no ImageNet checkpoint format, a tensor's shape differs from the
            model's (the message names both keys and shapes), nothing in the file fits
            the model, or a tensor holds NaN or infinite values.
    """
    state = read_state_dict(path, checkpoint_key="model")
    check_finite(state, path)
    return load_backbone_state(model, state, path)


def load_backbone_state(model: nn.Module, state: dict[str, Tensor], path: str | Path) -> LoadReport:
    """:func:`load_backbone_weights` of the state dict ``state``, read from ``path``."""
    backbone = getattr(model, "backbone", model)
    prefix = "backbone." if backbone is not model else ""
    try:
        architecture = _architecture_of(backbone)
    except ValueError as error:
        known = imagenet_architecture(state)
        raise ValueError(f"{error}{'; ' + _taken_by(known) if known else ''}") from None
    targets = model.state_dict(keep_vars=True)
    expected = {
        key
        for key in targets
        if key.startswith(prefix + "body.") and not key.endswith("num_batches_tracked")
    }
    if architecture == "vgg16":
        expected |= {k for k in targets if k.startswith(tuple(_VGG_FC_LAYERS.values()))}

    report = LoadReport(path=str(path), architecture=architecture)
    copies: list[tuple[Tensor, Tensor]] = []
    for file_key, tensor in state.items():
        if file_key.endswith("num_batches_tracked"):
            continue
        model_key = _model_key(architecture, file_key, prefix)
        if model_key in targets:
            target = targets[model_key]
            if target.shape != tensor.shape:
                raise ValueError(
                    f"{path}: {file_key} has shape {tuple(tensor.shape)} but the model's "
                    f"{model_key} has shape {tuple(target.shape)}"
                )
            copies.append((target, tensor))
            report.loaded.append(model_key)
        elif file_key.startswith(_CLASSIFIER_PREFIX[architecture]):
            report.dropped.append(file_key)
        else:
            report.unexpected.append(file_key)
    if not copies:
        raise ValueError(
            f"{path}: none of its {len(state)} tensors fit the {architecture} backbone; "
            + _what_else(state, architecture)
        )
    # Every shape is checked before the first copy: a bad file leaves the model untouched.
    with torch.no_grad():
        for target, tensor in copies:
            target.copy_(tensor)
    loaded = set(report.loaded)
    report.missing = [key for key in targets if key in expected and key not in loaded]
    return report


def _architecture_of(backbone: nn.Module) -> str:
    if isinstance(backbone, ResNetFPNBackbone):
        return "resnet50"
    if isinstance(backbone, MobileNetV2FPNBackbone):
        return "mobilenet_v2"
    if isinstance(backbone, MobileNetV3FPNBackbone):
        return "mobilenet_v3_large"
    if isinstance(backbone, VGG16Backbone):
        return "vgg16"
    raise ValueError(
        f"no ImageNet checkpoint format for a {type(backbone).__name__} backbone "
        "(supported: resnet50_fpn, mobilenet_v2_fpn, mobilenet_v3_large_fpn, vgg16; "
        "the small backbone trains from scratch)"
    )


def _model_key(architecture: str, file_key: str, prefix: str) -> str | None:
    """Where a checkpoint key goes in the model (the key may not exist there)."""
    if architecture == "resnet50":
        return f"{prefix}body.{file_key}"
    if file_key.startswith("features."):
        return f"{prefix}body.{file_key.removeprefix('features.')}"
    for classifier, box_head in _VGG_FC_LAYERS.items():
        if architecture == "vgg16" and file_key.startswith(classifier):
            return box_head + file_key.removeprefix(classifier)
    return None


# The top-level modules of a whole detector's state dict (torchvision's and ours).
DETECTOR_PREFIXES = ("backbone.", "rpn.", "roi_heads.")


def is_detector_state(state: dict[str, Tensor]) -> bool:
    """Whether ``state`` is a whole detector's (keys under ``backbone.``, ``rpn.`` or
    ``roi_heads.``) rather than an ImageNet classifier's."""
    return any(key.startswith(DETECTOR_PREFIXES) for key in state)


def _what_else(state: dict[str, Tensor], architecture: str) -> str:
    """What a file whose tensors fit no backbone is, for the error: a whole detector's
    checkpoint, or (a guess) another network's."""
    if is_detector_state(state):
        return (
            "it is a whole detector's (backbone, rpn, roi_heads), not an ImageNet "
            "backbone's: faster_rcnn.load_initial_weights starts a model from it "
            "(fine-tuning), faster_rcnn.load_torchvision_checkpoint rebuilds it"
        )
    known = imagenet_architecture(state)
    if known is not None:
        return _taken_by(known)
    return f"is it a torchvision {architecture} ImageNet checkpoint?"


def imagenet_architecture(state: dict[str, Tensor]) -> str | None:
    """The torchvision ImageNet classifier ``state`` is the checkpoint of
    (``"resnet50"``, ``"mobilenet_v2"``, ``"mobilenet_v3_large"``, ``"vgg16"``), told by
    a tensor only it has of that shape; ``None``: none of them."""
    for architecture, (key, shape, absent) in _SIGNATURES.items():
        found = state.get(key)
        if found is not None and tuple(found.shape) == shape and absent not in state:
            return architecture
    return None


def _taken_by(architecture: str) -> str:
    """What the errors say of a file that is ``architecture``'s ImageNet checkpoint."""
    return (
        f"it is a torchvision {architecture} ImageNet checkpoint, which the backbone of "
        f"{_PRESETS_TAKING[architecture]} takes"
    )
