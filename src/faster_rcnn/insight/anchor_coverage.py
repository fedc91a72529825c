"""Anchor coverage: which ground-truth boxes the anchors can reach, before any training.

The RPN learns a GT box from the anchors its matching rule makes positive (the paper: IoU
at least 0.7, or the box's best anchor). A box whose best anchor falls well short of the
threshold gets a single low-quality positive (or none, if its best anchor is shared with
another box), so its proposals depend on a long regression; boxes of a size or shape no
anchor resembles are what an anchor design misses. This module measures,
for every GT box of a dataset as the model sees it (resized, on the padded batch's anchor
grid, under the RPN's border policy), the best anchor IoU and the number of anchors at or
above the positive threshold, and summarises them by box size and aspect ratio.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..anchors import AnchorGenerator, LevelGrid, anchors_crossing_border
from ..config import RPNConfig
from ..data.dataset import Sample, UnreadableImageError
from ..host_cpus import one_thread
from ..image_list import ImageList
from ..model import FasterRCNN
from ..ops.boxes import box_iou
from ..transform import padded_size, resize_boxes, resized_size
from ..validation import too_elongated

# Per image: its (height, width) and its (G, 4) GT boxes in its pixels.
ImageBoxes = tuple[tuple[int, int], Tensor]

# Box-size bins (square root of the area, in resized-image pixels): octaves, as anchor
# sizes usually are.
DEFAULT_SIZE_EDGES = (0.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, math.inf)
# Aspect-ratio bins (height / width): wide, near-square, tall.
DEFAULT_RATIO_EDGES = (0.0, 1 / 1.5, 1.5, math.inf)
# Boxes measured against a grid's anchors at once: bounds the (boxes, anchors) IoU matrix.
BOXES_PER_CHUNK = 256
# Boxes are first measured against the anchors within this factor of their area (exact
# for every best IoU at or above it, see _measure_group) ...
AREA_FACTOR = 0.25
# ... at most about this many (box, anchor) pairs at once.
ANCHORS_PER_CHUNK = 2_000_000


@dataclass
class AnchorCoverage:
    """Per GT box: its size, its aspect ratio and how well the anchors cover it.

    Attributes:
        sizes: ``(G,)`` square root of the box area, in resized-image pixels.
        aspect_ratios: ``(G,)`` height / width.
        best_iou: ``(G,)`` the highest IoU of any anchor the RPN may train on.
        num_positive: ``(G,)`` anchors with IoU ``>= fg_iou_thresh`` (before sampling).
        fg_iou_thresh: the RPN's positive threshold the counts use.
        boxes: ``(G, 4)`` the boxes in their own image's pixels, as given.
        image_index: ``(G,)`` int64, which of the given images each box belongs to.
    """

    sizes: Tensor
    aspect_ratios: Tensor
    best_iou: Tensor
    num_positive: Tensor
    fg_iou_thresh: float
    boxes: Tensor
    image_index: Tensor

    def __len__(self) -> int:
        return int(self.sizes.numel())

    def rows(
        self,
        size_edges: Sequence[float] = DEFAULT_SIZE_EDGES,
        ratio_edges: Sequence[float] | None = None,
    ) -> list[dict[str, float | str]]:
        """Summary rows: one per size bin (and ratio bin, when ``ratio_edges`` is given),
        then one for all boxes.

        Each row has ``"boxes"`` (the count), ``"median_best_iou"``, ``"covered_0.5"`` and
        ``"covered_0.7"`` (shares of boxes whose best anchor reaches that IoU) and
        ``"mean_positives"`` (anchors at ``fg_iou_thresh`` or more). Empty bins are left
        out.
        """
        rows = []
        ratio_bins = _bins(ratio_edges) if ratio_edges is not None else [(0.0, math.inf)]
        for low, high in _bins(size_edges):
            for ratio_low, ratio_high in ratio_bins:
                selected = (
                    (self.sizes >= low)
                    & (self.sizes < high)
                    & (self.aspect_ratios >= ratio_low)
                    & (self.aspect_ratios < ratio_high)
                )
                if selected.any():
                    row = {"size": _range_label(low, high)}
                    if ratio_edges is not None:
                        row["ratio"] = _range_label(ratio_low, ratio_high, digits=2)
                    rows.append({**row, **self._stats(selected)})
        everything = torch.ones_like(self.sizes, dtype=torch.bool)
        total = {"size": "all"} | ({"ratio": "all"} if ratio_edges is not None else {})
        rows.append({**total, **self._stats(everything)})
        return rows

    def table(
        self,
        size_edges: Sequence[float] = DEFAULT_SIZE_EDGES,
        ratio_edges: Sequence[float] | None = DEFAULT_RATIO_EDGES,
    ) -> str:
        """:meth:`rows` as aligned text."""
        rows = self.rows(size_edges, ratio_edges)
        header = ["size (px)"] + (["h/w"] if ratio_edges is not None else [])
        header += ["boxes", "median best IoU", "best >= 0.5", "best >= 0.7"]
        header += [f"mean anchors >= {self.fg_iou_thresh:g}"]
        lines = [header]
        for row in rows:
            cells = [str(row["size"])] + ([str(row["ratio"])] if ratio_edges is not None else [])
            cells += [
                f"{int(row['boxes'])}",
                f"{row['median_best_iou']:.3f}",
                f"{row['covered_0.5']:.1%}",
                f"{row['covered_0.7']:.1%}",
                f"{row['mean_positives']:.1f}",
            ]
            lines.append(cells)
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
            for line in lines
        )

    def _stats(self, selected: Tensor) -> dict[str, float]:
        best = self.best_iou[selected]
        return {
            "boxes": float(best.numel()),
            # The mean of the middle two of an even count (torch's median is the lower).
            "median_best_iou": float(best.float().quantile(0.5)),
            "covered_0.5": float((best >= 0.5).float().mean()),
            "covered_0.7": float((best >= 0.7).float().mean()),
            "mean_positives": float(self.num_positive[selected].float().mean()),
        }


@dataclass(frozen=True)
class ResizedTargets:
    """One image's GT boxes as the model trains on them.

    Attributes:
        image_index: the image's position among those given.
        boxes: ``(G, 4)`` the boxes in the image's own pixels.
        resized_boxes: ``(G, 4)`` float32, in the resized image's pixels.
        image_size: ``(height, width)`` of the resized image.
        padded_size: ``(height, width)`` of the padded batch of that image alone.
    """

    image_index: int
    boxes: Tensor
    resized_boxes: Tensor
    image_size: tuple[int, int]
    padded_size: tuple[int, int]


def resized_targets(model: FasterRCNN, targets: Iterable[ImageBoxes]) -> Iterator[ResizedTargets]:
    """The GT boxes of every image that has some, resized as the model resizes the image
    in evaluation (the last ``min_size``, capped by ``max_size``) and placed on the batch
    it pads that image to alone. An image too elongated to resize so is left out, as
    training and evaluation leave it out.

    Args:
        model: the detector whose transform is used.
        targets: per image, its ``(height, width)`` and its ``(G, 4)`` GT boxes.
    """
    transform = model.transform
    for index, (image_size, boxes) in enumerate(targets):
        if boxes.numel() == 0 or _why_unresizable(model, image_size):
            continue
        resized = resized_size(image_size, transform.min_size[-1], transform.max_size)
        yield ResizedTargets(
            index,
            boxes,
            resize_boxes(boxes.to(torch.float32), image_size, resized),
            resized,
            padded_size([resized], transform.size_divisible),
        )


def unresizable_images(
    model: FasterRCNN,
    targets: Iterable[ImageBoxes],
    names: tuple[str, str] = ("min_size", "max_size"),
) -> list[tuple[int, int, str]]:
    """``(image index, boxes, why)`` of each image with boxes that :func:`resized_targets`
    leaves out: too elongated for the model to resize, ``why`` naming its two sizes by
    ``names`` (see :func:`~faster_rcnn.validation.too_elongated`)."""
    left_out = []
    for index, (image_size, boxes) in enumerate(targets):
        why = _why_unresizable(model, image_size, names) if boxes.numel() else None
        if why is not None:
            left_out.append((index, len(boxes), why))
    return left_out


def _why_unresizable(
    model: FasterRCNN,
    image_size: tuple[int, int],
    names: tuple[str, str] = ("min_size", "max_size"),
) -> str | None:
    """Why the model cannot resize an image of ``image_size`` as in evaluation (the last
    ``min_size``, capped by ``max_size``), or ``None`` when it can."""
    transform = model.transform
    return too_elongated(image_size, transform.min_size[-1:], transform.max_size, names)


@torch.no_grad()
def measure_anchor_coverage(model: FasterRCNN, targets: Iterable[ImageBoxes]) -> AnchorCoverage:
    """How well the model's anchors cover the GT boxes of a dataset.

    Each image is taken as the model takes it in evaluation (:func:`resized_targets`);
    its anchors are the ones the model places on that padded batch, less those the RPN's
    border policy leaves out of training. Nothing is trained and no image is decoded: the
    feature-map sizes come from running the backbone on an empty batch.

    Args:
        model: the detector whose anchors, transform and RPN settings are measured.
        targets: per image, its ``(height, width)`` and its ``(G, 4)`` GT boxes in that
            image's pixels.

    Returns:
        The coverage of every GT box, in the order given.
    """
    targets = list(targets)
    images = list(resized_targets(model, targets))
    if not images:
        raise ValueError(_nothing_to_measure(model, targets))
    resized = torch.cat([image.resized_boxes for image in images])
    with one_thread():
        best, positives = _best_and_positives(model, images, resized)
    width, height = resized[:, 2] - resized[:, 0], resized[:, 3] - resized[:, 1]
    return AnchorCoverage(
        (width * height).sqrt(),
        height / width,
        best,
        positives,
        model.config.rpn.fg_iou_thresh,
        torch.cat([image.boxes.to(torch.float32) for image in images]),
        torch.cat([torch.full((len(i.boxes),), i.image_index) for i in images]),
    )


def _nothing_to_measure(model: FasterRCNN, targets: list[ImageBoxes]) -> str:
    """Why :func:`resized_targets` leaves no box to measure: there is none, or every
    image holding some is too elongated for the model to resize."""
    holding = [size for size, boxes in targets if boxes.numel()]
    if not holding:
        return "the dataset has no ground-truth boxes to measure"
    reason = _why_unresizable(model, holding[0])
    return (
        f"no box to measure: the model cannot resize any of the {len(holding)} image(s) "
        f"with ground-truth boxes (the first: {reason})"
    )


def _best_and_positives(
    model: FasterRCNN, images: list[ResizedTargets], resized: Tensor
) -> tuple[Tensor, Tensor]:
    """``(G,)`` best anchor IoU and ``(G,)`` anchors at the positive threshold of the
    ``resized`` boxes of ``images`` (concatenated in order). Images of one padded size
    share their anchors, so their boxes are measured together (:func:`_measure_group`);
    where the RPN leaves out anchors crossing the border, images of one size too."""
    rpn = model.config.rpn
    # Without a border policy the image size leaves every anchor in: a COCO-like set has
    # hundreds of image sizes to every few padded sizes.
    bordered = rpn.allowed_border >= 0
    start = torch.cumsum(torch.tensor([0] + [len(i.boxes) for i in images]), 0).tolist()
    groups: dict[tuple[tuple[int, int], tuple[int, int]], list[Tensor]] = {}
    for position, image in enumerate(images):
        rows = torch.arange(start[position], start[position + 1])
        size = image.image_size if bordered else image.padded_size
        groups.setdefault((size, image.padded_size), []).append(rows)
    best = torch.zeros(len(resized))
    positives = torch.zeros(len(resized), dtype=torch.int64)
    padded_batch_anchors = PaddedBatchAnchors.of_model(model)
    for (image_size, padded), rows in groups.items():
        grid = padded_batch_anchors.grid(padded)
        allowed = ~anchors_crossing_border(grid.anchors, image_size, rpn.allowed_border)
        rows = torch.cat(rows)
        best[rows], positives[rows] = _measure_group(resized[rows], grid, allowed, rpn)
    return best, positives


def _measure_group(
    boxes: Tensor, grid: AnchorGrid, allowed: Tensor, rpn: RPNConfig
) -> tuple[Tensor, Tensor]:
    """``(G,)`` best IoU and ``(G,)`` anchors at ``rpn.fg_iou_thresh`` or more of ``(G, 4)``
    boxes against the ``allowed`` anchors of ``grid``, exactly, from the few anchors that
    can matter.

    Two boxes whose areas differ by a factor ``r < 1`` overlap by IoU ``r`` at most. So a
    box is measured against each anchor shape within :data:`AREA_FACTOR` of its area, in
    the cells whose anchor of that shape can reach it: every anchor left out is below
    ``AREA_FACTOR`` IoU, so a best IoU found at or above it is the best, and every anchor
    at the positive threshold is counted. The boxes whose best stays below it are
    measured against every shape of every level, in the cells that overlap them.
    """
    floor = min(AREA_FACTOR, rpn.fg_iou_thresh)
    best, positives = torch.zeros(len(boxes)), torch.zeros(len(boxes), dtype=torch.int64)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for level in grid.levels:
        shape_areas = (level.cell_anchors[:, 2] - level.cell_anchors[:, 0]) * (
            level.cell_anchors[:, 3] - level.cell_anchors[:, 1]
        )
        ratio = torch.minimum(areas[:, None], shape_areas) / torch.maximum(
            areas[:, None], shape_areas
        )
        # One shape at a time: its window of cells is as wide as the shape, not as the
        # level's largest one (15 shapes from 32 to 512 px share a level in some presets).
        for shape in range(level.anchors_per_location):
            rows = (ratio[:, shape] >= floor).nonzero().flatten()
            level_best, level_count = _measure_level(boxes[rows], grid, level, shape, allowed, rpn)
            best[rows] = best[rows].maximum(level_best)
            positives[rows] += level_count
    # Below the floor no anchor is positive (floor <= the threshold), so only the best
    # IoU is left to find: from the overlapping anchors of every level.
    far = (best < floor).nonzero().flatten()
    for level in grid.levels:
        for shape in range(level.anchors_per_location):
            level_best, _ = _measure_level(boxes[far], grid, level, shape, allowed, rpn)
            best[far] = best[far].maximum(level_best)
    return best, positives


def _measure_dense(boxes: Tensor, anchors: Tensor, rpn: RPNConfig) -> tuple[Tensor, Tensor]:
    """``(G,)`` best IoU and count at the positive threshold of ``boxes`` against every
    one of ``anchors``, a few hundred boxes at a time."""
    best, count = torch.zeros(len(boxes)), torch.zeros(len(boxes), dtype=torch.int64)
    if len(anchors) == 0:
        return best, count
    for chunk in torch.arange(len(boxes)).split(BOXES_PER_CHUNK):
        iou = box_iou(boxes[chunk], anchors)
        best[chunk] = iou.max(dim=1).values
        count[chunk] = (iou >= rpn.fg_iou_thresh).sum(dim=1)
    return best, count


def _measure_level(
    boxes: Tensor, grid: AnchorGrid, level: LevelGrid, shape: int, allowed: Tensor, rpn: RPNConfig
) -> tuple[Tensor, Tensor]:
    """``(G,)`` best IoU and count at the positive threshold of ``boxes`` with the allowed
    anchors of one ``shape`` (a row of ``level.cell_anchors``) in the cells of one level
    whose anchors of that shape overlap them, boxes taken a bounded number of anchors at a
    time (those of fewest cells first)."""
    first_x, last_x = _cell_window(boxes, level, shape, axis=0)
    first_y, last_y = _cell_window(boxes, level, shape, axis=1)
    cells = (last_x - first_x + 1).clamp(min=0) * (last_y - first_y + 1).clamp(min=0)
    num_cells = level.grid_size[0] * level.grid_size[1]
    if int(cells.sum()) * 2 > len(boxes) * num_cells:
        # Windows as large as the map (a large shape on a coarse map): all cells at once.
        index = level.start + torch.arange(num_cells) * level.anchors_per_location + shape
        return _measure_dense(boxes, grid.anchors[index[allowed[index]]], rpn)
    best, count = torch.zeros(len(boxes)), torch.zeros(len(boxes), dtype=torch.int64)
    order = cells.argsort()
    done = 0
    while done < len(order):
        widest = int(cells[order[min(done + BOXES_PER_CHUNK, len(order)) - 1]])
        size = max(1, min(BOXES_PER_CHUNK, ANCHORS_PER_CHUNK // max(widest, 1)))
        rows = order[done : done + size]
        index = _window_anchors(
            level, shape, first_x[rows], last_x[rows], first_y[rows], last_y[rows]
        )
        valid = (index >= 0) & allowed[index.clamp(min=0)]
        iou = _paired_iou(boxes[rows], grid.anchors[index.clamp(min=0)]).masked_fill(~valid, -1.0)
        best[rows] = iou.amax(dim=1).clamp(min=0) if iou.shape[1] else 0.0
        count[rows] = (iou >= rpn.fg_iou_thresh).sum(dim=1)
        done += size
    return best, count


def _cell_window(boxes: Tensor, level: LevelGrid, shape: int, axis: int) -> tuple[Tensor, Tensor]:
    """``(G,)`` first and last cell index along ``axis`` (0: x, 1: y) of the level whose
    anchors of ``shape`` can overlap each box (one cell of margin against rounding), within
    the map."""
    stride, anchor = level.stride[1 - axis], level.cell_anchors[shape]
    reach_low, reach_high = float(anchor[axis]), float(anchor[axis + 2])
    first = torch.floor((boxes[:, axis] - reach_high) / stride - level.offset) - 1
    last = torch.ceil((boxes[:, axis + 2] - reach_low) / stride - level.offset) + 1
    cells = level.grid_size[1 - axis]
    return first.clamp(0, cells - 1).long(), last.clamp(0, cells - 1).long()


def _window_anchors(
    level: LevelGrid, shape: int, first_x: Tensor, last_x: Tensor, first_y: Tensor, last_y: Tensor
) -> Tensor:
    """``(C, K)`` indices into the grid's anchors of the anchor of ``shape`` in every cell
    of each box's window, padded with -1 to the widest window."""
    columns = first_x[:, None] + torch.arange(int((last_x - first_x).max()) + 1)
    rows = first_y[:, None] + torch.arange(int((last_y - first_y).max()) + 1)
    inside = (rows <= last_y[:, None])[:, :, None] & (columns <= last_x[:, None])[:, None, :]
    cell = rows[:, :, None] * level.grid_size[1] + columns[:, None, :]
    index = level.start + cell * level.anchors_per_location + shape
    return index.masked_fill(~inside, -1).flatten(1)


def _paired_iou(boxes: Tensor, anchors: Tensor) -> Tensor:
    """``(C, K)`` IoU of each of ``(C, 4)`` boxes with its own ``(C, K, 4)`` anchors, with
    :func:`~faster_rcnn.ops.box_iou`'s arithmetic (so the same numbers)."""
    area1 = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area2 = (anchors[..., 2] - anchors[..., 0]) * (anchors[..., 3] - anchors[..., 1])
    top_left = torch.max(boxes[:, None, :2], anchors[..., :2])
    bottom_right = torch.min(boxes[:, None, 2:], anchors[..., 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2 - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


class AnchorGrid(NamedTuple):
    """The anchors of a padded batch and where each level's sit among them."""

    anchors: Tensor
    levels: list[LevelGrid]


class PaddedBatchAnchors:
    """The model's anchors on a padded batch of a given size, and the feature-map sizes
    they sit on, computed shape-only and cached: they depend on nothing else."""

    def __init__(self, backbone: nn.Module, generator: AnchorGenerator) -> None:
        self.backbone = backbone
        self.generator = generator
        self.heights: dict[int, list[int]] = {}
        self.widths: dict[int, list[int]] = {}
        self.anchors: dict[tuple[int, int], Tensor] = {}

    @classmethod
    def of_model(cls, model: FasterRCNN) -> PaddedBatchAnchors:
        """The anchors ``model`` places: its RPN's, on its backbone's feature maps."""
        return cls(model.backbone, model.rpn.anchor_generator)

    def __call__(self, padded_size: tuple[int, int]) -> Tensor:
        """``(A, 4)`` anchors of a batch padded to ``padded_size`` (height, width), kept
        for the next call."""
        if padded_size not in self.anchors:
            self.anchors[padded_size] = self.placed(padded_size)
        return self.anchors[padded_size]

    def placed(self, padded_size: tuple[int, int]) -> Tensor:
        """``(A, 4)`` anchors of a batch padded to ``padded_size`` (height, width), placed
        anew and not kept (only the feature-map sizes are)."""
        # Zero-channel tensors carry the shapes the anchor generator reads, nothing else.
        images = ImageList(torch.empty((1, 0, *padded_size)), [padded_size])
        maps = [torch.empty((1, 0, *grid)) for grid in self.grid_sizes(padded_size)]
        return self.generator(images, maps)[0]

    def grid(self, padded_size: tuple[int, int]) -> AnchorGrid:
        """The anchors of a batch padded to ``padded_size``, level by level."""
        levels = self.generator.level_grids(padded_size, self.grid_sizes(padded_size))
        return AnchorGrid(self(padded_size), levels)

    def grid_sizes(self, padded_size: tuple[int, int]) -> list[tuple[int, int]]:
        """``(H_l, W_l)`` of every anchor level's feature map for a batch of
        ``padded_size``.

        A convolutional network's output height depends on the input height alone (and
        the width on the width), so the maps' heights are cached by padded height and
        their widths by padded width: a dataset of many image sizes needs few passes.
        """
        height, width = padded_size
        if height not in self.heights or width not in self.widths:
            maps = self._feature_shapes(padded_size)
            self.heights[height] = [shape[0] for shape in maps]
            self.widths[width] = [shape[1] for shape in maps]
        return list(zip(self.heights[height], self.widths[width], strict=True))

    def _feature_shapes(self, padded_size: tuple[int, int]) -> list[tuple[int, int]]:
        """The backbone's output map sizes, from a pass over an empty batch: every layer
        works out its output shape and computes nothing (a pass on the ``meta`` device
        takes a hundred times longer)."""
        was_training = self.backbone.training
        # Batch norm in training mode refuses a batch without values.
        self.backbone.eval()
        try:
            parameter = next(self.backbone.parameters())
            empty = parameter.new_empty((0, 3, *padded_size))
            with torch.no_grad():
                features = self.backbone(empty)
        finally:
            self.backbone.train(was_training)
        maps = [features] if isinstance(features, Tensor) else list(features.values())
        return [(int(m.shape[-2]), int(m.shape[-1])) for m in maps]


def dataset_targets(dataset: Sequence[Sample], count: int | None = None) -> Iterator[ImageBoxes]:
    """``(image size, GT boxes)`` of the first ``count`` items (default all) of a dataset,
    for :func:`measure_anchor_coverage`.

    Uses the reader's ``target(i)`` and ``image_size(i)`` when it has them (no image is
    decoded), else ``dataset[i]``. An image that cannot be read is left out with a
    warning, as training leaves it out.
    """
    # A generated dataset's image_size is its one size, not a reader's image_size(i).
    has_target = all(callable(getattr(dataset, name, None)) for name in ("target", "image_size"))
    for index in range(len(dataset) if count is None else count):
        try:
            if has_target:
                item = dataset.image_size(index), dataset.target(index)["boxes"]
            else:
                image, target = dataset[index]
                item = (int(image.shape[-2]), int(image.shape[-1])), target["boxes"]
        except UnreadableImageError as error:
            warnings.warn(f"{error}; skipped", stacklevel=2)
            continue
        yield item


def _bins(edges: Sequence[float]) -> list[tuple[float, float]]:
    return list(itertools.pairwise(edges))


def _range_label(low: float, high: float, digits: int = 0) -> str:
    def fmt(value: float) -> str:
        return f"{value:.{digits}f}"

    if low <= 0:
        return f"< {fmt(high)}"
    if math.isinf(high):
        return f">= {fmt(low)}"
    return f"{fmt(low)}-{fmt(high)}"
