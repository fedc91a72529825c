"""Optical augmentation: random defocus blur and sensor noise.

Images taken with another microscope, camera or focus than the training images differ in
sharpness and noise as well as in colour, and :mod:`.photometric`'s jitter covers colour
only. On the generated slides, models trained on the clean images scored mAP@0.5
0.67-0.77 on blurred, faded and noised copies of their test images; with colour jitter
alone 0.77-0.78, with this transform alone 0.83, with both 0.93, while all scored
0.977-0.987 on the clean test images (``benchmarks/recipe_ab.md``, round 43).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .dataset import Target, as_float_image

# A Gaussian's taps reach this many standard deviations each side (its mass beyond 3 is
# 0.3 %, and the taps are normalised to sum to 1).
_REACH = 3.0


class BlurAndNoise:
    """Blur each image by a Gaussian of random width, then add Gaussian noise of random
    strength.

    Args:
        blur: the blur's standard deviation is drawn uniformly from ``[0, blur]`` pixels
            of the image as read (before it is resized for the model).
        noise: the noise's standard deviation is drawn uniformly from ``[0, noise]`` (the
            pixels run 0..1); the noisy image is clipped to 0..1.

    A strength of 0 leaves that property unchanged. Boxes are unchanged.
    """

    def __init__(self, blur: float = 0.0, noise: float = 0.0) -> None:
        for name, value in (("blur", blur), ("noise", noise)):
            if not value >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.strengths = (blur, noise)

    def __call__(
        self, image: Tensor, target: Target, generator: torch.Generator
    ) -> tuple[Tensor, Target]:
        """``image``: ``(3, H, W)`` RGB in 0..1, or ``uint8`` levels (given as float),
        never modified in place."""
        image = as_float_image(image)
        blur, noise = self.strengths
        draws = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        out = gaussian_blur(image, blur * draws[0])
        if noise > 0:
            grain = torch.randn(out.shape, generator=generator, dtype=out.dtype)
            out = (out + noise * draws[1] * grain).clamp_(0.0, 1.0)
        return out, target


def gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    """``(C, H, W)`` ``image`` blurred by a Gaussian of standard deviation ``sigma`` px,
    separably, the border reflected; ``image`` itself where ``sigma`` is under 0.1 (a
    Gaussian that narrow moves less than 1e-21 of a pixel's value to its neighbours)."""
    if sigma < 0.1:
        return image
    # Reflection needs the pad narrower than the image: a wider Gaussian is cut to it
    # (before rounding up: ceil of a reach of 1e308 px would overflow).
    radius = math.ceil(min(_REACH * sigma, image.shape[1] - 1, image.shape[2] - 1))
    taps = gaussian_taps(sigma, radius).tolist()
    padded = F.pad(image[None], (radius, radius, radius, radius), mode="reflect")[0]
    rows = _shifted_sum(padded, taps, dim=2, size=image.shape[2])
    return _shifted_sum(rows, taps, dim=1, size=image.shape[1])


def _shifted_sum(padded: Tensor, taps: list[float], dim: int, size: int) -> Tensor:
    """``sum_k taps[k] * padded.narrow(dim, k, size)``: one pass of a separable filter.

    Accumulated in place over views: on one core, at sigma 2 on a 480 x 640 image, the
    two passes take 3 ms against 15-32 ms for a grouped convolution with the same taps.
    """
    total = padded.narrow(dim, 0, size) * taps[0]
    for shift, tap in enumerate(taps[1:], start=1):
        total.add_(padded.narrow(dim, shift, size), alpha=tap)
    return total


def gaussian_taps(sigma: float, radius: int) -> Tensor:
    """The ``(2 radius + 1,)`` float64 taps ``exp(-k^2 / (2 sigma^2))`` at ``k = -radius..
    radius``, normalised to sum to 1; as wide as ``sigma`` may be (``sigma**2`` would
    overflow from 1.4e154), where they are all alike."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-((offsets / sigma) ** 2) / 2)
    return taps / taps.sum()
