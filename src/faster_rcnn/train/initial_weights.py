"""The weights a training run starts from: an ImageNet backbone's, or a whole detector's.

``train --weights`` takes either. An ImageNet classifier fills the backbone
(:func:`~faster_rcnn.backbones.load_backbone_weights`). A whole detector's checkpoint, a
model file of this package or a torchvision Faster R-CNN checkpoint of the same preset
(COCO's, say), starts a fine-tuning run: every tensor whose name and shape fit the model
is taken (the backbone and its FPN, the RPN, the box head) and the rest start fresh, as
in torchvision's fine-tuning tutorial and detectron2. The class-specific layers, the box
predictor's class scores and box deltas, are taken class by class where the file names
its classes, as this package's model files do: a class of the data that the file knows
keeps what it learned, a new one starts fresh. A torchvision file names none, but one of
91 outputs (its published COCO detectors') is read as COCO's categories, so a class
named as one (``person``, or Pascal VOC's ``aeroplane``) keeps its outputs; any other
torchvision file's predictor is left out, as the tutorial replaces it. The FPN's blocks
are matched by the backbone stage they read, so a model whose FPN reads a finer stage
(the recipe's finer map) than the file's still takes each level's blocks from the level
that read its stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..backbones.weights import LoadReport, is_detector_state, load_backbone_state
from ..config import BACKBONES, FasterRCNNConfig
from ..counted import counted
from ..data.coco_categories import (
    COCO_CATEGORIES,
    COCO_OUTPUTS,
    coco_category_id,
    coco_output_names,
)
from ..model import FasterRCNN
from ..state_dict_io import check_finite
from ..torchvision_checkpoint import read_torchvision_state_dict
from .checkpoint import box_head_trained, model_file_of_state, read_model_config

ROI_HEADS = "roi_heads."
PREDICTOR = "roi_heads.box_predictor."
# The predictor's layers and how many outputs each has per class.
_PREDICTOR_LAYERS = {"cls_score": 1, "bbox_pred": 4}
# An FPN block's key: which of the two blocks, and its level (old layouts included).
_FPN_BLOCK = re.compile(r"^backbone\.fpn\.(inner_blocks|layer_blocks)\.(\d+)\.(.*)$")


def load_initial_weights(model: FasterRCNN, path: str | Path) -> LoadReport:
    """Load the weights a training run starts from into a fresh ``model``, in place.

    Args:
        model: the detector to train, as built (random layers drawn).
        path: an ImageNet classifier's checkpoint (for the backbone) or a whole
            detector's: a model file of this package, or a torchvision Faster R-CNN state
            dict or training checkpoint (``{"model": ...}``) of the same preset.

    Returns:
        What was loaded, dropped and left fresh, with notes on the box predictor.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is unreadable, holds NaN or infinite values, or its
            backbone is not the model's (the message names the first tensor that differs).
    """
    try:
        state = read_torchvision_state_dict(path)
    except ValueError:
        _refuse_training_state(path)
        raise
    check_finite(state, path)
    if not is_detector_state(state):
        return load_backbone_state(model, state, path)
    file_config = _model_config_in(path)
    trained = file_config is None or box_head_trained(path)
    return load_detector_state(model, state, path, file_config, box_head_trained=trained)


def _refuse_training_state(path: str | Path) -> None:
    """Refuse the training state ``path`` (``<run>/<stage>/state.pt``), given as the
    weights to start from, with what to pass instead: it holds the optimizer and the
    step, its model's weights are in a model file (it was "expected a state dict of
    named tensors ..., got dict")."""
    model_file = model_file_of_state(Path(path))
    if model_file is not None:
        raise ValueError(
            f"{path} is the state (optimizer, step) of a training checkpoint, not weights: "
            f"`train --resume` goes on with its run; to start from its weights, pass {model_file}"
        )


def load_detector_state(
    model: FasterRCNN,
    state: dict[str, Tensor],
    path: str | Path,
    file_config: FasterRCNNConfig | None = None,
    box_head_trained: bool = True,
) -> LoadReport:
    """Fine-tuning's start: the tensors of the detector state dict ``state`` (read from
    ``path``) that fit ``model``, its predictor class by class.

    Args:
        file_config: the config of the model that wrote ``state`` where known (this
            package's model files): its classes and the stages its FPN reads. ``None``
            (torchvision's files): no class names, and the backbone's default stages.
        box_head_trained: whether the file's box head learned anything; not where its RPN
            was trained alone, whose box head and predictor are then left out (the
            model's own draw), as the report says.

    Raises:
        ValueError: ``state``'s backbone is not ``model``'s; the model is left untouched.
    """
    targets = model.state_dict()
    _check_backbone_fits(state, targets, path)
    report = LoadReport(path=str(path), architecture="a whole detector")
    state = _align_fpn_levels(state, _fpn_stages(model.config, file_config), report)
    kept = state if box_head_trained else _without_box_head(state, report)
    fitting = _drop_reshaped(kept, targets, report)
    predictor = {k: fitting.pop(k) for k in list(fitting) if k.startswith(PREDICTOR)}
    # Old torchvision key layouts are renamed by the modules' own load hooks.
    result = model.load_state_dict(fitting, strict=False)
    report.unexpected = list(result.unexpected_keys)
    missing = set(result.missing_keys)
    taken = _load_predictor(model, predictor, file_config, report) if box_head_trained else []
    missing -= {PREDICTOR + key for key in taken}
    report.loaded = [key for key in targets if key not in missing]
    report.missing = [
        key
        for key in targets
        if key in missing and not key.startswith(PREDICTOR) and key not in state
    ]
    return report


def _without_box_head(state: dict[str, Tensor], report: LoadReport) -> dict[str, Tensor]:
    """``state`` without its box head and predictor, never trained (the RPN trained
    alone): their random draw is no start to take over the model's own."""
    head = [key for key in state if key.startswith(ROI_HEADS)]
    report.dropped += head
    report.notes.append(
        "the box head and predictor start fresh: the file's RPN was trained alone "
        "(--scheme rpn), its box head never was"
    )
    return {key: tensor for key, tensor in state.items() if not key.startswith(ROI_HEADS)}


def _drop_reshaped(
    state: dict[str, Tensor], targets: dict[str, Tensor], report: LoadReport
) -> dict[str, Tensor]:
    """``state`` without the tensors whose shapes differ from the model's (another count
    of anchors a place, a box head of another width): those layers start fresh. The
    predictor's are kept for :func:`_load_predictor`, which takes them class by class."""
    fitting, reshaped = {}, []
    for key, tensor in state.items():
        target = targets.get(key)
        if key.startswith(PREDICTOR) or target is None or target.shape == tensor.shape:
            fitting[key] = tensor
        else:
            reshaped.append(key)
    if reshaped:
        key = reshaped[0]
        report.dropped += reshaped
        report.notes.append(
            f"dropped: tensors whose shapes differ from the model's start fresh (the "
            f"first, {key}: {tuple(state[key].shape)} in the file, "
            f"{tuple(targets[key].shape)} in the model)"
        )
    return fitting


def _fpn_stages(
    config: FasterRCNNConfig, file_config: FasterRCNNConfig | None
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The backbone stages the file's FPN levels read and the model's, in level order;
    ``None`` where the backbone has no choice of stages."""
    spec = BACKBONES.get(config.backbone.name)
    model_stages = config.backbone.resolved_returned_layers()
    if spec is None or spec.returned_layers is None or model_stages is None:
        return None
    if file_config is None:
        return spec.returned_layers, model_stages
    return file_config.backbone.resolved_returned_layers() or spec.returned_layers, model_stages


def _align_fpn_levels(
    state: dict[str, Tensor],
    stages: tuple[tuple[int, ...], tuple[int, ...]] | None,
    report: LoadReport,
) -> dict[str, Tensor]:
    """``state`` with each FPN block renamed to the model's level that reads the same
    backbone stage; the blocks of a stage the model does not read are dropped."""
    if stages is None or stages[0] == stages[1]:
        return state
    file_stages, model_stages = stages
    aligned = {}
    for key, tensor in state.items():
        match = _FPN_BLOCK.match(key)
        if match is None:
            aligned[key] = tensor
            continue
        block, level, rest = match.groups()
        stage = file_stages[int(level)] if int(level) < len(file_stages) else None
        if stage in model_stages:
            aligned[f"backbone.fpn.{block}.{model_stages.index(stage)}.{rest}"] = tensor
        else:
            report.dropped.append(key)
    report.notes.append(
        f"the FPN's levels are matched by the backbone stage they read: the file's stages "
        f"{file_stages}, the model's {model_stages}"
    )
    return aligned


def _check_backbone_fits(
    state: dict[str, Tensor], targets: dict[str, Tensor], path: str | Path
) -> None:
    """Refuse a detector of another backbone: a fine-tuning run keeps the file's."""
    for key, target in targets.items():
        if not key.startswith("backbone.body.") or key.endswith("num_batches_tracked"):
            continue
        tensor = state.get(key)
        if tensor is None or tensor.shape != target.shape:
            found = "absent" if tensor is None else f"{tuple(tensor.shape)}"
            raise ValueError(
                f"{path}: its backbone is not this preset's ({key}: {found} in the file, "
                f"{tuple(target.shape)} in the model); train with the preset it was "
                "trained with"
            )


def _load_predictor(
    model: FasterRCNN,
    predictor: dict[str, Tensor],
    file_config: FasterRCNNConfig | None,
    report: LoadReport,
) -> list[str]:
    """Copy the file's predictor rows of the classes ``model`` shares with it; return the
    predictor keys (``cls_score.weight``, ...) that took rows. The rest keep their
    fresh draw and the report says why."""
    names = model.config.class_names
    layers = model.roi_heads.box_predictor
    file_classes = _file_classes(file_config, predictor)
    rows = {name: row for name in names if (row := file_classes.row_of(name)) is not None}
    reason = _unfit(layers, predictor) or file_classes.why_none(rows)
    if reason is not None:
        report.dropped += sorted(predictor)
        report.notes.append(f"the box predictor starts fresh: {reason}")
        return []
    # Row 0 is the background; class i of the model is its row i + 1.
    pairs = [(0, 0)] + [(names.index(name) + 1, row) for name, row in rows.items()]
    taken = []
    with torch.no_grad():
        for layer_name, per_class in _PREDICTOR_LAYERS.items():
            layer = getattr(layers, layer_name)
            for kind in ("weight", "bias"):
                source = predictor[f"{PREDICTOR}{layer_name}.{kind}"]
                target = getattr(layer, kind)
                for to, come_from in pairs:
                    target[to * per_class : (to + 1) * per_class] = source[
                        come_from * per_class : (come_from + 1) * per_class
                    ]
                taken.append(f"{layer_name}.{kind}")
    fresh = [name for name in names if name not in rows]
    report.notes.append(
        f"the box predictor: {len(rows)} of {counted(len(names), 'class')} taken from "
        f"{file_classes.source} ({', '.join(file_classes.describe(name) for name in rows)})"
        + (f"; {', '.join(fresh)} start{'s' * (len(fresh) == 1)} fresh" if fresh else "")
    )
    return taken


@dataclass(frozen=True)
class _FileClasses:
    """What the rows of a file's predictor are.

    Attributes:
        names: the class of each row 1.. (``None``: unknown).
        source: how the notes name them.
        coco: the rows are COCO's category ids, matched by :func:`coco_category_id`.
    """

    names: tuple[str, ...] | None
    source: str = "the file"
    coco: bool = False

    def row_of(self, name: str) -> int | None:
        """The file's row of the class ``name``, ``None`` where it has none."""
        if self.coco:
            return coco_category_id(name)
        if self.names is None or name not in self.names:
            return None
        return self.names.index(name) + 1

    def describe(self, name: str) -> str:
        """``name``, and the COCO category it was matched to where that is named otherwise."""
        category = COCO_CATEGORIES.get(self.row_of(name) or 0) if self.coco else None
        return name if category in (None, name) else f"{name} as {category}"

    def why_none(self, rows: dict[str, int]) -> str | None:
        """Why no class of the model's is taken, given the ``rows`` found for them
        (``None``: some are)."""
        if self.names is None and not self.coco:
            return "the file does not name its classes"
        if rows:
            return None
        if self.coco:
            return f"none of the data's classes is among {self.source}"
        return f"none of the data's classes is among the file's ({', '.join(self.names or ())})"


def _file_classes(
    file_config: FasterRCNNConfig | None, predictor: dict[str, Tensor]
) -> _FileClasses:
    """The classes of the file's predictor rows: COCO's categories for a torchvision file
    of 91 outputs (its published COCO detectors') and for one ``convert`` wrote; a model
    file's names; else unknown."""
    names = file_config.class_names if file_config is not None else None
    scores = predictor.get(PREDICTOR + "cls_score.weight")
    coco_outputs = scores is not None and scores.shape[0] == COCO_OUTPUTS
    if names == coco_output_names() or (file_config is None and coco_outputs):
        return _FileClasses(None, "the file's 91 outputs, read as COCO's categories", coco=True)
    return _FileClasses(names or None)


def _unfit(layers: nn.Module, predictor: dict[str, Tensor]) -> str | None:
    """Why the file's predictor cannot fit ``layers`` (``None``: it can, row by row)."""
    scores = predictor.get(PREDICTOR + "cls_score.weight")
    if scores is None:
        return "the file has none"
    for layer_name, per_class in _PREDICTOR_LAYERS.items():
        layer = getattr(layers, layer_name)
        for kind in ("weight", "bias"):
            source = predictor.get(f"{PREDICTOR}{layer_name}.{kind}")
            expected = (per_class * scores.shape[0], *getattr(layer, kind).shape[1:])
            if source is None or tuple(source.shape) != expected:
                return f"its {layer_name}.{kind} does not fit the model's box head"
    return None


def detector_fpn_stages(path: str | Path) -> tuple[int, ...] | None:
    """The backbone stages the FPN of the model file ``path`` read (its backbone's
    default where it chose none); ``None`` for any other file, whose header alone does
    not say (an ImageNet classifier's, a torchvision detector's)."""
    config = _model_config_in(path)
    return config.backbone.resolved_returned_layers() if config is not None else None


def _model_config_in(path: str | Path) -> FasterRCNNConfig | None:
    """The config of a model file of this package (whatever its name); ``None`` for any
    other file."""
    try:
        return read_model_config(path)
    except ValueError:  # a file this package did not write
        return None
