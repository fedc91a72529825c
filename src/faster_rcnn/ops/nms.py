"""Exact greedy non-maximum suppression in plain tensor operations.

Greedy NMS visits boxes by decreasing score and keeps a box unless it overlaps an already
kept box by more than the threshold. The result depends on the order, so it is inherently
sequential; here it is computed block by block. The boxes of a block are first checked
against everything kept before the block, a tile of kept boxes at a time (so that the IoU
matrices stay in the CPU's cache), and the boxes a tile suppresses are dropped before the
next tile. The greedy rule among the remaining boxes of the block is then solved as a
fixed point of ``keep[i] = not any(keep[j] and overlap[j, i] for j < i)``. Iterating that
rule from ``keep = all`` fixes at least one more leading box per pass, so it reaches the
greedy answer exactly, usually in a few passes. Batched NMS over more boxes than a block
runs once per category, so that no IoU is computed across categories.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .boxes import box_area

_BLOCK_SIZE = 512
# Kept boxes compared with a block at once: the IoU matrices of a tile stay in the cache.
_KEPT_TILE_SIZE = 512


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` boxes.
        scores: ``(N,)`` scores.
        iou_threshold: a box is dropped when its IoU with a kept, higher-scoring box is
            greater than this.

    Returns:
        int64 indices of the kept boxes, by decreasing score; equal scores keep their
        index order.
    """
    return _greedy_nms(boxes, scores, None, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS run independently within each category.

    Args:
        boxes: ``(N, 4)`` boxes.
        scores: ``(N,)`` scores.
        idxs: ``(N,)`` int64 category of each box; boxes of different categories never
            suppress each other.
        iou_threshold: as in :func:`nms`.

    Returns:
        int64 indices of the kept boxes, by decreasing score (over all categories); equal
        scores keep their index order.
    """
    if boxes.shape[0] <= _BLOCK_SIZE:
        # One block: every pair is compared once anyway, those of two categories masked.
        return _greedy_nms(boxes, scores, idxs, iou_threshold)
    # More boxes: one NMS per category, so that no IoU is computed across categories. The
    # RPN's 4 levels of up to 500 boxes make 4 single-block runs, instead of 4 blocks each
    # also tested against the boxes kept from the blocks before it.
    kept = [
        members[_greedy_nms(boxes[members], scores[members], None, iou_threshold)]
        for members in (torch.where(idxs == category)[0] for category in idxs.unique())
    ]
    kept_by_index = torch.cat(kept).sort().values
    return kept_by_index[torch.sort(scores[kept_by_index], descending=True, stable=True).indices]


def _greedy_nms(boxes: Tensor, scores: Tensor, idxs: Tensor | None, iou_threshold: float) -> Tensor:
    if boxes.shape[0] == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    columns = _box_columns(boxes[order])
    groups = idxs[order] if idxs is not None else None

    kept = boxes.new_zeros((0,), dtype=torch.int64)
    kept_columns = columns[:, :0]
    for start in range(0, columns.shape[1], _BLOCK_SIZE):
        # Candidates of the block, in score order, that no earlier kept box suppresses.
        stop = min(start + _BLOCK_SIZE, columns.shape[1])
        candidates = torch.arange(start, stop, device=boxes.device)
        candidate_columns = columns[:, start:stop]
        for tile_start in range(0, kept.shape[0], _KEPT_TILE_SIZE):
            tile = slice(tile_start, tile_start + _KEPT_TILE_SIZE)
            overlap = _iou_exceeds(kept_columns[:, tile], candidate_columns, iou_threshold)
            if groups is not None:
                overlap &= groups[kept[tile], None] == groups[None, candidates]
            # A column-wise max over bytes is several times faster than any(dim=0).
            free = overlap.view(torch.uint8).amax(dim=0) == 0
            candidates, candidate_columns = candidates[free], candidate_columns[:, free]
            if candidates.numel() == 0:
                break

        # Greedy order inside the block: only earlier boxes (upper triangle) suppress.
        overlap = _iou_exceeds(candidate_columns, candidate_columns, iou_threshold).triu_(1)
        if groups is not None:
            candidate_groups = groups[candidates]
            overlap &= candidate_groups[:, None] == candidate_groups[None, :]
        # Each pass counts the kept suppressors of every box with one matrix-vector
        # product: exact (0/1 entries, integer sums), and far faster than boolean masks.
        suppressors = overlap.to(torch.float32)
        keep = torch.ones_like(candidates, dtype=torch.bool)
        while True:
            new_keep = keep.to(torch.float32) @ suppressors == 0
            if torch.equal(new_keep, keep):
                break
            keep = new_keep

        kept = torch.cat((kept, candidates[keep]))
        kept_columns = torch.cat((kept_columns, candidate_columns[:, keep]), dim=1)
    return order[kept]


def _box_columns(boxes: Tensor) -> Tensor:
    """``(5, N)``: the ``x1, y1, x2, y2`` and area rows of ``(N, 4)`` boxes, each row
    contiguous, so that a run of boxes is a view and an IoU test reads whole rows."""
    return torch.cat((boxes.t(), box_area(boxes)[None]))


def _iou_exceeds(rows: Tensor, cols: Tensor, iou_threshold: float) -> Tensor:
    """``(M, N)`` bool: the IoU of box ``i`` of ``rows`` with box ``j`` of ``cols``
    (``(5, M)`` and ``(5, N)`` :func:`_box_columns`) is above the threshold.

    It performs exactly the floating-point operations of
    :func:`~faster_rcnn.ops.boxes.box_iou` (so the decisions are the same), but on
    contiguous ``(M, N)`` tensors rather than broadcast ``(M, N, 2)`` ones, which is
    several times faster.
    """
    x1, y1, x2, y2, area = (row[:, None] for row in rows)
    other_x1, other_y1, other_x2, other_y2, other_area = (row[None, :] for row in cols)
    # In place where possible: on CPU, allocating the (M, N) temporaries costs about as
    # much as the arithmetic.
    width = torch.minimum(x2, other_x2)
    width -= torch.maximum(x1, other_x1)
    height = torch.minimum(y2, other_y2)
    height -= torch.maximum(y1, other_y1)
    inter = width.clamp_(min=0).mul_(height.clamp_(min=0))
    union = area + other_area
    union -= inter
    # box_iou's IoU 0 for an empty union needs no mask: a positive intersection needs two
    # boxes of positive area, so an empty union has inter = 0, and 0 / tiny is 0 too.
    iou = inter.div_(union.clamp_(min=torch.finfo(union.dtype).tiny))
    return iou > iou_threshold
