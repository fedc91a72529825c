"""Checks of user input, with errors that name the image and the box at fault.

Degenerate or non-finite boxes are the most common cause of NaN losses reported against
detection libraries; they are rejected here, before any computation, instead.
"""

from __future__ import annotations

import torch
from torch import Tensor


def validate_images(images: list[Tensor]) -> None:
    """Each image must be a floating point ``(3, H, W)`` tensor with ``H, W > 0``."""
    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise ValueError("images must be a non-empty list of (3, H, W) tensors")
    for i, image in enumerate(images):
        if not isinstance(image, Tensor):
            raise ValueError(f"image {i}: expected a tensor, got {type(image).__name__}")
        if image.dim() != 3 or image.shape[0] != 3 or image.shape[1] == 0 or image.shape[2] == 0:
            raise ValueError(f"image {i}: expected shape (3, H, W), got {tuple(image.shape)}")
        if not image.is_floating_point():
            raise ValueError(f"image {i}: expected a floating point tensor, got {image.dtype}")


def validate_targets(targets: list[dict[str, Tensor]], num_images: int, num_classes: int) -> None:
    """Check training targets against the model's data contract.

    Args:
        targets: per image, ``{"boxes": float (N, 4) x1 y1 x2 y2, "labels": int64 (N,)}``;
            ``N = 0`` (an image with no object) is valid.
        num_images: how many images the targets belong to.
        num_classes: classes including background; labels must be in ``1..num_classes-1``.

    Raises:
        ValueError: naming the image index and, where it applies, the box.
    """
    if not isinstance(targets, (list, tuple)) or len(targets) != num_images:
        count = len(targets) if isinstance(targets, (list, tuple)) else type(targets).__name__
        raise ValueError(f"expected a list of {num_images} target dicts, got {count}")
    for i, target in enumerate(targets):
        if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
            raise ValueError(f"image {i}: target must be a dict with 'boxes' and 'labels'")
        boxes, labels = target["boxes"], target["labels"]
        if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
            shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
            raise ValueError(f"image {i}: boxes must have shape (N, 4), got {shape}")
        if not boxes.is_floating_point():
            raise ValueError(f"image {i}: boxes must be floating point, got {boxes.dtype}")
        if not isinstance(labels, Tensor) or labels.dtype != torch.int64:
            dtype = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f"image {i}: labels must be an int64 tensor, got {dtype}")
        if labels.shape != (boxes.shape[0],):
            raise ValueError(
                f"image {i}: labels must have shape ({boxes.shape[0]},) to match the boxes, "
                f"got {tuple(labels.shape)}"
            )
        bad = ~torch.isfinite(boxes).all(dim=1)
        if bad.any():
            j = int(torch.where(bad)[0][0])
            raise ValueError(f"image {i}, box {j}: non-finite coordinates {boxes[j].tolist()}")
        bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        if bad.any():
            j = int(torch.where(bad)[0][0])
            raise ValueError(
                f"image {i}, box {j}: {boxes[j].tolist()} has no area "
                "(boxes are x1, y1, x2, y2 with x2 > x1 and y2 > y1)"
            )
        bad = (labels < 1) | (labels >= num_classes)
        if bad.any():
            j = int(torch.where(bad)[0][0])
            raise ValueError(
                f"image {i}, box {j}: label {int(labels[j])} is outside 1..{num_classes - 1} "
                "(0 is background)"
            )
