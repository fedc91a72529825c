"""The precision a model trains in: float32, or mixed precision where it is faster.

Mixed precision (``torch.autocast``) runs the convolutions and matrix products in a 16-bit
type and keeps the weights, their updates and the losses in float32. On CUDA that type is
float16, whose narrow range needs the loss scaled; on a CPU it is bfloat16, which has
float32's range, and it pays only where the CPU multiplies bfloat16 natively (AVX512-BF16,
AMX): there oneDNN runs the convolutions on it; elsewhere it emulates bfloat16, which was
1.75-1.87 times slower than float32 (:func:`cpu_has_bfloat16`), so training stays float32.

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
``roi_heads/box_head.py``), and running its ReLU6 inside the convolutions 0.69 times as
long (round 44, on an Intel Xeon with AMX: ``backbones/conv_activation.py``). On that
Xeon, 2 threads, the activations fused in both precisions (round 45), bfloat16 took 0.55
times as long as float32 for ``mobilenet_v2_fpn``, 0.76 for ``mobilenet_v3_large_fpn``,
0.25 for ``resnet50_fpn`` and 0.83 for ``small``; on a Zen 5 EPYC (AVX512-BF16 without
AMX, round 50) 0.60, 0.80, 0.44 and 0.86.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from faster_rcnn.host_cpus import is_x86


def cpu_has_bfloat16() -> bool:
    """This CPU multiplies bfloat16 natively (on x86, AVX512-BF16, which every CPU with
    AMX has too) and oneDNN runs bfloat16 on it.

    oneDNN's own check (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) is true on every
    CPU with AVX-512, where oneDNN emulates bfloat16: on a Zen 4 EPYC with oneDNN held to
    AVX-512 without BF16 (``ONEDNN_MAX_CPU_ISA=AVX512_CORE``), a ``mobilenet_v2_fpn``
    training step took 1.75-1.87 times as long in bfloat16 as in float32
    (``benchmarks/recipe_ab.md``, round 27). So on x86 the instructions themselves are
    checked too. On ARM oneDNN's check is already the CPU's bfloat16 extension.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without the check
        return False
    if is_x86():
        return onednn and _has_avx512_bf16()
    return onednn


def _has_avx512_bf16() -> bool:
    """The CPU reports AVX512-BF16 (torch's cpuinfo check; ``False`` in a torch without
    it)."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return check is not None and bool(check())


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
        why = (
            "a training step took 0.46-0.76 times as long in it on a Zen 4 EPYC, "
            "0.44-0.86 on a Zen 5, 0.25-0.83 on a Xeon with AMX"
        )
        return Precision(True, why)
    return Precision(False, "this CPU has no bfloat16 instructions")
