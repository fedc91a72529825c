"""The RPN head: a small convolutional network slid over every feature map."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..backbones.training_conv import conv_norm


class RPNHead(nn.Module):
    """3x3 conv + ReLU, then two sibling 1x1 convs: objectness and box deltas per anchor.

    The same weights are applied to every feature level (an FPN shares the head), so every
    level must have the same number of anchors per location. Objectness is one logit per
    anchor read through a sigmoid (``k`` outputs, torchvision), not the paper's two-class
    softmax (``2k`` outputs); the two are equivalent up to parameterisation. Every conv is
    initialised from N(0, 0.01) with zero bias, as in the paper and torchvision.

    Module names and state-dict keys are torchvision's (``conv.0.0.weight``,
    ``cls_logits.weight``, ``bbox_pred.weight``, ...); checkpoints written before
    torchvision moved the conv into a ``Sequential`` (key ``conv.weight``) load as well.

    Args:
        in_channels: channels of the feature maps (the conv keeps this width).
        num_anchors: anchors per location ``A``.
        conv_depth: number of 3x3 conv + ReLU blocks before the sibling layers.
    """

    _version = 2

    def __init__(self, in_channels: int, num_anchors: int, conv_depth: int = 1) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1),
                    nn.ReLU(inplace=True),
                )
                for _ in range(conv_depth)
            )
        )
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, kernel_size=1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, kernel_size=1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.constant_(layer.bias, 0)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Predict for every level.

        Args:
            features: per level, ``(N, C, H_l, W_l)`` feature maps.

        Returns:
            Per level, ``(N, A, H_l, W_l)`` objectness logits and ``(N, 4 * A, H_l, W_l)``
            box deltas (channel ``4 * a + c`` is coordinate ``c`` of anchor ``a``).
        """
        logits, deltas = [], []
        for feature in features:
            hidden = self.conv(feature)
            # In training the 1x1 siblings run as matrix products (training_conv).
            logits.append(conv_norm(self.cls_logits, None, hidden))
            deltas.append(conv_norm(self.bbox_pred, None, hidden))
        return logits, deltas

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        *args: Any,
    ) -> None:
        # Version-1 checkpoints (torchvision's first Faster R-CNN weights) hold a bare conv.
        version = local_metadata.get("version")
        if version is None or version < 2:
            for name in ("weight", "bias"):
                old_key = f"{prefix}conv.{name}"
                if old_key in state_dict:
                    state_dict[f"{prefix}conv.0.0.{name}"] = state_dict.pop(old_key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args)
