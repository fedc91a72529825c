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
runs once per category, so that no IoU is computed across categories. The pair matrices
of a call share memory allocated once (:class:`_PairScratch`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

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
    return _by_score(torch.cat(kept), scores)


def batched_nms_per_category(
    boxes: Tensor, scores: Tensor, idxs: Tensor, iou_thresholds: Sequence[float]
) -> Tensor:
    """:func:`batched_nms` with each category's own threshold.

    Args:
        boxes: ``(N, 4)`` boxes.
        scores: ``(N,)`` scores.
        idxs: ``(N,)`` int64 category of each box, in ``[0, len(iou_thresholds))``.
        iou_thresholds: per category, as ``iou_threshold`` in :func:`nms`.

    Returns:
        As :func:`batched_nms`.
    """
    thresholds = torch.tensor(iou_thresholds, dtype=torch.float64)[idxs.cpu()]
    kept = []
    for threshold in thresholds.unique().tolist():
        members = torch.where(thresholds == threshold)[0].to(boxes.device)
        found = batched_nms(boxes[members], scores[members], idxs[members], threshold)
        kept.append(members[found])
    if not kept:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    return _by_score(torch.cat(kept), scores)


def _by_score(kept: Tensor, scores: Tensor) -> Tensor:
    """The indices ``kept`` by decreasing score, equal scores in index order."""
    kept_by_index = kept.sort().values
    return kept_by_index[torch.sort(scores[kept_by_index], descending=True, stable=True).indices]


def _greedy_nms(boxes: Tensor, scores: Tensor, idxs: Tensor | None, iou_threshold: float) -> Tensor:
    if boxes.shape[0] == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    # Indices carry no gradient: the IoU tests need no graph.
    columns = _box_columns(boxes.detach()[order])
    # Categories as float64 (exact below 2**53): comparing floats into a float matrix is
    # several times faster than writing booleans.
    groups = idxs[order].double() if idxs is not None else None
    block = min(_BLOCK_SIZE, columns.shape[1])
    scratch = _PairScratch(columns, block * max(block, min(_KEPT_TILE_SIZE, columns.shape[1])))

    kept = boxes.new_zeros((0,), dtype=torch.int64)
    kept_columns = columns[:, :0]
    for start in range(0, columns.shape[1], _BLOCK_SIZE):
        # Candidates of the block, in score order, that no earlier kept box suppresses.
        stop = min(start + _BLOCK_SIZE, columns.shape[1])
        candidates = torch.arange(start, stop, device=boxes.device)
        candidate_columns = columns[:, start:stop]
        for tile_start in range(0, kept.shape[0], _KEPT_TILE_SIZE):
            tile = slice(tile_start, tile_start + _KEPT_TILE_SIZE)
            overlap = _iou_exceeds(kept_columns[:, tile], candidate_columns, iou_threshold, scratch)
            if groups is not None:
                overlap.mul_(_same_group(groups[kept[tile]], groups[candidates], scratch))
            free = overlap.amax(dim=0) == 0
            candidates, candidate_columns = candidates[free], candidate_columns[:, free]
            if candidates.numel() == 0:
                break

        # Greedy order inside the block: only earlier boxes (upper triangle) suppress.
        suppressors = _iou_exceeds(candidate_columns, candidate_columns, iou_threshold, scratch)
        suppressors.mul_(_strict_upper_triangle(suppressors))
        if groups is not None:
            candidate_groups = groups[candidates]
            suppressors.mul_(_same_group(candidate_groups, candidate_groups, scratch))
        # Each pass counts the kept suppressors of every box with one matrix-vector
        # product: exact (0/1 entries, integer sums), and far faster than boolean masks.
        keep = suppressors.new_ones(candidates.shape)
        while True:
            new_keep = (keep @ suppressors).eq_(0)
            if torch.equal(new_keep, keep):
                break
            keep = new_keep
        keep = keep.bool()

        kept = torch.cat((kept, candidates[keep]))
        kept_columns = torch.cat((kept_columns, candidate_columns[:, keep]), dim=1)
    return order[kept]


class _PairScratch:
    """Memory for the ``(M, N)`` pair matrices of one NMS call, up to ``capacity`` pairs:
    three matrices of the boxes' dtype, taken as views.

    On a CPU a fresh allocation of a megabyte or more is mapped anew and zeroed by the
    kernel a page at a time (glibc's default above its mmap threshold), which cost as much
    as the IoU arithmetic: allocating once a call, rather than six times a tile, took a
    1000-box NMS from 1.5-2.0 ms to 0.9-1.2 ms on a 2-core CPU.
    """

    def __init__(self, like: Tensor, capacity: int) -> None:
        self.values = like.new_empty((3, capacity))

    def matrices(self, rows: int, cols: int) -> tuple[Tensor, Tensor, Tensor]:
        """Three ``(rows, cols)`` matrices, all distinct memory."""
        size = rows * cols
        return tuple(self.values[k, :size].view(rows, cols) for k in range(3))


def _same_group(rows: Tensor, cols: Tensor, scratch: _PairScratch) -> Tensor:
    """``(M, N)``: 1 where category ``i`` of ``rows`` equals category ``j`` of ``cols``,
    else 0, in the second matrix of ``scratch`` (the first holds the IoU flags)."""
    same = scratch.matrices(rows.shape[0], cols.shape[0])[1]
    return torch.eq(rows[:, None], cols[None, :], out=same)


def _strict_upper_triangle(matrix: Tensor) -> Tensor:
    """``(N, N)`` ones above the diagonal and zeros elsewhere, like ``matrix``: a view of
    one triangle kept per dtype and device, as multiplying by it costs a third of
    ``triu_``."""
    size = matrix.shape[0]
    return _triangle(max(size, _BLOCK_SIZE), matrix.dtype, matrix.device)[:size, :size]


@functools.lru_cache(maxsize=8)
def _triangle(size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.ones((size, size), dtype=dtype, device=device).triu_(1)


def _box_columns(boxes: Tensor) -> Tensor:
    """``(5, N)``: the ``x1, y1, x2, y2`` and area rows of ``(N, 4)`` boxes, each row
    contiguous, so that a run of boxes is a view and an IoU test reads whole rows."""
    return torch.cat((boxes.t(), box_area(boxes)[None]))


def _iou_exceeds(rows: Tensor, cols: Tensor, iou_threshold: float, scratch: _PairScratch) -> Tensor:
    """``(M, N)``, of the boxes' dtype: 1 where the IoU of box ``i`` of ``rows`` with box
    ``j`` of ``cols`` (``(5, M)`` and ``(5, N)`` :func:`_box_columns`) is above the
    threshold, 0 elsewhere.

    It performs exactly the floating-point operations of
    :func:`~faster_rcnn.ops.boxes.box_iou` (so the decisions are the same), but on
    contiguous ``(M, N)`` tensors rather than broadcast ``(M, N, 2)`` ones, which is
    several times faster. The flags stay in the boxes' dtype: an in-place comparison is
    several times faster than one that writes booleans, and the fixed point multiplies
    them as they are. The result is a view into ``scratch``, valid until its next use.
    """
    x1, y1, x2, y2, area = (row[:, None] for row in rows)
    other_x1, other_y1, other_x2, other_y2, other_area = (row[None, :] for row in cols)
    width, height, lower = scratch.matrices(rows.shape[1], cols.shape[1])
    torch.minimum(x2, other_x2, out=width)
    width -= torch.maximum(x1, other_x1, out=lower)
    torch.minimum(y2, other_y2, out=height)
    height -= torch.maximum(y1, other_y1, out=lower)
    inter = width.clamp_(min=0).mul_(height.clamp_(min=0))
    union = torch.add(area, other_area, out=lower)
    union -= inter
    # box_iou's IoU 0 for an empty union needs no mask: a positive intersection needs two
    # boxes of positive area, so an empty union has inter = 0, and 0 / tiny is 0 too.
    iou = inter.div_(union.clamp_(min=torch.finfo(union.dtype).tiny))
    return iou.gt_(iou_threshold)
