"""The training memory layout chosen for a backbone on a device."""

import pytest
import torch

from faster_rcnn.config import BACKBONES
from faster_rcnn.train.memory_layout import default_memory_layout

CPU = torch.device("cpu")


@pytest.fixture
def capability(monkeypatch):
    """Set the CPU capability torch reports."""

    def set_to(name: str) -> None:
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: name)

    return set_to


def test_every_backbone_trains_channels_last_on_an_avx512_cpu(capability):
    capability("AVX512")
    for name in [*BACKBONES, "custom"]:
        layout = default_memory_layout(name, CPU)
        assert layout.channels_last, name
        assert layout.line() == (
            "memory layout: channels-last, faster on a CPU with AVX-512 "
            "(--no-channels-last keeps NCHW)"
        )


@pytest.mark.parametrize("cpu", ["AVX2", "DEFAULT"])
def test_without_avx512_only_depthwise_separable_backbones_train_channels_last(capability, cpu):
    capability(cpu)
    chosen = {name: default_memory_layout(name, CPU).channels_last for name in BACKBONES}
    assert chosen == {
        "vgg16": False,
        "resnet50_fpn": False,
        "resnet50_fpn_v2": False,
        "mobilenet_v2_fpn": True,
        "mobilenet_v3_large_fpn": True,
        "small": True,
    }
    # A backbone the table does not describe keeps PyTorch's default.
    assert not default_memory_layout("custom", CPU).channels_last


def test_the_printed_line_names_the_reason_and_the_option_that_overrides_it(capability):
    capability("AVX2")
    assert default_memory_layout("mobilenet_v2_fpn", CPU).line() == (
        "memory layout: channels-last, mobilenet_v2_fpn's depthwise convolutions run several "
        "times faster in it (--no-channels-last keeps NCHW)"
    )
    assert default_memory_layout("resnet50_fpn", CPU).line() == (
        "memory layout: NCHW, resnet50_fpn's convolutions ran faster in it without AVX-512 "
        "(--channels-last for NHWC)"
    )


def test_a_gpu_keeps_nchw_whatever_the_cpu(capability):
    capability("AVX512")
    assert not default_memory_layout("mobilenet_v2_fpn", torch.device("cuda")).channels_last
    assert not default_memory_layout("mobilenet_v2_fpn", torch.device("meta")).channels_last
