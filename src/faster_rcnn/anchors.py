"""Anchors: the reference boxes the RPN scores and regresses at every feature-map cell.

At each cell of each feature level the RPN predicts one objectness score and one box delta
per anchor shape; the anchor shapes of a level are every (aspect ratio, size) pair of that
level (the paper: 3 ratios x 3 sizes = 9 at stride 16; an FPN: 3 ratios x 1 size per level).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .config import AnchorConfig, FasterRCNNConfig, check_setting
from .image_list import ImageList


class AnchorGenerator(nn.Module):
    """Places anchors of the given sizes and aspect ratios on every feature-map cell.

    Numerically identical to torchvision's ``AnchorGenerator`` when ``offset == 0``.

    An anchor of size ``s`` and aspect ratio ``r`` (height / width) has width
    ``s / sqrt(r)`` and height ``s * sqrt(r)`` (area ``s^2``); its corners relative to its
    centre are rounded to whole pixels, as torchvision does. The centre of cell ``(i, j)``
    of a level is ``((j + offset) * stride_w, (i + offset) * stride_h)``, where the stride is
    the padded batch size divided (integer division) by the feature-map size.

    Output order, per image: levels one after another; within a level, locations in
    row-major order (y, then x); at each location, the level's anchor shapes ratio-major,
    i.e. ``(r0, s0), (r0, s1), ..., (r1, s0), ...``. Row ``(i * W + j) * A + a`` of a level
    is anchor ``a`` at cell ``(i, j)``: the layout of the head's outputs after
    :func:`faster_rcnn.rpn.network.concat_box_prediction_layers`.

    Args:
        sizes: per level, the anchor sizes (square root of the area) in pixels; a flat
            sequence is one size per level, as in torchvision (``(32, 64)`` is
            ``((32,), (64,))``).
        aspect_ratios: per level, the aspect ratios (height / width); a flat sequence
            serves every level, as in torchvision.
        offset: anchor centres at ``(index + offset) * stride``; 0 is torchvision, 0.5 the
            cell centre (the paper's code, up to its "+1" pixel convention).
    """

    def __init__(
        self,
        sizes: Sequence[Sequence[float]] | Sequence[float] = ((128, 256, 512),),
        aspect_ratios: Sequence[Sequence[float]] | Sequence[float] = ((0.5, 1.0, 2.0),),
        offset: float = 0.0,
    ) -> None:
        super().__init__()
        sizes, aspect_ratios = per_level(sizes, aspect_ratios)
        if len(sizes) != len(aspect_ratios):
            raise ValueError(
                f"anchor sizes are given for {len(sizes)} feature level(s) but aspect ratios "
                f"for {len(aspect_ratios)}; give one tuple of each per feature map, e.g. "
                "sizes=((32,), (64,)) with aspect_ratios=((0.5, 1.0, 2.0),) * 2"
            )
        for level, (level_sizes, level_ratios) in enumerate(zip(sizes, aspect_ratios, strict=True)):
            if len(level_sizes) == 0 or len(level_ratios) == 0:
                raise ValueError(f"feature level {level} has no anchor sizes or no aspect ratios")
        self.sizes = tuple(tuple(float(s) for s in level) for level in sizes)
        self.aspect_ratios = tuple(tuple(float(r) for r in level) for level in aspect_ratios)
        self.offset = float(offset)
        # Computed in float32 and cast when used, as torchvision does, so that rounding
        # gives the same whole-pixel corners whatever the feature dtype.
        self.cell_anchors = [
            base_anchors(level_sizes, level_ratios)
            for level_sizes, level_ratios in zip(self.sizes, self.aspect_ratios, strict=True)
        ]

    def __setattr__(self, name: str, value: object) -> None:
        # torchvision's users set the offset on the built model (rpn.anchor_generator.offset
        # = 0.5): checked by the config's rule.
        if name == "offset":
            check_setting(AnchorConfig, name, value, f"rpn.anchor_generator.{name}")
        # Not its sizes or ratios: the cell anchors are made from both at once, when built,
        # and the RPN head predicts their count a location.
        if name in ("sizes", "aspect_ratios") and "cell_anchors" in self.__dict__:
            raise ValueError(
                f"rpn.anchor_generator.{name} cannot be set in place (the anchors are made "
                "when it is built): set model.rpn.anchor_generator = AnchorGenerator(sizes, "
                "aspect_ratios), and model.rpn.head where the anchors a location change"
            )
        super().__setattr__(name, value)

    @classmethod
    def from_config(cls, config: FasterRCNNConfig) -> AnchorGenerator:
        anchors = config.anchors
        return cls(anchors.sizes, anchors.aspect_ratios, anchors.offset)

    def num_anchors_per_location(self) -> list[int]:
        """Anchor shapes per cell, per level (the ``A`` the RPN head predicts for)."""
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios, strict=True)]

    def level_grids(
        self,
        padded_size: tuple[int, int],
        grid_sizes: Sequence[tuple[int, int]],
        names: Sequence[str] | None = None,
    ) -> list[LevelGrid]:
        """Where each level's anchors sit on a batch padded to ``padded_size`` whose
        feature maps have ``grid_sizes`` (named ``names``, default ``"0"``, ``"1"``, ...),
        with the strides :meth:`forward` uses (padded size // map size)."""
        height, width = padded_size
        names = names or [str(level) for level in range(len(grid_sizes))]
        grids, start = [], 0
        for name, size, cell in zip(names, grid_sizes, self.cell_anchors, strict=True):
            stride = (height // size[0], width // size[1])
            grids.append(LevelGrid(name, tuple(size), stride, cell, start, self.offset))
            start += grids[-1].num_anchors
        return grids

    def forward(self, images: ImageList, feature_maps: list[Tensor]) -> list[Tensor]:
        """Anchors of every level for every image of the batch.

        Args:
            images: the batch; its padded size ``images.tensors.shape[-2:]`` sets the strides.
            feature_maps: per level, ``(N, C, H_l, W_l)`` features, in level order.

        Returns:
            Per image, ``(sum_l H_l * W_l * A_l, 4)`` anchors in the padded image's pixels,
            on the device of the features, in their dtype or float32 where that is
            narrower (the same for every image).
        """
        anchors = self.image_anchors(images.tensors.shape[-2:], feature_maps)
        return [anchors] + [anchors.clone() for _ in images.image_sizes[1:]]

    def image_anchors(self, padded_size: Sequence[int], feature_maps: list[Tensor]) -> Tensor:
        """The anchors of one image of a batch padded to ``padded_size`` (``(H, W)``).

        Args:
            padded_size: the batch's padded ``(height, width)``; it sets the strides.
            feature_maps: per level, ``(N, C, H_l, W_l)`` features, in level order.

        Returns:
            ``(sum_l H_l * W_l * A_l, 4)`` anchors in the padded image's pixels, on the
            device of the features, in their dtype or float32 where that is narrower.
        """
        if len(feature_maps) != len(self.cell_anchors):
            raise ValueError(
                f"AnchorGenerator has anchor sizes/aspect ratios for {len(self.cell_anchors)} "
                f"feature level(s) but received {len(feature_maps)} feature map(s); configure "
                "one tuple of sizes and one tuple of aspect ratios per feature map"
            )
        image_height, image_width = padded_size
        # At least float32: in bfloat16 (a CPU's mixed precision) a corner past 1024 px is
        # a multiple of 8, and the RPN's targets and proposals were as coarse as that.
        dtype = torch.promote_types(feature_maps[0].dtype, torch.float32)
        device = feature_maps[0].device
        per_level = []
        for feature_map, cell in zip(feature_maps, self.cell_anchors, strict=True):
            grid_height, grid_width = feature_map.shape[-2:]
            if grid_height > image_height or grid_width > image_width:
                raise ValueError(
                    f"feature map of size {grid_height}x{grid_width} is larger than the "
                    f"image batch ({image_height}x{image_width})"
                )
            stride = (image_height // grid_height, image_width // grid_width)
            per_level.append(
                grid_anchors(
                    cell.to(dtype=dtype, device=device),
                    (grid_height, grid_width),
                    stride,
                    self.offset,
                )
            )
        return torch.cat(per_level)


def per_level(
    sizes: Sequence[Sequence[float]] | Sequence[float],
    aspect_ratios: Sequence[Sequence[float]] | Sequence[float],
) -> tuple[Sequence[Sequence[float]], Sequence[Sequence[float]]]:
    """Anchor sizes and aspect ratios per level, as torchvision's ``AnchorGenerator``
    reads them: flat sizes are one a level, flat ratios serve every level."""
    if len(sizes) > 0 and not isinstance(sizes[0], (list, tuple)):
        sizes = tuple((size,) for size in sizes)
    if len(aspect_ratios) > 0 and not isinstance(aspect_ratios[0], (list, tuple)):
        aspect_ratios = (tuple(aspect_ratios),) * len(sizes)
    return sizes, aspect_ratios


@dataclass(frozen=True)
class LevelGrid:
    """Where one feature level's anchors sit in :class:`AnchorGenerator`'s output.

    Row ``start + (i * W + j) * A + a`` is ``cell_anchors[a]`` centred on cell ``(i, j)``,
    at ``((j + offset) * stride_w, (i + offset) * stride_h)``.

    Attributes:
        name: the feature map's name.
        grid_size: ``(H, W)`` cells.
        stride: ``(stride_h, stride_w)`` in pixels of the padded batch.
        cell_anchors: ``(A, 4)`` float32 origin-centred anchor shapes of every cell.
        start: the row of the level's first anchor.
        offset: see :class:`AnchorGenerator`.
    """

    name: str
    grid_size: tuple[int, int]
    stride: tuple[int, int]
    cell_anchors: Tensor
    start: int
    offset: float

    @property
    def anchors_per_location(self) -> int:
        """``A``, the anchor shapes of each cell."""
        return int(self.cell_anchors.shape[0])

    @property
    def num_anchors(self) -> int:
        """``H * W * A``."""
        return self.grid_size[0] * self.grid_size[1] * self.anchors_per_location

    def cell_centres(self) -> tuple[Tensor, Tensor]:
        """``(H,)`` y and ``(W,)`` x of the cell centres, in pixels."""
        rows = (torch.arange(self.grid_size[0]) + self.offset) * self.stride[0]
        cols = (torch.arange(self.grid_size[1]) + self.offset) * self.stride[1]
        return rows, cols


def base_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
    """The anchors of one cell, centred on the origin, as torchvision computes them.

    Args:
        sizes: ``S`` anchor sizes (square root of the area).
        aspect_ratios: ``R`` aspect ratios (height / width).

    Returns:
        ``(R * S, 4)`` float32 ``(-w/2, -h/2, w/2, h/2)`` rounded to whole pixels,
        ratio-major, on the CPU (moved to the features' device when used).
    """
    # On the CPU whatever the default device: they are no parameter or buffer, so a model
    # built under torch.device("meta") and loaded with load_state_dict(assign=True) would
    # keep them without values.
    scales = torch.as_tensor(sizes, dtype=torch.float32, device="cpu")
    ratios = torch.as_tensor(aspect_ratios, dtype=torch.float32, device="cpu")
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).view(-1)
    hs = (h_ratios[:, None] * scales[None, :]).view(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


def grid_anchors(
    cell_anchors: Tensor, grid_size: tuple[int, int], stride: tuple[int, int], offset: float
) -> Tensor:
    """Copies of a cell's anchors centred on every cell of one feature map.

    Args:
        cell_anchors: ``(A, 4)`` origin-centred anchors (dtype and device of the result).
        grid_size: ``(H, W)`` of the feature map.
        stride: ``(stride_h, stride_w)`` in pixels.
        offset: centres at ``(index + offset) * stride``.

    Returns:
        ``(H * W * A, 4)`` anchors, location-major (row-major over y, x), then anchor.
    """
    device = cell_anchors.device
    grid_height, grid_width = grid_size
    # Whole-pixel centres are exact in float32, so adding them to the rounded cell anchors
    # gives torchvision's integer-shift result bit for bit.
    shifts_x = (torch.arange(grid_width, dtype=torch.float32, device=device) + offset) * stride[1]
    shifts_y = (torch.arange(grid_height, dtype=torch.float32, device=device) + offset) * stride[0]
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1).to(cell_anchors.dtype)
    return (shifts.view(-1, 1, 4) + cell_anchors.view(1, -1, 4)).reshape(-1, 4)


def anchors_crossing_border(
    anchors: Tensor, image_size: tuple[int, int], allowed_border: float
) -> Tensor:
    """Which anchors cross the image border by more than ``allowed_border`` pixels.

    The paper ignores such anchors in training (py-faster-rcnn: ``allowed_border = 0``).

    Args:
        anchors: ``(N, 4)`` anchors.
        image_size: ``(height, width)`` of the image (its own size, not the padded one).
        allowed_border: tolerated overhang in pixels; negative flags nothing.

    Returns:
        ``(N,)`` bool, True for anchors reaching beyond ``[-allowed_border, width +
        allowed_border] x [-allowed_border, height + allowed_border]``.
    """
    if allowed_border < 0:
        return torch.zeros(anchors.shape[0], dtype=torch.bool, device=anchors.device)
    height, width = image_size
    return (
        (anchors[:, 0] < -allowed_border)
        | (anchors[:, 1] < -allowed_border)
        | (anchors[:, 2] > width + allowed_border)
        | (anchors[:, 3] > height + allowed_border)
    )
