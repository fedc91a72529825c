"""The whole Fast R-CNN head: construction, training and evaluation forward passes."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
from torch import nn

from faster_rcnn.config import BackboneConfig, FasterRCNNConfig, RoIHeadsConfig
from faster_rcnn.roi_heads import (
    MultiScaleRoIAlign,
    RoIHeads,
    SingleScaleRoIPool,
    TwoMLPHead,
    VGG16BoxHead,
    fastrcnn_loss,
)
from faster_rcnn.roi_heads.predictor import FastRCNNPredictor, predictor_num_classes

NUM_CLASSES = 4
IMAGE_SHAPES = [(128, 128), (112, 128)]


def small_config(**overrides) -> RoIHeadsConfig:
    settings = {"batch_size_per_image": 32, "representation_size": 32, "output_size": 4}
    return RoIHeadsConfig(**{**settings, **overrides})


def heads_from(
    cfg: RoIHeadsConfig, in_channels: int = 8, num_classes: int = NUM_CLASSES
) -> RoIHeads:
    """The head of a model whose custom backbone gives ``in_channels``-channel features."""
    backbone = BackboneConfig(name="custom", out_channels=in_channels)
    config = FasterRCNNConfig(num_classes=num_classes, backbone=backbone, roi_heads=cfg)
    return RoIHeads.from_config(config)


def fpn_features(gen: torch.Generator) -> OrderedDict:
    sizes = {"0": 32, "1": 16, "2": 8, "3": 4, "pool": 2}
    return OrderedDict((k, torch.randn(2, 8, s, s, generator=gen)) for k, s in sizes.items())


def random_proposals(gen: torch.Generator, count: int) -> torch.Tensor:
    xy = torch.rand(count, 2, generator=gen) * 100
    wh = torch.rand(count, 2, generator=gen) * 60 + 4
    return torch.cat([xy, xy + wh], dim=1)


def targets() -> list[dict[str, torch.Tensor]]:
    return [
        {
            "boxes": torch.tensor([[10.0, 10.0, 60.0, 70.0], [70.0, 20.0, 120.0, 60.0]]),
            "labels": torch.tensor([1, 3]),
        },
        # An image without objects in the same batch.
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)},
    ]


def test_from_config_builds_torchvision_modules_and_keys() -> None:
    heads = heads_from(RoIHeadsConfig(), in_channels=256, num_classes=91)
    assert isinstance(heads.box_roi_pool, MultiScaleRoIAlign)
    assert isinstance(heads.box_head, TwoMLPHead)
    assert heads.box_roi_pool.featmap_names == ("0", "1", "2", "3")
    assert {k: tuple(v.shape) for k, v in heads.state_dict().items()} == {
        "box_head.fc6.weight": (1024, 256 * 7 * 7),
        "box_head.fc6.bias": (1024,),
        "box_head.fc7.weight": (1024, 1024),
        "box_head.fc7.bias": (1024,),
        "box_predictor.cls_score.weight": (91, 1024),
        "box_predictor.cls_score.bias": (91,),
        "box_predictor.bbox_pred.weight": (364, 1024),
        "box_predictor.bbox_pred.bias": (364,),
    }


def test_from_config_paper_head() -> None:
    cfg = small_config(
        pooler="pool",
        featmap_names=("0",),
        box_head="vgg16",
        representation_size=64,
        predictor_init_std=0.01,
    )
    heads = heads_from(cfg)
    assert isinstance(heads.box_roi_pool, SingleScaleRoIPool)
    assert isinstance(heads.box_head, VGG16BoxHead)
    assert heads.box_head.fc6.weight.shape == (64, 8 * 4 * 4)
    assert (heads.box_predictor.cls_score.bias == 0).all()
    assert heads.box_predictor.bbox_pred.weight.std() < 0.002
    with pytest.raises(ValueError, match="single feature map with pooler='pool'"):
        small_config(pooler="pool")
    with pytest.raises(ValueError, match="pooler must be one of 'align', 'pool'"):
        small_config(pooler="warp")
    with pytest.raises(ValueError, match="box_head must be one of 'two_mlp', 'vgg16'"):
        small_config(box_head="mlp")


def test_training_forward_gives_finite_losses_that_reach_the_head() -> None:
    torch.manual_seed(0)
    heads = heads_from(small_config()).train()
    gen = torch.Generator().manual_seed(1)
    features = fpn_features(gen)
    for f in features.values():
        f.requires_grad_()
    proposals = [random_proposals(gen, 50), random_proposals(gen, 40)]

    detections, losses = heads(features, proposals, IMAGE_SHAPES, targets(), generator=gen)
    assert detections == []
    assert set(losses) == {"loss_classifier", "loss_box_reg"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    # Untrained logits: the classification loss is near log(num_classes).
    assert abs(losses["loss_classifier"].item() - math.log(NUM_CLASSES)) < 0.5
    assert losses["loss_box_reg"].item() > 0

    sum(losses.values()).backward()
    for name in ("box_head.fc6.weight", "box_head.fc7.weight"):
        assert heads.get_parameter(name).grad.abs().sum() > 0, name
    for name in ("box_predictor.cls_score.weight", "box_predictor.bbox_pred.weight"):
        assert heads.get_parameter(name).grad.abs().sum() > 0, name
    assert features["0"].grad.abs().sum() > 0


def test_training_with_only_empty_images_has_zero_box_loss() -> None:
    torch.manual_seed(2)
    heads = heads_from(small_config()).train()
    gen = torch.Generator().manual_seed(3)
    empty = targets()[1]
    _, losses = heads(
        fpn_features(gen),
        [random_proposals(gen, 20), random_proposals(gen, 20)],
        IMAGE_SHAPES,
        [empty, empty],
        generator=gen,
    )
    assert losses["loss_box_reg"].item() == 0.0
    assert torch.isfinite(losses["loss_classifier"])


def test_training_is_reproducible_with_a_generator_and_needs_targets() -> None:
    torch.manual_seed(4)
    heads = heads_from(small_config()).train()
    gen = torch.Generator().manual_seed(5)
    features = fpn_features(gen)
    proposals = [random_proposals(gen, 200), random_proposals(gen, 200)]
    first = heads(features, proposals, IMAGE_SHAPES, targets(), torch.Generator().manual_seed(9))
    second = heads(features, proposals, IMAGE_SHAPES, targets(), torch.Generator().manual_seed(9))
    torch.testing.assert_close(first[1], second[1], rtol=0, atol=0)
    # The same as sampling, predicting and scoring step by step.
    sample = heads.target_creator(proposals, targets(), generator=torch.Generator().manual_seed(9))
    logits, deltas = heads.predict(features, sample.proposals, IMAGE_SHAPES)
    loss_cls, loss_box = fastrcnn_loss(
        logits, deltas, sample.labels, sample.regression_targets, beta=1 / 9
    )
    torch.testing.assert_close(first[1]["loss_classifier"], loss_cls, rtol=0, atol=0)
    torch.testing.assert_close(first[1]["loss_box_reg"], loss_box, rtol=0, atol=0)
    with pytest.raises(ValueError, match="targets"):
        heads(features, proposals, IMAGE_SHAPES)


def test_eval_forward_gives_valid_detections() -> None:
    torch.manual_seed(6)
    cfg = small_config(score_thresh=0.0, detections_per_img=30)
    heads = heads_from(cfg).eval()
    gen = torch.Generator().manual_seed(7)
    proposals = [random_proposals(gen, 40), random_proposals(gen, 25)]
    with torch.no_grad():
        detections, losses = heads(fpn_features(gen), proposals, IMAGE_SHAPES)
    assert losses == {}
    assert len(detections) == 2
    for det, (height, width) in zip(detections, IMAGE_SHAPES, strict=True):
        assert set(det) == {"boxes", "labels", "scores"}
        boxes, labels, scores = det["boxes"], det["labels"], det["scores"]
        assert 0 < len(boxes) <= 30 and boxes.shape == (len(labels), 4)
        assert labels.dtype == torch.int64
        assert ((labels >= 1) & (labels < NUM_CLASSES)).all()
        assert ((scores > 0) & (scores <= 1)).all()
        assert (scores[:-1] >= scores[1:]).all()
        assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= width).all()
        assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= height).all()


def test_paper_head_trains_and_detects() -> None:
    torch.manual_seed(8)
    cfg = small_config(pooler="pool", featmap_names=("0",), box_head="vgg16", bg_iou_thresh_lo=0.1)
    heads = heads_from(cfg).train()
    gen = torch.Generator().manual_seed(9)
    features = {"0": torch.randn(2, 8, 8, 8, generator=gen)}  # stride 16
    proposals = [random_proposals(gen, 30), random_proposals(gen, 30)]
    _, losses = heads(features, proposals, IMAGE_SHAPES, targets(), generator=gen)
    sum(losses.values()).backward()
    assert heads.box_head.fc6.weight.grad.abs().sum() > 0
    heads.eval()
    with torch.no_grad():
        detections, _ = heads(features, proposals, IMAGE_SHAPES)
    assert len(detections) == 2


def test_predictor_num_classes_reads_the_score_layer_and_checks_the_deltas() -> None:
    assert predictor_num_classes(FastRCNNPredictor(8, 5)) == 5
    assert predictor_num_classes(nn.Linear(8, 5)) is None  # another kind: no count read
    mismatched = FastRCNNPredictor(8, 5)
    mismatched.bbox_pred = nn.Linear(8, 16)
    with pytest.raises(ValueError, match=r"bbox_pred has 16 outputs, but its cls_score's 5 "):
        predictor_num_classes(mismatched)
