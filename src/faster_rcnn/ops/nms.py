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

Greedy NMS decides a box from the boxes that score above it only. So where only the
best ``max_kept`` kept boxes are wanted (the RPN's proposals after NMS), the categories
are visited a block at a time in one order of decreasing score, and NMS stops as soon as
``max_kept`` boxes are kept above every box not yet visited: the rest could only come
after them. The answer is the whole NMS's first ``max_kept``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

from .boxes import at_least_float32, box_area

_BLOCK_SIZE = 512
# Kept boxes compared with a block at once: the IoU matrices of a tile stay in the cache.
_KEPT_TILE_SIZE = 512


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, max_kept: int | None = None) -> Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` boxes.
        scores: ``(N,)`` scores.
        iou_threshold: a box is dropped when its IoU with a kept, higher-scoring box is
            greater than this.
        max_kept: return only the first ``max_kept`` kept boxes; the boxes after them
            are not compared. ``None``: all.

    Returns:
        int64 indices of the kept boxes, by decreasing score; equal scores keep their
        index order.
    """
    return _greedy_nms(boxes, scores, None, iou_threshold, max_kept)


def batched_nms(
    boxes: Tensor,
    scores: Tensor,
    idxs: Tensor,
    iou_threshold: float,
    max_kept: int | None = None,
) -> Tensor:
    """Greedy NMS run independently within each category.

    Args:
        boxes: ``(N, 4)`` boxes.
        scores: ``(N,)`` scores.
        idxs: ``(N,)`` int64 category of each box; boxes of different categories never
            suppress each other.
        iou_threshold: as in :func:`nms`.
        max_kept: return only the first ``max_kept`` kept boxes; boxes that could only
            come after them are not compared (see the module). ``None``: all.

    Returns:
        int64 indices of the kept boxes, by decreasing score (over all categories); equal
        scores keep their index order.
    """
    if boxes.shape[0] <= _BLOCK_SIZE:
        # One block: every pair is compared once anyway, those of two categories masked.
        return _greedy_nms(boxes, scores, idxs, iou_threshold, max_kept)
    # More boxes: one NMS per category, so that no IoU is computed across categories. The
    # RPN's 4 levels of up to 500 boxes make 4 single-block runs, instead of 4 blocks each
    # also tested against the boxes kept from the blocks before it.
    order = torch.sort(scores, descending=True, stable=True).indices
    runs = _category_runs(boxes.detach()[order], idxs[order], iou_threshold)
    while not _enough_kept(runs, max_kept):
        # The category whose next box ranks first, so that what is settled grows evenly.
        min(runs, key=_next_rank).visit_block()
    ranks = torch.cat([run.kept_ranks() for run in runs]).sort().values
    return order[ranks[:max_kept]]


def batched_nms_per_category(
    boxes: Tensor,
    scores: Tensor,
    idxs: Tensor,
    iou_thresholds: Sequence[float],
    max_kept: int | None = None,
) -> Tensor:
    """:func:`batched_nms` with each category's own threshold.

    Args:
        boxes: ``(N, 4)`` boxes.
        scores: ``(N,)`` scores.
        idxs: ``(N,)`` int64 category of each box, in ``[0, len(iou_thresholds))``.
        iou_thresholds: per category, as ``iou_threshold`` in :func:`nms`.
        max_kept: as in :func:`batched_nms`.

    Returns:
        As :func:`batched_nms`.
    """
    thresholds = torch.tensor(iou_thresholds, dtype=torch.float64)[idxs.cpu()]
    kept = []
    for threshold in thresholds.unique().tolist():
        members = torch.where(thresholds == threshold)[0].to(boxes.device)
        # The first max_kept of all are among the first max_kept of each threshold's.
        found = batched_nms(boxes[members], scores[members], idxs[members], threshold, max_kept)
        kept.append(members[found])
    if not kept:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    return _by_score(torch.cat(kept), scores)[:max_kept]


def _by_score(kept: Tensor, scores: Tensor) -> Tensor:
    """The indices ``kept`` by decreasing score, equal scores in index order."""
    kept_by_index = kept.sort().values
    return kept_by_index[torch.sort(scores[kept_by_index], descending=True, stable=True).indices]


def _greedy_nms(
    boxes: Tensor,
    scores: Tensor,
    idxs: Tensor | None,
    iou_threshold: float,
    max_kept: int | None = None,
) -> Tensor:
    """Greedy NMS of ``boxes`` in one visiting order, their ``idxs`` kept apart as the
    categories of :func:`batched_nms` (``None``: one category); the first ``max_kept``."""
    if boxes.shape[0] == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    # Categories as float64 (exact below 2**53): comparing floats into a float matrix is
    # several times faster than writing booleans.
    groups = idxs[order].double() if idxs is not None else None
    run = _GreedyRun(boxes.detach()[order], groups, iou_threshold)
    while not run.finished and (max_kept is None or run.kept.shape[0] < max_kept):
        run.visit_block()
    return order[run.kept[:max_kept]]


def _category_runs(boxes: Tensor, categories: Tensor, iou_threshold: float) -> list[_GreedyRun]:
    """One :class:`_GreedyRun` per category of ``(N, 4)`` ``boxes`` and their ``(N,)``
    ``categories``, both in score order; each run's ``ranks`` are its boxes' places in
    that order."""
    runs = []
    for category in categories.unique():
        ranks = torch.where(categories == category)[0]
        runs.append(_GreedyRun(boxes[ranks], None, iou_threshold, ranks))
    return runs


def _next_rank(run: _GreedyRun) -> int:
    """The place in the score order of ``run``'s next box to visit; past the end when it
    has visited all of them."""
    return run.next_rank() if not run.finished else 2**62


def _enough_kept(runs: Sequence[_GreedyRun], max_kept: int | None) -> bool:
    """Whether the runs are done: each has visited all its boxes, or ``max_kept`` boxes
    are kept above every box not yet visited, so that they are the NMS's first."""
    if all(run.finished for run in runs):
        return True
    if max_kept is None or sum(run.kept.shape[0] for run in runs) < max_kept:
        return False
    settled = min(_next_rank(run) for run in runs)
    return sum(int((run.kept_ranks() < settled).sum()) for run in runs) >= max_kept


class _GreedyRun:
    """Greedy NMS over ``(N, 4)`` boxes already in the order to visit them, a block at a
    time: between blocks, the boxes kept so far are settled (greedy NMS decides a box from
    those before it only).

    Args:
        boxes: ``(N, 4)``, by decreasing score.
        groups: ``(N,)`` float64 categories of the boxes (boxes of two never suppress each
            other), or ``None``: one category.
        iou_threshold: as in :func:`nms`.
        ranks: ``(N,)`` int64 places of the boxes in an order that holds them and others
            (:func:`batched_nms`'s over all categories); ``None``: ``0..N-1``.
    """

    def __init__(
        self,
        boxes: Tensor,
        groups: Tensor | None,
        iou_threshold: float,
        ranks: Tensor | None = None,
    ) -> None:
        self.columns = _box_columns(boxes)
        self.groups, self.iou_threshold, self.ranks = groups, iou_threshold, ranks
        # The rank each block starts at, read once rather than a tensor element a block.
        self._block_ranks = ranks[::_BLOCK_SIZE].tolist() if ranks is not None else None
        count = self.columns.shape[1]
        block = min(_BLOCK_SIZE, count)
        self.scratch = _PairScratch(self.columns, block * max(block, min(_KEPT_TILE_SIZE, count)))
        self.kept = torch.zeros((0,), dtype=torch.int64, device=boxes.device)
        self.kept_columns = self.columns[:, :0]
        self.visited = 0

    @property
    def finished(self) -> bool:
        """Whether every box has been visited."""
        return self.visited == self.columns.shape[1]

    def next_rank(self) -> int:
        """The rank of the next box to visit (the run must not be finished)."""
        if self._block_ranks is None:
            return self.visited
        return self._block_ranks[self.visited // _BLOCK_SIZE]

    def kept_ranks(self) -> Tensor:
        """``(K,)`` int64 ranks of the boxes kept so far, ascending."""
        return self.kept if self.ranks is None else self.ranks[self.kept]

    def visit_block(self) -> None:
        """Decide the next :data:`_BLOCK_SIZE` boxes (fewer at the end)."""
        start, stop = self.visited, min(self.visited + _BLOCK_SIZE, self.columns.shape[1])
        candidates, candidate_columns = self._unsuppressed(start, stop)
        # Greedy order inside the block: only earlier boxes (upper triangle) suppress.
        suppressors = _iou_exceeds(
            candidate_columns, candidate_columns, self.iou_threshold, self.scratch
        )
        suppressors.mul_(_strict_upper_triangle(suppressors))
        if self.groups is not None:
            candidate_groups = self.groups[candidates]
            suppressors.mul_(_same_group(candidate_groups, candidate_groups, self.scratch))
        # Each pass counts the kept suppressors of every box with one matrix-vector
        # product: exact (0/1 entries, integer sums), and far faster than boolean masks.
        keep = suppressors.new_ones(candidates.shape)
        while True:
            new_keep = (keep @ suppressors).eq_(0)
            if torch.equal(new_keep, keep):
                break
            keep = new_keep
        keep = keep.bool()
        self.kept = torch.cat((self.kept, candidates[keep]))
        self.kept_columns = torch.cat((self.kept_columns, candidate_columns[:, keep]), dim=1)
        self.visited = stop

    def _unsuppressed(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """The boxes ``start:stop`` that no kept box suppresses, and their columns: checked
        a tile of kept boxes at a time, the suppressed dropped before the next tile."""
        candidates = torch.arange(start, stop, device=self.kept.device)
        candidate_columns = self.columns[:, start:stop]
        for tile_start in range(0, self.kept.shape[0], _KEPT_TILE_SIZE):
            tile = slice(tile_start, tile_start + _KEPT_TILE_SIZE)
            overlap = _iou_exceeds(
                self.kept_columns[:, tile], candidate_columns, self.iou_threshold, self.scratch
            )
            if self.groups is not None:
                overlap.mul_(
                    _same_group(self.groups[self.kept[tile]], self.groups[candidates], self.scratch)
                )
            free = overlap.amax(dim=0) == 0
            candidates, candidate_columns = candidates[free], candidate_columns[:, free]
            if candidates.numel() == 0:
                break
        return candidates, candidate_columns


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
    contiguous, so that a run of boxes is a view and an IoU test reads whole rows; in
    float32 for float16 or bfloat16 boxes, as :func:`~faster_rcnn.ops.boxes.box_iou`."""
    boxes = at_least_float32(boxes)
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
