"""The error breakdown: each false positive's kind and cost, each missed object's stage,
on one hand-built image whose every box fits one kind."""

from __future__ import annotations

import math

import pytest
import torch

from faster_rcnn.evaluate.error_breakdown import ErrorBreakdownEvaluator

CELL, PLATELET = 1, 2


def _boxes(*boxes: list[float]) -> torch.Tensor:
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def _crafted_image() -> tuple[dict, dict, dict]:
    """Five cells A-E and a platelet P; six cell detections, one of each kind."""
    target = {
        "boxes": _boxes(
            [0, 0, 10, 10],  # A: found by d1
            [10, 0, 20, 10],  # B: d3 covers it at IoU 0.5, but took A (neighbour)
            [50, 50, 60, 60],  # C: only d5 near it, at IoU 0.4 (mislocated)
            [70, 70, 80, 80],  # D: a proposal at IoU 0.9, no detection (not detected)
            [90, 90, 100, 100],  # E: nothing near it (not proposed)
            [30, 30, 34, 34],  # P: detected as a cell (other class)
        ),
        "labels": torch.tensor([CELL] * 5 + [PLATELET]),
    }
    detections = {
        "boxes": _boxes(
            [200, 200, 210, 210],  # d6 0.95: background
            [0, 0, 10, 10],  # d1 0.9: true positive on A
            [1, 0, 11, 10],  # d2 0.8: IoU 0.82 with A, taken: duplicate
            [0, 0, 20, 10],  # d3 0.7: IoU 0.5 with A and B, goes to A: duplicate
            [30, 30, 34, 34],  # d4 0.6: on the platelet: other class
            [50, 50, 60, 54],  # d5 0.5: IoU 0.4 with C: mislocated
        ),
        "labels": torch.tensor([CELL] * 6),
        "scores": torch.tensor([0.95, 0.9, 0.8, 0.7, 0.6, 0.5]),
    }
    proposals = {"boxes": _boxes([70, 70, 80, 79], [0, 0, 10, 10])}
    return detections, proposals, target


def _evaluated(*images: tuple[dict, dict, dict]) -> ErrorBreakdownEvaluator:
    evaluator = ErrorBreakdownEvaluator(3, class_names=["cell", "platelet"])
    for detections, proposals, target in images:
        evaluator.update([detections], [proposals], [target])
    return evaluator


def test_each_false_positive_has_its_kind_and_cost() -> None:
    result = _evaluated(_crafted_image()).compute()
    assert result.false_positives["cell"] == {
        "duplicate": 2,
        "other class": 1,
        "mislocated": 1,
        "background": 1,
    }
    # Ranked: d6 (FP), d1 (TP: recall 1/5 at precision 1/2), then only FPs: AP 0.1.
    # Without the background d6, d1 comes first at precision 1: AP 0.2. The other kinds
    # all rank below d1, so leaving them out changes nothing.
    assert result.ap["cell"] == pytest.approx(0.1)
    assert result.cost["cell"]["background"] == pytest.approx(0.1)
    for kind in ("duplicate", "other class", "mislocated"):
        assert result.cost["cell"][kind] == pytest.approx(0.0)


def test_each_missed_object_has_the_stage_that_lost_it() -> None:
    result = _evaluated(_crafted_image()).compute()
    assert result.objects == {"cell": 5, "platelet": 1}
    assert result.missed["cell"] == {
        "neighbour": 1,
        "other class": 0,
        "mislocated": 1,
        "not detected": 1,
        "not proposed": 1,
    }
    assert result.missed["platelet"] == {
        "neighbour": 0,
        "other class": 1,
        "mislocated": 0,
        "not detected": 0,
        "not proposed": 0,
    }
    assert result.ap["platelet"] == 0.0


def test_difficult_boxes_are_neither_missed_nor_false_positives() -> None:
    detections, proposals, target = _crafted_image()
    target["difficult"] = torch.tensor([False, True, True, True, True, True])
    detections = {key: value[1:] for key, value in detections.items()}  # without d6
    result = _evaluated((detections, proposals, target)).compute()
    assert result.objects == {"cell": 1, "platelet": 0}
    assert sum(result.missed["cell"].values()) == 0
    assert math.isnan(result.ap["platelet"])
    platelet_row = next(line for line in result.table().splitlines() if "platelet" in line)
    assert platelet_row.split()[1:4] == ["n/a", "n/a", "(0)"]
    note = "n/a: no object of the class to find: no AP for its false positives to cost"
    assert note in result.table().splitlines()
    # d2 and d3 still duplicate A; d4 lies on the (difficult) platelet, d5 on C (difficult,
    # below IoU 0.5, so not ignored).
    assert result.false_positives["cell"] == {
        "duplicate": 2,
        "other class": 1,
        "mislocated": 1,
        "background": 0,
    }
    assert result.ap["cell"] == pytest.approx(1.0)


def test_crowd_regions_are_neither_missed_nor_false_positives_nor_mistaken_for() -> None:
    detections, proposals, target = _crafted_image()
    # C (a cell) and P (the platelet) become crowd regions, and a cell region holds d6.
    target["boxes"] = torch.cat((target["boxes"], _boxes([190, 190, 260, 260])))
    target["labels"] = torch.cat((target["labels"], torch.tensor([CELL])))
    target["iscrowd"] = torch.tensor([False, False, True, False, False, True, True])
    result = _evaluated((detections, proposals, target)).compute()
    assert result.objects == {"cell": 4, "platelet": 0}
    # C is no object to miss; B, D and E are missed as before.
    assert result.missed["cell"] == {
        "neighbour": 1,
        "other class": 0,
        "mislocated": 0,
        "not detected": 1,
        "not proposed": 1,
    }
    assert sum(result.missed["platelet"].values()) == 0
    # d6 lies in the cell region and d5 in C (all of it, at an IoU of 0.4): ignored. d4,
    # a cell on the platelet region, is no longer of another class: a region is no object.
    assert result.false_positives["cell"] == {
        "duplicate": 2,
        "other class": 0,
        "mislocated": 0,
        "background": 1,
    }
    # Ranked d1 (TP) first now: recall 1/4 at precision 1.
    assert result.ap["cell"] == pytest.approx(0.25)


def test_images_add_up_and_flat_figures_name_every_kind() -> None:
    one = _evaluated(_crafted_image()).compute()
    two = _evaluated(_crafted_image(), _crafted_image()).compute()
    assert two.objects == {"cell": 10, "platelet": 2}
    assert two.missed["cell"]["neighbour"] == 2 * one.missed["cell"]["neighbour"]
    assert two.false_positives["cell"]["duplicate"] == 4
    flat = two.as_dict()
    assert flat["num_missed/not_proposed/cell"] == 2.0
    assert flat["num_false_positives/other_class/cell"] == 2.0
    assert flat["fp_cost/background/cell"] == pytest.approx(two.cost["cell"]["background"])
    assert "other class" in two.table() and "not proposed" in two.table()
    assert "n/a" not in two.table()  # every class has objects: no note


def test_an_image_without_detections_or_objects() -> None:
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    nothing_found = {**empty, "scores": torch.zeros(0)}
    _, _, target = _crafted_image()
    stray = {"boxes": _boxes([5, 5, 9, 9]), "labels": torch.tensor([PLATELET])}
    result = _evaluated(
        (nothing_found, {"boxes": torch.zeros(0, 4)}, target),
        ({**stray, "scores": torch.tensor([0.5])}, {"boxes": torch.zeros(0, 4)}, empty),
    ).compute()
    assert result.missed["cell"]["not proposed"] == 5
    assert result.missed["platelet"]["not proposed"] == 1
    assert result.false_positives["platelet"]["background"] == 1


@pytest.mark.parametrize("iou", [0.0, 1.5])
def test_an_iou_no_match_could_mean_is_refused(iou: float) -> None:
    with pytest.raises(ValueError, match="iou_threshold must be in"):
        ErrorBreakdownEvaluator(3, iou_threshold=iou)
