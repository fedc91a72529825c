"""Each backbone convolution with its activation, fused against separate, in float32.

    python benchmarks/conv_activation_layers.py [--repeats 6] [--results FILE]

The convolutions followed by a ReLU or ReLU6 in ResNet-50 and MobileNetV2 (one of each
kind and stage), at the maps of a training batch (4 images of 800x1066, channels-last),
forward and backward, trained weights. Two arms take turns per layer: the activation
inside the convolution's oneDNN call (``backbones/conv_activation.py``, as ``train``
runs it) and the two layers apart. The record keeps each layer's multiply-adds per
output value (``C_in / groups * kh * kw``: the work the activation's pass over the map
is weighed against), each arm's median milliseconds after the first round and the
ratio. Thread count: ``OMP_NUM_THREADS`` (torch's default otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

import machine
from faster_rcnn.backbones.conv_activation import conv_activation, post_op
from faster_rcnn.host_memory import reuse_freed_memory

RESULTS = Path(__file__).parent / "results" / "conv_activation_layers.json"


class Layer(NamedTuple):
    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int
    height: int  # of the input map
    width: int
    activation: nn.Module


RELU, RELU6 = nn.ReLU(inplace=True), nn.ReLU6(inplace=True)
LAYERS = [
    Layer("resnet50 stem 7x7/2", 3, 64, 7, 2, 1, 800, 1066, RELU),
    Layer("resnet50 layer1 1x1 256>64", 256, 64, 1, 1, 1, 200, 267, RELU),
    Layer("resnet50 layer1 3x3 64", 64, 64, 3, 1, 1, 200, 267, RELU),
    Layer("resnet50 layer2 1x1 512>128", 512, 128, 1, 1, 1, 100, 134, RELU),
    Layer("resnet50 layer2 3x3 128", 128, 128, 3, 1, 1, 100, 134, RELU),
    Layer("resnet50 layer3 1x1 1024>256", 1024, 256, 1, 1, 1, 50, 67, RELU),
    Layer("resnet50 layer3 3x3 256", 256, 256, 3, 1, 1, 50, 67, RELU),
    Layer("resnet50 layer4 1x1 2048>512", 2048, 512, 1, 1, 1, 25, 34, RELU),
    Layer("resnet50 layer4 3x3 512", 512, 512, 3, 1, 1, 25, 34, RELU),
    Layer("mobilenet_v2 stem 3x3/2", 3, 32, 3, 2, 1, 800, 1066, RELU6),
    Layer("mobilenet_v2 expand 1x1 16>96", 16, 96, 1, 1, 1, 400, 533, RELU6),
    Layer("mobilenet_v2 depthwise 3x3/2 96", 96, 96, 3, 2, 96, 400, 533, RELU6),
    Layer("mobilenet_v2 expand 1x1 24>144", 24, 144, 1, 1, 1, 200, 267, RELU6),
    Layer("mobilenet_v2 depthwise 3x3 144", 144, 144, 3, 1, 144, 200, 267, RELU6),
    Layer("mobilenet_v2 expand 1x1 64>384", 64, 384, 1, 1, 1, 50, 67, RELU6),
    Layer("mobilenet_v2 depthwise 3x3 384", 384, 384, 3, 1, 384, 50, 67, RELU6),
    Layer("mobilenet_v2 expand 1x1 160>960", 160, 960, 1, 1, 1, 25, 34, RELU6),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    reuse_freed_memory()
    torch.manual_seed(0)
    rows = [_timed(layer, args.repeats) for layer in LAYERS]
    record = {
        "date": date.today().isoformat(),
        "machine": machine.describe(),
        "threads": torch.get_num_threads(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "all"),
        "precision": "float32",
        "batch": "4 images of 800x1066, channels-last, forward and backward",
        "layers": rows,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.results}")


def _timed(layer: Layer, repeats: int) -> dict:
    """One layer's row: its multiply-adds per output value and each arm's median ms."""
    conv = nn.Conv2d(
        layer.in_channels, layer.out_channels, layer.kernel, layer.stride,
        layer.kernel // 2, groups=layer.groups,
    ).to(memory_format=torch.channels_last)  # fmt: skip
    x = torch.randn(4, layer.in_channels, layer.height, layer.width)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    fused_op = post_op(layer.activation)
    arms: dict[str, Callable[[Tensor], Tensor]] = {
        "fused": lambda i: conv_activation(conv, i, conv.weight, conv.bias, fused_op),
        "separate": lambda i: layer.activation(conv(i)),
    }
    with torch.no_grad():
        grad = torch.randn_like(conv(x))
    seconds = {arm: [] for arm in arms}
    for _ in range(repeats):
        for arm, run in arms.items():
            x.grad = None
            conv.zero_grad(set_to_none=True)
            start = time.perf_counter()
            run(x).backward(grad)
            seconds[arm].append(time.perf_counter() - start)
    ms = {arm: 1e3 * statistics.median(s[1:]) for arm, s in seconds.items()}
    ratio = ms["fused"] / ms["separate"]
    macs = layer.in_channels // layer.groups * layer.kernel**2
    print(
        f"{layer.name:34s} {macs:5d} multiply-adds an output  fused {ms['fused']:7.1f} ms"
        f"  separate {ms['separate']:7.1f} ms  ratio {ratio:.3f}",
        flush=True,
    )
    return {
        "layer": layer.name,
        "multiply_adds_per_output": macs,
        "median_ms": {arm: round(m, 1) for arm, m in ms.items()},
        "fused_over_separate": round(ratio, 3),
    }


if __name__ == "__main__":
    main()
