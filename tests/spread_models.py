"""Detectors whose scores spread out, for comparing two implementations of one detector.

A freshly initialised detector scores every anchor and every RoI almost alike (the small
preset's objectness logits span 1e-2, 1e-9 apart), so float noise of 1e-8 reorders near
ties and a different box survives NMS: a trained detector does not. :func:`spread_scores`
rescales the heads' last layers so that the logits spread as a trained model's do.
"""

from __future__ import annotations

import torch
from torch import nn

from faster_rcnn import FasterRCNN, models


def spread_scores(model: FasterRCNN, seed: int = 0, reinit_backbone: bool = False) -> FasterRCNN:
    """Rescale the RPN's and the box predictor's last layers: logits with std 2, deltas
    with std 0.3, measured on a random image. ``reinit_backbone`` first draws every
    convolution and linear layer He-normal (a fresh MobileNet's features are ~1e-14)."""
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    with torch.no_grad():
        if reinit_backbone:
            for layer in model.modules():
                if isinstance(layer, (nn.Conv2d, nn.Linear)):
                    std = (2.0 / layer.weight[0].numel()) ** 0.5
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
                    if layer.bias is not None:
                        layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) / 10)
        batch = model.prepare_batch([torch.rand(3, 200, 240, generator=generator)])
        features = model.features(batch.images)
        objectness, deltas = model.rpn.head(list(features.values()))
        _rescale(model.rpn.head.cls_logits, torch.cat([o.flatten() for o in objectness]), 2.0)
        _rescale(model.rpn.head.bbox_pred, torch.cat([d.flatten() for d in deltas]), 0.3)
        proposals, _ = model.rpn.propose(batch.images, features)
        logits, regression = model.roi_heads.predict(features, proposals, batch.images.image_sizes)
        _rescale(model.roi_heads.box_predictor.cls_score, logits, 2.0)
        _rescale(model.roi_heads.box_predictor.bbox_pred, regression, 0.3)
    return model


def _rescale(layer: nn.Module, outputs: torch.Tensor, std: float) -> None:
    factor = std / outputs.std()
    layer.weight.mul_(factor)
    layer.bias.mul_(factor)


def small_detector(num_classes: int = 4, seed: int = 0) -> FasterRCNN:
    """The small preset, scores spread."""
    torch.manual_seed(seed)
    return spread_scores(models.small(num_classes), seed)


def images_of_sizes(sizes: list[tuple[int, int]], seed: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(3, h, w, generator=generator) for h, w in sizes]
