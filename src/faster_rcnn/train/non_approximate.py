"""Non-approximate joint training: the third training scheme of the paper.

The paper trains RPN and Fast R-CNN jointly by treating the proposals as constants
("approximate joint training", :func:`~faster_rcnn.train.trainer.detector_losses`),
which ignores the derivative of the detection losses with respect to the proposal
coordinates; it names the exact scheme, which needs "an RoI pooling layer that is
differentiable w.r.t. the box coordinates", and leaves it out of scope. RoIAlign is
that layer (:func:`faster_rcnn.ops.roi_align` is differentiable in the boxes), so here
the Fast R-CNN classification loss also trains the RPN's regression branch through the
proposals.

Where the gradient flows, and where it stops (and why):

- **Proposal coordinates -> RPN deltas -> RPN head, backbone: flows.** Each kept
  proposal is decoded from its anchor's predicted deltas; the classification loss
  reaches them through RoIAlign's bilinear sampling positions. It is large there: on
  trained models (the slides, ``benchmarks/recipe_ab.md`` round 40) 4-10 times the
  gradient of the RPN's own losses on the RPN head and the FPN, and orthogonal to it,
  and the RPN's losses run near twice joint training's. Stopped at the regression
  layer's input, it left them lower without moving the detections beyond the seeds'
  spread, so it flows on, as the paper's exact scheme has it.
- **Which proposals are kept (top-K, minimum size, score threshold, NMS): stops.** A
  discrete choice, made on detached values; the objectness logits get no gradient from
  the detection losses (only from the RPN's own loss).
- **Clipping to the image: flows inside, stops at the border.** A coordinate clipped to
  the border is a constant of the image.
- **Ground-truth boxes appended to the proposals: stop.** They are data.
- **Only the classification loss of foreground RoIs moves the proposals.** Measured on
  a model trained jointly on the generated shapes (``small`` preset, 1420 steps), in the
  coordinates of the foreground RoIs the head samples (``benchmarks/
  proposal_gradients.py``):

  - a *foreground* RoI's classification loss falls as its box settles on its object: the
    loss's descent direction points toward the RoI's GT box (mean cosine 0.75, positive
    for 97 % of the RoIs), which is the RPN's own task;
  - a *background* RoI's classification loss falls as its box moves off every object, so
    its gradient would teach the RPN's shared regression to steer boxes away from them;
  - the *box loss* has its targets held constant (below), so its gradient there says
    only where the head's current prediction would meet a stale target: it is
    orthogonal to the direction of the GT box (mean cosine -0.05), and on the RPN's
    regression weights 4.7 times the norm of the RPN's own box loss, which it drowns.

  So the head pools the RoIs as constants and passes the classification loss's gradient
  of the foreground rows on to the proposals
  (:mod:`~faster_rcnn.roi_heads.proposal_gradient`: one more backward pass through the
  box head). Generated shapes, 3 seeds, mAP@0.5 and proposal recall at IoU 0.7 (300
  proposals): at 355 steps 0.884 and 0.830 against approximate training's 0.871 and
  0.741; at 1420 steps 0.966 and 0.927 against 0.969 and 0.921. With every RoI and both
  losses moving the proposals, it was 0.827 and 0.588 at 355 steps. On raccoon
  (``mobilenet_v2_fpn`` from ImageNet weights, 168 steps) it stays behind: 0.770 against
  0.832, with the same recall (``benchmarks/seed_study.md``).
- **The RoI head's regression targets, matching and sampling: stop.** They are computed
  from the proposals' values; a target that followed the proposal would let the loss
  be lowered by moving the proposal instead of predicting the offset.
- **FPN level of each RoI: stops.** A discrete choice from the box's size.
- **RoIPool: refused.** Its quantised bins have no gradient in the box coordinates, so
  the scheme would silently reduce to the approximate one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from ..config import FasterRCNNConfig
from ..data.dataset import Sample
from ..model import FasterRCNN
from ..rpn.network import RegionProposalNetwork
from .train_config import TrainConfig
from .trainer import Trainer

STAGE = "non_approximate"


@contextmanager
def differentiable_proposals(rpn: RegionProposalNetwork) -> Iterator[None]:
    """While inside, the RPN's proposals carry the gradient of their coordinates."""
    previous, rpn.differentiable_proposals = rpn.differentiable_proposals, True
    try:
        yield
    finally:
        rpn.differentiable_proposals = previous


def non_approximate_losses(
    model: FasterRCNN,
    images: list[Tensor],
    targets: list[dict[str, Tensor]],
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """The four losses of one forward pass in which the Fast R-CNN classification loss of
    the foreground RoIs also reaches the RPN's regression branch through the proposals
    (see the module). The values are those of approximate training."""
    check_box_differentiable(model.config)
    with differentiable_proposals(model.rpn):
        return model(images, targets, generator=generator)


def check_box_differentiable(config: FasterRCNNConfig) -> None:
    """Refuse a model of ``config`` whose RoI pooling has no gradient in the box
    coordinates.

    Raises:
        ValueError: the model pools with RoIPool.
    """
    if config.roi_heads.pooler != "align":
        raise ValueError(
            "non-approximate joint training needs RoIAlign (pooler 'align'): RoIPool's "
            "quantised bins pass no gradient to the box coordinates"
        )


def non_approximate_trainer(
    model: FasterRCNN, dataset: Sequence[Sample], cfg: TrainConfig, **options: Any
) -> Trainer:
    """The stage ``"non_approximate"``: every trainable parameter on
    :func:`non_approximate_losses`; ``options`` as for
    :class:`~faster_rcnn.train.trainer.Trainer` (``out_dir``, ``progress``, ...).

    Raises:
        ValueError: the model pools with RoIPool.
    """
    check_box_differentiable(model.config)
    return Trainer(
        model, dataset, cfg, compute_losses=non_approximate_losses, stage=STAGE, **options
    )
