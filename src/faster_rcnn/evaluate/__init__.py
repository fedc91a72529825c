"""Evaluation: Pascal VOC mAP, COCO AP (pycocotools) and the RPN's proposal recall."""

from .coco_ap import STAT_NAMES, COCOEvaluator
from .proposal_recall import AR_IOU_THRESHOLDS, ProposalRecallEvaluator, greedy_coverage
from .runner import EvaluationResult, evaluate_detector
from .voc_map import VOCEvaluator, VOCResult, voc_ap

__all__ = [
    "AR_IOU_THRESHOLDS",
    "STAT_NAMES",
    "COCOEvaluator",
    "EvaluationResult",
    "ProposalRecallEvaluator",
    "VOCEvaluator",
    "VOCResult",
    "evaluate_detector",
    "greedy_coverage",
    "voc_ap",
]
