"""The paper's proposal recall plots, each a PNG with the numbers it shows in a JSON beside it.

* :func:`plot_recall_vs_iou`: recall against the IoU threshold, 0.5 to 1.0, one curve per
  proposal limit (Ren et al. 2015, Figure 2 style; the area under a curve is AR).
* :func:`plot_recall_vs_proposals`: recall against the number of proposals per image (log
  axis) at each of the evaluator's IoU thresholds.
* :func:`plot_recall_by_size`: recall of small / medium / large boxes (COCO's area edges,
  32² and 96² px in the input image) at each threshold and limit, as grouped bars.

A proposal limit (or count) that no image exceeded the next smaller one of is not drawn:
its curve would repeat that one's (:meth:`RecallCurves.measured`); the figure says so.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from ..counted import counted
from ..insight.plots import COLOURS, new_figure, save_figure
from .proposal_recall import SIZE_GROUPS, RecallCurves

TITLE_SIZE = 12
LABEL_SIZE = 11
TICK_SIZE = 10
# How each size group is named under its bars.
SIZE_LABELS = {
    "small": "small\n< 32² px",
    "medium": "medium\n32² - 96² px",
    "large": "large\n≥ 96² px",
}


def write_recall_plots(
    curves: RecallCurves, folder: str | os.PathLike[str], detection_proposals: int | None = None
) -> list[Path]:
    """Write ``recall_vs_iou``, ``recall_vs_proposals`` and ``recall_by_size`` (each a
    ``.png`` and a ``.json``) into ``folder``, created if needed.

    Args:
        curves: the evaluator's :class:`RecallCurves`.
        folder: where the files go.
        detection_proposals: proposals per image the model's detections use, marked on
            the recall-against-proposals plot (``None``: not marked).

    Returns:
        The three PNGs' paths.
    """
    folder = Path(folder)
    return [
        plot_recall_vs_iou(curves, folder / "recall_vs_iou.png"),
        plot_recall_vs_proposals(curves, folder / "recall_vs_proposals.png", detection_proposals),
        plot_recall_by_size(curves, folder / "recall_by_size.png"),
    ]


def plot_recall_vs_iou(curves: RecallCurves, path: str | os.PathLike[str]) -> Path:
    """Recall against the IoU threshold (0.50 to 1.00), one curve per measured limit.

    The JSON holds ``iou_threshold`` (T,), ``recall`` {limit: (T,)}, ``AR`` {limit},
    ``num_gt``, ``proposals_per_image`` and the limits ``not_measured``.
    """
    figure = new_figure(6.4, 4.8)
    axes = figure.add_subplot()
    measured = curves.measured(curves.limits)
    for colour, k in zip(COLOURS, measured, strict=False):
        ar = curves.figures[f"AR@{k}"]
        label = f"{k} proposals (AR {_fmt(ar)})"
        axes.plot(curves.iou_grid, curves.recall_vs_iou[k], color=colour, lw=2, label=label)
    for t in curves.iou_thresholds:
        axes.axvline(t, color="grey", ls=":", lw=1)
    axes.set_xlim(0.5, 1.0)
    _style(axes, "IoU threshold", "recall")
    axes.legend(fontsize=TICK_SIZE, loc="best")
    ars = "  ".join(f"AR@{k} = {_fmt(curves.figures[f'AR@{k}'])}" for k in measured)
    title = f"Proposal recall against IoU, {counted(curves.num_gt, 'box')}\n{ars}"
    axes.set_title(title + _not_measured_note(curves), fontsize=TITLE_SIZE)
    data = {
        "iou_threshold": list(curves.iou_grid),
        "recall": {str(k): list(curves.recall_vs_iou[k]) for k in measured},
        "AR": {str(k): curves.figures[f"AR@{k}"] for k in measured},
        **_common_data(curves),
    }
    return save_figure(figure, path, data)


def plot_recall_vs_proposals(
    curves: RecallCurves, path: str | os.PathLike[str], detection_proposals: int | None = None
) -> Path:
    """Recall against the number of proposals per image (log axis), one curve per IoU
    threshold, up to the first count no image exceeded; ``detection_proposals`` marked,
    the axis reaching it where it lies further.

    The JSON holds ``proposals`` (K,), ``recall`` {threshold: (K,)}, ``num_gt``,
    ``proposals_per_image`` and ``detection_proposals``.
    """
    figure, data = recall_vs_proposals_figure(curves, detection_proposals)
    return save_figure(figure, path, data)


def recall_vs_proposals_figure(
    curves: RecallCurves, detection_proposals: int | None = None
) -> tuple[Figure, dict[str, Any]]:
    """:func:`plot_recall_vs_proposals`'s figure and the numbers it shows. The legend is
    outside the axes, right of them: inside, at the lower right, it covered the points
    of the most proposals, where a low recall curve ends."""
    figure = new_figure(8.4, 4.8)
    axes = figure.add_subplot()
    counts = curves.measured(curves.proposal_counts)
    recall = {t: curves.recall_vs_proposals[t][: len(counts)] for t in curves.iou_thresholds}
    for colour, (t, values) in zip(COLOURS, recall.items(), strict=False):
        axes.plot(counts, values, color=colour, lw=2, marker="o", label=f"IoU {t:g}")
    if detection_proposals is not None:
        label = f"the detections use {detection_proposals}"
        axes.axvline(detection_proposals, color="grey", ls="--", lw=1, label=label)
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(FixedLocator(counts))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xticklabels([str(k) for k in counts])
    # The detections' line too where it lies past the counts measured (no image had as
    # many proposals): the legend named a line the axes left out.
    axes.set_xlim(counts[0] / 1.3, max(counts[-1], detection_proposals or 0) * 1.3)
    _style(axes, "proposals per image", "recall")
    figure.legend(fontsize=TICK_SIZE, loc="outside right upper")
    at_most = ", ".join(f"{_fmt(values[-1])} at IoU {t:g}" for t, values in recall.items())
    title = f"Proposal recall against proposals per image, {counted(curves.num_gt, 'box')}"
    made = f"made per image: mean {_mean_proposals(curves)}, max {curves.max_proposals}"
    axes.set_title(f"{title}\nwith {counts[-1]}: {at_most}\n{made}", fontsize=TITLE_SIZE)
    data = {
        "proposals": list(counts),
        "recall": {f"{t:g}": list(values) for t, values in recall.items()},
        "detection_proposals": detection_proposals,
        **_common_data(curves),
    }
    return figure, data


def plot_recall_by_size(curves: RecallCurves, path: str | os.PathLike[str]) -> Path:
    """Recall of small, medium and large boxes: one panel per IoU threshold, one bar per
    measured limit in each size group, the group's box count under it.

    The JSON holds ``recall`` {threshold: {limit: {size: recall}}} (``null`` for a group
    without boxes), ``num_gt_by_size`` {size}, ``area_px`` {size: [low, high]} (``null``:
    no bound), ``num_gt``, ``proposals_per_image`` and the limits ``not_measured``.
    """
    thresholds = curves.iou_thresholds
    figure = new_figure(5.2 * len(thresholds), 5.0)
    panels = figure.subplots(1, len(thresholds), sharey=True, squeeze=False)[0]
    measured = curves.measured(curves.limits)
    for axes, t in zip(panels, thresholds, strict=True):
        _size_bars(axes, curves, measured, t)
    panels[0].set_ylabel("recall", fontsize=LABEL_SIZE)
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles, labels, fontsize=TICK_SIZE, loc="outside lower center", ncols=4)
    title = (
        f"Proposal recall by box size (area in the input image), {counted(curves.num_gt, 'box')}"
    )
    figure.suptitle(title + _not_measured_note(curves), fontsize=TITLE_SIZE)
    data = {
        "recall": {f"{t:g}": {str(k): curves.by_size(k, t) for k in measured} for t in thresholds},
        "num_gt_by_size": curves.size_counts(),
        "area_px": {size: [low, high] for size, (low, high) in SIZE_GROUPS.items()},
        **_common_data(curves),
    }
    return save_figure(figure, path, data)


def _size_bars(axes: Axes, curves: RecallCurves, limits: tuple[int, ...], threshold: float) -> None:
    """One group of bars per size, one bar per limit, each labelled with its recall."""
    width = 0.8 / len(limits)
    for i, (colour, k) in enumerate(zip(COLOURS, limits, strict=False)):
        recall = curves.by_size(k, threshold)
        for group, size in enumerate(SIZE_GROUPS):
            x = group - 0.4 + width * (i + 0.5)
            value = recall[size]
            height, text = (0.0, "n/a") if math.isnan(value) else (value, f"{value:.2f}")
            label = f"{k} proposals" if group == 0 else None
            axes.bar(x, height, width, color=colour, label=label)
            axes.text(x, height + 0.01, text, ha="center", va="bottom", fontsize=TICK_SIZE - 1)
    counts = curves.size_counts()
    axes.set_xticks(range(len(SIZE_GROUPS)))
    axes.set_xticklabels([f"{SIZE_LABELS[s]}\n{counted(counts[s], 'box')}" for s in SIZE_GROUPS])
    _style(axes, "", "")
    axes.set_ylim(0.0, 1.1)
    axes.set_title(f"IoU {threshold:g}", fontsize=LABEL_SIZE)


def _style(axes: Axes, xlabel: str, ylabel: str) -> None:
    """Axis labels, readable ticks, a light grid and recall's 0..1 range."""
    axes.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    axes.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    axes.tick_params(labelsize=TICK_SIZE)
    axes.set_ylim(0.0, 1.02)
    axes.grid(True, alpha=0.3)


def _not_measured_note(curves: RecallCurves) -> str:
    """A title line naming the limits not drawn because no image reached them."""
    missing = curves.not_measured()
    if not missing:
        return ""
    names = ", ".join(str(k) for k in missing)
    shown = curves.measured(curves.limits)[-1]
    return f"\n({names} not shown: no image had more than {shown} proposals)"


def _common_data(curves: RecallCurves) -> dict[str, Any]:
    """What every plot's JSON holds: the box count and how many proposals were made."""
    return {
        "num_gt": curves.num_gt,
        "proposals_per_image": {
            "mean": curves.figures["proposals_per_image/mean"],
            "max": curves.max_proposals,
        },
        "not_measured": list(curves.not_measured()),
    }


def _mean_proposals(curves: RecallCurves) -> str:
    mean = curves.figures["proposals_per_image/mean"]
    return "n/a" if math.isnan(mean) else f"{mean:.0f}"


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"
