"""The machine a benchmark record was measured on, in the words every record uses."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from faster_rcnn.train.precision import cpu_has_bfloat16

CPUINFO = Path("/proc/cpuinfo")


def describe() -> str:
    """``"x86_64 AVX512 with bfloat16 (AMD EPYC, family 25 model 17), 2 threads"``: the
    processor's architecture, the widest vector instructions PyTorch's CPU kernels use on
    it, whether it multiplies bfloat16 natively (``train`` then trains in it by default)
    and whether with AMX's matrix tiles (oneDNN's fastest bfloat16 kernels), the
    processor itself where Linux names it, and the threads the kernels run on. The
    project's machines have come both with and without AVX-512, and some kernels differ
    between the two by an order of magnitude (``roi_heads/box_head.py``); AMD EPYCs with
    AVX-512 (family 25 model 17 is Zen 4, family 26 model 2 Zen 5) have differed too, and
    an Intel Xeon with AMX (family 6 model 167) from them."""
    capability = torch.backends.cpu.get_cpu_capability()
    bfloat16 = " with bfloat16" if cpu_has_bfloat16() else ""
    if bfloat16 and _has_amx():
        bfloat16 += " and AMX"
    processor = _processor()
    named = f" ({processor})" if processor else ""
    threads = torch.get_num_threads()
    plural = "" if threads == 1 else "s"
    return f"{platform.machine()} {capability}{bfloat16}{named}, {threads} thread{plural}"


def _has_amx() -> bool:
    """The CPU has AMX's matrix tiles (torch's cpuinfo check; ``False`` in a torch
    without it)."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return check is not None and bool(check())


def _processor() -> str:
    """``"AMD EPYC, family 25 model 17"`` from ``/proc/cpuinfo``'s first processor, or
    ``""`` where there is no such file."""
    if not CPUINFO.is_file():
        return ""
    fields: dict[str, str] = {}
    for line in CPUINFO.read_text().splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    name = fields.get("model name", "")
    if "cpu family" in fields and "model" in fields:
        name += f", family {fields['cpu family']} model {fields['model']}"
    return name
