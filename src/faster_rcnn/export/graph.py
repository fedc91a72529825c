"""The eval-mode detector as one batched graph with fixed-shape tensors, for export.

:class:`DetectionGraph` computes :class:`~faster_rcnn.model.FasterRCNN`'s detections,
step for step (bit for bit from the batch the model's transform builds,
:meth:`DetectionGraph.detect`), but on whole-batch tensors instead of per-image lists, so
that ``torch.export`` can trace it with the batch size and the image size left symbolic.
Where the eager model keeps a varying number of items (proposals that survive NMS,
detections), the graph keeps a fixed number and marks the rest: a score of ``-inf``
inside, ``label 0`` (the background, never a detection) in the output. The two
data-dependent steps, NMS and per-level RoI pooling, are the operators of
:mod:`faster_rcnn.export.graph_ops`, as is the head's Soft-NMS where it has one.

Resizing stays outside the graph (images of one batch are resized each by its own
factor): the input is the batch the model's transform would build, before normalising
(:func:`prepare_graph_inputs`). Normalising, padding's masking and the mapping of the
boxes back to each original image are inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.dataset import as_float_image
from ..model import FasterRCNN
from ..ops.boxes import large_enough
from ..roi_heads.box_head import check_head_fits_pooled
from ..roi_heads.pooling import LevelMapper, MultiScaleRoIAlign, setup_scales
from ..rpn.network import concat_box_prediction_layers
from ..torchvision_options import pooler_fields
from ..transform import ImageTransform, resize_image
from .graph_ops import nms_rows, pool_levels, soft_nms_rows

GRAPH_INPUTS = ("images", "image_sizes", "original_sizes")
GRAPH_OUTPUTS = ("boxes", "scores", "labels")


class DetectionGraph(nn.Module):
    """A :class:`FasterRCNN` in eval mode, batched and of fixed output shape.

    Args:
        model: the detector (float32); its modules are shared, not copied, and the graph
            (so the model) is put in eval mode.

    Raises:
        ValueError: the model is not float32, its RoI pooler is not one the graph pools
            as (:func:`_check_pooler`), or pools another grid than its box head takes
            (:func:`~faster_rcnn.roi_heads.box_head.check_head_fits_pooled`).
    """

    def __init__(self, model: FasterRCNN) -> None:
        super().__init__()
        dtype = next(model.parameters()).dtype
        if dtype != torch.float32:
            raise ValueError(f"export needs a float32 model, this one is {dtype}")
        self.model = model
        config = model.config
        mean, std = config.transform.image_mean, config.transform.image_std
        self.register_buffer("image_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.eval()
        _check_pooler(model.roi_heads.box_roi_pool)
        # Named before tracing: the exporter wraps what fails inside the graph.
        side = model.roi_heads.box_roi_pool.output_size[0]
        pooled = (config.backbone.out_channels, side, side)
        check_head_fits_pooled(model.roi_heads.box_head, pooled)
        self.pooled_names, self.spatial_scales, self.level_mapper = _pooling_levels(model)

    def forward(
        self, images: Tensor, image_sizes: Tensor, original_sizes: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Detect objects in a padded batch.

        Args:
            images: ``(N, 3, H, W)`` float32 in 0..1: each image resized as the model's
                transform does, in the top-left corner; the rest is ignored, and ``H``
                and ``W`` need not be multiples of ``size_divisible`` (padded inside).
            image_sizes: ``(N, 2)`` int64 ``(height, width)`` of each resized image.
            original_sizes: ``(N, 2)`` int64 ``(height, width)`` of each image before
                resizing; the boxes come out in these pixels.

        Returns:
            ``(N, D, 4)`` boxes, ``(N, D)`` scores and ``(N, D)`` int64 labels,
            ``D = detections_per_img``: per image, its detections by decreasing score,
            then rows of label 0 and score 0.
        """
        return self.detect(self._normalize(images, image_sizes), image_sizes, original_sizes)

    def detect(
        self, normalized: Tensor, image_sizes: Tensor, original_sizes: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`forward` on a batch the model's transform has normalised and padded
        (``ImageList.tensors``), sizes and outputs as there."""
        features = self.model.backbone_features(normalized)
        proposals, proposal_valid = self._proposals(
            normalized, list(features.values()), image_sizes
        )
        class_logits, box_regression = self._classify(features, proposals)
        return self._detections(
            class_logits, box_regression, proposals, proposal_valid, image_sizes, original_sizes
        )

    def _normalize(self, images: Tensor, image_sizes: Tensor) -> Tensor:
        """``(images - mean) / std``, 0 outside each image and padded up to a multiple of
        ``size_divisible``, as the transform pads: the anchors' strides are the padded
        size over the feature maps' (a 426 px side's stride-32 map has 14 cells, 30 px
        apart), so a batch left unpadded would be detected with misplaced anchors."""
        divisible = self.model.transform.size_divisible
        height, width = images.shape[-2:]
        # Rounded up by floor division: torch.export failed on the sizes' remainders
        # (-width % divisible) for a MobileNetV3 FPN's four levels.
        padded_height = (height + divisible - 1) // divisible * divisible
        padded_width = (width + divisible - 1) // divisible * divisible
        images = F.pad(images, (0, padded_width - width, 0, padded_height - height))
        normalized = (images - self.image_mean) / self.image_std
        rows = torch.arange(images.shape[-2], device=images.device)
        cols = torch.arange(images.shape[-1], device=images.device)
        inside = (rows.view(1, -1, 1) < image_sizes[:, 0].view(-1, 1, 1)) & (
            cols.view(1, 1, -1) < image_sizes[:, 1].view(-1, 1, 1)
        )
        return torch.where(inside[:, None], normalized, torch.zeros_like(normalized))

    def _proposals(
        self, images: Tensor, feature_maps: list[Tensor], image_sizes: Tensor
    ) -> tuple[Tensor, Tensor]:
        """:func:`~faster_rcnn.rpn.proposals.select_proposals` on the whole batch.

        Returns:
            ``(N, P, 4)`` proposals by decreasing objectness and ``(N, P)`` bool: which are
            real, ``P = post_nms_top_n``.
        """
        rpn = self.model.rpn
        num_images = images.shape[0]
        objectness, deltas = rpn.head(feature_maps)
        anchors = rpn.anchor_generator.image_anchors(images.shape[-2:], feature_maps)
        counts = [level[0].numel() for level in objectness]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        logits, candidates = _top_per_level(
            objectness.reshape(num_images, -1), counts, rpn.pre_nms_top_n()
        )
        deltas = _take(deltas.reshape(num_images, -1, 4), candidates)
        boxes = rpn.box_coder.decode_single(deltas.reshape(-1, 4), anchors[candidates].view(-1, 4))
        boxes = _clip(boxes.view(num_images, -1, 4), image_sizes)
        probabilities = torch.sigmoid(logits)
        # >= as the eager model: score_thresh = 0 keeps every real candidate (a level's
        # padding has logit -inf, probability 0).
        keep = (
            (logits > -torch.inf)
            & large_enough(boxes, rpn.min_size)
            & (probabilities >= rpn.score_thresh)
        )
        scores = torch.where(keep, probabilities, torch.full_like(probabilities, -torch.inf))
        # One NMS row per (image, level): levels never suppress each other.
        rows = len(counts) * num_images
        limit = rpn.post_nms_top_n()
        _, boxes, scores = _nms_rows(
            boxes.view(rows, -1, 4), scores.view(rows, -1), rpn.nms_thresh, limit
        )
        # Levels in order, each by decreasing score: a stable sort breaks ties by level and
        # then by place, as the eager model's sort by anchor index does.
        scores, order = scores.view(num_images, -1).sort(dim=1, descending=True, stable=True)
        order, scores = order[:, :limit], scores[:, :limit]
        return _take(boxes.view(num_images, -1, 4), order), scores > -torch.inf

    def _classify(self, features: dict[str, Tensor], proposals: Tensor) -> tuple[Tensor, Tensor]:
        """Pool every proposal and run the box head and the predictor on it.

        Returns:
            ``(N * P, num_classes)`` class logits and ``(N * P, 4 * num_classes)`` deltas.
        """
        heads = self.model.roi_heads
        num_images, per_image = proposals.shape[:2]
        boxes = proposals.reshape(-1, 4)
        image_index = torch.arange(num_images, device=boxes.device).repeat_interleave(per_image)
        rois = torch.cat((image_index[:, None].to(boxes.dtype), boxes), dim=1)
        if self.level_mapper is None:
            levels = torch.zeros_like(image_index)
        else:
            levels = self.level_mapper([boxes])
        pooler = heads.box_roi_pool
        align = isinstance(pooler, MultiScaleRoIAlign)
        pooled = pool_levels(
            [features[name] for name in self.pooled_names],
            rois,
            levels,
            self.spatial_scales,
            pooler.output_size[0],
            pooler.sampling_ratio if align else 0,
            pooler.aligned if align else False,
            not align,
        )
        return heads.box_predictor(heads.box_head(pooled))

    def _detections(
        self,
        class_logits: Tensor,
        box_regression: Tensor,
        proposals: Tensor,
        proposal_valid: Tensor,
        image_sizes: Tensor,
        original_sizes: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:func:`~faster_rcnn.roi_heads.postprocess.postprocess_detections` and the
        transform's mapping back, on the whole batch."""
        heads = self.model.roi_heads
        num_images, per_image = proposals.shape[:2]
        num_classes = class_logits.shape[-1]
        boxes = heads.box_coder.decode_single(box_regression, proposals.reshape(-1, 4))
        boxes = _clip(boxes.view(num_images, -1, 4), image_sizes)
        boxes = boxes.view(num_images, per_image, num_classes, 4)[:, :, 1:]
        scores = F.softmax(class_logits, -1).view(num_images, per_image, num_classes)[:, :, 1:]
        keep = (
            proposal_valid[:, :, None]
            & (scores > heads.score_thresh)
            & large_enough(boxes, heads.min_box_size)
        )
        scores = torch.where(keep, scores, torch.full_like(scores, -torch.inf))
        # One NMS row per (image, class): classes never suppress each other.
        limit = heads.detections_per_img
        if heads.soft_nms_sigma > 0:
            rows = num_images * (num_classes - 1)
            kept, boxes, scores = _soft_nms_rows(
                boxes.transpose(1, 2).reshape(rows, per_image, 4),
                scores.transpose(1, 2).reshape(rows, per_image),
                heads.soft_nms_sigma,
                heads.soft_nms_min_score,
                limit,
            )
        else:
            thresholds = heads.class_nms_thresh or (heads.nms_thresh,) * (num_classes - 1)
            kept, boxes, scores = _nms_rows_per_class(
                boxes.transpose(1, 2), scores.transpose(1, 2), thresholds, limit
            )
        labels = torch.arange(1, num_classes, device=boxes.device).repeat_interleave(limit)
        # Equal scores in the eager model's order: by proposal, then by class.
        eager_index = kept.view(num_images, -1) * (num_classes - 1) + labels - 1
        order = eager_index.sort(dim=1, stable=True).indices
        scores, by_score = (
            scores.view(num_images, -1).gather(1, order).sort(dim=1, descending=True, stable=True)
        )
        order, scores = order.gather(1, by_score[:, :limit]), scores[:, :limit]
        found = scores > -torch.inf
        boxes = _to_original(
            _take(boxes.view(num_images, -1, 4), order), image_sizes, original_sizes
        )
        return (
            torch.where(found[:, :, None], boxes, torch.zeros_like(boxes)),
            torch.where(found, scores, torch.zeros_like(scores)),
            torch.where(found, labels[order], torch.zeros_like(order)),
        )


def prepare_graph_inputs(
    transform: ImageTransform, images: list[Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """The inputs of :class:`DetectionGraph` for images as :class:`FasterRCNN` takes them.

    Each image is resized as ``transform`` (the model's) resizes it in eval mode and
    placed in the top-left corner of a zero batch padded to a multiple of
    ``size_divisible``.

    Args:
        transform: the model's transform (``model.transform``).
        images: per image, ``float[3, H_i, W_i]`` in 0..1, or ``uint8`` levels, which
            are scaled to 0..1 before the resize, as the model scales them
            (:func:`~faster_rcnn.data.dataset.as_float_image`).

    Returns:
        ``(N, 3, H, W)`` images, ``(N, 2)`` int64 resized and original sizes.
    """
    min_size, max_size = transform.min_size[-1], transform.max_size
    resized = [resize_image(as_float_image(image), min_size, max_size) for image in images]
    return (
        transform.batch(resized),
        torch.tensor([image.shape[-2:] for image in resized], dtype=torch.int64),
        torch.tensor([image.shape[-2:] for image in images], dtype=torch.int64),
    )


def _check_pooler(pooler: nn.Module) -> None:
    """Refuse a RoI pooler the graph does not pool as: :func:`pool_levels` stands for
    exactly this package's :class:`MultiScaleRoIAlign` or
    :class:`~faster_rcnn.roi_heads.pooling.SingleScaleRoIPool` of a square grid, reading
    their settings; a subclass's own ``forward``, a rectangular grid or a module of
    another class would be pooled otherwise, or not at all."""
    if pooler_fields(pooler) is None:
        raise ValueError(
            f"model.roi_heads.box_roi_pool is {type(pooler).__name__}({pooler.extra_repr()}): "
            "export pools as faster_rcnn.roi_heads.MultiScaleRoIAlign or SingleScaleRoIPool "
            "of a square grid do, and would not pool as this one does"
        )


def _pooling_levels(model: FasterRCNN) -> tuple[list[str], list[float], LevelMapper | None]:
    """The feature maps the RoI head pools from, their scales, and the level mapper
    (``None`` for one map), inferred as the eager pooler infers them, from a probe."""
    pooler = model.roi_heads.box_roi_pool
    named = getattr(pooler, "featmap_names", None) or [pooler.featmap_name]
    size = 512  # a multiple of every stride, so each scale is exact
    with torch.no_grad():
        probe = model.backbone_features(torch.zeros(1, 3, size, size))
    # Those the backbone returns, in its order, as the eager pooler selects them.
    names = [name for name in probe if name in named]
    scales, mapper = setup_scales(
        [probe[name] for name in names],
        [(size, size)],
        getattr(pooler, "canonical_scale", 224),
        getattr(pooler, "canonical_level", 4),
    )
    return names, scales, mapper if len(names) > 1 else None


def _top_per_level(objectness: Tensor, counts: list[int], top_n: int) -> tuple[Tensor, Tensor]:
    """Each level's ``top_n`` best logits and their anchors, padded with ``-inf`` where a
    level has fewer anchors: ``(N, L * top_n)`` logits and int64 indices."""
    logits, indices, start = [], [], 0
    for count in counts:
        level = objectness.narrow(1, start, count)
        values, positions = level.topk(torch.sym_min(top_n, count), dim=1)
        missing = top_n - values.shape[1]
        logits.append(F.pad(values, (0, missing), value=-torch.inf))
        indices.append(F.pad(positions + start, (0, missing), value=0))
        start += count
    return torch.cat(logits, dim=1), torch.cat(indices, dim=1)


def _nms_rows(
    boxes: Tensor, scores: Tensor, iou_threshold: float, limit: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Per row, the first ``limit`` boxes NMS keeps: their indices (``-1`` after the kept
    ones), boxes and scores (``-inf`` after the kept ones); ``(R, limit)``,
    ``(R, limit, 4)`` and ``(R, limit)``."""
    kept = nms_rows(boxes, scores, iou_threshold, limit)
    found = kept >= 0
    index = kept.clamp(min=0)
    kept_scores = scores.gather(1, index)
    return (
        kept,
        _take(boxes, index),
        torch.where(found, kept_scores, torch.full_like(kept_scores, -torch.inf)),
    )


def _nms_rows_per_class(
    boxes: Tensor, scores: Tensor, thresholds: Sequence[float], limit: int
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`_nms_rows` over ``(N, K, M, 4)`` boxes and ``(N, K, M)`` scores with class
    ``k`` at ``thresholds[k]``: one call per threshold, over the classes that have it.

    Returns:
        As :func:`_nms_rows`, rows ordered by image, then class: ``(N K, limit)``,
        ``(N K, limit, 4)`` and ``(N K, limit)``.
    """
    num_images, num_classes, per_image = scores.shape
    groups: dict[float, list[int]] = {}
    for k, threshold in enumerate(thresholds):
        groups.setdefault(threshold, []).append(k)
    if len(groups) == 1:
        rows = num_images * num_classes
        return _nms_rows(
            boxes.reshape(rows, per_image, 4), scores.reshape(rows, per_image), thresholds[0], limit
        )
    parts = []
    for threshold, classes in groups.items():
        index = torch.tensor(classes, device=boxes.device)
        rows = num_images * len(classes)
        found = _nms_rows(
            boxes.index_select(1, index).reshape(rows, per_image, 4),
            scores.index_select(1, index).reshape(rows, per_image),
            threshold,
            limit,
        )
        parts.append([t.view(num_images, len(classes), *t.shape[1:]) for t in found])
    # Back to class order: the groups' classes, concatenated, are a permutation of them.
    order = torch.tensor([k for classes in groups.values() for k in classes]).argsort()
    order = order.to(boxes.device)
    joined = (
        torch.cat(tensors, dim=1).index_select(1, order) for tensors in zip(*parts, strict=True)
    )
    kept, kept_boxes, kept_scores = (t.flatten(0, 1) for t in joined)
    return kept, kept_boxes, kept_scores


def _soft_nms_rows(
    boxes: Tensor, scores: Tensor, sigma: float, score_threshold: float, limit: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Gaussian Soft-NMS (:func:`~faster_rcnn.ops.batched_soft_nms`) in every row of
    ``(R, M, 4)`` boxes and ``(R, M)`` scores, as :func:`_nms_rows` returns its rows,
    with the lowered scores.

    A row's visits come by non-increasing lowered score, so the best ``limit`` of all
    rows of an image are among each row's first ``limit`` visits: ``limit`` visits give
    what the eager model keeps.
    """
    kept, lowered = soft_nms_rows(boxes, scores, sigma, score_threshold, limit)
    return kept, _take(boxes, kept.clamp(min=0)), lowered


def _take(rows: Tensor, indices: Tensor) -> Tensor:
    """``rows[n, indices[n, k]]`` for ``(N, M, 4)`` rows and ``(N, K)`` indices."""
    return rows.gather(1, indices[:, :, None].expand(-1, -1, rows.shape[-1]))


def _clip(boxes: Tensor, sizes: Tensor) -> Tensor:
    """``(N, M, 4)`` boxes clipped to each image's ``(height, width)`` of ``(N, 2)``."""
    sizes = sizes.to(boxes.dtype)
    upper = torch.stack((sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]), dim=1)
    return torch.minimum(boxes.clamp(min=0), upper[:, None, :])


def _to_original(boxes: Tensor, resized: Tensor, original: Tensor) -> Tensor:
    """``(N, M, 4)`` boxes scaled from resized to original pixels and clipped there, as the
    transform's ``postprocess`` (per-axis float32 ratios)."""
    ratio = original.to(torch.float32) / resized.to(torch.float32)
    ratios = torch.stack((ratio[:, 1], ratio[:, 0], ratio[:, 1], ratio[:, 0]), dim=1)
    return _clip(boxes * ratios[:, None, :], original)
