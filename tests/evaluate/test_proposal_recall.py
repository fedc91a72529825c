"""Proposal recall and average recall on hand-built proposals with known IoUs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pytest
import torch

from faster_rcnn.evaluate.proposal_recall import ProposalRecallEvaluator, greedy_coverage

SizedEvaluator = Callable[..., ProposalRecallEvaluator]

G0 = [0.0, 0.0, 10.0, 10.0]
G1 = [100.0, 100.0, 110.0, 110.0]
G2 = [200.0, 200.0, 210.0, 210.0]


def proposals(boxes: list[list[float]], scores: list[float]) -> dict:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores),
    }


def target(boxes: list[list[float]], **flags: list[bool]) -> dict:
    t = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)}
    t.update({key: torch.tensor(value) for key, value in flags.items()})
    t["labels"] = torch.ones(len(boxes), dtype=torch.int64)
    return t


def test_limits_cut_below_the_good_proposals() -> None:
    # By score: G0 exactly (0.9), G1 at IoU 0.6 (0.8), G2 exactly (0.3), G1 exactly (0.1);
    # given out of order, the evaluator ranks them itself.
    props = proposals([G1, [100.0, 100.0, 110.0, 106.0], G0, G2], [0.1, 0.8, 0.9, 0.3])
    evaluator = ProposalRecallEvaluator(limits=(1, 2, 3, 4), iou_thresholds=(0.5, 0.7))
    evaluator.update([props], [target([G0, G1, G2])])
    result = evaluator.compute()
    assert result["num_gt"] == 3.0
    assert result["recall@1@0.5"] == pytest.approx(1 / 3)
    assert result["recall@1@0.7"] == pytest.approx(1 / 3)
    assert result["recall@2@0.5"] == pytest.approx(2 / 3)
    assert result["recall@2@0.7"] == pytest.approx(1 / 3)
    assert result["recall@3@0.5"] == pytest.approx(1.0)
    assert result["recall@3@0.7"] == pytest.approx(2 / 3)
    assert result["recall@4@0.7"] == pytest.approx(1.0)
    assert result["AR@1"] == pytest.approx(1 / 3)
    # Coverage (1, 0.6, 0): 2/3 at 0.50, 0.55, 0.60 and 1/3 at the other seven.
    assert result["AR@2"] == pytest.approx((3 * 2 / 3 + 7 / 3) / 10)
    assert result["AR@4"] == pytest.approx(1.0)


def test_average_recall_at_iou_exactly_point_eight() -> None:
    evaluator = ProposalRecallEvaluator(limits=(100,))
    evaluator.update([proposals([[0.0, 0.0, 10.0, 8.0]], [0.5])], [target([G0])])
    result = evaluator.compute()
    assert result["AR@100"] == pytest.approx(7 / 10)  # thresholds 0.50 .. 0.80
    thresholds, recall = evaluator.curves([0.5, 0.8, 0.81, 1.0])[100]
    assert thresholds.tolist() == [0.5, 0.8, 0.81, 1.0]
    assert recall.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_one_proposal_recalls_one_box_only() -> None:
    # One proposal overlaps both boxes well; the one-to-one assignment gives it to the
    # better one (IoU 1) and leaves the other (IoU 0.9) uncovered.
    evaluator = ProposalRecallEvaluator(limits=(10,), iou_thresholds=(0.5,))
    evaluator.update([proposals([G0], [0.5])], [target([[0.0, 0.0, 10.0, 9.0], G0])])
    assert evaluator.compute()["recall@10@0.5"] == pytest.approx(0.5)


def test_greedy_takes_the_best_pair_first() -> None:
    iou = torch.tensor([[0.9, 0.8], [0.85, 0.1]], dtype=torch.float64)
    # Best pair (p0, g0) = 0.9; then p1 is left for g1 at 0.1 (not the optimum 0.85 + 0.8).
    assert greedy_coverage(iou).tolist() == [0.9, 0.1]
    assert greedy_coverage(torch.zeros(0, 3)).tolist() == [0.0, 0.0, 0.0]


def _greedy_by_search(iou: torch.Tensor) -> torch.Tensor:
    """The assignment as defined: search the remaining matrix for its best pair."""
    coverage, remaining = iou.new_zeros(iou.shape[1]), iou.clone()
    for _ in range(min(iou.shape)):
        best_iou, best_proposal = remaining.max(dim=0)
        gt_iou, gt = best_iou.max(dim=0)
        coverage[gt] = gt_iou
        remaining[best_proposal[gt], :] = -1.0
        remaining[:, gt] = -1.0
    return coverage


def test_greedy_takes_pairs_as_the_search_does_ties_and_zeros_included() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        rows, columns = torch.randint(0, 9, (2,), generator=generator).tolist()
        # Quarters: many ties; a third of the pairs not overlapping at all.
        iou = (torch.rand(rows, columns, generator=generator, dtype=torch.float64) * 4).ceil() / 4
        iou[torch.rand(rows, columns, generator=generator) < 0.3] = 0.0
        assert torch.equal(greedy_coverage(iou), _greedy_by_search(iou)), iou


def test_two_thousand_boxes_and_proposals_are_assigned_in_seconds() -> None:
    # 2000 small objects an image, each with a proposal near it: searching the whole
    # 2000 x 2000 matrix for each pair it took, once per proposal limit, took 104 s on
    # this project's CPU (at 1000 objects 14 s an image in `evaluate`); walking the few
    # thousand pairs that overlap takes under one. Timed in this process's CPU seconds,
    # which other processes sharing the cores leave as they are (the wall clock does not).
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(2000, 2, generator=generator, dtype=torch.float64) * 800
    boxes = torch.cat((corners, corners + 20), dim=1)
    moved = boxes + torch.randn(2000, 4, generator=generator, dtype=torch.float64) * 4
    evaluator = ProposalRecallEvaluator(limits=(2000,), iou_thresholds=(0.5,))
    start = time.process_time()
    evaluator.update([proposals(moved.tolist(), [1.0] * 2000)], [target(boxes.tolist())])
    assert time.process_time() - start < 5.0
    assert evaluator.compute()["recall@2000@0.5"] > 0.5


def test_crowd_and_difficult_boxes_are_left_out_and_unproposed_images_count() -> None:
    evaluator = ProposalRecallEvaluator(limits=(5,), iou_thresholds=(0.5,))
    evaluator.update(
        [proposals([G0], [0.5]), proposals([], [])],
        [target([G0, G1, G2], iscrowd=[False, True, False], difficult=[False, False, True]),
         target([G1])],
    )  # fmt: skip
    result = evaluator.compute()
    assert result["num_gt"] == 2.0  # G0 of image 0 and G1 of image 1, which has no proposal
    assert result["recall@5@0.5"] == pytest.approx(0.5)


def test_no_ground_truth_gives_nan() -> None:
    evaluator = ProposalRecallEvaluator()
    evaluator.update([proposals([G0], [0.5])], [target([])])
    result = evaluator.compute()
    assert result["num_gt"] == 0.0
    assert math.isnan(result["AR@300"]) and math.isnan(result["recall@1000@0.7"])
    assert torch.isnan(evaluator.curves()[100][1]).all()


def test_mismatched_inputs_are_rejected() -> None:
    evaluator = ProposalRecallEvaluator()
    with pytest.raises(ValueError, match="expected one of each per image"):
        evaluator.update([], [target([G0])])
    with pytest.raises(ValueError, match="image 0: 1 proposal boxes but scores"):
        evaluator.update([proposals([G0], [0.5, 0.4])], [target([G0])])


def test_recall_by_object_size(sized_evaluator: SizedEvaluator) -> None:
    result = sized_evaluator((1, 2, 3)).compute()
    assert [result[f"num_gt/{size}"] for size in ("small", "medium", "large")] == [2, 1, 1]
    # conftest.py: coverage (A, B, C, D) with 1 (1, 0, 0, 0), 2 (1, .6, 1, 0), 3 (1, .6, 1, .8).
    expected = {
        "recall@1@0.5/small": 0.5, "recall@1@0.5/medium": 0.0, "recall@1@0.5/large": 0.0,
        "recall@2@0.5/small": 0.5, "recall@2@0.5/medium": 1.0, "recall@2@0.7/medium": 0.0,
        "recall@2@0.7/large": 1.0, "recall@3@0.5/small": 1.0, "recall@3@0.7/small": 1.0,
        "recall@3@0.7/medium": 0.0, "recall@3@0.7/large": 1.0,
    }  # fmt: skip
    assert {key: result[key] for key in expected} == expected
    assert result["recall@3@0.7"] == 0.75
    assert result["proposals_per_image/mean"] == 2.5
    assert result["proposals_per_image/max"] == 3.0


def test_size_groups_are_coco_area_edges_half_open() -> None:
    boxes = [
        [0.0, 0.0, 31.0, 33.0],
        [0.0, 0.0, 32.0, 32.0],
        [0.0, 0.0, 95.0, 97.0],
        [0.0, 0.0, 96.0, 96.0],
    ]
    evaluator = ProposalRecallEvaluator(limits=(10,), iou_thresholds=(0.5,))
    evaluator.update([proposals([], [])], [target(boxes)])
    result = evaluator.compute()
    assert [result[f"num_gt/{size}"] for size in ("small", "medium", "large")] == [1, 2, 1]
    assert result["recall@10@0.5/medium"] == 0.0
    empty = ProposalRecallEvaluator(limits=(10,), iou_thresholds=(0.5,))
    empty.update([proposals([G0], [0.5])], [target([G0])])
    assert math.isnan(empty.compute()["recall@10@0.5/large"])


def test_recall_against_the_number_of_proposals(sized_evaluator: SizedEvaluator) -> None:
    counts, recall = sized_evaluator((3,)).recall_vs_proposals(0.5)
    assert counts.tolist() == [1, 2, 3]  # the curve's counts below the limit, and the limit
    assert recall.tolist() == [0.25, 0.75, 1.0]
    assert sized_evaluator((3,)).recall_vs_proposals(0.7)[1].tolist() == [0.25, 0.5, 0.75]
    default_counts = ProposalRecallEvaluator().recall_vs_proposals(0.5)[0].tolist()
    assert default_counts == [1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 1000]


def test_a_larger_limit_is_measured_only_when_an_image_has_more_proposals(
    sized_evaluator: SizedEvaluator,
) -> None:
    more = sized_evaluator((2, 10)).recall_curves()
    assert more.measured(more.limits) == (2, 10)  # image 1 has 3 proposals > 2
    assert more.figures["recall@10@0.5"] == 1.0 > more.figures["recall@2@0.5"] == 0.75
    fewer = sized_evaluator((2, 10), images=1).recall_curves()  # 2 proposals: 10 not reached
    assert fewer.measured(fewer.limits) == (2,)
    assert fewer.figures["recall@10@0.5"] == fewer.figures["recall@2@0.5"]
    assert fewer.measured(fewer.proposal_counts) == (1, 2)  # of 1, 2, 5, 10
