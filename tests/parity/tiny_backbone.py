"""A tiny two-level backbone in plain PyTorch, built the same way on both sides of the
torchvision parity fixture (no torchvision or faster_rcnn import)."""

from collections import OrderedDict

from torch import Tensor, nn


class TinyBackbone(nn.Module):
    """Conv + ReLU layers giving ``"0"`` (stride 8) and ``"1"`` (stride 16), 16 channels."""

    out_channels = 16

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.down = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, x: Tensor) -> "OrderedDict[str, Tensor]":
        c3 = self.stem(x)
        return OrderedDict([("0", c3), ("1", self.down(c3))])
