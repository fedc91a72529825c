"""The memory layout a model trains faster in on this machine: NHWC or NCHW.

On a CPU, oneDNN either reorders NCHW maps into its blocked layout and back on every
convolution, or runs on NHWC (channels-last) maps directly. Which layout is faster depends
on the CPU and on the convolutions (``benchmarks/recipe_ab.md``, rounds 7, 17 and 18):

- With AVX-512 every preset trained faster in NHWC: ``mobilenet_v2_fpn`` 0.89 s a step
  against 1.33 s, ``resnet50_fpn`` 6.4 s against 8.0.
- Without it (AVX2), oneDNN's NHWC depthwise convolutions still run 3 to 6 times faster
  than its NCHW ones, so the depthwise-separable backbones train a little faster in NHWC
  (a step on the slides, two runs side by side, ``benchmarks/layout_ab.py``:
  ``mobilenet_v2_fpn`` 3.82 s against 4.06, ``mobilenet_v3_large_fpn`` 3.46 against 3.58,
  ``small`` 0.46 against 0.48), while the dense convolutions of ResNet and VGG run much
  slower in NHWC (``resnet50_fpn`` 78.4 s against 52.4, ``vgg16`` 63.0 against 43.1).
- On a GPU the layout stays NCHW unless asked for.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from faster_rcnn.config import BACKBONES


class MemoryLayout(NamedTuple):
    """The layout chosen for a backbone on a device, and why.

    Attributes:
        channels_last: train in NHWC (``torch.channels_last``) rather than NCHW.
        reason: what made the choice, for the run's log.
    """

    channels_last: bool
    reason: str

    def line(self) -> str:
        """The choice as ``train`` prints it, with the option that overrides it."""
        if self.channels_last:
            return f"memory layout: channels-last, {self.reason} (--no-channels-last keeps NCHW)"
        return f"memory layout: NCHW, {self.reason} (--channels-last for NHWC)"


def default_memory_layout(backbone: str, device: torch.device) -> MemoryLayout:
    """The layout that trains ``backbone`` (a :data:`~faster_rcnn.config.BACKBONES` name,
    or ``"custom"``) faster on ``device``, as measured (see the module)."""
    if device.type != "cpu":
        return MemoryLayout(False, f"the default on {device.type}")
    if torch.backends.cpu.get_cpu_capability() == "AVX512":
        return MemoryLayout(True, "faster on a CPU with AVX-512")
    spec = BACKBONES.get(backbone)
    if spec is not None and spec.depthwise:
        return MemoryLayout(
            True, f"{backbone}'s depthwise convolutions run several times faster in it"
        )
    return MemoryLayout(False, f"{backbone}'s convolutions ran faster in it without AVX-512")
