"""The Region Proposal Network: head, anchors, proposal selection and training loss."""

from __future__ import annotations

from collections import UserDict
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..anchors import AnchorGenerator, LevelGrid
from ..config import FasterRCNNConfig, RPNConfig, check_setting
from ..image_list import ImageList
from ..matcher import Matcher, checked_matcher
from ..ops.boxes import BoxCoder, checked_box_coder
from ..samplers import (
    BalancedPositiveNegativeSampler,
    HardNegativeSampler,
    from_torchvision_sampler,
)
from .anchor_targets import ANCHOR_BANDS, AnchorTargetCreator
from .head import RPNHead
from .loss import rpn_loss
from .proposals import select_proposals

# RPNConfig.sampler -> the sampler it names.
SAMPLERS = {"random": BalancedPositiveNegativeSampler, "hard_negative": HardNegativeSampler}


class AnchorScores(NamedTuple):
    """The head's output for every anchor: what the loss needs, before any selection.

    Attributes:
        anchors: per image, ``(A, 4)`` anchors (``A = sum_l H_l * W_l * A_l``).
        objectness: ``(N * A, 1)`` logits, image-major, in the anchors' order.
        pred_bbox_deltas: ``(N * A, 4)`` predicted deltas, same order.
        num_anchors_per_level: ``H_l * W_l * A_l`` per level (per image).
        num_anchor_locations: ``sum_l H_l * W_l`` per image (the paper's N_reg per image).
        levels: where each level's anchors lie among every image's anchors.
    """

    anchors: list[Tensor]
    objectness: Tensor
    pred_bbox_deltas: Tensor
    num_anchors_per_level: list[int]
    num_anchor_locations: int
    levels: list[LevelGrid]


class RPNPrediction(NamedTuple):
    """Everything one RPN pass computes, for the loss and for inspection: the selected
    proposals, then the :class:`AnchorScores` fields they were selected from.

    Attributes:
        boxes: per image, ``(P_i, 4)`` proposals in the resized image's pixels.
        scores: per image, ``(P_i,)`` their objectness probabilities.
    """

    boxes: list[Tensor]
    scores: list[Tensor]
    anchors: list[Tensor]
    objectness: Tensor
    pred_bbox_deltas: Tensor
    num_anchors_per_level: list[int]
    num_anchor_locations: int
    levels: list[LevelGrid]


def concat_box_prediction_layers(
    box_cls: list[Tensor], box_regression: list[Tensor]
) -> tuple[Tensor, Tensor]:
    """Flatten the head's per-level maps into rows that line up with the anchors.

    Args:
        box_cls: per level, ``(N, A * C, H, W)`` scores (``C = 1`` for the RPN).
        box_regression: per level, ``(N, A * 4, H, W)`` deltas.

    Returns:
        ``(N * sum_l H_l W_l A, C)`` scores and ``(N * sum_l H_l W_l A, 4)`` deltas:
        image-major, then level, then location (row-major), then anchor.
    """
    cls_flat, reg_flat = [], []
    for cls_level, reg_level in zip(box_cls, box_regression, strict=True):
        n, a_times_c, h, w = cls_level.shape
        num_anchors = reg_level.shape[1] // 4
        c = a_times_c // num_anchors
        cls_flat.append(_to_anchor_rows(cls_level, n, c, h, w))
        reg_flat.append(_to_anchor_rows(reg_level, n, 4, h, w))
    return torch.cat(cls_flat, dim=1).flatten(0, -2), torch.cat(reg_flat, dim=1).reshape(-1, 4)


def check_head_fits_anchors(predicted: list[int], made: list[int]) -> None:
    """The head must predict, on every level, the anchors a location the generator makes
    (``predicted`` and ``made``, per level): one set as ``rpn.anchor_generator`` with
    another count needs a head of that count.

    Raises:
        ValueError: naming the level and both counts.
    """
    for level, (head_count, generator_count) in enumerate(zip(predicted, made, strict=True)):
        if head_count != generator_count:
            raise ValueError(
                f"rpn.head predicts {head_count} anchors a location but rpn.anchor_generator "
                f"makes {generator_count} on feature level {level}: replace the head as well "
                f"(model.rpn.head = RPNHead(in_channels, {generator_count}))"
            )


# The RPN's proposal limits, torchvision's dicts {"training": n, "testing": n}.
PROPOSAL_LIMITS = ("_pre_nms_top_n", "_post_nms_top_n")
# The RPN's settings that are fields of RPNConfig (of the same names), checked by the
# config's rules where torchvision's users set them (``rpn.nms_thresh = 0.6``).
CONFIG_SETTINGS = (
    "nms_thresh",
    "score_thresh",
    "min_size",
    "loss_normalization",
    "box_loss_weight",
    "smooth_l1_beta",
)
# A mode's key in the proposal limits: the suffix of its RPNConfig fields.
_MODE_FIELDS = {"training": "train", "testing": "test"}


class ProposalLimits(UserDict[str, int]):
    """One of the RPN's proposal limits (``rpn.<name>``, ``name`` one of
    :data:`PROPOSAL_LIMITS`), torchvision's ``{"training": n, "testing": n}``, whose
    limits are checked by their config fields' rules where they are set, in place too
    (``rpn._post_nms_top_n["testing"] = 300``); neither mode's key can be removed."""

    def __init__(self, name: str, limits: Mapping[str, int]) -> None:
        self.name = name
        super().__init__(limits)

    def __setitem__(self, mode: str, limit: int) -> None:
        if mode not in _MODE_FIELDS:
            raise ValueError(
                f"rpn.{self.name}[{mode!r}]: the limits are those of 'training' and 'testing'"
            )
        field = f"{self.name.removeprefix('_')}_{_MODE_FIELDS[mode]}"
        check_setting(RPNConfig, field, limit, f"rpn.{self.name}[{mode!r}]")
        super().__setitem__(mode, limit)

    def __delitem__(self, mode: str) -> None:
        raise ValueError(f"rpn.{self.name}[{mode!r}] cannot be removed: set another limit")


def check_proposal_limits(name: str, limits: object) -> ProposalLimits:
    """``limits`` set as ``rpn.<name>`` (one of :data:`PROPOSAL_LIMITS`), a dict with the
    keys ``"training"`` and ``"testing"``, as a :class:`ProposalLimits` (its limits
    checked as the config's fields).

    Raises:
        ValueError: naming the attribute and the value, or the limit out of range.
    """
    if not isinstance(limits, Mapping) or set(limits) != set(_MODE_FIELDS):
        raise ValueError(
            f"rpn.{name} must be a dict {{'training': n, 'testing': n}}, got {limits!r}"
        )
    return ProposalLimits(name, limits)


def _to_anchor_rows(layer: Tensor, n: int, c: int, h: int, w: int) -> Tensor:
    """``(N, A * C, H, W)`` -> ``(N, H * W * A, C)``."""
    return layer.view(n, -1, c, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, c)


class RegionProposalNetwork(nn.Module):
    """The RPN of Ren et al. (2015), numerically torchvision's for its settings.

    Forward: the head scores and regresses every anchor of every feature level; the deltas
    are decoded into boxes and filtered into proposals (:func:`select_proposals`). In
    training, anchors are labelled (:class:`AnchorTargetCreator`), a balanced batch is
    sampled (random or hard-negative) and :func:`rpn_loss` gives the two losses.

    The proposals are decoded from *detached* deltas, so no gradient flows through their
    coordinates into the RPN from whatever consumes them: the paper's approximate joint
    training. The RPN's own losses train the head (and the backbone behind it). With
    :attr:`differentiable_proposals` set (non-approximate joint training, see
    :mod:`faster_rcnn.train.non_approximate`) the kept proposals carry the gradient of
    their coordinates back to the regression branch; which proposals are kept stays a
    discrete choice that is not differentiated.

    Args:
        anchor_generator: the anchors of every feature level.
        head: maps the list of feature maps to per-level ``(N, A, H, W)`` logits and
            ``(N, 4A, H, W)`` deltas.
        target_creator: labels the anchors against the ground truth.
        fg_bg_sampler: draws the anchors of the loss (random or hard-negative).
        box_coder: the anchors' box parameterisation.
        pre_nms_top_n: boxes kept by score before NMS, per level, in each mode:
            ``{"training": n, "testing": n}``, kept as :attr:`_pre_nms_top_n`, which
            torchvision's users read and set (``rpn._pre_nms_top_n["testing"] = 500``).
        post_nms_top_n: proposals kept after NMS, per image, in each mode: alike, kept
            as :attr:`_post_nms_top_n`.
        nms_thresh / score_thresh / min_size: proposal selection (see
            :func:`select_proposals`).
        loss_normalization / box_loss_weight / smooth_l1_beta: the loss (see
            :func:`rpn_loss`).
    """

    def __init__(
        self,
        anchor_generator: AnchorGenerator,
        head: nn.Module,
        *,
        target_creator: AnchorTargetCreator,
        fg_bg_sampler: BalancedPositiveNegativeSampler | HardNegativeSampler,
        box_coder: BoxCoder,
        pre_nms_top_n: dict[str, int],
        post_nms_top_n: dict[str, int],
        nms_thresh: float,
        score_thresh: float,
        min_size: float,
        loss_normalization: str,
        box_loss_weight: float,
        smooth_l1_beta: float,
    ) -> None:
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.target_creator = target_creator
        self.fg_bg_sampler = fg_bg_sampler
        self.box_coder = box_coder
        self._pre_nms_top_n = pre_nms_top_n
        self._post_nms_top_n = post_nms_top_n
        self.nms_thresh = nms_thresh
        self.score_thresh = score_thresh
        self.min_size = min_size
        self.loss_normalization = loss_normalization
        self.box_loss_weight = box_loss_weight
        self.smooth_l1_beta = smooth_l1_beta
        # A training-time switch, not part of the model: see the class docstring.
        self.differentiable_proposals = False

    @classmethod
    def from_config(
        cls, config: FasterRCNNConfig, head: RPNHead | None = None
    ) -> RegionProposalNetwork:
        """The RPN a config describes, with a fresh :class:`RPNHead` on features of
        ``config.backbone.out_channels`` channels, or ``head`` (one the config describes,
        given to torchvision's constructor form or a preset) with its weights."""
        rpn = config.rpn
        sampler_type = SAMPLERS[rpn.sampler]
        if head is None:
            head = RPNHead(
                config.backbone.out_channels,
                config.anchors.num_anchors_per_location(),
                conv_depth=rpn.head_conv_depth,
            )
        return cls(
            AnchorGenerator.from_config(config),
            head,
            target_creator=AnchorTargetCreator.from_config(config),
            fg_bg_sampler=sampler_type(rpn.batch_size_per_image, rpn.positive_fraction),
            box_coder=BoxCoder(rpn.box_coder_weights),
            pre_nms_top_n={"training": rpn.pre_nms_top_n_train, "testing": rpn.pre_nms_top_n_test},
            post_nms_top_n={
                "training": rpn.post_nms_top_n_train,
                "testing": rpn.post_nms_top_n_test,
            },
            nms_thresh=rpn.nms_thresh,
            score_thresh=rpn.score_thresh,
            min_size=rpn.min_size,
            loss_normalization=rpn.loss_normalization,
            box_loss_weight=rpn.box_loss_weight,
            smooth_l1_beta=rpn.smooth_l1_beta,
        )

    @property
    def proposal_matcher(self) -> Matcher:
        """The anchors' matcher, :attr:`target_creator`'s, where torchvision's users find
        it (``rpn.proposal_matcher.high_threshold = 0.6``: its ``high_threshold`` is
        ``fg_iou_thresh``, its ``low_threshold`` ``bg_iou_thresh``). torchvision's
        ``Matcher`` set here is converted to one labelling alike."""
        return self.target_creator.matcher

    @proposal_matcher.setter
    def proposal_matcher(self, matcher: Matcher) -> None:
        self.target_creator.matcher = checked_matcher(matcher, ANCHOR_BANDS, "rpn.proposal_matcher")

    def __setattr__(self, name: str, value: object) -> None:
        # torchvision's users set model.rpn.anchor_generator; one of torchvision's class
        # lacks what this RPN and the config read (its offset, its level grids).
        if name == "anchor_generator" and not isinstance(value, AnchorGenerator):
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            raise TypeError(
                "rpn.anchor_generator takes faster_rcnn.AnchorGenerator (torchvision's "
                f"sizes and aspect_ratios), got {kind}"
            )
        # ... and model.rpn._pre_nms_top_n = dict(training=2000, testing=1000), which the
        # forward pass reads a mode's limit from.
        if name in PROPOSAL_LIMITS:
            value = check_proposal_limits(name, value)
        if name in CONFIG_SETTINGS:
            check_setting(RPNConfig, name, value, f"rpn.{name}")
        if name == "box_coder":
            value = checked_box_coder(value, "rpn.box_coder")
        if name == "fg_bg_sampler":
            value = from_torchvision_sampler(value)
        super().__setattr__(name, value)

    def pre_nms_top_n(self) -> int:
        """Boxes kept by score before NMS, per level, in the current mode."""
        return self._pre_nms_top_n[self._mode()]

    def post_nms_top_n(self) -> int:
        """Proposals kept after NMS, per image, in the current mode."""
        return self._post_nms_top_n[self._mode()]

    def _mode(self) -> str:
        """The key of the current mode in the proposal limits' dicts."""
        return "training" if self.training else "testing"

    def proposal_limits(self) -> dict[str, int]:
        """The proposal limits set on this module, as the fields of
        :class:`~faster_rcnn.config.RPNConfig`
        (``{"pre_nms_top_n_train": ..., "post_nms_top_n_test": ...}``), each checked
        where it was set (:class:`ProposalLimits`)."""
        fields: dict[str, int] = {}
        for name in PROPOSAL_LIMITS:
            limits = getattr(self, name)
            field = name.removeprefix("_")
            fields[f"{field}_train"] = limits["training"]
            fields[f"{field}_test"] = limits["testing"]
        return fields

    def forward(
        self,
        images: ImageList,
        features: dict[str, Tensor],
        targets: list[dict[str, Tensor]] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Proposals, and in training the RPN losses.

        Args:
            images: the padded batch and each image's own size.
            features: ordered ``{name: (N, C, H_l, W_l)}``, one entry per anchor level.
            targets: training only; per image ``{"boxes": (G_i, 4), ...}`` in the resized
                image's pixels, ``G_i = 0`` allowed.
            generator: random source of the anchor sampler; ``None`` uses the global one
                (torchvision's order of draws).

        Returns:
            Per image ``(P_i, 4)`` proposals, and ``{"loss_objectness", "loss_rpn_box_reg"}``
            in training (an empty dict in eval).
        """
        prediction = self.predict(images, features)
        if not self.training:
            return prediction.boxes, {}
        if targets is None:
            raise ValueError("the RPN needs targets in training mode")
        return prediction.boxes, self.compute_loss(prediction, targets, images, generator)

    def propose(
        self, images: ImageList, features: dict[str, Tensor], post_nms_top_n: int | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Per image ``(P_i, 4)`` proposals and ``(P_i,)`` objectness probabilities, by
        decreasing probability; ``post_nms_top_n`` replaces the mode's own post-NMS limit
        for this call (the first ``n`` of a larger limit are those of limit ``n``)."""
        prediction = self.predict(images, features, post_nms_top_n)
        return prediction.boxes, prediction.scores

    def score_anchors(self, images: ImageList, features: dict[str, Tensor]) -> AnchorScores:
        """Run the head on every level and line its outputs up with the anchors."""
        feature_maps = list(features.values())
        objectness, pred_bbox_deltas = self.head(feature_maps)
        anchors = self.anchor_generator(images, feature_maps)
        check_head_fits_anchors(
            [int(o.shape[1]) for o in objectness], self.anchor_generator.num_anchors_per_location()
        )
        grid_sizes = [(int(o.shape[-2]), int(o.shape[-1])) for o in objectness]
        padded_size = (int(images.tensors.shape[-2]), int(images.tensors.shape[-1]))
        levels = self.anchor_generator.level_grids(padded_size, grid_sizes, list(features))
        num_anchors_per_level = [o[0].numel() for o in objectness]
        num_anchor_locations = sum(o.shape[-2] * o.shape[-1] for o in objectness)
        objectness, pred_bbox_deltas = concat_box_prediction_layers(objectness, pred_bbox_deltas)
        return AnchorScores(
            anchors,
            objectness,
            pred_bbox_deltas,
            num_anchors_per_level,
            num_anchor_locations,
            levels,
        )

    def predict(
        self, images: ImageList, features: dict[str, Tensor], post_nms_top_n: int | None = None
    ) -> RPNPrediction:
        """Score every anchor, decode every anchor and select the proposals, at most
        ``post_nms_top_n`` an image (default the mode's own limit)."""
        if post_nms_top_n is None:
            post_nms_top_n = self.post_nms_top_n()
        scored = self.score_anchors(images, features)
        deltas = scored.pred_bbox_deltas
        if not self.differentiable_proposals:
            deltas = deltas.detach()
        proposals = self.box_coder.decode(deltas, scored.anchors)
        proposals = proposals.view(len(scored.anchors), -1, 4)
        boxes, scores = select_proposals(
            proposals,
            scored.objectness,
            images.image_sizes,
            scored.num_anchors_per_level,
            pre_nms_top_n=self.pre_nms_top_n(),
            post_nms_top_n=post_nms_top_n,
            nms_thresh=self.nms_thresh,
            score_thresh=self.score_thresh,
            min_size=self.min_size,
        )
        return RPNPrediction(boxes, scores, *scored)

    def compute_loss(
        self,
        prediction: AnchorScores | RPNPrediction,
        targets: list[dict[str, Tensor]],
        images: ImageList,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Label the anchors, sample a batch and compute ``{"loss_objectness",
        "loss_rpn_box_reg"}``."""
        anchors = prediction.anchors
        labels, matched_gt_boxes = self.target_creator(
            anchors, [t["boxes"] for t in targets], images.image_sizes, prediction.levels
        )
        regression_targets = self.box_coder.encode(matched_gt_boxes, anchors)
        logits_per_image = list(prediction.objectness.view(len(anchors), -1))
        pos_masks, neg_masks = self.fg_bg_sampler(labels, logits_per_image, generator)
        loss_objectness, loss_rpn_box_reg = rpn_loss(
            prediction.objectness,
            prediction.pred_bbox_deltas,
            labels,
            list(regression_targets),
            pos_masks,
            neg_masks,
            normalization=self.loss_normalization,
            box_loss_weight=self.box_loss_weight,
            beta=self.smooth_l1_beta,
            num_anchor_locations=prediction.num_anchor_locations,
        )
        return {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_rpn_box_reg}
