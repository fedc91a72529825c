"""Evaluation: Pascal VOC mAP, COCO AP (pycocotools) and the RPN's proposal recall, with
its plots (recall against IoU, against the number of proposals, by object size)."""

from .coco_ap import STAT_NAMES, COCOEvaluator
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
from .voc_map import VOCEvaluator, VOCResult, voc_ap

__all__ = [
    "AR_IOU_THRESHOLDS",
    "CURVE_LIMITS",
    "SIZE_GROUPS",
    "STAT_NAMES",
    "COCOEvaluator",
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
    "voc_ap",
    "write_recall_plots",
]
