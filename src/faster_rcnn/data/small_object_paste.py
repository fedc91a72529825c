"""More copies of the small class's objects, pasted where no box lies in their own image.

A small object covers few anchors and few RoIs, so a rare one gives the RPN and the head
few positives a step. Kisantal et al. (2019, "Augmentation for small object detection")
copied each small object several times within its image and found the small objects' AP
rose. Boxes carry no mask, so here the box is copied whole with a margin of what
surrounds it, and the margin fades into the place the copy lands on: the object is pasted
as it is, and no sharp seam marks a pasted object for the model to learn. A copy with its
margin lands only where it overlaps no box, the image's own or an earlier copy's; where
none of a few drawn places is free it is not pasted.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import torch
from torch import Tensor

from ..ops.boxes import box_iou, clip_boxes_to_image
from .dataset import PER_BOX_KEYS, Target, as_float_image

# Places drawn for a copy before it is given up: a crowded image may have no free one.
PLACES_TRIED = 10
# The margin copied around an object, as a share of its side (sqrt(w h)): over it the
# copy fades into where it lands, so that the object itself is pasted as it is.
MARGIN = 0.15


class SmallObjectPaste:
    """Paste ``copies`` more copies of each object whose label is in ``labels``, with
    probability ``p`` an image.

    Args:
        labels: the classes whose objects are copied.
        copies: copies of each such object.
        p: the chance that an image gets copies at all.

    A copy's box joins the target with every per-box entry of its source (label,
    difficult flag, ...). Inputs are never modified.
    """

    def __init__(self, labels: Collection[int], copies: int, p: float = 0.5) -> None:
        if copies < 1:
            raise ValueError(f"paste copies must be at least 1, got {copies}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"paste probability must be in 0..1, got {p}")
        self.labels = frozenset(labels)
        self.copies = copies
        self.p = p

    def __call__(
        self, image: Tensor, target: Target, generator: torch.Generator
    ) -> tuple[Tensor, Target]:
        """``image``: ``(3, H, W)``, float in 0..1 or ``uint8`` levels (given as float
        where a copy is pasted); ``target["boxes"]``: ``(N, 4)`` x1 y1 x2 y2."""
        if float(torch.rand((), dtype=torch.float64, generator=generator)) >= self.p:
            return image, target
        boxes: Tensor = target["boxes"]  # type: ignore[assignment]
        labels: Tensor = target["labels"]  # type: ignore[assignment]
        sources = [i for i, label in enumerate(labels.tolist()) if label in self.labels]
        if not sources:
            return image, target
        image = as_float_image(image)  # blended: levels would round the fades
        pasted, occupied, copied_from = image.clone(), boxes.clone(), []
        for source in sources * self.copies:
            box = paste_copy(image, pasted, boxes[source], occupied, generator)
            if box is not None:
                occupied = torch.cat((occupied, box[None]))
                copied_from.append(source)
        if not copied_from:
            return image, target
        return pasted, with_copies(target, occupied, torch.tensor(copied_from))


def paste_copy(
    image: Tensor, pasted: Tensor, box: Tensor, occupied: Tensor, generator: torch.Generator
) -> Tensor | None:
    """Copy the pixels under ``box`` (``(4,)``, cut to the image) of ``image``, with a
    margin around it, into ``pasted`` (both ``(3, H, W)``) at a drawn place where the copy
    and its margin overlap none of ``occupied`` (``(M, 4)``); the margin fades into the
    place. Returns the copy's box, or ``None`` where it does not fit the image or no place
    tried was free."""
    height, width = image.shape[-2:]
    # The copy is of the object as far as the image shows it.
    box = clip_boxes_to_image(box, (height, width))
    x1, y1, x2, y2 = box.tolist()
    if x2 <= x1 or y2 <= y1:
        return None
    margin = max(1, round(MARGIN * math.sqrt((x2 - x1) * (y2 - y1))))
    left, top = max(0, math.floor(x1) - margin), max(0, math.floor(y1) - margin)
    right = min(width, math.ceil(x2) + margin)
    bottom = min(height, math.ceil(y2) + margin)
    patch_w, patch_h = right - left, bottom - top
    if patch_w >= width or patch_h >= height:
        return None
    corners = torch.rand((PLACES_TRIED, 2), dtype=torch.float64, generator=generator)
    corners = (corners * corners.new_tensor([width - patch_w + 1, height - patch_h + 1])).floor()
    regions = torch.cat((corners, corners + corners.new_tensor([patch_w, patch_h])), dim=1)
    # Every region has a positive area, so an IoU above 0 is an overlap of positive area.
    free = box_iou(regions, occupied.double()).amax(dim=1) == 0
    if not free.any():
        return None
    new_left, new_top = (int(v) for v in corners[int(free.nonzero()[0])].tolist())
    # The margins as copied: narrower, or none, where the image's border cuts them.
    rows = (math.floor(y1) - top, bottom - math.ceil(y2))
    cols = (math.floor(x1) - left, right - math.ceil(x2))
    alpha = fade_mask(rows, cols, (patch_h, patch_w)).to(image.dtype)
    region = (slice(None), slice(new_top, new_top + patch_h), slice(new_left, new_left + patch_w))
    pasted[region] = alpha * image[:, top:bottom, left:right] + (1 - alpha) * pasted[region]
    shift = box.new_tensor([new_left - left, new_top - top])
    return box + shift.repeat(2)


def fade_mask(rows: tuple[int, int], cols: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """``(height, width)`` = ``size`` weights of a copy against where it lands: 1 over the
    object, falling linearly across the margins (``rows``: above and below it, ``cols``:
    left and right of it, in pixels) to ``1 / (margin + 1)`` at the border."""
    return _ramp(size[0], *rows)[:, None] * _ramp(size[1], *cols)[None, :]


def _ramp(size: int, before: int, after: int) -> Tensor:
    """``(size,)``: rising over the first ``before`` entries, falling over the last
    ``after``, 1 between."""
    index = torch.arange(size, dtype=torch.float64)
    rise = (index + 1) / (before + 1)
    fall = (size - index) / (after + 1)
    return torch.minimum(rise, fall).clamp(max=1.0)


def with_copies(target: Target, boxes: Tensor, copied_from: Tensor) -> Target:
    """``target`` with ``boxes`` (its own, then the copies') and, for every other per-box
    entry, the entries of ``copied_from`` (each copy's source) appended."""
    grown: Target = {**target, "boxes": boxes}
    for key in PER_BOX_KEYS:
        value = target.get(key)
        if key != "boxes" and isinstance(value, Tensor):
            grown[key] = torch.cat((value, value[copied_from]))
    return grown
