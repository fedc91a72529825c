"""The recall plots: three PNGs, each with the numbers it shows in the JSON beside it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from faster_rcnn.evaluate.proposal_recall import ProposalRecallEvaluator
from faster_rcnn.evaluate.recall_plots import recall_vs_proposals_figure, write_recall_plots

SizedEvaluator = Callable[..., ProposalRecallEvaluator]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read(folder, stem: str) -> dict:
    png = folder / f"{stem}.png"
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    return json.loads((folder / f"{stem}.json").read_text())


def test_the_json_beside_each_png_holds_the_plotted_numbers(
    tmp_path, sized_evaluator: SizedEvaluator
) -> None:
    curves = sized_evaluator((1, 2, 3)).recall_curves()
    paths = write_recall_plots(curves, tmp_path / "plots", detection_proposals=2)
    folder = tmp_path / "plots"
    stems = ["recall_vs_iou", "recall_vs_proposals", "recall_by_size"]
    assert paths == [folder / f"{stem}.png" for stem in stems]

    # Coverage (A, B, C, D) with 3 proposals: (1, 0.6, 1, 0.8).
    by_iou = read(folder, "recall_vs_iou")
    assert by_iou["iou_threshold"][0] == 0.5 and by_iou["iou_threshold"][-1] == 1.0
    assert len(by_iou["iou_threshold"]) == 51 and set(by_iou["recall"]) == {"1", "2", "3"}
    recall = dict(zip(by_iou["iou_threshold"], by_iou["recall"]["3"], strict=True))
    assert [recall[0.5], recall[0.7], recall[0.81], recall[1.0]] == [1.0, 0.75, 0.5, 0.5]
    assert by_iou["AR"]["3"] == pytest.approx(curves.figures["AR@3"])
    assert by_iou["num_gt"] == 4 and by_iou["not_measured"] == []
    assert by_iou["proposals_per_image"] == {"mean": 2.5, "max": 3}

    by_count = read(folder, "recall_vs_proposals")
    assert by_count["proposals"] == [1, 2, 3]
    assert by_count["recall"] == {"0.5": [0.25, 0.75, 1.0], "0.7": [0.25, 0.5, 0.75]}
    assert by_count["detection_proposals"] == 2

    by_size = read(folder, "recall_by_size")
    assert by_size["num_gt_by_size"] == {"small": 2, "medium": 1, "large": 1}
    assert by_size["area_px"]["large"] == [9216.0, None]  # no upper bound
    assert by_size["recall"]["0.7"]["3"] == {"small": 1.0, "medium": 0.0, "large": 1.0}
    assert by_size["recall"]["0.5"]["1"] == {"small": 0.5, "medium": 0.0, "large": 0.0}
    assert by_size["area_px"]["medium"] == [1024.0, 9216.0]


def test_a_limit_no_image_reached_is_left_out_and_an_empty_size_group_is_null(
    tmp_path, sized_evaluator: SizedEvaluator
) -> None:
    curves = sized_evaluator((2, 10), images=1).recall_curves()  # 2 proposals, no large box
    write_recall_plots(curves, tmp_path)
    by_iou = read(tmp_path, "recall_vs_iou")
    assert set(by_iou["recall"]) == {"2"} and by_iou["not_measured"] == [10]
    assert read(tmp_path, "recall_vs_proposals")["proposals"] == [1, 2]
    by_size = read(tmp_path, "recall_by_size")
    assert by_size["recall"]["0.5"] == {"2": {"small": 1.0, "medium": 1.0, "large": None}}
    assert by_size["not_measured"] == [10]


def test_the_recall_against_proposals_legend_lies_outside_the_axes_within_the_picture(
    sized_evaluator: SizedEvaluator,
) -> None:
    # Inside, at the lower right, it covered the points of the most proposals.
    curves = sized_evaluator((1, 2, 3)).recall_curves()
    figure, _ = recall_vs_proposals_figure(curves, detection_proposals=2)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (legend,) = figure.legends
    box = legend.get_window_extent(renderer)
    axes = figure.axes[0].get_window_extent(renderer)
    assert not box.overlaps(axes) and box.x0 > axes.x1
    assert figure.bbox.contains(box.x0, box.y0) and figure.bbox.contains(box.x1, box.y1)
    assert [text.get_text() for text in legend.get_texts()] == [
        "IoU 0.5",
        "IoU 0.7",
        "the detections use 2",
    ]


def test_the_detections_line_past_the_counts_measured_is_within_the_axes(
    sized_evaluator: SizedEvaluator,
) -> None:
    # No image had more than 3 proposals, so the curve ends at 3; the axis ended at 3.9
    # and the legend named a line at 1000 that was not drawn.
    curves = sized_evaluator((1, 2, 3)).recall_curves()
    figure, data = recall_vs_proposals_figure(curves, detection_proposals=1000)
    left, right = figure.axes[0].get_xlim()
    assert data["proposals"] == [1, 2, 3]
    assert left < 1 and right == pytest.approx(1300)
    (line,) = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert list(line.get_xdata()) == [1000, 1000]
