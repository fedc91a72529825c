"""One training step, ours and torchvision's, from the same weights on the same batch.

    /work/tvenv/bin/python benchmarks/bench_train_step.py [--presets ...] [--rounds 3]
        [--repeats 3]

Run it in torchvision's environment with this package installed there (``pip install
--no-deps -e .``), so that both detectors train on the same torch. For each preset,
torchvision's detector is built the way one is fine-tuned from an ImageNet backbone
(frozen batch norm, the last three stages trainable; randomly initialised, seed 0, since
nothing may be downloaded), saved, and loaded into ours with ``strict=True``. A step is
what a training loop does: both sides' four losses on 2 images of 800x1066 (the size
both resize to, so no resizing) with 4 boxes each, summed, back-propagated, and an SGD
update (momentum 0.9, weight decay 1e-4) of the trainable parameters. Every timing runs
in a fresh process, ours and torchvision's alternating round by round; each process
reports the median of ``--repeats`` steps after one warm-up step and its peak resident
memory (``ru_maxrss``: weights, activations, gradients and the interpreter). The record
keeps the median and range over the rounds and the ratio torchvision / ours. The arms
named by ``--reuse-freed-memory`` keep freed memory for reuse, as ``faster-rcnn``'s
commands do (:mod:`faster_rcnn.host_memory`); those named by ``--channels-last`` run the
model in NHWC memory layout, as ``faster-rcnn train`` does on a CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

import machine
from faster_rcnn.host_memory import reuse_freed_memory

ARMS = ("ours", "torchvision")
PRESETS = ("resnet50_fpn", "mobilenet_v2_fpn")
IMAGE_SIZE = (800, 1066)
BOXES_PER_IMAGE = 4
RESULTS = Path(__file__).parent / "results" / "bench_train_step.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--reuse-freed-memory",
        nargs="+",
        default=[],
        metavar="ARM",
        choices=ARMS,
        help="arms whose process keeps freed memory for reuse, as faster-rcnn's commands do",
    )
    parser.add_argument(
        "--channels-last",
        nargs="+",
        default=[],
        metavar="ARM",
        choices=ARMS,
        help="arms whose model runs in NHWC memory layout, as faster-rcnn train does on a CPU",
    )
    parser.add_argument("--worker", nargs=3, metavar=("ARM", "PRESET", "CHECKPOINT"))
    parser.add_argument("--reuse", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--nhwc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.reuse:
            reuse_freed_memory()
        arm, preset, checkpoint = args.worker
        print(json.dumps(time_arm(arm, preset, Path(checkpoint), args.repeats, args.nhwc)))
        return
    record = {
        "date": date.today().isoformat(),
        "machine": machine.describe(),
        "versions": _versions(),
        "images": [list(IMAGE_SIZE)] * 2,
        "reuse_freed_memory": args.reuse_freed_memory,
        "channels_last": args.channels_last,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "presets": {},
    }
    with tempfile.TemporaryDirectory() as temporary:
        for preset in args.presets:
            checkpoint = Path(temporary) / f"{preset}.pth"
            torch.save(torchvision_detector(preset).state_dict(), checkpoint)
            record["presets"][preset] = measure_preset(preset, checkpoint, args)
            print(json.dumps({preset: record["presets"][preset]}, indent=1), flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=1) + "\n")
    print(f"-> {args.results}")


def measure_preset(preset: str, checkpoint: Path, args: argparse.Namespace) -> dict:
    """Each arm's step time and peak memory, in fresh processes, alternating."""
    runs: dict[str, list[dict]] = {arm: [] for arm in args.arms}
    for _ in range(args.rounds):
        for arm in args.arms:
            worker = [sys.executable, __file__, "--worker", arm, preset, str(checkpoint)]
            worker += ["--repeats", str(args.repeats)]
            if arm in args.reuse_freed_memory:
                worker.append("--reuse")
            if arm in args.channels_last:
                worker.append("--nhwc")
            done = subprocess.run(worker, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{arm} {preset}: {done.stderr.strip().splitlines()[-1]}")
            runs[arm].append(json.loads(done.stdout.splitlines()[-1]))
    result = {}
    for arm, values in runs.items():
        seconds = [run["seconds"] for run in values]
        result[arm] = {
            "median_s": round(statistics.median(seconds), 3),
            "min_s": round(min(seconds), 3),
            "max_s": round(max(seconds), 3),
            "peak_rss_gb": round(max(run["peak_rss_gb"] for run in values), 2),
            "losses": values[0]["losses"],
        }
    if len(result) == len(ARMS):
        ratio = result["torchvision"]["median_s"] / result["ours"]["median_s"]
        result["torchvision_over_ours"] = round(ratio, 3)
    return result


def time_arm(
    arm: str, preset: str, checkpoint: Path, repeats: int, channels_last: bool = False
) -> dict:
    """Median seconds of ``repeats`` training steps after one warm-up, and the peak memory;
    the model in NHWC memory layout with ``channels_last``."""
    if arm == "ours":
        from faster_rcnn import load_torchvision_checkpoint

        model = load_torchvision_checkpoint(checkpoint, preset)
    else:
        model = torchvision_detector(preset)
        model.load_state_dict(torch.load(checkpoint, weights_only=True))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=1e-3, momentum=0.9, weight_decay=1e-4)
    images, targets = training_batch()

    def step() -> dict[str, float]:
        torch.manual_seed(0)  # the same samples each step, whatever the sampler draws
        losses = model(images, targets)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        return {name: round(value.item(), 4) for name, value in losses.items()}

    losses = step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": statistics.median(times), "peak_rss_gb": peak_kb / 2**20, "losses": losses}


def torchvision_detector(preset: str) -> torch.nn.Module:
    """torchvision's detector as fine-tuned from ImageNet weights, randomly initialised."""
    from torchvision.models import mobilenet_v2, resnet50
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import (
        _mobilenet_extractor,
        _resnet_fpn_extractor,
    )
    from torchvision.ops.misc import FrozenBatchNorm2d

    torch.manual_seed(0)
    if preset == "resnet50_fpn":
        backbone = _resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), 3)
        return FasterRCNN(backbone, num_classes=91)
    backbone = _mobilenet_extractor(mobilenet_v2(norm_layer=FrozenBatchNorm2d), True, 3)
    anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    return FasterRCNN(backbone, num_classes=91, rpn_anchor_generator=anchors, rpn_score_thresh=0.05)


def training_batch() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Two random 800x1066 images with four boxes each, of sizes 40 to 400 pixels."""
    generator = torch.Generator().manual_seed(0)
    height, width = IMAGE_SIZE
    images, targets = [], []
    for _ in range(2):
        images.append(torch.rand(3, height, width, generator=generator))
        size = 40 + 360 * torch.rand(BOXES_PER_IMAGE, 2, generator=generator)
        corner = torch.rand(BOXES_PER_IMAGE, 2, generator=generator)
        corner = corner * (torch.tensor([width, height]) - size)
        boxes = torch.cat((corner, corner + size), dim=1)
        labels = torch.randint(1, 91, (BOXES_PER_IMAGE,), generator=generator)
        targets.append({"boxes": boxes, "labels": labels})
    return images, targets


def _versions() -> dict:
    versions = {"torch": torch.__version__}
    try:
        import torchvision

        versions["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    return versions


if __name__ == "__main__":
    main()
