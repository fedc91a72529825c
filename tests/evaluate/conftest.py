"""A small case with a box of every size and hand-placed proposals, shared by the proposal
recall and recall plot tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from faster_rcnn.evaluate.proposal_recall import ProposalRecallEvaluator

# Image 0: A small (20x20), B medium (50x50); proposals by score: A (IoU 1.0), then B's
# top 30 rows (IoU 0.6). Image 1: C large (120x100), D small (10x30); proposals by score:
# one far from both, C (IoU 1.0), then D's top 24 rows (IoU 0.8). Each box's coverage
# (A, B, C, D): with 1 proposal (1, 0, 0, 0), with 2 (1, .6, 1, 0), with 3 (1, .6, 1, .8).
A, B = [0.0, 0.0, 20.0, 20.0], [100.0, 100.0, 150.0, 150.0]
C, D = [0.0, 0.0, 120.0, 100.0], [200.0, 200.0, 210.0, 230.0]
PROPOSALS = [
    ([A, [100.0, 100.0, 150.0, 130.0]], [0.9, 0.8]),
    ([[300.0, 300.0, 310.0, 310.0], C, [200.0, 200.0, 210.0, 224.0]], [0.9, 0.8, 0.7]),
]
GROUND_TRUTH = [[A, B], [C, D]]


@pytest.fixture
def sized_evaluator() -> Callable[..., ProposalRecallEvaluator]:
    """``make(limits, images=2)``: an evaluator at IoU 0.5 and 0.7 fed the first images."""

    def make(limits: tuple[int, ...], images: int = 2) -> ProposalRecallEvaluator:
        evaluator = ProposalRecallEvaluator(limits=limits, iou_thresholds=(0.5, 0.7))
        proposals = [
            {"boxes": torch.tensor(boxes), "scores": torch.tensor(scores)}
            for boxes, scores in PROPOSALS[:images]
        ]
        evaluator.update(proposals, [{"boxes": torch.tensor(b)} for b in GROUND_TRUTH[:images]])
        return evaluator

    return make
