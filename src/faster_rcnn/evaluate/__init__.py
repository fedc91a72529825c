"""Evaluation: Pascal VOC mAP, COCO AP (pycocotools) and the RPN's proposal recall, with
its plots (recall against IoU, against the number of proposals, by object size), and
where each class's AP is lost (false positives by kind, missed objects by stage)."""

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
from .recall_plots import (
    plot_recall_by_size,
    plot_recall_vs_iou,
    plot_recall_vs_proposals,
    write_recall_plots,
)
from .runner import EvaluationResult, evaluate_detector
from .voc_map import VOCEvaluator, VOCResult, ranked_ap, voc_ap

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
