"""The precision a model trains in: float32, or mixed precision where it is faster.

Mixed precision (``torch.autocast``) runs the convolutions and matrix products in a 16-bit
type and keeps the weights, their updates and the losses in float32. On CUDA that type is
float16, whose narrow range needs the loss scaled; on a CPU it is bfloat16, which has
float32's range, and it pays only where the CPU multiplies bfloat16 natively (AVX512-BF16,
AMX): there oneDNN runs the convolutions on it; elsewhere it emulates bfloat16, which is
not expected to beat float32 (not measured here), so training stays float32.

On a Zen 4 EPYC with AVX512-BF16 a training step (4 images resized to the preset's size,
one thread) took 0.58 times as long in bfloat16 as in float32 for ``mobilenet_v2_fpn``,
0.73 for ``mobilenet_v3_large_fpn``, 0.46 for ``resnet50_fpn``, 0.49 for ``paper_vgg16``
and about 0.72 for ``small``. Side by side in 20 minutes, ``mobilenet_v2_fpn`` in
bfloat16 fitted 1.6 times the steps on the generated slides, their crowded mosaics and
raccoon, scored as well or better at IoU 0.5 and better at stricter IoUs; ``small`` in 3
minutes on the generated shapes fitted 1.17 times the steps and scored higher too
(``benchmarks/recipe_ab.md``, round 25). So ``train`` uses it by default on such a CPU.
Working around two of oneDNN's bfloat16 kernels later made a ``mobilenet_v2_fpn``
bfloat16 step another 7-10 % shorter (round 26: ``backbones/strided_depthwise.py``,
``roi_heads/box_head.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


def cpu_has_bfloat16() -> bool:
    """This CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), as oneDNN detects it."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without the check
        return False


def mixed_precision_dtype(device_type: str) -> torch.dtype | None:
    """The type mixed precision computes in on a device: float16 on CUDA, bfloat16 on a
    CPU that has it (:func:`cpu_has_bfloat16`), ``None`` (float32 only) elsewhere."""
    if device_type == "cuda":
        return torch.float16
    if device_type == "cpu" and cpu_has_bfloat16():
        return torch.bfloat16
    return None


class Precision(NamedTuple):
    """The precision chosen for training on a CPU, and why.

    Attributes:
        amp: mixed precision (bfloat16 autocast) rather than float32 throughout.
        reason: what made the choice, for the run's log.
    """

    amp: bool
    reason: str

    def line(self) -> str:
        """The choice as ``train`` prints it, with the option that overrides it."""
        if self.amp:
            return f"precision: bfloat16 mixed precision, {self.reason} (--no-amp keeps float32)"
        return f"precision: float32, {self.reason}"


def default_cpu_precision() -> Precision:
    """Mixed precision where this CPU multiplies bfloat16 natively, float32 elsewhere."""
    if cpu_has_bfloat16():
        why = "on a Zen 4 EPYC a training step took 0.46-0.76 times as long in it"
        return Precision(True, why)
    return Precision(False, "this CPU has no bfloat16 instructions")
