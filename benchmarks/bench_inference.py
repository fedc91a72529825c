"""Median inference time of each preset at its default image size.

    python benchmarks/bench_inference.py [--presets small resnet50_fpn] [--repeats 5]

Each preset runs in eval mode on one random image whose shorter side is the preset's
``min_size`` (aspect 4:3), with randomly initialised weights; the detections of an untrained
model are few or none, so the figure is the network's cost plus proposal selection.
Where torchvision is importable (run this file in its environment), its
``fasterrcnn_resnet50_fpn`` is timed on the same image and the ratio is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch

from faster_rcnn.model import FasterRCNN
from faster_rcnn.models import PRESETS, preset_config


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")

    for name in args.presets:
        torch.manual_seed(0)
        cfg = preset_config(name)
        model = FasterRCNN.from_config(cfg).eval().to(device)
        short = cfg.transform.min_size[-1]
        image = torch.rand(3, short, short * 4 // 3, device=device)
        with torch.inference_mode():
            seconds = median_seconds(partial(model, [image]), args.repeats)
        line = f"{name:18s} {tuple(image.shape[1:])!s:12s} median {seconds * 1000:8.1f} ms"
        if name == "resnet50_fpn":
            line += _torchvision_ratio(image, seconds, args.repeats)
        print(line, flush=True)


def _torchvision_ratio(image: torch.Tensor, ours: float, repeats: int) -> str:
    try:
        from torchvision.models.detection import fasterrcnn_resnet50_fpn
    except ImportError:
        return "   (torchvision: not installed)"
    torch.manual_seed(0)
    peer = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval().to(image.device)
    with torch.inference_mode():
        theirs = median_seconds(partial(peer, [image]), repeats)
    return f"   torchvision {theirs * 1000:8.1f} ms   ours/torchvision {ours / theirs:.2f}"


if __name__ == "__main__":
    main()
