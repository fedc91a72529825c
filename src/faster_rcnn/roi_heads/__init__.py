"""The Fast R-CNN head: RoI sampling, pooling, box head, predictor, loss, detections."""

from .box_head import ConvFCHead, TwoMLPHead, VGG16BoxHead
from .loss import fastrcnn_loss
from .network import RoIHeads
from .pooling import (
    LevelMapper,
    MultiScaleRoIAlign,
    SingleScaleRoIPool,
    infer_scale,
    setup_scales,
)
from .postprocess import postprocess_detections
from .predictor import FastRCNNPredictor
from .proposal_targets import ProposalTargetCreator, SampledRoIs, add_gt_proposals

__all__ = [
    "ConvFCHead",
    "FastRCNNPredictor",
    "LevelMapper",
    "MultiScaleRoIAlign",
    "ProposalTargetCreator",
    "RoIHeads",
    "SampledRoIs",
    "SingleScaleRoIPool",
    "TwoMLPHead",
    "VGG16BoxHead",
    "add_gt_proposals",
    "fastrcnn_loss",
    "infer_scale",
    "postprocess_detections",
    "setup_scales",
]
