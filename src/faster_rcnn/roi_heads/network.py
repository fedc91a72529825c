"""The Fast R-CNN head as one module: sample RoIs, pool, classify and refine, post-process.

The submodules are named as in torchvision (``box_roi_pool``, ``box_head``,
``box_predictor``), so the full model's keys read ``roi_heads.box_head.fc6.weight``,
``roi_heads.box_predictor.cls_score.weight`` and so on.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..config import RoIHeadsConfig
from ..ops.boxes import BoxCoder
from .box_head import TwoMLPHead, VGG16BoxHead
from .loss import fastrcnn_loss
from .pooling import MultiScaleRoIAlign, SingleScaleRoIPool
from .postprocess import postprocess_detections
from .predictor import FastRCNNPredictor
from .sampling import ProposalTargetCreator


class RoIHeads(nn.Module):
    """Classifies proposals and refines their boxes; in training, computes the loss.

    Args:
        box_roi_pool: module ``(features, boxes, image_shapes) -> (K, C, S, S)``.
        box_head: module ``(K, C, S, S) -> (K, R)``.
        box_predictor: module ``(K, R) -> ((K, num_classes), (K, 4 * num_classes))``.
        cfg: sampling, loss and post-processing settings (the pooling and layer settings
            in it are used by :meth:`from_config` only).
    """

    def __init__(
        self,
        box_roi_pool: nn.Module,
        box_head: nn.Module,
        box_predictor: nn.Module,
        cfg: RoIHeadsConfig,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.box_roi_pool = box_roi_pool
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.box_coder = BoxCoder(cfg.box_coder_weights)
        self.target_creator = ProposalTargetCreator(
            fg_iou_thresh=cfg.fg_iou_thresh,
            bg_iou_thresh_hi=cfg.bg_iou_thresh_hi,
            bg_iou_thresh_lo=cfg.bg_iou_thresh_lo,
            batch_size_per_image=cfg.batch_size_per_image,
            positive_fraction=cfg.positive_fraction,
            box_coder=self.box_coder,
        )

    @classmethod
    def from_config(cls, cfg: RoIHeadsConfig, in_channels: int, num_classes: int) -> RoIHeads:
        """Build the head a config describes.

        ``cfg.pooler`` picks :class:`MultiScaleRoIAlign` over ``featmap_names``
        (torchvision) or :class:`SingleScaleRoIPool` over the one feature map named (the
        paper); ``cfg.box_head`` picks :class:`TwoMLPHead` or :class:`VGG16BoxHead`, and
        ``cfg.predictor_init_std`` the predictor's initialisation.

        Args:
            cfg: the head's settings.
            in_channels: channels of the pooled feature maps (256 for an FPN, 512 VGG-16).
            num_classes: classes including background.
        """
        pooled_size = in_channels * cfg.output_size**2
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
        elif cfg.pooler == "pool":
            if len(cfg.featmap_names) != 1:
                raise ValueError(
                    f"RoIPool pools one feature map, got featmap_names={cfg.featmap_names}"
                )
            box_roi_pool = SingleScaleRoIPool(cfg.featmap_names[0], cfg.output_size)
        else:
            raise ValueError(f"unknown pooler {cfg.pooler!r}; choose 'align' or 'pool'")
        box_head: nn.Module
        if cfg.box_head == "two_mlp":
            box_head = TwoMLPHead(pooled_size, cfg.representation_size)
        elif cfg.box_head == "vgg16":
            box_head = VGG16BoxHead(pooled_size, cfg.representation_size)
        else:
            raise ValueError(f"unknown box_head {cfg.box_head!r}; choose 'two_mlp' or 'vgg16'")
        box_predictor = FastRCNNPredictor(
            cfg.representation_size, num_classes, cfg.predictor_init_std
        )
        return cls(box_roi_pool, box_head, box_predictor, cfg)

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
                (constants: no gradient flows into them).
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
            sample = self.target_creator(proposals, targets, generator=generator)
            class_logits, box_regression = self.predict(features, sample.proposals, image_shapes)
            loss_classifier, loss_box_reg = fastrcnn_loss(
                class_logits,
                box_regression,
                sample.labels,
                sample.regression_targets,
                beta=self.cfg.smooth_l1_beta,
            )
            return [], {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}

        class_logits, box_regression = self.predict(features, proposals, image_shapes)
        boxes, scores, labels = postprocess_detections(
            class_logits,
            box_regression,
            proposals,
            image_shapes,
            self.box_coder,
            score_thresh=self.cfg.score_thresh,
            nms_thresh=self.cfg.nms_thresh,
            detections_per_img=self.cfg.detections_per_img,
            min_box_size=self.cfg.min_box_size,
        )
        detections = [
            {"boxes": b, "labels": lab, "scores": s}
            for b, s, lab in zip(boxes, scores, labels, strict=True)
        ]
        return detections, {}

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
        box_features = self.box_head(box_features)
        return self.box_predictor(box_features)
