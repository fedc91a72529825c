"""The ``faster-rcnn`` command line."""

from __future__ import annotations

import argparse
import sys
import time

import torch

from .data.synthetic import SyntheticShapes
from .model import FasterRCNN
from .models import small_config
from .ops.boxes import box_iou
from .train.joint import train_joint
from .train.loop import TrainConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="faster-rcnn", description="The Region Proposal Network and Faster R-CNN."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train the small preset on generated images and show what it finds",
        description="Generate synthetic images, train the small preset on the CPU for a "
        "short while, then detect objects in held-out images and report how many it finds.",
    )
    demo.add_argument("--seconds", type=float, default=120.0, help="training time budget")
    demo.add_argument("--train-images", type=int, default=2000)
    demo.add_argument("--test-images", type=int, default=50)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        return run_demo(args)
    except (ValueError, RuntimeError) as error:
        print(f"faster-rcnn: error: {error}", file=sys.stderr)
        return 2


def run_demo(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        raise ValueError("--seconds must be positive")
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    train_set = SyntheticShapes(args.train_images, seed=args.seed)
    test_set = SyntheticShapes(args.test_images, seed=args.seed + 1)
    model = FasterRCNN.from_config(small_config(train_set.num_classes)).to(device)

    cfg = TrainConfig(
        steps=100_000, batch_size=4, max_seconds=args.seconds, seed=args.seed, lr_decay_at=()
    )
    print(f"training the small preset for {args.seconds:.0f} s on {len(train_set)} images")
    start = time.perf_counter()

    def report(step: int, losses: dict[str, float]) -> None:
        if step % 25 == 0:
            parts = "  ".join(f"{k}={v:.3f}" for k, v in losses.items())
            print(f"step {step:4d}  {time.perf_counter() - start:5.0f}s  {parts}", flush=True)

    history = train_joint(model, train_set, cfg, on_step=report)
    print(f"{len(history)} steps in {time.perf_counter() - start:.0f} s")

    model.eval()
    found = total = detections = correct = 0
    with torch.no_grad():
        for image, target in (test_set[i] for i in range(len(test_set))):
            output = model([image.to(device)])[0]
            confident = output["scores"] >= 0.5
            boxes, labels = output["boxes"][confident].cpu(), output["labels"][confident].cpu()
            iou = box_iou(target["boxes"], boxes)
            same_class = target["labels"][:, None] == labels[None, :]
            hits = (iou >= 0.5) & same_class
            found += int(hits.any(dim=1).sum())
            correct += int(hits.any(dim=0).sum())
            total += len(target["boxes"])
            detections += len(boxes)
    print(
        f"held-out images: {len(test_set)}, objects: {total}, detections (score >= 0.5): "
        f"{detections}\nrecall@0.5: {found / max(total, 1):.3f}  "
        f"precision@0.5: {correct / max(detections, 1):.3f}"
    )
    return 0
