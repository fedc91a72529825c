"""Non-approximate joint training trains as well as approximate joint training: both
schemes from the same initial weights, on the same batches, for the same steps, scored
on held-out generated images and averaged over three seeds
(``benchmarks/seed_study.md`` has the full-size study)."""

from __future__ import annotations

import statistics
from functools import cache

import pytest
import torch

from faster_rcnn import FasterRCNN
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.evaluate.runner import evaluate_detector
from faster_rcnn.models import small_config
from faster_rcnn.train.non_approximate import non_approximate_trainer
from faster_rcnn.train.train_config import TrainConfig
from faster_rcnn.train.trainer import Trainer

SIZE = 160
STEPS = 240
TRAIN = SyntheticShapes(400, image_size=(SIZE, SIZE), seed=0, max_objects=4)
TEST = SyntheticShapes(60, image_size=(SIZE, SIZE), seed=1, max_objects=4)
SEEDS = (0, 1, 2)


pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.long]


@cache
def trained(scheme: str, seed: int) -> tuple[float, float]:
    """VOC mAP@0.5 and proposal recall at IoU 0.7 of the scheme's model from ``seed``."""
    config = small_config(TRAIN.num_classes).replace(
        transform={"min_size": (SIZE,), "max_size": SIZE}
    )
    torch.manual_seed(seed)
    model = FasterRCNN.from_config(config)
    cfg = TrainConfig(steps=STEPS, batch_size=4, lr=0.02, warmup_steps=20, seed=seed)
    make = non_approximate_trainer if scheme == "non-approximate" else Trainer
    make(model, TRAIN, cfg).fit()
    result = evaluate_detector(model, TEST)
    return result.voc.map, result.proposals["recall@300@0.7"]


def mean_scores(scheme: str) -> tuple[float, float]:
    """:func:`trained`'s two scores, each averaged over :data:`SEEDS`."""
    maps, recalls = zip(*(trained(scheme, seed) for seed in SEEDS), strict=True)
    return statistics.mean(maps), statistics.mean(recalls)


def test_non_approximate_training_reaches_approximate_quality() -> None:
    """Measured (the mean of seeds 0-2): joint 0.768 mAP, recall 0.674; non-approximate
    0.762 and 0.766. For one seed the two schemes' mAP differed by -0.040 to +0.053 over
    ten draws (seeds 0-4, SGD's default and fused arithmetic; seed 0 alone: -0.026), so
    one seed could fail the 0.03 margin with nothing wrong; a mean of three narrows the
    spread by the square root of 3. The rule it replaced (every RoI and both losses move
    the proposals, pooled live) scores 0.736 and 0.541, below both margins."""
    joint_map, joint_recall = mean_scores("joint")
    exact_map, exact_recall = mean_scores("non-approximate")
    assert joint_map > 0.5  # both learned: the comparison is not between failures
    assert exact_map >= joint_map - 0.03, (exact_map, joint_map)
    assert exact_recall >= joint_recall - 0.02, (exact_recall, joint_recall)
