"""The arithmetic floor of a detection and of a training step on this machine.

    python benchmarks/arithmetic_floor.py [--presets resnet50_fpn mobilenet_v2_fpn]

Counts the floating-point operations (``torch.utils.flop_counter``: 2 per multiply-add,
convolutions and matrix products) of one eval-mode detection of a 480x640 image (resized
to the preset's size, 1000 proposals into the box head) and of one training step on
``bench_train_step``'s batch (forward and backward), with randomly initialised weights;
times a large fp32 matrix product through the BLAS and through oneDNN and keeps the
faster, the best rate this CPU reaches (on an AMD CPU MKL's AVX2 path reaches half of
oneDNN's AVX-512 rate); and prints their quotient: no implementation of the same
arithmetic runs faster than that on this machine. The counter counts a grouped
convolution's backward pass as dense, so the training figure of a MobileNet is an
overestimate.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench_train_step import training_batch
from faster_rcnn import FasterRCNN
from faster_rcnn.models import preset_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["resnet50_fpn", "mobilenet_v2_fpn"])
    args = parser.parse_args()
    rate = matmul_flops_per_second()
    print(f"fp32 matrix product: {rate / 1e9:.0f} GFLOP/s on {torch.get_num_threads()} threads")
    for preset in args.presets:
        torch.manual_seed(0)
        model = FasterRCNN.from_config(preset_config(preset, 91))
        detection, step = detection_flops(model), training_step_flops(model)
        print(
            f"{preset}: detection {detection / 1e9:.0f} GFLOP (floor {detection / rate:.2f} s), "
            f"training step {step / 1e9:.0f} GFLOP (floor {step / rate:.1f} s)"
        )


def matmul_flops_per_second(size: int = 2048) -> float:
    """The faster of two ways torch multiplies fp32 matrices: the BLAS (``a @ b``) and
    oneDNN (the same product as a 1x1 convolution over a channels-last map). They differ
    by 2x on AMD CPUs, where MKL runs its AVX2 path and oneDNN AVX-512."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    # size x size pixels of size channels, times a size x size kernel: the same product.
    pixels = torch.randn(1, size, 64, size // 64).contiguous(memory_format=torch.channels_last)
    kernel = torch.randn(size, size, 1, 1)
    blas = _median_seconds(lambda: a @ b)
    onednn = _median_seconds(lambda: torch.nn.functional.conv2d(pixels, kernel))
    return 2 * size**3 / min(blas, onednn)


def _median_seconds(call: Callable[[], object], warmup: int = 3, repeats: int = 10) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def detection_flops(model: FasterRCNN) -> int:
    model.eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model([torch.rand(3, 480, 640)])
    return counter.get_total_flops()


def training_step_flops(model: FasterRCNN) -> int:
    model.train()
    images, targets = training_batch()
    with FlopCounterMode(display=False) as counter:
        sum(model(images, targets).values()).backward()
    return counter.get_total_flops()


if __name__ == "__main__":
    main()
