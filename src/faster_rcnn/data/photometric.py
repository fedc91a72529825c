"""Photometric augmentation: random brightness, contrast, saturation and hue.

Each of the four is a linear map of a pixel's RGB values (plus, for contrast, an offset),
so one draw composes them into a single affine map, ``rgb' = M rgb + b``, applied to the
image in one matrix product and clipped to 0..1 once at the end. The factors are drawn as
torchvision's ``ColorJitter`` draws them; the hue shift is a rotation about the grey axis
in YIQ space rather than a shift of HSV's hue, so that it composes with the rest: it
keeps every pixel's luma and leaves grey pixels grey. There is no channel permutation:
where colour tells the classes apart (stained cells), a permuted image is mislabelled.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .dataset import Target, as_float_image

# Rec. 601 luma: the grey of saturation and contrast, as in torchvision.
LUMA = (0.299, 0.587, 0.114)
# RGB -> YIQ (NTSC); its first row is the luma.
_RGB_TO_YIQ = (LUMA, (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


class ColorJitter:
    """Random brightness, contrast, saturation and hue, in that order, as one affine map.

    Args:
        brightness: the pixels are scaled by a factor drawn from
            ``[max(0, 1 - brightness), 1 + brightness]``.
        contrast: each pixel moves towards (factor < 1) or away from the image's mean
            grey, factor drawn as for brightness.
        saturation: each pixel moves towards or away from its own grey, likewise.
        hue: the colours turn about the grey axis by an angle drawn from
            ``[-hue, hue]`` turns of the colour wheel (at most 0.5).

    A strength of 0 leaves that property unchanged. Boxes are unchanged.
    """

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        hue: float = 0.0,
    ) -> None:
        for name, value in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
        ):
            if not value >= 0.0:
                raise ValueError(f"color jitter {name} must be >= 0, got {value}")
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"color jitter hue must be in 0..0.5 turns, got {hue}")
        self.strengths = (brightness, contrast, saturation, hue)

    def __call__(
        self, image: Tensor, target: Target, generator: torch.Generator
    ) -> tuple[Tensor, Target]:
        """``image``: ``(3, H, W)`` RGB in 0..1, or ``uint8`` levels; a new float image
        is returned."""
        image = as_float_image(image)
        brightness, contrast, saturation, hue = self.strengths
        draws = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
        factors = [
            _factor(s, u)
            for s, u in zip((brightness, contrast, saturation), draws[:3], strict=True)
        ]
        turns = hue * (2 * draws[3] - 1)
        matrix, offset = color_map(*factors, turns, image.mean(dim=(1, 2)))
        return apply_color_map(image, matrix, offset), target


def _factor(strength: float, uniform: float) -> float:
    """A factor uniform in ``[max(0, 1 - strength), 1 + strength]`` from ``uniform`` in 0..1."""
    low = max(0.0, 1.0 - strength)
    return low + (1.0 + strength - low) * uniform


def color_map(
    brightness: float, contrast: float, saturation: float, hue_turns: float, channel_means: Tensor
) -> tuple[Tensor, Tensor]:
    """The affine map ``rgb' = M rgb + b`` of the four adjustments applied in order.

    Args:
        brightness / contrast / saturation: factors (1 leaves the image unchanged).
        hue_turns: rotation about the grey axis, in turns (0 leaves it unchanged).
        channel_means: ``(3,)`` the image's mean R, G, B (contrast's mean grey).

    Returns:
        ``(3, 3)`` ``M`` and ``(3,)`` ``b``, float64.
    """
    luma = torch.tensor(LUMA, dtype=torch.float64)
    identity = torch.eye(3, dtype=torch.float64)
    matrix, offset = brightness * identity, torch.zeros(3, dtype=torch.float64)
    # Contrast: towards the mean grey of the image as brightness left it.
    mean_grey = float(luma @ (matrix @ channel_means.double() + offset))
    matrix, offset = contrast * matrix, contrast * offset + (1 - contrast) * mean_grey
    # Saturation: towards each pixel's own grey, s * I + (1 - s) * (column of ones) luma^T.
    desaturate = (
        saturation * identity + (1 - saturation) * torch.ones(3, 1, dtype=torch.float64) * luma
    )
    matrix, offset = desaturate @ matrix, desaturate @ offset
    rotate = hue_rotation(hue_turns)
    return rotate @ matrix, rotate @ offset


def hue_rotation(turns: float) -> Tensor:
    """``(3, 3)`` float64: RGB -> YIQ, a rotation of the I-Q plane by ``turns``, and back.

    Positive turns move colours the way HSV's hue grows (red towards yellow), by 0.7 to 1.5
    times as far as HSV's hue would move, depending on the colour.
    """
    to_yiq = torch.tensor(_RGB_TO_YIQ, dtype=torch.float64)
    # I-Q runs against HSV's colour wheel, hence the minus.
    angle = -2 * math.pi * turns
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = torch.tensor(
        [[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]], dtype=torch.float64
    )
    return torch.linalg.solve(to_yiq, rotation @ to_yiq)


def apply_color_map(image: Tensor, matrix: Tensor, offset: Tensor) -> Tensor:
    """``clip(M rgb + b, 0, 1)`` of every pixel of a ``(3, H, W)`` image, in its dtype."""
    pixels = image.reshape(3, -1)
    mapped = torch.addmm(offset.to(image.dtype)[:, None], matrix.to(image.dtype), pixels)
    return mapped.clamp_(0.0, 1.0).view_as(image)
