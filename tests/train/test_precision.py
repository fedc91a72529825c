"""Which CPUs train in bfloat16 by default: those that multiply it natively only."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from faster_rcnn.host_cpus import is_x86
from faster_rcnn.train.precision import cpu_has_bfloat16, default_cpu_precision

X86 = is_x86()
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags() -> set[str]:
    """The first processor's flags as Linux lists them."""
    for line in CPUINFO.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(
    not (X86 and CPUINFO.is_file() and torch.backends.mkldnn.is_available()),
    reason="needs an x86 Linux CPU and oneDNN",
)
def test_the_check_agrees_with_the_cpus_own_flags() -> None:
    assert cpu_has_bfloat16() == ("avx512_bf16" in cpu_flags())


@pytest.mark.skipif(not X86, reason="the instruction check is x86's")
@pytest.mark.parametrize(
    ("onednn", "avx512_bf16", "expected"),
    [
        (True, True, True),
        # oneDNN says yes on any AVX-512 CPU, where it emulates bfloat16 (1.75-1.87x slower).
        (True, False, False),
        (False, True, False),
    ],
)
def test_an_avx512_cpu_without_bfloat16_instructions_stays_float32(
    monkeypatch, onednn, avx512_bf16, expected
) -> None:
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert cpu_has_bfloat16() is expected
    assert default_cpu_precision().amp is expected


@pytest.mark.skipif(not X86, reason="the instruction check is x86's")
def test_a_torch_without_the_instruction_check_stays_float32(monkeypatch) -> None:
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    assert not cpu_has_bfloat16()


def test_elsewhere_onednns_check_decides(monkeypatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    for onednn in (True, False):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda o=onednn: o)
        assert cpu_has_bfloat16() is onednn
