"""Loading torchvision Faster R-CNN checkpoints into the matching preset.

The ``resnet50_fpn``, ``resnet50_fpn_v2``, ``mobilenet_v3_large_fpn`` and
``mobilenet_v3_large_320_fpn`` presets have exactly the module tree of torchvision's
``fasterrcnn_resnet50_fpn``, ``fasterrcnn_resnet50_fpn_v2``,
``fasterrcnn_mobilenet_v3_large_fpn`` and ``fasterrcnn_mobilenet_v3_large_320_fpn``, and
``mobilenet_v2_fpn`` that of a torchvision ``FasterRCNN`` on ``mobilenet_backbone(
"mobilenet_v2", fpn=True)``, so a checkpoint of any of them loads with ``strict=True`` and
gives the same detections, with no torchvision installed. So does a Mask R-CNN or
Keypoint R-CNN checkpoint (``maskrcnn_resnet50_fpn``, ``maskrcnn_resnet50_fpn_v2``,
``keypointrcnn_resnet50_fpn``): those detectors are the Faster R-CNN with a mask or
keypoint head added, which computes from the boxes it detects and changes none of them, so
the checkpoint less that head (left out, with a warning) gives the same boxes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from .counted import counted
from .data.coco_categories import COCO_OUTPUTS, coco_output_names
from .model import FasterRCNN
from .models import preset_config
from .state_dict_io import check_finite, read_state_dict

_NUM_CLASSES_KEY = "roi_heads.box_predictor.cls_score.weight"
# The heads torchvision's Mask R-CNN and Keypoint R-CNN add to a Faster R-CNN: the
# prefix of their tensors, and the detector's name.
_ADDED_HEADS = {"roi_heads.mask_": "Mask R-CNN", "roi_heads.keypoint_": "Keypoint R-CNN"}


def read_torchvision_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The model state dict in a torchvision checkpoint file, read without running code.

    Accepts a bare state dict (the published weight files, ``torch.save(model.
    state_dict())``) or a training checkpoint with a ``"model"`` entry (torchvision's
    reference scripts, which also store their ``argparse.Namespace`` of arguments), or
    the state dict as ``.safetensors`` (the files are read by :func:`read_state_dict`).
    A ``module.`` prefix left by ``DistributedDataParallel`` is removed.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file holds no state dict of tensors.
    """
    return read_state_dict(path, checkpoint_key="model")


def load_torchvision_checkpoint(
    path: str | Path,
    preset: str = "resnet50_fpn",
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> FasterRCNN:
    """Build ``preset`` and load a torchvision checkpoint into it (``strict=True``).

    Args:
        path: a ``.pth`` file (see :func:`read_torchvision_state_dict`).
        preset: ``"resnet50_fpn"``, ``"resnet50_fpn_v2"``, ``"mobilenet_v2_fpn"``,
            ``"mobilenet_v3_large_fpn"`` or ``"mobilenet_v3_large_320_fpn"``.
        num_classes: classes including background; by default read from the
            checkpoint's class-score layer (91 for COCO).
        class_names: the names of labels ``1..num_classes-1``; by default COCO's
            categories for 91 classes (:func:`~faster_rcnn.data.coco_categories.
            coco_output_names`), else none.

    Returns:
        The model in eval mode.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file holds no state dict, one with NaN or infinite values, or
            one that does not fit the preset; or it is a model file of this package
            (whose config and class names the preset's would replace) or a training
            run's state (naming the run's model file); or ``class_names`` are not one
            per class.
    """
    state_dict = _without_added_heads(_read_checkpoint(path), path)
    _refuse_model_file(path)
    check_finite(state_dict, path)
    if num_classes is None:
        if _NUM_CLASSES_KEY not in state_dict:
            raise ValueError(f"{path}: no {_NUM_CLASSES_KEY!r}; is this a Faster R-CNN checkpoint?")
        num_classes = state_dict[_NUM_CLASSES_KEY].shape[0]
    if class_names is None:
        class_names = coco_output_names() if num_classes == COCO_OUTPUTS else ()
    elif len(class_names) != num_classes - 1:
        raise ValueError(
            f"{path} has {counted(num_classes - 1, 'class')} besides the background, but "
            f"{counted(len(class_names), 'class name was', 'class names were')} given"
        )
    config = preset_config(preset, num_classes).replace(class_names=tuple(class_names))
    model = FasterRCNN.from_config(config)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError:
        raise ValueError(
            f"{path} does not fit the {preset} preset: {_how_it_differs(model, state_dict)}; "
            "is it another preset's checkpoint?"
        ) from None
    return model.eval()


def _read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """:func:`read_torchvision_state_dict`, saying of a training run's state file that
    its model needs no converting, and which model file to use."""
    from .train.checkpoint import model_file_of_state  # faster_rcnn.train imports this module

    try:
        return read_torchvision_state_dict(path)
    except ValueError:
        model_file = model_file_of_state(Path(path))
        if model_file is None:
            raise
        raise ValueError(
            f"{path} is the state (optimizer, step) of a training run's checkpoint, not a "
            f"torchvision checkpoint, and its model needs no converting: use {model_file}"
        ) from None


def _without_added_heads(state_dict: dict[str, Tensor], path: str | Path) -> dict[str, Tensor]:
    """``state_dict`` less the mask or keypoint head of a Mask R-CNN or Keypoint R-CNN
    checkpoint, with a warning saying so: the rest is the Faster R-CNN it is built on."""
    for prefix, detector in _ADDED_HEADS.items():
        added = [key for key in state_dict if key.startswith(prefix)]
        if added:
            head = prefix.removeprefix("roi_heads.").removesuffix("_")
            warnings.warn(
                f"{path} is a torchvision {detector} checkpoint: its {head} head "
                f"({len(added)} tensors) is left out; the rest is the Faster R-CNN it is "
                f"built on, which detects the same boxes (no {head}s)",
                stacklevel=3,
            )
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith(prefix)}
    return state_dict


def _refuse_model_file(path: str | Path) -> None:
    """Refuse a model file of this package: it carries its own config (resize, thresholds)
    and class names, which loading it into a preset would silently replace.

    Raises:
        ValueError: ``path`` is such a model file.
    """
    from .train.checkpoint import read_model_config  # faster_rcnn.train imports this module

    try:
        config = read_model_config(path)
    except ValueError:  # a file this package did not write
        return
    names = ", ".join(config.label_names()[:3]) + (", ..." if config.num_classes > 4 else "")
    raise ValueError(
        f"{path} is a model file of this package already (classes {names}): load_model "
        "reads it with its own config and class names, which a preset's would replace, "
        "and every command takes it as it is"
    )


def _how_it_differs(model: FasterRCNN, state_dict: dict[str, Tensor]) -> str:
    """How ``state_dict`` differs from ``model``'s, in one line: how many tensors are
    missing, extra or of another shape, and the first of each (torch lists them all)."""
    expected = model.state_dict()
    compared = [k for k in expected if not k.endswith("num_batches_tracked")]
    missing = [k for k in compared if k not in state_dict]
    extra = [k for k in state_dict if k not in expected and not k.endswith("num_batches_tracked")]
    reshaped = [k for k in compared if k in state_dict and state_dict[k].shape != expected[k].shape]
    parts = []
    if missing:
        parts.append(
            f"{counted(len(missing), 'tensor')} of the preset's not in it (the first, {missing[0]})"
        )
    if extra:
        parts.append(
            f"{counted(len(extra), 'tensor')} in it not the preset's (the first, {extra[0]})"
        )
    if reshaped:
        key = reshaped[0]
        parts.append(
            f"{counted(len(reshaped), 'differs', 'differ')} in shape (the first, {key}: "
            f"{tuple(state_dict[key].shape)} "
            f"in the file, {tuple(expected[key].shape)} in the preset)"
        )
    return "; ".join(parts)
