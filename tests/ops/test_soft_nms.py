"""Gaussian Soft-NMS by hand and against a plain-Python reference."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from box_strategies import detections
from faster_rcnn.ops import batched_soft_nms, box_iou
from faster_rcnn.ops.soft_nms import soft_nms_factor

# A, B and C side by side, each 10 x 10, each sharing half of itself with the next: IoU
# 1/3 for A-B and B-C, 0 for A-C.
ROW = torch.tensor([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10.0]])
ROW_SCORES = torch.tensor([0.9, 0.8, 0.7])
ONE_CATEGORY = torch.zeros(3, dtype=torch.int64)
THIRD = math.exp(-((1 / 3) ** 2) / 0.5)  # the factor at IoU 1/3 with sigma 0.5


def test_soft_nms_by_hand() -> None:
    # A is visited first and lowers B to 0.8 * 0.80 = 0.64, under C's 0.7; so C is visited
    # next and lowers B again. Greedy NMS at 0.3 would have dropped B.
    kept, scores = batched_soft_nms(ROW, ROW_SCORES, ONE_CATEGORY, sigma=0.5, score_threshold=0.05)
    assert kept.tolist() == [0, 2, 1]
    assert scores.tolist() == pytest.approx([0.9, 0.7, 0.8 * THIRD**2])
    # B lowered below the threshold is dropped.
    kept, _ = batched_soft_nms(ROW, ROW_SCORES, ONE_CATEGORY, sigma=0.5, score_threshold=0.52)
    assert kept.tolist() == [0, 2]
    # A box of another category is not lowered, and lowers nothing.
    categories = torch.tensor([0, 1, 0])
    kept, scores = batched_soft_nms(ROW, ROW_SCORES, categories, sigma=0.5, score_threshold=0.05)
    assert kept.tolist() == [0, 1, 2]
    assert scores.tolist() == pytest.approx([0.9, 0.8, 0.7])


def test_a_duplicate_falls_far_down_and_a_neighbour_keeps_most_of_its_score() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 5.0]])
    kept, scores = batched_soft_nms(
        boxes, torch.tensor([0.9, 0.85, 0.8]), ONE_CATEGORY, 0.5, score_threshold=0.0
    )
    # The half box (IoU 0.5) keeps exp(-0.5) = 61 %; the duplicate (IoU 1) exp(-2) = 14 %,
    # and the half box, visited before it, lowers it again (IoU 0.5).
    assert kept.tolist() == [0, 2, 1]
    assert scores.tolist() == pytest.approx(
        [0.9, 0.8 * math.exp(-0.5), 0.85 * math.exp(-2) * math.exp(-0.5)]
    )


def test_a_factor_that_underflows_drops_nothing_into_nan() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60.0]])
    kept, scores = batched_soft_nms(
        boxes, torch.tensor([0.9, 0.8, 0.7]), ONE_CATEGORY, sigma=1e-4, score_threshold=0.0
    )
    assert kept.tolist() == [0, 2, 1] and not bool(scores.isnan().any())


def test_no_boxes_and_a_sigma_that_is_not_positive() -> None:
    kept, scores = batched_soft_nms(
        torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5, 0.05
    )
    assert kept.shape == scores.shape == (0,) and kept.dtype == torch.int64
    with pytest.raises(ValueError, match="sigma > 0"):
        batched_soft_nms(ROW, ROW_SCORES, ONE_CATEGORY, sigma=0.0, score_threshold=0.05)


def reference_soft_nms(
    boxes: torch.Tensor, scores: torch.Tensor, categories: torch.Tensor, sigma: float, low: float
) -> list[tuple[int, float]]:
    """Visit the highest remaining score (ties: lower index), lower the rest of its
    category, drop what falls below ``low``; then all categories by score."""
    ious = box_iou(boxes, boxes).tolist()
    current = {i: s for i, s in enumerate(scores.tolist()) if s >= low}
    visited = []
    while current:
        best = min(current, key=lambda i: (-current[i], i))
        visited.append((best, current.pop(best)))
        for i in list(current):
            if categories[i] == categories[best]:
                current[i] *= math.exp(-(ious[best][i] ** 2) / sigma)
                if current[i] < low:
                    del current[i]
    return sorted(visited, key=lambda pair: (-pair[1], pair[0]))


@settings(max_examples=150, deadline=None)
@given(
    detections(distinct_scores=True),
    st.sampled_from([0.1, 0.5, 2.0]),
    st.sampled_from([0.0, 0.05, 0.3]),
)
def test_soft_nms_matches_the_reference(data, sigma: float, low: float) -> None:
    boxes, scores, categories = data
    kept, lowered = batched_soft_nms(boxes, scores, categories, sigma, low)
    expected = reference_soft_nms(boxes, scores, categories, sigma, low)
    assert kept.tolist() == [index for index, _ in expected]
    assert lowered.tolist() == pytest.approx([score for _, score in expected], rel=1e-9)


def upfront_soft_nms(
    boxes: torch.Tensor, scores: torch.Tensor, sigma: float, low: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One category's Soft-NMS with every pair's factor computed up front, as it was
    before the factors were computed a block of visited boxes at a time."""
    factors = soft_nms_factor(box_iou(boxes, boxes), sigma, scores.dtype)
    current = scores.masked_fill(scores < low, float("-inf"))
    visited, visited_scores = [], []
    while bool(current.max() > float("-inf")):
        best = int(current.argmax())
        visited.append(best)
        visited_scores.append(current[best].clone())
        current[best] = float("-inf")
        current.mul_(factors[best])
        current.masked_fill_(current < low, float("-inf"))
    return torch.tensor(visited), torch.stack(visited_scores)


@pytest.mark.parametrize("num_boxes", [30, 1500, 3000])
def test_factors_a_block_at_a_time_give_the_upfront_results_bit_for_bit(num_boxes) -> None:
    # Crowded boxes (jittered copies of 40 objects, tied scores among them) and two
    # sigmas: the same boxes visited in the same order, with the same lowered scores.
    generator = torch.Generator().manual_seed(num_boxes)
    objects = torch.rand(40, 2, generator=generator) * 400
    owner = torch.randint(40, (num_boxes,), generator=generator)
    centres = objects[owner] + 8 * torch.randn(num_boxes, 2, generator=generator)
    half = 10 + 30 * torch.rand(num_boxes, 2, generator=generator)
    boxes = torch.cat((centres - half, centres + half), dim=1)
    scores = (torch.rand(num_boxes, generator=generator) * 50).round() / 50
    one_category = torch.zeros(num_boxes, dtype=torch.int64)
    for sigma, low in ((0.5, 0.05), (0.1, 0.001)):
        kept, lowered = batched_soft_nms(boxes, scores, one_category, sigma, low)
        expected_kept, expected_lowered = upfront_soft_nms(boxes, scores, sigma, low)
        assert torch.equal(kept, expected_kept)
        assert torch.equal(lowered, expected_lowered)


def test_no_factor_block_exceeds_its_bound(monkeypatch) -> None:
    # 3000 boxes: the 9 million pairs' factors up front took 5.3 of 5.5 s at 5000.
    import faster_rcnn.ops.soft_nms as soft_nms_module

    pairs = []

    def counted_iou(boxes1, boxes2):
        pairs.append(len(boxes1) * len(boxes2))
        return box_iou(boxes1, boxes2)

    monkeypatch.setattr(soft_nms_module, "box_iou", counted_iou)
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(3000, 2, generator=generator) * 500
    boxes = torch.cat((corners, corners + 20 + 40 * torch.rand(3000, 2, generator=generator)), 1)
    scores = torch.rand(3000, generator=generator)
    kept, _ = batched_soft_nms(boxes, scores, torch.zeros(3000, dtype=torch.int64), 0.5, 0.05)
    assert len(kept) > 0 and pairs and max(pairs) <= 1 << 20
