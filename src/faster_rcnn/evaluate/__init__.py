"""Evaluation: Pascal VOC mAP, COCO AP (pycocotools) and the RPN's proposal recall, with
its plots (recall against IoU, against the number of proposals, by object size), and
where each class's AP is lost (false positives by kind, missed objects by stage).

The plots' names are imported when first used (PEP 562's module ``__getattr__``): they
need matplotlib, which the scores alone do not.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .coco_ap import STAT_NAMES, COCOEvaluator
from .error_breakdown import (
    FALSE_POSITIVE_KINDS,
    MISSED_KINDS,
    ErrorBreakdown,
    ErrorBreakdownEvaluator,
)
from .proposal_recall import (
    AR_IOU_THRESHOLDS,
    CURVE_LIMITS,
    SIZE_GROUPS,
    ProposalRecallEvaluator,
    RecallCurves,
    greedy_coverage,
)
from .runner import EvaluationResult, evaluate_detector
from .voc_map import VOCEvaluator, VOCResult, ranked_ap, voc_ap

if TYPE_CHECKING:  # the names as type checkers and editors see them
    from .recall_plots import plot_recall_by_size as plot_recall_by_size
    from .recall_plots import plot_recall_vs_iou as plot_recall_vs_iou
    from .recall_plots import plot_recall_vs_proposals as plot_recall_vs_proposals
    from .recall_plots import write_recall_plots as write_recall_plots

_PLOTS = (
    "plot_recall_by_size",
    "plot_recall_vs_iou",
    "plot_recall_vs_proposals",
    "write_recall_plots",
)

__all__ = [
    "AR_IOU_THRESHOLDS",
    "CURVE_LIMITS",
    "FALSE_POSITIVE_KINDS",
    "MISSED_KINDS",
    "SIZE_GROUPS",
    "STAT_NAMES",
    "COCOEvaluator",
    "ErrorBreakdown",
    "ErrorBreakdownEvaluator",
    "EvaluationResult",
    "ProposalRecallEvaluator",
    "RecallCurves",
    "VOCEvaluator",
    "VOCResult",
    "evaluate_detector",
    "greedy_coverage",
    "plot_recall_by_size",
    "plot_recall_vs_iou",
    "plot_recall_vs_proposals",
    "ranked_ap",
    "voc_ap",
    "write_recall_plots",
]


def __getattr__(name: str) -> Any:
    if name not in _PLOTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(".recall_plots", __name__), name)
    globals()[name] = value  # found directly from now on
    return value
