"""A batch of images padded into one tensor, with each image's own size."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ImageList:
    """Images of different sizes batched as one zero-padded tensor.

    Attributes:
        tensors: ``(N, C, H, W)`` padded batch.
        image_sizes: per image, ``(height, width)`` of the valid (unpadded) region.
    """

    tensors: Tensor
    image_sizes: list[tuple[int, int]]

    def to(self, device: torch.device | str) -> ImageList:
        return ImageList(self.tensors.to(device), self.image_sizes)
