"""The Fast R-CNN output layers: class scores and class-specific box deltas."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class FastRCNNPredictor(nn.Module):
    """Two sibling linear layers: ``num_classes`` logits and ``4 * num_classes`` deltas.

    Args:
        in_channels: width of the box head's output.
        num_classes: classes including background.
        init_std: ``None`` keeps ``nn.Linear``'s default initialisation (torchvision);
            a number draws the class-score weights from ``N(0, init_std)`` and the box
            weights from ``N(0, init_std / 10)``, with zero biases: the paper's code uses
            0.01 and 0.001 (box targets are normalised to about unit variance, so their
            layer starts ten times quieter).
        generator: random source of the ``init_std`` initialisation; ``None`` uses the
            global generator.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        init_std: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, num_classes * 4)
        if init_std is not None:
            with torch.no_grad():
                self.cls_score.weight.normal_(0.0, init_std, generator=generator)
                self.bbox_pred.weight.normal_(0.0, init_std / 10, generator=generator)
                self.cls_score.bias.zero_()
                self.bbox_pred.bias.zero_()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Predict classes and boxes.

        Args:
            x: ``(K, in_channels)`` RoI features, or ``(K, in_channels, 1, 1)``.

        Returns:
            ``(K, num_classes)`` logits and ``(K, 4 * num_classes)`` deltas, four per
            class in class order.
        """
        if x.dim() == 4 and x.shape[2:] != (1, 1):
            raise ValueError(f"expected (K, C) or (K, C, 1, 1) features, got {tuple(x.shape)}")
        x = x.flatten(start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)


def predictor_num_classes(predictor: nn.Module) -> int | None:
    """The classes (background included) a Fast R-CNN predictor scores: its ``cls_score``
    layer's outputs, checked against its ``bbox_pred``'s four deltas per class.

    Reads :class:`FastRCNNPredictor` and torchvision's alike, so a model follows a
    predictor replaced as in torchvision's fine-tuning tutorial.

    Returns:
        The count, or ``None`` for a predictor without those two ``nn.Linear`` layers.

    Raises:
        ValueError: ``bbox_pred`` does not have four outputs per class of ``cls_score``.
    """
    scores = getattr(predictor, "cls_score", None)
    deltas = getattr(predictor, "bbox_pred", None)
    if not (isinstance(scores, nn.Linear) and isinstance(deltas, nn.Linear)):
        return None
    classes = scores.out_features
    if deltas.out_features != 4 * classes:
        raise ValueError(
            f"the box predictor's bbox_pred has {deltas.out_features} outputs, but its "
            f"cls_score's {classes} classes need {4 * classes} (four deltas per class)"
        )
    return classes
