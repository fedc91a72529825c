"""The checks every evaluator runs on what it is given, written once.

Predictions, proposals and targets are per-image dicts of tensors. The readers here bring
an image's entries to the CPU in the shapes the evaluators compute with, and refuse
anything else with a message naming the image (and the box, for a bad label).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Sized

import torch
from torch import Tensor

from ..counted import counted


def check_num_classes(num_classes: int) -> None:
    """Refuse a class count without room for the background and one class."""
    if num_classes < 2:
        raise ValueError(f"num_classes counts the background and must be >= 2, got {num_classes}")


def check_iou_threshold(iou_threshold: float) -> None:
    """Refuse an IoU a match could not reach, or that every pair of boxes reaches."""
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")


def foreground_class_names(num_classes: int, class_names: Sequence[str] | None) -> list[str]:
    """Names of labels ``1..num_classes-1``.

    ``class_names`` lists either those classes or all ``num_classes``, background first;
    ``None`` names each class by its label.
    """
    if class_names is None:
        return [str(label) for label in range(1, num_classes)]
    names = list(class_names)
    if len(names) == num_classes:
        return names[1:]
    if len(names) != num_classes - 1:
        raise ValueError(
            f"expected {counted(num_classes - 1, 'class name')} (or {num_classes} with the "
            f"background first) for num_classes={num_classes}, got {len(names)}"
        )
    return names


def check_one_per_image(outputs: Sized, targets: Sized, what: str = "predictions") -> None:
    """Refuse a batch whose ``outputs`` (named ``what``) and targets differ in number."""
    if len(outputs) != len(targets):
        raise ValueError(
            f"got {len(outputs)} {what} for {len(targets)} targets; expected one of each per image"
        )


def require_keys(entry: Mapping[str, object], keys: Sequence[str], image: int, what: str) -> None:
    """Refuse an image's ``entry`` (a ``what``: "prediction", "target") lacking one of
    ``keys``."""
    for key in keys:
        if key not in entry:
            raise ValueError(f"image {image}: {what} has no {key!r}")


def cpu_boxes(boxes: Tensor, image: int, kind: str) -> Tensor:
    """``boxes`` on the CPU as ``(N, 4)``; an empty tensor of any shape is ``(0, 4)``.

    ``kind`` ("predicted", "ground truth", "proposal") names the boxes in the error.
    """
    if boxes.numel() == 0:
        return boxes.detach().cpu().reshape(0, 4)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"image {image}: {kind} boxes must have shape (N, 4), got {tuple(boxes.shape)}"
        )
    return boxes.detach().cpu()


def per_box(values: Tensor, key: str, num_boxes: int, image: int, kind: str) -> Tensor:
    """``values`` (the entry ``key`` of an image with ``num_boxes`` ``kind`` boxes) on the
    CPU, checked to be ``(num_boxes,)``: one value per box."""
    values = values.detach().cpu()
    if values.shape != (num_boxes,):
        raise ValueError(
            f"image {image}: {num_boxes} {kind} boxes but {key} of shape {tuple(values.shape)}"
        )
    return values


def box_flags(target: Mapping[str, Tensor], key: str, num_boxes: int, image: int) -> Tensor:
    """Bool ``(num_boxes,)`` ground truth flags ``target[key]`` ("difficult", "iscrowd");
    all False when the target has none."""
    flags = target.get(key)
    if flags is None:
        return torch.zeros(num_boxes, dtype=torch.bool)
    return per_box(flags, key, num_boxes, image, "ground truth").to(torch.bool)


def read_detections(
    prediction: Mapping[str, Tensor], image: int, num_classes: int
) -> tuple[Tensor, Tensor, Tensor]:
    """An image's detections on the CPU: ``(D, 4)`` boxes, int64 ``(D,)`` labels in
    ``1..num_classes-1`` and ``(D,)`` scores."""
    require_keys(prediction, ("boxes", "labels", "scores"), image, "prediction")
    boxes = cpu_boxes(prediction["boxes"], image, "predicted")
    num = boxes.shape[0]
    labels = _integer_labels(
        per_box(prediction["labels"], "labels", num, image, "predicted"), image, "predicted"
    )
    scores = per_box(prediction["scores"], "scores", num, image, "predicted")
    _check_labels(labels, image, num_classes, "predicted")
    return boxes, labels, scores


def read_ground_truth(
    target: Mapping[str, Tensor], image: int, num_classes: int
) -> tuple[Tensor, Tensor]:
    """An image's ground truth on the CPU: ``(N, 4)`` boxes and int64 ``(N,)`` labels in
    ``1..num_classes-1``."""
    require_keys(target, ("boxes", "labels"), image, "target")
    boxes = cpu_boxes(target["boxes"], image, "ground truth")
    labels = per_box(target["labels"], "labels", boxes.shape[0], image, "ground truth")
    labels = _integer_labels(labels, image, "ground truth")
    _check_labels(labels, image, num_classes, "ground truth")
    return boxes, labels


def _integer_labels(labels: Tensor, image: int, kind: str) -> Tensor:
    """``labels`` as int64; a floating point tensor is refused rather than truncated."""
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"image {image}: {kind} labels must be integers, got {labels.dtype}")
    return labels.to(torch.int64)


def _check_labels(labels: Tensor, image: int, num_classes: int, kind: str) -> None:
    """Refuse a label of ``(N,)`` ``labels`` outside ``1..num_classes-1``, naming its box."""
    bad = (labels < 1) | (labels >= num_classes)
    if bad.any():
        j = int(torch.where(bad)[0][0])
        raise ValueError(
            f"image {image}, box {j}: {kind} label {int(labels[j])} is outside 1..{num_classes - 1}"
        )
