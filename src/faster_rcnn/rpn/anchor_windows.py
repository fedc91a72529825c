"""Which anchors can reach a box: the few cells of each level where they lie.

Matching every anchor with every GT box costs ``A x G`` IoUs (268,569 anchors of a
ResNet-50-FPN at 800 x 1344 against 100 boxes: 27 million), yet an anchor can only reach
an IoU ``t > 0`` with a box of similar area that lies on top of it. Two bounds say which:

- **area**: ``IoU <= min(a, b) / max(a, b)`` for boxes of areas ``a`` and ``b``, so an
  anchor shape whose area differs from the box's by more than a factor ``t`` never
  reaches ``t``;
- **overlap**: ``IoU >= t`` needs an intersection of at least ``t`` times either area,
  and the intersection is at most the overlap along x times either height, so the two
  overlap by at least ``t`` times the wider of their widths along x (and likewise along
  y). Each anchor shape's centres are a regular grid, so that overlap is a window of
  cells.

Every anchor outside the windows is below ``t``: the windows hold a few hundred anchors
a box, whatever the image size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from ..anchors import LevelGrid

# Relative slack on the area bound: a shape exactly at the factor is kept whatever the
# rounding of the two areas. (Each window has a cell of margin on either side.)
_AREA_SLACK = 1e-5


class AnchorShapes(NamedTuple):
    """Every anchor shape of every level, one entry each (``S`` in all).

    Attributes:
        x1, y1, x2, y2: ``(S,)`` the shape's corners relative to its cell's centre.
        stride_x, stride_y: ``(S,)`` its level's stride, in pixels.
        cells_x, cells_y: ``(S,)`` int64 its level's grid width and height, in cells.
        first_row: ``(S,)`` int64 the row of the shape's anchor in the level's first cell.
        anchors_per_cell: ``(S,)`` int64 the level's anchor shapes per cell.
        offset: the centres' offset within a cell (see ``AnchorGenerator``).
    """

    x1: Tensor
    y1: Tensor
    x2: Tensor
    y2: Tensor
    stride_x: Tensor
    stride_y: Tensor
    cells_x: Tensor
    cells_y: Tensor
    first_row: Tensor
    anchors_per_cell: Tensor
    offset: float

    @classmethod
    def of_levels(cls, levels: Sequence[LevelGrid], device: torch.device) -> AnchorShapes:
        """The shapes of ``levels`` (``AnchorGenerator.level_grids``), on ``device``."""

        def per_shape(value_of: Callable[[LevelGrid], float], dtype: torch.dtype) -> Tensor:
            values = [
                value_of(level) for level in levels for _ in range(level.anchors_per_location)
            ]
            return torch.tensor(values, dtype=dtype, device=device)

        corners = torch.cat([level.cell_anchors for level in levels]).to(device)
        shape_index = torch.cat([torch.arange(level.anchors_per_location) for level in levels])
        first_row = per_shape(lambda level: level.start, torch.int64) + shape_index.to(device)
        return cls(
            *corners.to(torch.float32).unbind(1),
            stride_x=per_shape(lambda level: level.stride[1], torch.float32),
            stride_y=per_shape(lambda level: level.stride[0], torch.float32),
            cells_x=per_shape(lambda level: level.grid_size[1], torch.int64),
            cells_y=per_shape(lambda level: level.grid_size[0], torch.int64),
            first_row=first_row,
            anchors_per_cell=per_shape(lambda level: level.anchors_per_location, torch.int64),
            offset=levels[0].offset if levels else 0.0,
        )


def anchors_reaching(boxes: Tensor, shapes: AnchorShapes, min_iou: float) -> tuple[Tensor, Tensor]:
    """Every (box, anchor) pair that can reach IoU ``min_iou``, and more.

    Args:
        boxes: ``(G, 4)`` boxes in the padded image's pixels.
        shapes: the anchor shapes of the image's levels.
        min_iou: the IoU a pair must be able to reach; 0 keeps every anchor that overlaps
            a box (and its neighbours).

    Returns:
        ``(K,)`` int64 box index and ``(K,)`` int64 anchor row of each pair, each pair
        once, with every pair whose IoU is at least ``min_iou`` (above 0 when it is 0)
        among them.
    """
    # float32 on every device (MPS has no float64): the windows' margin of a cell dwarfs
    # its rounding.
    boxes = boxes.to(torch.float32)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    shape_width, shape_height = shapes.x2 - shapes.x1, shapes.y2 - shapes.y1
    # Overlap needed along each axis: min_iou times the wider (taller) of box and shape.
    need_x = min_iou * torch.maximum(width[:, None], shape_width)
    need_y = min_iou * torch.maximum(height[:, None], shape_height)
    first_x, count_x = _cell_range(
        boxes[:, 0],
        boxes[:, 2],
        shapes.x1,
        shapes.x2,
        need_x,
        shapes.stride_x,
        shapes.cells_x,
        shapes.offset,
    )
    first_y, count_y = _cell_range(
        boxes[:, 1],
        boxes[:, 3],
        shapes.y1,
        shapes.y2,
        need_y,
        shapes.stride_y,
        shapes.cells_y,
        shapes.offset,
    )
    counts = count_x * count_y  # (G, S) cells in each window
    if min_iou > 0:
        area, shape_area = width * height, shape_width * shape_height
        ratio = torch.minimum(area[:, None], shape_area) / torch.maximum(area[:, None], shape_area)
        counts = counts.masked_fill(ratio < min_iou * (1 - _AREA_SLACK), 0)
    return _expand_windows(first_x, count_x, first_y, counts, shapes)


def _cell_range(
    low: Tensor,
    high: Tensor,
    shape_low: Tensor,
    shape_high: Tensor,
    need: Tensor,
    stride: Tensor,
    cells: Tensor,
    offset: float,
) -> tuple[Tensor, Tensor]:
    """``(G, S)`` first cell and number of cells along one axis whose anchor of each
    shape overlaps ``[low, high]`` of each box by ``need`` or more (one cell of margin
    either side against rounding), within the map."""
    # Overlap >= need: centre >= low - shape_high + need and centre <= high - shape_low - need.
    first = torch.floor((low[:, None] - shape_high + need) / stride - offset) - 1
    last = torch.ceil((high[:, None] - shape_low - need) / stride - offset) + 1
    first = first.clamp(min=0).to(torch.int64)
    last = torch.minimum(last.to(torch.int64), cells - 1)
    return first, (last - first + 1).clamp(min=0)


def _expand_windows(
    first_x: Tensor, count_x: Tensor, first_y: Tensor, counts: Tensor, shapes: AnchorShapes
) -> tuple[Tensor, Tensor]:
    """The (box, anchor row) of every cell of every ``(G, S)`` window, flattened."""
    num_shapes = counts.shape[1]
    flat_counts = counts.flatten()
    window = torch.repeat_interleave(flat_counts)  # (K,) which (box, shape) window
    starts = torch.cumsum(flat_counts, 0) - flat_counts
    position = torch.arange(window.numel(), device=counts.device) - starts[window]
    columns = count_x.flatten()[window]
    box, shape = window // num_shapes, window % num_shapes
    row = first_y.flatten()[window] + position // columns
    column = first_x.flatten()[window] + position % columns
    cell = row * shapes.cells_x[shape] + column
    return box, shapes.first_row[shape] + cell * shapes.anchors_per_cell[shape]
