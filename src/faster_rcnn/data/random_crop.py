"""Random crops of the image's own shape: the objects seen larger and in new company.

A window ``s`` times the image's width and height, ``s`` drawn from ``[min_scale, 1]``,
is cut at a random place. It keeps the image's aspect ratio, so the model's transform
resizes it to the same size as the whole image: the objects in it come out ``1 / s``
times larger, and the batches that group images by aspect ratio stay as they were.

A box whose centre lies in the window is kept, cut to it (as SSD's crops keep boxes):
annotators label the objects an image's border cuts, so a cut object is still one to
find. A box whose centre falls outside is dropped with its label: what is left of it is
at most half its width or height, down to a sliver no annotator would box.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .dataset import Target, boxes_kept


class RandomCrop:
    """Cut a random window of ``s * H`` by ``s * W`` pixels, ``s`` uniform in
    ``[min_scale, 1]``, with probability ``p``.

    Args:
        min_scale: the smallest window, as a share of each side (0 < min_scale <= 1).
        p: the chance that an image is cropped at all.

    Inputs are never modified.
    """

    def __init__(self, min_scale: float, p: float = 0.5) -> None:
        if not 0.0 < min_scale <= 1.0:
            raise ValueError(f"crop min_scale must be in (0, 1], got {min_scale}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"crop probability must be in 0..1, got {p}")
        self.min_scale = min_scale
        self.p = p

    def __call__(
        self, image: Tensor, target: Target, generator: torch.Generator
    ) -> tuple[Tensor, Target]:
        """``image``: ``(3, H, W)``; ``target["boxes"]``: ``(N, 4)`` x1 y1 x2 y2."""
        draws = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
        if draws[0] >= self.p:
            return image, target
        height, width = image.shape[-2:]
        scale = self.min_scale + (1.0 - self.min_scale) * draws[1]
        crop_h, crop_w = max(1, round(scale * height)), max(1, round(scale * width))
        top = int(draws[2] * (height - crop_h + 1))
        left = int(draws[3] * (width - crop_w + 1))
        window = (left, top, left + crop_w, top + crop_h)
        cropped = image[..., top : top + crop_h, left : left + crop_w]
        return cropped, boxes_in_window(target, window)


def boxes_in_window(target: Target, window: tuple[int, int, int, int]) -> Target:
    """``target`` as it lies in the crop ``window`` (x1, y1, x2, y2 in the image's
    pixels): the boxes whose centre lies in the window, moved to its corner and cut to
    its ``(x2 - x1, y2 - y1)`` size; every per-box entry is filtered alike."""
    left, top, right, bottom = window
    boxes: Tensor = target["boxes"]  # type: ignore[assignment]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    corner, far = boxes.new_tensor([left, top]), boxes.new_tensor([right, bottom])
    keep = ((centres >= corner) & (centres < far)).all(dim=1)
    limit = (far - corner).repeat(2)
    moved = torch.minimum((boxes - corner.repeat(2)).clamp(min=0), limit)
    return boxes_kept({**target, "boxes": moved}, keep)
