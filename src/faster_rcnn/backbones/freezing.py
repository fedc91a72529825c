"""Freezing the first stages of an ImageNet-initialised backbone.

Fine-tuning only the top stages is what the paper (py-faster-rcnn leaves conv1_x and
conv2_x of VGG-16 fixed) and torchvision (3 trainable stages by default) do: the low-level
filters transfer as they are and training is cheaper.
"""

from __future__ import annotations

from torch import nn


def check_trainable_layers(trainable_layers: int, num_stages: int, backbone: str) -> None:
    """Raises ``ValueError`` unless ``0 <= trainable_layers <= num_stages``."""
    if not 0 <= trainable_layers <= num_stages:
        raise ValueError(
            f"{backbone}: trainable_layers must be in [0, {num_stages}], got {trainable_layers}"
        )


def freeze_before(stages: list[nn.Module], trainable_layers: int) -> None:
    """Sets ``requires_grad=False`` on every parameter of all but the last ``trainable_layers``.

    Args:
        stages: the backbone's stages, input side first.
        trainable_layers: how many of the last stages stay trainable.
    """
    for stage in stages[: len(stages) - trainable_layers]:
        stage.requires_grad_(False)
