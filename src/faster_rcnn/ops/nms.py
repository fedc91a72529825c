"""Exact greedy non-maximum suppression in plain tensor operations.

Greedy NMS visits boxes by decreasing score and keeps a box unless it overlaps an already
kept box by more than the threshold. The result depends on the order, so it is inherently
sequential; here it is computed block by block: the boxes of a block are first checked
against everything kept before the block (one IoU matrix), and the greedy rule inside the
block is solved as a fixed point of ``keep[i] = alive[i] and not any(keep[j] and
overlap[j, i] for j < i)``. Iterating that rule from ``keep = alive`` fixes at least one
more leading box per pass, so it reaches the greedy answer exactly, usually in a few
passes. No IoU matrix larger than ``kept x block`` is ever built.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .boxes import box_iou

_BLOCK_SIZE = 512


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
        int64 indices of the kept boxes, by decreasing score (over all categories).
    """
    return _greedy_nms(boxes, scores, idxs, iou_threshold)


def _greedy_nms(boxes: Tensor, scores: Tensor, idxs: Tensor | None, iou_threshold: float) -> Tensor:
    if boxes.shape[0] == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    boxes = boxes[order]
    groups = idxs[order] if idxs is not None else None

    keep_blocks: list[Tensor] = []
    kept_boxes = boxes[:0]
    kept_groups = groups[:0] if groups is not None else None
    for start in range(0, boxes.shape[0], _BLOCK_SIZE):
        block = boxes[start : start + _BLOCK_SIZE]
        block_groups = groups[start : start + _BLOCK_SIZE] if groups is not None else None

        # Suppressed by a box kept in an earlier block.
        overlap = box_iou(kept_boxes, block) > iou_threshold
        if kept_groups is not None:
            overlap &= kept_groups[:, None] == block_groups[None, :]
        alive = ~overlap.any(dim=0)

        # Greedy order inside the block: only earlier boxes (upper triangle) suppress.
        overlap = torch.triu(box_iou(block, block) > iou_threshold, diagonal=1)
        if block_groups is not None:
            overlap &= block_groups[:, None] == block_groups[None, :]
        keep = alive
        while True:
            suppressed = (overlap & keep[:, None]).any(dim=0)
            new_keep = alive & ~suppressed
            if torch.equal(new_keep, keep):
                break
            keep = new_keep

        keep_idx = torch.where(keep)[0] + start
        keep_blocks.append(keep_idx)
        kept_boxes = torch.cat((kept_boxes, boxes[keep_idx]))
        if kept_groups is not None:
            kept_groups = torch.cat((kept_groups, groups[keep_idx]))
    return order[torch.cat(keep_blocks)]
