"""Median time of the detection operators: NMS, RoIAlign and RoIPool.

    python benchmarks/bench_ops.py [--device cpu] [--repeats 7] [--threads N]

NMS runs on RPN-like proposals (boxes jittered around about 50 objects plus uniform
clutter, random scores) at IoU 0.7; RoIAlign and RoIPool pool 512 RoIs from a
256 x 200 x 336 feature map (stride 4 of an 800 x 1344 image) to 7 x 7, RoIAlign with
sampling ratio 2, as in torchvision's Faster R-CNN box head. Where torchvision is importable
(run this file in its environment), its operators run on the same inputs: the ratio of
the medians is printed and the outputs are compared. The record goes to
``results/bench_ops.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch
from torch import Tensor

import machine
from faster_rcnn.anchors import AnchorGenerator
from faster_rcnn.models import preset_config
from faster_rcnn.ops import nms, roi_align, roi_pool
from faster_rcnn.rpn.anchor_targets import AnchorTargetCreator

IMAGE_HEIGHT, IMAGE_WIDTH = 800, 1344
FEATURE_STRIDE = 4
NUM_OBJECTS = 50
RESULTS = Path(__file__).parent / "results" / "bench_ops.json"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def median_seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs, after two warm-up runs."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rpn_like_boxes(num_boxes: int, generator: torch.Generator) -> Tensor:
    """``(num_boxes, 4)`` boxes: 80 % jittered around objects, 20 % clutter, in the image."""
    size = torch.tensor([IMAGE_WIDTH, IMAGE_HEIGHT], dtype=torch.float32)
    object_centres = torch.rand(NUM_OBJECTS, 2, generator=generator) * size
    # Object sizes log-uniform between 24 and 400 pixels, aspect ratios 1:2 .. 2:1.
    object_sizes = 24.0 * (400.0 / 24.0) ** torch.rand(NUM_OBJECTS, 1, generator=generator)
    aspect = 2.0 ** (2.0 * torch.rand(NUM_OBJECTS, 1, generator=generator) - 1.0)
    object_wh = object_sizes * torch.cat((aspect.sqrt(), 1.0 / aspect.sqrt()), dim=1)

    num_near = num_boxes * 4 // 5
    owner = torch.randint(NUM_OBJECTS, (num_near,), generator=generator)
    jitter = torch.randn(num_near, 4, generator=generator)
    centres = object_centres[owner] + 0.15 * object_wh[owner] * jitter[:, :2]
    wh = object_wh[owner] * torch.exp(0.2 * jitter[:, 2:])

    num_clutter = num_boxes - num_near
    clutter_centres = torch.rand(num_clutter, 2, generator=generator) * size
    clutter_wh = 16.0 * 2.0 ** (5.0 * torch.rand(num_clutter, 2, generator=generator))

    centres = torch.cat((centres, clutter_centres))
    wh = torch.cat((wh, clutter_wh))
    boxes = torch.cat((centres - wh / 2, centres + wh / 2), dim=1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, IMAGE_WIDTH)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, IMAGE_HEIGHT)
    return boxes[torch.randperm(num_boxes, generator=generator)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    try:
        import torchvision
    except ImportError:
        torchvision = None
    peer = torchvision and torchvision.ops
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    if peer is None:
        print("torchvision: not installed")

    record = {
        "date": date.today().isoformat(),
        "machine": f"{machine.describe()}, {device}",
        "versions": {"torch": torch.__version__},
        "repeats": args.repeats,
        "operators": {},
    }
    if torchvision is not None:
        record["versions"]["torchvision"] = torchvision.__version__
    operators = record["operators"]
    generator = torch.Generator().manual_seed(0)
    for num_boxes in (6000, 12000):
        boxes = rpn_like_boxes(num_boxes, generator).to(device)
        scores = torch.rand(num_boxes, generator=generator).to(device)
        cases = {"ours": lambda b=boxes, s=scores: nms(b, s, 0.7)}
        if peer is not None:
            cases["torchvision"] = lambda b=boxes, s=scores: peer.nms(b, s, 0.7)
        kept = len(nms(boxes, scores, 0.7))
        name = f"nms {num_boxes} boxes ({kept} kept)"
        operators[name] = report(name, cases, device, args.repeats)

    operators.update(anchor_assignment(generator, device, peer, args.repeats))

    features = torch.randn(1, 256, 200, 336, generator=generator).to(device)
    rois = torch.cat((torch.zeros(512, 1), rpn_like_boxes(512, generator)), dim=1).to(device)
    scale = 1.0 / FEATURE_STRIDE
    pooling = {
        "roi_align 512 x 256 x 7 x 7, ratio 2": (
            lambda x: roi_align(x, rois, 7, scale, 2),
            peer and (lambda x: peer.roi_align(x, rois, 7, scale, 2)),
        ),
        "roi_pool 512 x 256 x 7 x 7": (
            lambda x: roi_pool(x, rois, 7, scale),
            peer and (lambda x: peer.roi_pool(x, rois, 7, scale)),
        ),
    }
    trainable = features.clone().requires_grad_()
    for name, (ours, theirs) in pooling.items():
        with torch.inference_mode():
            cases = {"ours": lambda f=ours: f(features)}
            if theirs is not None:
                cases["torchvision"] = lambda f=theirs: f(features)
            operators[name] = report(name, cases, device, args.repeats)
        cases = {"ours": lambda f=ours: forward_backward(f, trainable)}
        if theirs is not None:
            cases["torchvision"] = lambda f=theirs: forward_backward(f, trainable)
        operators[f"{name} + backward"] = report("  + backward", cases, device, args.repeats)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=1) + "\n")
    print(f"-> {args.results}")


def anchor_assignment(
    generator: torch.Generator, device: torch.device, peer, repeats: int
) -> dict[str, dict[str, float]]:
    """Label the ``resnet50_fpn`` anchors of an 800 x 1344 image against 100 boxes (0.7 /
    0.3, best anchors of each box positive): ours as the RPN runs it (the anchors that
    can reach 0.3, from the levels' layout), ours measuring every anchor, and
    torchvision's Matcher on its box_iou; all with the matched boxes gathered."""
    config = preset_config("resnet50_fpn")
    generate = AnchorGenerator(config.anchors.sizes, config.anchors.aspect_ratios)
    maps = [
        torch.empty(1, 1, -(-IMAGE_HEIGHT // s), -(-IMAGE_WIDTH // s)) for s in (4, 8, 16, 32, 64)
    ]
    anchors = generate.image_anchors((IMAGE_HEIGHT, IMAGE_WIDTH), maps).to(device)
    size = (IMAGE_HEIGHT, IMAGE_WIDTH)
    levels = generate.level_grids(size, [(m.shape[-2], m.shape[-1]) for m in maps])
    gt = rpn_like_boxes(100, generator).to(device)
    ours = AnchorTargetCreator.from_config(config)
    cases = {
        "ours": lambda: ours([anchors], [gt], [size], levels)[0][0],
        "ours_every_anchor": lambda: ours([anchors], [gt], [size])[0][0],
    }
    if peer is not None:
        from torchvision.models.detection import _utils as detection_utils

        matcher = detection_utils.Matcher(0.7, 0.3, allow_low_quality_matches=True)

        def theirs() -> Tensor:
            matched = matcher(peer.box_iou(gt, anchors))
            gt[matched.clamp(min=0)]  # the matched boxes, as ours returns them
            labels = (matched >= 0).to(torch.float32)
            labels[matched == matcher.BELOW_LOW_THRESHOLD] = 0.0
            labels[matched == matcher.BETWEEN_THRESHOLDS] = -1.0
            return labels

        cases["torchvision"] = theirs
    name = f"anchor assignment {len(anchors)} anchors x 100 boxes"
    return {name: report(name, cases, device, repeats)}


def forward_backward(op: Callable[[Tensor], Tensor], features: Tensor) -> Tensor:
    """Run ``op`` and back-propagate its sum; returns the gradient of ``features``."""
    features.grad = None
    op(features).sum().backward()
    return features.grad


def report(
    name: str, cases: dict[str, Callable[[], Tensor]], device: torch.device, repeats: int
) -> dict[str, float]:
    """Print the median of each case, the ratio to torchvision and whether they agree;
    returns the medians in milliseconds and the ratio."""
    seconds = {case: median_seconds(fn, device, repeats) for case, fn in cases.items()}
    result = {f"{case}_ms": round(value * 1000, 2) for case, value in seconds.items()}
    line = f"{name:42s} ours {seconds['ours'] * 1000:9.1f} ms"
    if "torchvision" in cases:
        ours, theirs = cases["ours"](), cases["torchvision"]()
        if ours.dtype == torch.int64:
            agree = "identical" if torch.equal(ours, theirs) else "DIFFERENT"
        else:
            agree = f"max abs diff {(ours - theirs).abs().max().item():.2e}"
        line += (
            f"   torchvision {seconds['torchvision'] * 1000:9.1f} ms"
            f"   ours/torchvision {seconds['ours'] / seconds['torchvision']:.2f}   {agree}"
        )
        result["torchvision_over_ours"] = round(seconds["torchvision"] / seconds["ours"], 2)
    print(line, flush=True)
    return result


if __name__ == "__main__":
    main()
