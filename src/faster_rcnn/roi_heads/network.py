"""The Fast R-CNN head as one module: sample RoIs, pool, classify and refine, post-process.

The submodules are named as in torchvision (``box_roi_pool``, ``box_head``,
``box_predictor``), so the full model's keys read ``roi_heads.box_head.fc6.weight``,
``roi_heads.box_predictor.cls_score.weight`` and so on.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..config import FasterRCNNConfig, RoIHeadsConfig, check_setting
from ..matcher import Matcher, checked_matcher
from ..ops.boxes import BoxCoder, checked_box_coder
from ..samplers import BalancedPositiveNegativeSampler, from_torchvision_sampler
from .box_head import ConvFCHead, TwoMLPHead, VGG16BoxHead, check_head_fits_pooled
from .loss import fastrcnn_loss
from .pooling import MultiScaleRoIAlign, SingleScaleRoIPool
from .postprocess import best_after_nms, detection_candidates
from .predictor import FastRCNNPredictor, predictor_num_classes
from .proposal_gradient import classification_pull, pooled_boxes
from .proposal_targets import PROPOSAL_BANDS, PROPOSAL_MATCHER, ProposalTargetCreator

# torchvision's RoIHeads holds Mask and Keypoint R-CNN's branches too, None in its Faster
# R-CNN; this head has neither.
ABSENT_BRANCHES = {
    "mask_roi_pool": "mask",
    "mask_head": "mask",
    "mask_predictor": "mask",
    "keypoint_roi_pool": "keypoint",
    "keypoint_head": "keypoint",
    "keypoint_predictor": "keypoint",
}
# The head's settings that are fields of RoIHeadsConfig (of the same names), checked by
# the config's rules where torchvision's users set them (``roi_heads.score_thresh = 0.5``).
CONFIG_SETTINGS = (
    "smooth_l1_beta",
    "score_thresh",
    "nms_thresh",
    "detections_per_img",
    "min_box_size",
    "class_nms_thresh",
    "soft_nms_sigma",
    "soft_nms_min_score",
)


class RoIHeads(nn.Module):
    """Classifies proposals and refines their boxes; in training, computes the loss.

    Args:
        box_roi_pool: module ``(features, boxes, image_shapes) -> (K, C, S, S)``.
        box_head: module ``(K, C, S, S) -> (K, R)``.
        box_predictor: module ``(K, R) -> ((K, num_classes), (K, 4 * num_classes))``.
        target_creator: labels the proposals and samples the training RoIs.
        box_coder: the head's box parameterisation (weights 10, 10, 5, 5), which
            ``target_creator`` encodes the regression targets with too.
        smooth_l1_beta: smooth-L1 transition of the box loss.
        score_thresh / nms_thresh / detections_per_img / min_box_size /
            class_nms_thresh / soft_nms_sigma / soft_nms_min_score: how detections
            are selected (see :func:`postprocess_detections`).
    """

    def __init__(
        self,
        box_roi_pool: nn.Module,
        box_head: nn.Module,
        box_predictor: nn.Module,
        *,
        target_creator: ProposalTargetCreator,
        box_coder: BoxCoder,
        smooth_l1_beta: float,
        score_thresh: float,
        nms_thresh: float,
        detections_per_img: int,
        min_box_size: float,
        class_nms_thresh: tuple[float, ...] = (),
        soft_nms_sigma: float = 0.0,
        soft_nms_min_score: float = 0.001,
    ) -> None:
        super().__init__()
        self.box_roi_pool = box_roi_pool
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.target_creator = target_creator
        self.box_coder = box_coder
        self.smooth_l1_beta = smooth_l1_beta
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.min_box_size = min_box_size
        self.class_nms_thresh = class_nms_thresh
        self.soft_nms_sigma = soft_nms_sigma
        self.soft_nms_min_score = soft_nms_min_score

    # torchvision's absent branches, which its users' code reads (``if
    # model.roi_heads.mask_predictor is None``); setting one is refused (__setattr__).
    mask_roi_pool = mask_head = mask_predictor = None
    keypoint_roi_pool = keypoint_head = keypoint_predictor = None

    # The backbone's name and its feature maps' (finest first) where its config names them
    # (not a custom backbone's): a pooler set as box_roi_pool must pool some of them.
    backbone_maps: tuple[str, tuple[str, ...]] | None = None

    def has_mask(self) -> bool:
        """Whether the head predicts masks, as torchvision's asks: never (no Mask R-CNN)."""
        return False

    def has_keypoint(self) -> bool:
        """Whether the head predicts keypoints, as torchvision's asks: never."""
        return False

    def __setattr__(self, name: str, value: object) -> None:
        if name in ABSENT_BRANCHES and value is not None:
            raise ValueError(
                f"roi_heads.{name}: this Faster R-CNN has no {ABSENT_BRANCHES[name]} branch "
                "(torchvision's Mask / Keypoint R-CNN); it detects boxes only"
            )
        if name in CONFIG_SETTINGS:
            check_setting(RoIHeadsConfig, name, value, f"roi_heads.{name}")
        if name == "class_nms_thresh":
            self._check_class_count(value)
        if name == "box_roi_pool":
            self._check_pooled_maps(value)
        if name == "nms_thresh" and value != getattr(self, name, value):
            self._check_nms_thresh_used(value)
        super().__setattr__(name, value)

    def _check_pooled_maps(self, pool: object) -> None:
        """Refuse a pooler (torchvision's users set ``box_roi_pool``) that names none of the
        backbone's feature maps, by the config's rule: it failed only in the forward pass
        or in ``model.config``. One that names no maps (the user's own) is taken."""
        names = getattr(pool, "featmap_names", None)
        if names is None and isinstance(getattr(pool, "featmap_name", None), str):
            names = (pool.featmap_name,)
        if names is None or self.backbone_maps is None:
            return
        backbone, maps = self.backbone_maps
        if set(names).isdisjoint(maps):
            raise ValueError(
                f"roi_heads.box_roi_pool.featmap_names = {tuple(names)!r}: must be among "
                f"{backbone}'s feature maps {maps}"
            )

    def _check_class_count(self, value: object) -> None:
        """Refuse per-class NMS thresholds (torchvision's users set them) that are not one
        per class of the head's predictor, by the config's rule: too few failed in the
        forward pass, too many were taken until ``model.config`` refused them."""
        classes = predictor_num_classes(self.box_predictor)
        if classes is not None:
            name = "roi_heads.class_nms_thresh"
            check_setting(FasterRCNNConfig, name, value, name, {"num_classes": classes})

    def _check_nms_thresh_used(self, value: object) -> None:
        """Refuse a new ``nms_thresh`` (torchvision's users set it) that the head would
        not use: it selects with each class's own threshold, or with Soft-NMS."""
        if self.soft_nms_sigma > 0:
            raise ValueError(
                f"roi_heads.nms_thresh = {value!r} would change nothing: the head selects with "
                f"Soft-NMS (roi_heads.soft_nms_sigma = {self.soft_nms_sigma}), which has no "
                "IoU threshold; set roi_heads.soft_nms_sigma = 0 first for greedy NMS"
            )
        if self.class_nms_thresh:
            raise ValueError(
                f"roi_heads.nms_thresh = {value!r} would change nothing: the head keeps each "
                f"class its own (roi_heads.class_nms_thresh = {self.class_nms_thresh}); set "
                "those, or roi_heads.class_nms_thresh = () first for one threshold"
            )

    @property
    def box_coder(self) -> BoxCoder:
        """The head's box coder, :attr:`target_creator`'s, so that one set here
        (``roi_heads.box_coder = BoxCoder((5.0, 5.0, 2.0, 2.0))``) both encodes the
        training targets and decodes the detections."""
        return self.target_creator.box_coder

    @box_coder.setter
    def box_coder(self, box_coder: BoxCoder) -> None:
        self.target_creator.box_coder = checked_box_coder(box_coder, "roi_heads.box_coder")

    @property
    def proposal_matcher(self) -> Matcher:
        """The proposals' matcher, :attr:`target_creator`'s, where torchvision's users
        find it (``roi_heads.proposal_matcher.high_threshold = 0.6``: its
        ``high_threshold`` is ``fg_iou_thresh``, its ``low_threshold``
        ``bg_iou_thresh_hi``). torchvision's ``Matcher`` set here is converted to one
        labelling alike (background from IoU 0); low-quality matches are refused, given
        or set later: the appended GT boxes leave them nothing to add."""
        return self.target_creator.proposal_matcher

    @proposal_matcher.setter
    def proposal_matcher(self, matcher: Matcher) -> None:
        self.target_creator.proposal_matcher = checked_matcher(
            matcher, PROPOSAL_BANDS, PROPOSAL_MATCHER, best_iou_only=True
        )

    @property
    def fg_bg_sampler(self) -> BalancedPositiveNegativeSampler:
        """The sampler of the training RoIs, :attr:`target_creator`'s, where torchvision's
        users find it (``roi_heads.fg_bg_sampler.batch_size_per_image = 256``); one of
        torchvision's set here becomes this package's."""
        return self.target_creator.fg_bg_sampler

    @fg_bg_sampler.setter
    def fg_bg_sampler(self, sampler: BalancedPositiveNegativeSampler) -> None:
        self.target_creator.fg_bg_sampler = from_torchvision_sampler(sampler)

    @classmethod
    def from_config(
        cls,
        config: FasterRCNNConfig,
        box_head: nn.Module | None = None,
        box_predictor: FastRCNNPredictor | None = None,
    ) -> RoIHeads:
        """Build the head a config describes.

        ``roi_heads.pooler`` picks :class:`MultiScaleRoIAlign` over ``featmap_names``
        (torchvision) or :class:`SingleScaleRoIPool` over the one feature map named (the
        paper); ``roi_heads.box_head`` picks :class:`TwoMLPHead`, :class:`VGG16BoxHead` or
        :class:`ConvFCHead`,
        and ``roi_heads.predictor_init_std`` the predictor's initialisation. The pooled
        maps have ``backbone.out_channels`` channels. A ``box_head`` or ``box_predictor``
        given (one the config describes, given to torchvision's constructor form or a
        preset) is used, with its weights, in place of a fresh one.
        """
        cfg = config.roi_heads
        # Built in the order pooler, head, predictor: with the global generator, the
        # layers draw their initial weights in torchvision's order.
        box_roi_pool: nn.Module
        if cfg.pooler == "align":
            box_roi_pool = MultiScaleRoIAlign(
                cfg.featmap_names,
                cfg.output_size,
                cfg.sampling_ratio,
                aligned=cfg.aligned,
                canonical_scale=cfg.canonical_scale,
                canonical_level=cfg.canonical_level,
            )
        else:
            box_roi_pool = SingleScaleRoIPool(cfg.featmap_names[0], cfg.output_size)
        if box_head is None:
            box_head = _box_head(cfg, config.backbone.out_channels)
        if box_predictor is None:
            box_predictor = FastRCNNPredictor(
                cfg.representation_size, config.num_classes, cfg.predictor_init_std
            )
        box_coder = BoxCoder(cfg.box_coder_weights)
        target_creator = ProposalTargetCreator(
            fg_iou_thresh=cfg.fg_iou_thresh,
            bg_iou_thresh_hi=cfg.bg_iou_thresh_hi,
            bg_iou_thresh_lo=cfg.bg_iou_thresh_lo,
            batch_size_per_image=cfg.batch_size_per_image,
            positive_fraction=cfg.positive_fraction,
            box_coder=box_coder,
            sampler=cfg.sampler,
            gt_jitter=cfg.gt_jitter,
        )
        heads = cls(
            box_roi_pool,
            box_head,
            box_predictor,
            target_creator=target_creator,
            box_coder=box_coder,
            smooth_l1_beta=cfg.smooth_l1_beta,
            score_thresh=cfg.score_thresh,
            nms_thresh=cfg.nms_thresh,
            detections_per_img=cfg.detections_per_img,
            min_box_size=cfg.min_box_size,
            class_nms_thresh=cfg.class_nms_thresh,
            soft_nms_sigma=cfg.soft_nms_sigma,
            soft_nms_min_score=cfg.soft_nms_min_score,
        )
        maps = config.backbone.feature_maps()
        if maps is not None:
            heads.backbone_maps = (config.backbone.name, maps)
        return heads

    def forward(
        self,
        features: Mapping[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Detect (eval) or compute the head's losses (training).

        Args:
            features: backbone feature maps by name, each ``(N, C, Hl, Wl)``.
            proposals: per image, ``(Pi, 4)`` proposals in the resized image's pixels
                (constants, except in non-approximate joint training, where the gradient
                flows through the pooling's sampling positions into them).
            image_shapes: per image, ``(height, width)`` of the resized image.
            targets: training only; per image ``{"boxes": float (Gi, 4), "labels":
                int64 (Gi,)}`` in the resized image's pixels, ``Gi = 0`` allowed.
            generator: random source of the RoI sampler; ``None`` uses the global
                generator in torchvision's order.

        Returns:
            Detections and losses. Training: ``[]`` and ``{"loss_classifier",
            "loss_box_reg"}`` scalars. Eval: per image ``{"boxes": (D, 4), "labels":
            int64 (D,), "scores": (D,)}`` in the resized image's pixels, and ``{}``.
        """
        if self.training:
            if targets is None:
                raise ValueError("the Fast R-CNN head needs targets in training mode")
            return [], self.losses(features, proposals, image_shapes, targets, generator)

        # postprocess_detections' arithmetic: the candidates, then each image's selection.
        detections = [self.select(c) for c in self.candidates(features, proposals, image_shapes)]
        return detections, {}

    def candidates(
        self,
        features: Mapping[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """Eval: every (box, class) pair above the score threshold, before NMS
        (:func:`detection_candidates`; arguments as for :meth:`forward`).

        Returns:
            Per image ``{"boxes": (C, 4), "labels": int64 (C,), "scores": (C,)}`` in the
            resized image's pixels; :meth:`select` keeps the detections among them.
        """
        class_logits, box_regression = self.predict(features, proposals, image_shapes)
        candidates = detection_candidates(
            class_logits,
            box_regression,
            proposals,
            image_shapes,
            self.box_coder,
            score_thresh=self.score_thresh,
            min_box_size=self.min_box_size,
        )
        return [{"boxes": b, "labels": lab, "scores": s} for b, s, lab in candidates]

    def select(self, candidates: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The detections this head keeps of one image's candidates (``{"boxes": (C, 4),
        "labels": (C,), "scores": (C,)}``, any pixels): its per-class NMS or Soft-NMS and
        its ``detections_per_img`` best, by decreasing score."""
        keep, scores = best_after_nms(
            candidates["boxes"],
            candidates["scores"],
            candidates["labels"],
            self.nms_thresh,
            self.class_nms_thresh,
            self.detections_per_img,
            self.soft_nms_sigma,
            self.soft_nms_min_score,
        )
        return {
            "boxes": candidates["boxes"][keep],
            "labels": candidates["labels"][keep],
            "scores": scores,
        }

    def losses(
        self,
        features: Mapping[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]],
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """``{"loss_classifier", "loss_box_reg"}`` on the RoIs sampled from ``proposals``
        (arguments as for :meth:`forward`).

        Proposals that carry a gradient (non-approximate joint training) are pooled as
        constants, and only the classification loss of the foreground RoIs moves them
        (:mod:`~faster_rcnn.roi_heads.proposal_gradient`).
        """
        sample = self.target_creator(proposals, targets, generator=generator)
        moving = any(r.requires_grad for r in sample.proposals)
        rois = pooled_boxes(sample.proposals) if moving else sample.proposals
        class_logits, box_regression = self.predict(features, rois, image_shapes)
        loss_classifier, loss_box_reg = fastrcnn_loss(
            class_logits,
            box_regression,
            sample.labels,
            sample.regression_targets,
            beta=self.smooth_l1_beta,
        )
        if moving:
            pull = classification_pull(loss_classifier, sample.proposals, rois, sample.labels)
            loss_classifier = loss_classifier + pull
        return {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}

    def predict(
        self,
        features: Mapping[str, Tensor],
        boxes: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> tuple[Tensor, Tensor]:
        """Pool, run the box head and the predictor on every box.

        Args:
            features: backbone feature maps by name, each ``(N, C, Hl, Wl)``.
            boxes: per image, ``(Ki, 4)`` RoIs in the resized image's pixels.
            image_shapes: per image, ``(height, width)`` of the resized image.

        Returns:
            ``(K, num_classes)`` class logits and ``(K, 4 * num_classes)`` box deltas,
            ``K = sum Ki``.
        """
        box_features = self.box_roi_pool(features, boxes, image_shapes)
        check_head_fits_pooled(self.box_head, box_features.shape[1:])
        box_features = self.box_head(box_features)
        return self.box_predictor(box_features)


def _box_head(cfg: RoIHeadsConfig, in_channels: int) -> nn.Module:
    """The box head ``cfg.box_head`` names, on pooled RoIs of ``in_channels`` channels."""
    if cfg.box_head == "conv_fc":
        return ConvFCHead(in_channels, cfg.output_size, cfg.representation_size)
    head_type = TwoMLPHead if cfg.box_head == "two_mlp" else VGG16BoxHead
    return head_type(in_channels * cfg.output_size**2, cfg.representation_size)
