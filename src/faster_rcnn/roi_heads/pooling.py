"""RoI feature extraction: a fixed-size feature grid for every box.

:class:`MultiScaleRoIAlign` is torchvision's pooler (``torchvision.ops.MultiScaleRoIAlign``):
each box is pooled with RoIAlign from one feature map, chosen among several by the FPN
paper's rule from the box's size (with a single map, from that one). :class:`SingleScaleRoIPool`
is the Fast R-CNN paper's RoI max pooling over one stride-16 feature map.

Neither has parameters. The stride of each feature map is not configured but inferred,
as torchvision does, from its size relative to the largest image of the batch, rounded to
a power of two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..config import RoIHeadsConfig, check_setting
from ..ops.boxes import box_area
from ..ops.roi_align import boxes_to_rois, memory_format_of, roi_align, roi_pool

# The poolers' settings that are fields of RoIHeadsConfig of the same names, checked by
# the config's rules where torchvision's users set them on the built model
# (``model.roi_heads.box_roi_pool.sampling_ratio = 0``); ``output_size`` too, a side at
# a time (:func:`pooled_size`), and SingleScaleRoIPool's ``featmap_name`` as the one name
# of ``featmap_names`` that ``pooler="pool"`` takes.
CONFIG_SETTINGS = (
    "featmap_names",
    "sampling_ratio",
    "aligned",
    "canonical_scale",
    "canonical_level",
)


def infer_scale(feature: Tensor, original_size: tuple[int, int]) -> float:
    """The feature map's scale relative to the image, assumed to be ``2 ** -k``.

    Args:
        feature: ``(N, C, Hf, Wf)`` feature map.
        original_size: ``(height, width)`` of the (largest) input image.

    Returns:
        ``2 ** round(log2(Hf / height))``, or with the widths where the image is wider
        than tall, rounded in float32 (halves to even) as torchvision rounds. torchvision
        decides by the height alone, which a padded batch's few rows mislead where the
        image is far wider than tall: a 2000 x 50 strip resized to 512 x 12 and padded
        to 32 rows has a 4-row stride-8 map, 1/3 of its height, taken for 1/4; the
        longer side tells, and gives torchvision's scale wherever the height tells.
    """
    height, width = original_size
    rows, columns = feature.shape[-2:]
    approx_scale = float(rows) / float(height) if height >= width else float(columns) / width
    return 2 ** float(torch.tensor(approx_scale).log2().round())


def max_image_size(image_shapes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """``(max height, max width)`` over the batch: the padded batch's meaningful extent."""
    if len(image_shapes) == 0:
        raise ValueError("image_shapes must not be empty")
    return max(h for h, _ in image_shapes), max(w for _, w in image_shapes)


class LevelMapper:
    """Assigns each box to a pyramid level by the FPN paper's Eq. 1.

    ``k = floor(k0 + log2(sqrt(w h) / s0) + eps)``, clamped to ``[k_min, k_max]``: a box of
    the canonical ImageNet size ``s0 = 224`` goes to level ``k0 = 4`` (stride 16), one of
    half that size a level lower. ``eps`` keeps boxes of exactly ``s0 * 2**j`` from falling
    a level through rounding error.

    Args:
        k_min: level of the finest feature map (its stride is ``2 ** k_min``).
        k_max: level of the coarsest feature map.
        canonical_scale: ``s0``.
        canonical_level: ``k0``.
        eps: added before the floor.
    """

    def __init__(
        self,
        k_min: int,
        k_max: int,
        canonical_scale: int = 224,
        canonical_level: int = 4,
        eps: float = 1e-6,
    ) -> None:
        self.k_min = k_min
        self.k_max = k_max
        self.s0 = canonical_scale
        self.lvl0 = canonical_level
        self.eps = eps

    def __call__(self, boxes: list[Tensor]) -> Tensor:
        """Level of each box.

        Args:
            boxes: per image, ``(Ki, 4)`` boxes.

        Returns:
            ``(sum Ki,)`` int64 index into the feature maps, ``level - k_min``.
        """
        # A discrete choice: never differentiated, even for boxes that carry a gradient.
        s = torch.sqrt(torch.cat([box_area(b.detach()) for b in boxes]))
        # Summed in torchvision's order so that boxes on a level boundary agree with it.
        target_lvls = torch.floor(
            self.lvl0 + torch.log2(s / self.s0) + torch.tensor(self.eps, dtype=s.dtype)
        )
        target_lvls = torch.clamp(target_lvls, min=self.k_min, max=self.k_max)
        return target_lvls.to(torch.int64) - self.k_min


def setup_scales(
    features: list[Tensor],
    image_shapes: Sequence[tuple[int, int]],
    canonical_scale: int = 224,
    canonical_level: int = 4,
) -> tuple[list[float], LevelMapper]:
    """Scales of the feature maps and the level mapper spanning them.

    Args:
        features: ``(N, C, Hl, Wl)`` feature maps, finest first.
        image_shapes: per image, ``(height, width)`` before the backbone.
        canonical_scale / canonical_level: see :class:`LevelMapper`.

    Returns:
        One scale per feature map, and the mapper from the first map's level to the last's.
    """
    original_size = max_image_size(image_shapes)
    scales = [infer_scale(f, original_size) for f in features]
    # Scales are exact powers of two, so the levels are exact integers.
    k_min = int(-math.log2(scales[0]))
    k_max = int(-math.log2(scales[-1]))
    return scales, LevelMapper(k_min, k_max, canonical_scale, canonical_level)


def _select_features(x: Mapping[str, Tensor], featmap_names: Sequence[str]) -> list[Tensor]:
    """The maps of ``x`` named in ``featmap_names``, in the order of ``x`` (the
    backbone's, finest first); names ``x`` lacks are passed over, as torchvision's
    pooler does (its ``MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)`` pools a
    MobileNet FPN's ``"0"`` and ``"1"``).

    Raises:
        ValueError: ``x`` has none of them.
    """
    selected = [v for k, v in x.items() if k in featmap_names]
    if not selected:
        raise ValueError(
            f"feature maps {list(featmap_names)} requested, the backbone gives {list(x)}"
        )
    return selected


def pooled_size(output_size: int | Sequence[int], where: str) -> tuple[int, int]:
    """``(height, width)`` of a pooled RoI: one side for both, or a pair (torchvision's
    ``output_size``), each side one the config's ``output_size`` takes (set as ``where``).

    Raises:
        ValueError: a sequence that is not two sides, or a side the config refuses.
    """
    if not isinstance(output_size, Sequence):
        check_setting(RoIHeadsConfig, "output_size", output_size, where)
        return (int(output_size), int(output_size))
    if len(output_size) != 2:
        raise ValueError(f"output_size must be an int or (height, width), got {output_size!r}")
    for index, side in enumerate(output_size):
        check_setting(RoIHeadsConfig, "output_size", side, f"{where}[{index}]")
    height, width = output_size
    return (int(height), int(width))


def checked_setting(name: str, value: Any) -> Any:
    """``value`` set as a pooler's ``name``, as the pooler keeps it (``output_size`` as
    ``(height, width)``).

    Raises:
        ValueError: a value its config field refuses, naming it
            (``"roi_heads.box_roi_pool.sampling_ratio = -3: must be >= 1, or 0 or -1
            for adaptive"``).
    """
    where = f"roi_heads.box_roi_pool.{name}"
    if name in CONFIG_SETTINGS:
        check_setting(RoIHeadsConfig, name, value, where)
    if name == "featmap_name":
        # The config's field for pooler="pool" is a tuple of this one name.
        current = {"pooler": "pool"}
        check_setting(RoIHeadsConfig, "featmap_names", (value,), where, current, repr(value))
    if name == "output_size":
        return pooled_size(value, where)
    return value


class MultiScaleRoIAlign(nn.Module):
    """RoIAlign from the pyramid level that suits each box's size (torchvision's).

    Args:
        featmap_names: the feature maps pooled from, e.g. ``("0", "1", "2", "3")``.
        output_size: side of the pooled grid (7), or its ``(height, width)``.
        sampling_ratio: bilinear samples per bin side (-1: adaptive).
        aligned: RoIAlign's half-pixel offset (False in torchvision's Faster R-CNN).
        canonical_scale / canonical_level: the level mapping, see :class:`LevelMapper`.

    Unlike torchvision's, which infers the scales on its first call and keeps them, the
    scales are inferred on every call (it is cheap), so batches of other sizes are pooled
    right too; for a batch of the first call's size the two agree. A name missing from the
    features is passed over, as in torchvision; none of them there is an error.
    """

    def __init__(
        self,
        featmap_names: Sequence[str],
        output_size: int | Sequence[int],
        sampling_ratio: int,
        aligned: bool = False,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ) -> None:
        super().__init__()
        self.featmap_names = tuple(featmap_names)
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, checked_setting(name, value))

    def forward(
        self,
        x: Mapping[str, Tensor],
        boxes: list[Tensor],
        image_shapes: Sequence[tuple[int, int]],
    ) -> Tensor:
        """Pool every box.

        Args:
            x: feature maps by name, each ``(N, C, Hl, Wl)``, finest first.
            boxes: per image, ``(Ki, 4)`` boxes in the (resized) image's pixels.
            image_shapes: per image, ``(height, width)`` of the resized image.

        Returns:
            ``(sum Ki, C, output_size, output_size)`` pooled features, boxes in order.
        """
        features = _select_features(x, self.featmap_names)
        scales, mapper = setup_scales(
            features, image_shapes, self.canonical_scale, self.canonical_level
        )
        rois = boxes_to_rois(boxes)
        if len(features) == 1:
            return self._roi_align(features[0], rois, scales[0])

        levels = mapper(boxes)
        first = features[0]
        result = torch.empty(
            (rois.shape[0], first.shape[1], *self.output_size),
            dtype=first.dtype,
            device=first.device,
            memory_format=memory_format_of(first),
        ).zero_()
        for level, (feature, scale) in enumerate(zip(features, scales, strict=True)):
            idx_in_level = torch.where(levels == level)[0]
            pooled = self._roi_align(feature, rois[idx_in_level], scale)
            # Levels may differ in dtype under autocast; the in-place copy needs one.
            result[idx_in_level] = pooled.to(result.dtype)
        return result

    def extra_repr(self) -> str:
        """torchvision's: ``featmap_names=['0'], output_size=(7, 7), sampling_ratio=2``."""
        return (
            f"featmap_names={list(self.featmap_names)}, output_size={self.output_size}, "
            f"sampling_ratio={self.sampling_ratio}"
        )

    def _roi_align(self, feature: Tensor, rois: Tensor, scale: float) -> Tensor:
        return roi_align(
            feature,
            rois,
            output_size=self.output_size,
            spatial_scale=scale,
            sampling_ratio=self.sampling_ratio,
            aligned=self.aligned,
        )


class SingleScaleRoIPool(nn.Module):
    """The Fast R-CNN paper's RoI max pooling over one feature map.

    Each box is cut into an ``output_size x output_size`` grid on the feature map (at
    the inferred scale, 1/16 for VGG-16's conv5_3) and each cell is max-pooled.

    Args:
        featmap_name: the feature map pooled from.
        output_size: side of the pooled grid (7 for VGG-16's fc6).
    """

    def __init__(self, featmap_name: str, output_size: int) -> None:
        super().__init__()
        self.featmap_name = featmap_name
        self.output_size = output_size

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, checked_setting(name, value))

    def forward(
        self,
        x: Mapping[str, Tensor],
        boxes: list[Tensor],
        image_shapes: Sequence[tuple[int, int]],
    ) -> Tensor:
        """Pool every box.

        Args:
            x: feature maps by name; ``x[featmap_name]`` is ``(N, C, H, W)``.
            boxes: per image, ``(Ki, 4)`` boxes in the (resized) image's pixels.
            image_shapes: per image, ``(height, width)`` of the resized image.

        Returns:
            ``(sum Ki, C, output_size, output_size)`` pooled features, boxes in order.
        """
        (feature,) = _select_features(x, (self.featmap_name,))
        scale = infer_scale(feature, max_image_size(image_shapes))
        return roi_pool(
            feature, boxes_to_rois(boxes), output_size=self.output_size, spatial_scale=scale
        )
