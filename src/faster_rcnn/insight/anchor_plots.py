"""The picture of an anchor coverage: how close the anchors come to each box, and box
shapes against anchor shapes, with the numbers in a JSON file beside it."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

from ..config import AnchorConfig
from ..counted import counted
from .anchor_coverage import AnchorCoverage
from .plots import COLOURS, new_figure, save_figure

MARKERS = ("o", "s", "^", "D", "v", "P", "X")
HISTOGRAM_BINS = 40
# Fewer major ticks than this in view on a log axis, and its minor ticks are labelled.
MIN_MAJOR_TICKS = 3
# The boxes' points are drawn over the "no anchor" rings, the anchor shapes over both.
POINTS_ZORDER = 2

# A level's stride over the images measured: ``(low, high)`` down, then across, in
# pixels. A map of ``ceil(padded / nominal)`` cells spreads over the padded batch, so the
# stride is the nominal one only where the padded size is a multiple of it, and images of
# other sizes or orientations have others.
StrideRange = tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class CoverageReport:
    """An anchor coverage with what it needs to be shown and named.

    Attributes:
        coverage: the coverage of every box.
        anchors: the anchors measured.
        strides: the stride of every anchor level over the images measured.
        bg_iou_thresh: the RPN's negative threshold: a box whose best anchor is below it
            has no anchor that is not background.
        image_names: per image index of ``coverage.image_index``, the name to show.
    """

    coverage: AnchorCoverage
    anchors: AnchorConfig
    strides: Sequence[StrideRange]
    bg_iou_thresh: float
    image_names: Sequence[str]

    def uncovered(self) -> list[dict[str, Any]]:
        """The boxes whose best anchor IoU is below the negative threshold, smallest
        best IoU first: image, box (its pixels), size (resized pixels) and best IoU."""
        cov = self.coverage
        rows = (cov.best_iou < self.bg_iou_thresh).nonzero().flatten()
        rows = rows[cov.best_iou[rows].argsort(stable=True)]
        return [
            {
                "image": self.image_names[int(cov.image_index[row])],
                "box": [round(v, 1) for v in cov.boxes[row].tolist()],
                "size": round(float(cov.sizes[row]), 1),
                "best_iou": round(float(cov.best_iou[row]), 3),
            }
            for row in rows.tolist()
        ]

    def summary(self) -> dict[str, Any]:
        """The figures of :meth:`save`'s JSON."""
        cov = self.coverage
        counts, edges = histogram(cov.best_iou)
        return {
            "boxes": len(cov),
            "positive_iou": cov.fg_iou_thresh,
            "negative_iou": self.bg_iou_thresh,
            "share_at_positive_iou": float((cov.best_iou >= cov.fg_iou_thresh).float().mean()),
            "rows": cov.rows(),
            "histogram": {"edges": edges, "counts": counts},
            "anchors": {
                "sizes": self.anchors.sizes,
                "aspect_ratios": self.anchors.aspect_ratios,
                "strides": [
                    {"height": list(down), "width": list(across)} for down, across in self.strides
                ],
            },
            "uncovered": self.uncovered(),
        }

    def save(self, path: str | os.PathLike[str], title: str) -> Path:
        """Write the picture to ``path`` (``.png``) and :meth:`summary` beside it."""
        return save_figure(self.figure(title), path, self.summary())

    def figure(self, title: str) -> Figure:
        """The picture: the best-IoU histogram, and box shapes over anchor shapes."""
        figure = new_figure(13, 5.2)
        left, right = figure.subplots(1, 2, width_ratios=(1, 1.25))
        self._draw_histogram(left)
        self._draw_shapes(figure, right)
        figure.suptitle(title, fontsize=12)
        return figure

    def _draw_histogram(self, axes: Axes) -> None:
        cov = self.coverage
        counts, edges = histogram(cov.best_iou)
        axes.stairs(counts, edges, fill=True, color=COLOURS[0], alpha=0.85)
        for threshold, label, colour in (
            (self.bg_iou_thresh, f"negative below {self.bg_iou_thresh:g}", COLOURS[5]),
            (cov.fg_iou_thresh, f"positive at {cov.fg_iou_thresh:g}", COLOURS[2]),
        ):
            axes.axvline(threshold, color=colour, linewidth=2, linestyle="--", label=label)
        reached = float((cov.best_iou >= cov.fg_iou_thresh).float().mean())
        below = int((cov.best_iou < self.bg_iou_thresh).sum())
        axes.set_title(
            f"best anchor IoU of {counted(len(cov), 'box')}: {reached:.0%} reach "
            f"{cov.fg_iou_thresh:g}, {below:,} below {self.bg_iou_thresh:g}",
            fontsize=10,
        )
        axes.set_xlabel("best IoU of any anchor the RPN trains on")
        axes.set_ylabel("boxes")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlim(0, 1)
        _legend_below(axes, fontsize=9)

    def _draw_shapes(self, figure: Any, axes: Axes) -> None:
        cov = self.coverage
        width = cov.sizes / cov.aspect_ratios.sqrt()
        height = cov.sizes * cov.aspect_ratios.sqrt()
        # The points over the rings: where many boxes have no anchor, rings drawn on top
        # hid the points of the covered boxes beside them.
        points = axes.scatter(
            width,
            height,
            c=cov.best_iou,
            cmap="viridis",
            vmin=0,
            vmax=1,
            s=10,
            alpha=0.8,
            zorder=POINTS_ZORDER,
        )
        figure.colorbar(points, ax=axes, label="best anchor IoU")
        uncovered = cov.best_iou < self.bg_iou_thresh
        if uncovered.any():
            axes.scatter(
                width[uncovered],
                height[uncovered],
                s=40,
                facecolors="none",
                edgecolors=COLOURS[5],
                linewidths=0.8,
                zorder=POINTS_ZORDER - 1,
                label=f"no anchor at {self.bg_iou_thresh:g} ({int(uncovered.sum()):,})",
            )
        self._draw_anchor_shapes(axes)
        axes.set_xscale("log")
        axes.set_yscale("log")
        for axis in (axes.xaxis, axes.yaxis):
            _pixel_ticks(axis)
        axes.set_xlabel("box width (px, resized)")
        axes.set_ylabel("box height (px, resized)")
        axes.set_title("box shapes, and the anchor shapes of every level", fontsize=10)
        _legend_below(axes, fontsize=8)

    def _draw_anchor_shapes(self, axes: Axes) -> None:
        levels = zip(self.anchors.sizes, self.anchors.aspect_ratios, self.strides, strict=True)
        for level, (sizes, ratios, stride) in enumerate(levels):
            shapes = [(s / math.sqrt(r), s * math.sqrt(r)) for s in sizes for r in ratios]
            # Width x height where they differ, as explain gives it: a 224 x 160 batch's
            # 4 x 3 map is 56 px apart across and 53 down, not 56 both ways.
            down, across = (_stride_text(*side) for side in stride)
            apart = across if down == across else f"{across}x{down}"
            # Growing with the level, so that a shape several levels share shows them all.
            axes.scatter(
                *zip(*shapes, strict=True),
                marker=MARKERS[level % len(MARKERS)],
                s=36 + 44 * level,
                facecolors="none",
                edgecolors="black",
                linewidths=1.3,
                zorder=POINTS_ZORDER + 1,
                label=f"anchors, level {level} (stride {apart})",
            )


def _legend_below(axes: Axes, fontsize: float) -> None:
    """The legend under the axes' x label, in two columns: inside, at the upper left, it
    covered the histogram's bars where most boxes have a low best IoU, and the points of
    tall boxes."""
    axes.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2, fontsize=fontsize, frameon=False
    )


def _stride_text(low: int, high: int) -> str:
    """``64``, or ``57-64`` where the images measured have several strides."""
    return str(low) if low == high else f"{low}-{high}"


def _pixel_ticks(axis: Axis) -> None:
    """A log scale's ticks at 1, 2 and 5 times the powers of ten, labelled as plain pixel
    counts, and its minor ticks too where fewer than three of those are in view (a narrow
    range): matplotlib's own labels its minor ticks on a scale of under two decades as
    '3x10^2', '4x10^2', which run into one another."""
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))

    def minor_label(value: float, _: int | None) -> str:
        low, high = sorted(axis.get_view_interval())
        in_view = [tick for tick in axis.get_majorticklocs() if low <= tick <= high]
        return f"{value:g}" if len(in_view) < MIN_MAJOR_TICKS else ""

    axis.set_minor_formatter(FuncFormatter(minor_label))


def histogram(values: torch.Tensor, bins: int = HISTOGRAM_BINS) -> tuple[list[int], list[float]]:
    """Counts of ``values`` in ``bins`` equal bins over ``[0, 1]`` and the bin edges."""
    counts = torch.histc(values.float().clamp(0, 1), bins=bins, min=0.0, max=1.0)
    edges = torch.linspace(0.0, 1.0, bins + 1)
    return [int(c) for c in counts.tolist()], [round(e, 4) for e in edges.tolist()]
