"""Approximate joint training (the default): one network, the four losses summed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..model import FasterRCNN
from .loop import Sample, TrainConfig, train_stage


def train_joint(
    model: FasterRCNN,
    dataset: Sequence[Sample],
    cfg: TrainConfig,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train every trainable parameter on the sum of the RPN and Fast R-CNN losses.

    Proposals are constants for the Fast R-CNN head (no gradient through their
    coordinates), the paper's approximate joint training.
    """
    return train_stage(model, dataset, cfg, on_step=on_step)
