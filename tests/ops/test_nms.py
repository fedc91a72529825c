"""Greedy NMS and batched NMS against a plain-Python greedy reference."""

from __future__ import annotations

import importlib
from unittest import mock

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from box_strategies import detections
from faster_rcnn.ops import batched_nms, batched_nms_per_category, box_iou, nms

nms_module = importlib.import_module("faster_rcnn.ops.nms")


def python_iou(a: list[float], b: list[float]) -> float:
    inter_w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    inter_h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """Visit boxes by decreasing score (ties: lower index first), keep the unsuppressed."""
    box_list, score_list = boxes.tolist(), scores.tolist()
    order = sorted(range(len(box_list)), key=lambda i: (-score_list[i], i))
    kept: list[int] = []
    for i in order:
        if all(python_iou(box_list[j], box_list[i]) <= threshold for j in kept):
            kept.append(i)
    return kept


threshold = st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0])
# Small blocks and tiles exercise the block-to-block and tile-to-tile paths.
block_size = st.sampled_from([1, 3, 8, 512])
tile_size = st.sampled_from([1, 4, 512])


@settings(max_examples=150, deadline=None)
@given(data=detections(), iou_threshold=threshold, block=block_size, tile=tile_size)
def test_nms_matches_greedy_reference(
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    iou_threshold: float,
    block: int,
    tile: int,
) -> None:
    boxes, scores, _ = data
    with (
        mock.patch.object(nms_module, "_BLOCK_SIZE", block),
        mock.patch.object(nms_module, "_KEPT_TILE_SIZE", tile),
    ):
        kept = nms(boxes, scores, iou_threshold)
    assert kept.dtype == torch.int64
    assert kept.tolist() == reference_nms(boxes, scores, iou_threshold)


@settings(max_examples=150, deadline=None)
@given(data=detections(), iou_threshold=threshold, block=block_size, tile=tile_size)
def test_batched_nms_is_per_category_nms_merged_by_score(
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    iou_threshold: float,
    block: int,
    tile: int,
) -> None:
    boxes, scores, categories = data
    expected: list[int] = []
    for category in categories.unique().tolist():
        members = torch.where(categories == category)[0]
        kept = reference_nms(boxes[members], scores[members], iou_threshold)
        expected += members[kept].tolist()
    expected.sort(key=lambda i: (-scores[i].item(), i))
    with (
        mock.patch.object(nms_module, "_BLOCK_SIZE", block),
        mock.patch.object(nms_module, "_KEPT_TILE_SIZE", tile),
    ):
        kept = batched_nms(boxes, scores, categories, iou_threshold)
    assert kept.tolist() == expected


@settings(max_examples=150, deadline=None)
@given(data=detections(), thresholds=st.lists(threshold, min_size=3, max_size=3))
def test_batched_nms_per_category_is_each_category_at_its_threshold(
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor], thresholds: list[float]
) -> None:
    boxes, scores, categories = data
    expected: list[int] = []
    for category in categories.unique().tolist():
        members = torch.where(categories == category)[0]
        kept = reference_nms(boxes[members], scores[members], thresholds[category])
        expected += members[kept].tolist()
    expected.sort(key=lambda i: (-scores[i].item(), i))
    assert batched_nms_per_category(boxes, scores, categories, thresholds).tolist() == expected


@settings(max_examples=150, deadline=None)
@given(
    data=detections(),
    iou_threshold=threshold,
    block=block_size,
    tile=tile_size,
    max_kept=st.integers(0, 12),
)
def test_batched_nms_max_kept_is_the_first_of_all_kept(
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    iou_threshold: float,
    block: int,
    tile: int,
    max_kept: int,
) -> None:
    """Stopping once ``max_kept`` are settled gives the whole NMS's first ``max_kept``,
    ties included; small blocks make it stop between blocks of several categories."""
    boxes, scores, categories = data
    alone = reference_nms(boxes, scores, iou_threshold)
    expected: list[int] = []
    for category in categories.unique().tolist():
        members = torch.where(categories == category)[0]
        expected += members[reference_nms(boxes[members], scores[members], iou_threshold)].tolist()
    expected.sort(key=lambda i: (-scores[i].item(), i))
    thresholds = (iou_threshold, 0.5, iou_threshold)
    with (
        mock.patch.object(nms_module, "_BLOCK_SIZE", block),
        mock.patch.object(nms_module, "_KEPT_TILE_SIZE", tile),
    ):
        first_alone = nms(boxes, scores, iou_threshold, max_kept=max_kept)
        kept = batched_nms(boxes, scores, categories, iou_threshold, max_kept=max_kept)
        all_thresholds = batched_nms_per_category(boxes, scores, categories, thresholds)
        first = batched_nms_per_category(boxes, scores, categories, thresholds, max_kept)
    assert first_alone.tolist() == alone[:max_kept]
    assert kept.tolist() == expected[:max_kept]
    assert first.tolist() == all_thresholds.tolist()[:max_kept]


def test_batched_nms_max_kept_stops_early() -> None:
    """3 categories of 1500 boxes, 20 wanted: one block of each is visited, not three,
    and the answer is the whole NMS's first 20; without categories, one block of nine."""
    generator = torch.Generator().manual_seed(2)
    centres = torch.rand(4500, 2, generator=generator) * 400
    boxes = torch.cat((centres, centres + 10 + 30 * torch.rand(4500, 2, generator=generator)), 1)
    scores = torch.rand(4500, generator=generator)
    categories = torch.arange(4500) % 3
    everything = batched_nms(boxes, scores, categories, 0.7)
    visit_block = nms_module._GreedyRun.visit_block
    with mock.patch.object(nms_module._GreedyRun, "visit_block", autospec=True) as visits:
        visits.side_effect = visit_block
        kept = batched_nms(boxes, scores, categories, 0.7, max_kept=20)
        assert visits.call_count == 3
        visits.reset_mock()
        first_alone = nms(boxes, scores, 0.7, max_kept=20)
        assert visits.call_count == 1
    assert kept.tolist() == everything[:20].tolist()
    assert first_alone.tolist() == nms(boxes, scores, 0.7)[:20].tolist()


def test_hand_computed() -> None:
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # kept (score 0.9)
            [1.0, 0.0, 11.0, 10.0],  # IoU 9/11 with box 0: suppressed
            [0.0, 0.0, 10.0, 5.0],  # IoU 0.5 with box 0: not above 0.5, kept
            [20.0, 20.0, 30.0, 30.0],  # disjoint: kept
            [10.0, 0.0, 20.0, 10.0],  # touches box 0, IoU 0: kept
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95, 0.6])
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2, 4]
    assert nms(boxes, scores, 0.0).tolist() == [3, 0, 4]
    categories = torch.tensor([0, 1, 0, 0, 0])
    assert batched_nms(boxes, scores, categories, 0.5).tolist() == [3, 0, 1, 2, 4]
    # Category 0 at 0.9 keeps box 1 beside box 0 (IoU 9/11 = 0.82); at 0.4 it drops box 2
    # (IoU 0.5) too. Category 1 is box 2 alone.
    categories = torch.tensor([0, 0, 1, 0, 0])
    kept = batched_nms_per_category(boxes, scores, categories, (0.9, 0.5))
    assert kept.tolist() == [3, 0, 1, 2, 4]
    categories = torch.tensor([0, 0, 0, 0, 1])
    assert batched_nms_per_category(boxes, scores, categories, (0.4, 0.0)).tolist() == [3, 0, 4]


def test_empty_input() -> None:
    none = torch.zeros(0, dtype=torch.int64)
    for op in (
        nms,
        lambda b, s, t: batched_nms(b, s, none, t),
        lambda b, s, t: batched_nms_per_category(b, s, none, (t, t)),
    ):
        kept = op(torch.zeros(0, 4), torch.zeros(0), 0.5)
        assert kept.shape == (0,)
        assert kept.dtype == torch.int64


def test_thousands_of_boxes_match_reference() -> None:
    """Many blocks and tiles at the default sizes, on random float32 boxes."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.rand(1500, 2, generator=generator) * 200
    sizes = 5 + torch.rand(1500, 2, generator=generator) * 40
    boxes = torch.cat((centres - sizes / 2, centres + sizes / 2), dim=1).double()
    scores = torch.rand(1500, generator=generator).double()
    assert nms(boxes, scores, 0.5).tolist() == reference_nms(boxes, scores, 0.5)


def test_iou_test_is_box_iou_on_degenerate_and_inverted_boxes() -> None:
    """The in-place IoU test decides like box_iou > t, also where union is empty."""
    boxes = torch.tensor(
        [
            [0.0, 0.0, 4.0, 4.0],
            [2.0, 2.0, 2.0, 6.0],  # zero width
            [3.0, 3.0, 1.0, 1.0],  # inverted: negative sides, positive "area"
            [5.0, 0.0, 3.0, 4.0],  # inverted in x only: negative area
            [1.0, 1.0, 1.0, 1.0],  # a point
            [1.0, 1.0, 5.0, 5.0],
        ]
    )
    columns = nms_module._box_columns(boxes)
    scratch = nms_module._PairScratch(columns, len(boxes) ** 2)
    for threshold in (-0.5, 0.0, 0.3, 0.7, 1.0):
        expected = box_iou(boxes, boxes) > threshold
        exceeds = nms_module._iou_exceeds(columns, columns, threshold, scratch).bool()
        assert torch.equal(exceeds, expected)


def test_same_answer_inside_and_outside_inference_mode() -> None:
    """The triangle kept between calls, first made under inference mode, serves later
    calls outside it (and gradient-carrying boxes) alike."""
    nms_module._triangle.cache_clear()
    generator = torch.Generator().manual_seed(1)
    centres = torch.rand(300, 2, generator=generator) * 100
    boxes = torch.cat((centres, centres + 10 + 20 * torch.rand(300, 2, generator=generator)), 1)
    scores = torch.rand(300, generator=generator)
    expected = reference_nms(boxes, scores, 0.5)
    with torch.inference_mode():
        assert nms(boxes, scores, 0.5).tolist() == expected
    assert nms(boxes.requires_grad_(), scores, 0.5).tolist() == expected


def test_float16_boxes_over_256_px_a_side_are_suppressed_as_float32_ones() -> None:
    """A model run in half precision: a 300 px box's area overflows float16 (at most
    65504), which made its IoU with its own near copy 0 and kept both. Single-block and
    per-category runs alike compute in float32."""
    boxes = torch.tensor([[0, 0, 300, 300], [2, 2, 302, 302], [0, 0, 100, 100], [1, 1, 101, 101.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert nms(boxes.half(), scores.half(), 0.5).tolist() == [0, 2]
    many = torch.cat([boxes + 400 * i for i in range(150)])  # 600 boxes: a run per category
    categories = torch.arange(600) // 4
    expected = batched_nms(many, scores.repeat(150), categories, 0.5)
    assert len(expected) == 300
    assert torch.equal(
        batched_nms(many.half(), scores.repeat(150).half(), categories, 0.5), expected
    )
