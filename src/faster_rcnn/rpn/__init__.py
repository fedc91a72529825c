"""The Region Proposal Network (Ren et al., 2015): head, anchor targets, loss, proposals."""

from .anchor_targets import AnchorTargetCreator
from .head import RPNHead
from .loss import rpn_loss
from .network import (
    AnchorScores,
    RegionProposalNetwork,
    RPNPrediction,
    concat_box_prediction_layers,
)
from .proposals import select_proposals, top_n_per_level

__all__ = [
    "AnchorScores",
    "AnchorTargetCreator",
    "RPNHead",
    "RPNPrediction",
    "RegionProposalNetwork",
    "concat_box_prediction_layers",
    "rpn_loss",
    "select_proposals",
    "top_n_per_level",
]
