"""A bfloat16 training step with and without the two oneDNN workarounds, alternating.

    python benchmarks/bfloat16_kernels.py [--preset mobilenet_v2_fpn] [--rois 128]
        [--repeats 6] [--results FILE]

On a CPU with bfloat16 instructions, a training step runs under
``torch.autocast("cpu", dtype=torch.bfloat16)`` as ``faster-rcnn train`` runs it there
(channels-last, the recipe's RoIs an image and jittered GT copies), on 4 images of
800x1066 with 4 boxes each. Four arms take turns step by step in one process, on the
same weights (learning rate 0: only the sampled anchors, RoIs and GT copies differ):

- ``both``: the strided depthwise convolutions' input gradient from a stride-1
  convolution's (``backbones/strided_depthwise.py``) and fc6 as a matrix product on up to
  ``BFLOAT16_LINEAR_ROIS`` RoIs (``roi_heads/box_head.py``), as ``train`` runs;
- ``strided_depthwise`` and ``fc6_linear``: one of the two;
- ``neither``: oneDNN's own choices, as before round 26 of ``recipe_ab.md``.

The record keeps each arm's median step after the first round (oneDNN's first calls)
and its ratio to ``neither``. Thread count: ``OMP_NUM_THREADS`` (torch's default
otherwise).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from datetime import date
from pathlib import Path

import torch

import machine
from bench_train_step import training_batch
from faster_rcnn import FasterRCNN
from faster_rcnn.backbones import training_conv
from faster_rcnn.host_memory import reuse_freed_memory
from faster_rcnn.models import preset_config
from faster_rcnn.roi_heads import box_head
from faster_rcnn.train.precision import cpu_has_bfloat16
from faster_rcnn.train.recipe import GT_JITTER

RESULTS = Path(__file__).parent / "results" / "bfloat16_kernels.json"
ARMS = {
    "both": (True, True),
    "strided_depthwise": (True, False),
    "fc6_linear": (False, True),
    "neither": (False, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mobilenet_v2_fpn")
    parser.add_argument("--rois", type=int, default=128, help="RoIs sampled an image")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not cpu_has_bfloat16():
        raise SystemExit("this CPU has no bfloat16 instructions: nothing to measure")
    reuse_freed_memory()
    seconds = alternate(*training_setup(args.preset, args.rois), args.repeats)
    medians = {arm: statistics.median(times[1:]) for arm, times in seconds.items()}
    record = {
        "date": date.today().isoformat(),
        "machine": machine.describe(),
        "threads": torch.get_num_threads(),
        "preset": args.preset,
        "rois_per_image": args.rois,
        "median_step_s": {arm: round(m, 3) for arm, m in medians.items()},
        "over_neither": {arm: round(m / medians["neither"], 3) for arm, m in medians.items()},
        "step_s": {arm: [round(s, 3) for s in times] for arm, times in seconds.items()},
    }
    for arm in ARMS:
        print(f"{arm:18} {medians[arm]:.3f} s  {record['over_neither'][arm]:.3f}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.results}")


def training_setup(preset: str, rois: int, trainable_layers: int | None = None):
    """The model in training mode, channels-last, its SGD optimizer at rate 0, a batch
    (the backbone's last ``trainable_layers`` stages trained, the preset's by default)."""
    torch.manual_seed(0)
    config = preset_config(preset, 4)
    roi_heads = dataclasses.replace(
        config.roi_heads, batch_size_per_image=rois, gt_jitter=GT_JITTER
    )
    backbone = config.backbone
    if trainable_layers is not None:
        backbone = dataclasses.replace(backbone, trainable_layers=trainable_layers)
    model = FasterRCNN.from_config(
        dataclasses.replace(config, roi_heads=roi_heads, backbone=backbone)
    )
    model.to(memory_format=torch.channels_last)
    model.memory_format = torch.channels_last
    model.train()
    images, targets = training_batch()
    images, targets = images * 2, [dict(t, labels=t["labels"] % 3 + 1) for t in targets * 2]
    trained = [p for p in model.parameters() if p.requires_grad]
    return model, torch.optim.SGD(trained, lr=0.0), images, targets


def alternate(model, optimizer, images, targets, repeats: int) -> dict[str, list[float]]:
    """Each arm's step seconds, the arms taking turns ``repeats`` times."""
    strided = training_conv._is_strided_depthwise
    linear_rois = box_head.BFLOAT16_LINEAR_ROIS
    seconds = {arm: [] for arm in ARMS}
    try:
        for _ in range(repeats):
            for arm, (depthwise, fc6) in ARMS.items():
                training_conv._is_strided_depthwise = strided if depthwise else _never
                box_head.BFLOAT16_LINEAR_ROIS = linear_rois if fc6 else 0
                seconds[arm].append(timed_step(model, optimizer, images, targets, True))
    finally:
        training_conv._is_strided_depthwise = strided
        box_head.BFLOAT16_LINEAR_ROIS = linear_rois
    return seconds


def timed_step(model, optimizer, images, targets, bfloat16: bool) -> float:
    """Seconds of one training step: the summed losses, backward, the optimizer's step
    (under bfloat16 autocast where ``bfloat16``)."""
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
        total = sum(model(images, targets).values())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return time.perf_counter() - start


def _never(conv: torch.nn.Conv2d) -> bool:
    return False


if __name__ == "__main__":
    main()
