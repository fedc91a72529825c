"""The per-RoI feature extractor between RoI pooling and the class/box predictor."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class TwoMLPHead(nn.Module):
    """Two fully connected layers with ReLU, torchvision's box head for FPN models.

    Args:
        in_channels: size of a flattened pooled RoI (``C * 7 * 7``).
        representation_size: width of both layers (1024).

    The layers keep ``nn.Linear``'s default initialisation, as torchvision does.
    """

    def __init__(self, in_channels: int, representation_size: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: Tensor) -> Tensor:
        """``(K, C, S, S)`` pooled RoIs -> ``(K, representation_size)`` features."""
        x = x.flatten(start_dim=1)
        x = F.relu(self.fc6(x))
        return F.relu(self.fc7(x))


class VGG16BoxHead(nn.Module):
    """VGG-16's fully connected layers fc6 and fc7, as the paper's Fast R-CNN uses them.

    fc6 -> ReLU -> dropout -> fc7 -> ReLU -> dropout. The layers are named ``fc6`` and
    ``fc7`` and have the shapes of the ImageNet VGG-16 classifier's ``classifier.0`` and
    ``classifier.3``, so those pretrained weights load into them; RoI pooling to 7x7 over
    conv5_3's 512 channels gives exactly the input fc6 was trained on.

    Args:
        in_channels: size of a flattened pooled RoI (``512 * 7 * 7``).
        representation_size: width of both layers (4096).
        dropout: drop probability after each layer (0.5; active in training only).
    """

    def __init__(
        self, in_channels: int = 512 * 7 * 7, representation_size: int = 4096, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``(K, C, S, S)`` pooled RoIs -> ``(K, representation_size)`` features."""
        x = x.flatten(start_dim=1)
        x = self.dropout(F.relu(self.fc6(x)))
        return self.dropout(F.relu(self.fc7(x)))
