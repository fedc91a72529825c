"""`faster-rcnn anchors --data` on a COCO-like set of thousands of image sizes, wall and
CPU time, as a user runs it.

    python benchmarks/bench_anchors_coco_sizes.py [--images 5000] [--runs 1]
        [--out runs/bench_anchors_coco_sizes]

Writes a COCO folder of ``--images`` images the sizes COCO's come in (long side 640,
short side 240 to 640, 70 % landscape: some 800 sizes) with 1 to 14 boxes each (6 to 480
px, aspect ratios 1/4 to 4); each image file is a hard link to a blank PNG of its size,
whose header the command reads. Times the command (preset ``small``) in a fresh process,
its wall time and its CPU time (user + sys), and writes them to
``results/bench_anchors_coco_sizes.json``.

On the shared 2-core machine under a load of 10-16, 5,000 images (37,352 boxes): before
commit c3089d5, 20 min 9 s wall and 328 s CPU (the coverage measured on 2 threads, one
group an image size: 469 of them in the first 1,000 images); after it, 1 min 35 s and
21.5 s, the printed numbers and anchors.json identical, and 75 s and 24.5 s in the run
recorded in the results; with the whole command on one thread (commit dd97502), 50 s
and 19.3 s, the same text again.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image

import machine
from bench_anchors import random_boxes

RESULTS = Path(__file__).parent / "results" / "bench_anchors_coco_sizes.json"
LONG_SIDE, SHORT_SIDES = 640, (240, 640)
MAX_BOXES = 14


def write_dataset(root: Path, num_images: int, seed: int = 0) -> Path:
    """A COCO folder (``annotations/instances_train.json``, ``images/``) of
    ``num_images`` COCO-sized images; returns ``root``."""
    generator = torch.Generator().manual_seed(seed)
    for folder in ("images", "annotations", "sizes"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(num_images):
        short = int(torch.randint(SHORT_SIDES[0], SHORT_SIDES[1] + 1, (1,), generator=generator))
        landscape = float(torch.rand(1, generator=generator)) < 0.7
        height, width = (short, LONG_SIDE) if landscape else (LONG_SIDE, short)
        blank = root / "sizes" / f"{height}x{width}.png"
        if not blank.exists():
            Image.new("L", (width, height)).save(blank)
        name = f"{image_id:06d}.png"
        if not (root / "images" / name).exists():
            os.link(blank, root / "images" / name)
        images.append({"id": image_id, "file_name": name, "height": height, "width": width})
        count = int(torch.randint(1, MAX_BOXES + 1, (1,), generator=generator))
        for box in random_boxes(height, width, count, generator, sides=(6, 480), max_ratio=4):
            annotations.append(
                {"id": len(annotations), "image_id": image_id, "category_id": 1, "bbox": box}
            )
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "x"}]}
    (root / "annotations" / "instances_train.json").write_text(json.dumps(coco))
    return root


def time_command(data: Path, out: Path) -> dict[str, float]:
    """Wall and CPU seconds of ``faster-rcnn anchors --data``, in a fresh process."""
    command = [sys.executable, "-m", "faster_rcnn", "anchors", "--data", str(data)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {"wall_s": wall, "user_s": user, "sys_s": system}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_anchors_coco_sizes"))
    args = parser.parse_args()
    data = write_dataset(args.out / "data", args.images)
    runs = [time_command(data, args.out / "result") for _ in range(args.runs)]
    for run in runs:
        print(
            f"{args.images} images: {run['wall_s']:.1f} s wall, "
            f"{run['user_s'] + run['sys_s']:.1f} s CPU ({run['sys_s']:.1f} sys)"
        )
    record = {"machine": machine.describe(), "images": args.images, "runs": runs}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
