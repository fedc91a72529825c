"""A crowded dataset: 3 x 3 mosaics of the generated slides, written in YOLO layout.

    python benchmarks/crowded_slides.py OUT [--train 150] [--test 30]

Each 1440 x 1920 image tiles nine 480 x 640 slides (``faster_rcnn.data.slides``), so it
holds 117-186 objects (about 150): many more than torchvision's 100 detections an image,
with the slides' small rare class (platelets, 23 px once resized to 800) and large rare
class among them. The train split draws its slides with seed 0, the test split with
seed 1. ``recipe_ab.md`` (round 9) trains and evaluates on it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from faster_rcnn.data.slides import CLASS_NAMES, IMAGE_SIZE, SyntheticSlides

GRID = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=150, help="mosaics in the train split")
    parser.add_argument("--test", type=int, default=30, help="mosaics in the test split")
    args = parser.parse_args()
    for split, count, seed in (("train", args.train, 0), ("test", args.test, 1)):
        write_split(args.out, split, count, seed)
    (args.out / "classes.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    print(f"-> {args.out}")


def write_split(root: Path, split: str, count: int, seed: int) -> None:
    """``count`` mosaics as ``images/<split>/mNNNN.jpg`` and ``labels/<split>/mNNNN.txt``."""
    slides = SyntheticSlides(count * GRID * GRID, seed=seed)
    images, labels = root / "images" / split, root / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        tiles = [slides[index * GRID * GRID + k] for k in range(GRID * GRID)]
        mosaic, lines = mosaic_of(tiles)
        pixels = (mosaic * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(images / f"m{index:04d}.jpg", quality=92)
        (labels / f"m{index:04d}.txt").write_text("\n".join(lines) + "\n")


def mosaic_of(tiles: list[tuple[Tensor, dict[str, Tensor]]]) -> tuple[Tensor, list[str]]:
    """The ``(3, H, W)`` mosaic of ``GRID * GRID`` slides, row by row, and its YOLO label
    lines (``class cx cy w h`` as fractions of the mosaic)."""
    height, width = IMAGE_SIZE
    mosaic = torch.zeros(3, height * GRID, width * GRID)
    scale = torch.tensor([width * GRID, height * GRID] * 2)
    lines = []
    for k, (image, target) in enumerate(tiles):
        row, col = divmod(k, GRID)
        mosaic[:, row * height : (row + 1) * height, col * width : (col + 1) * width] = image
        offset = torch.tensor([col * width, row * height] * 2)
        boxes = ((target["boxes"] + offset) / scale).clamp(0, 1)
        centres, sizes = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
        for label, centre, size in zip(target["labels"].tolist(), centres, sizes, strict=True):
            values = " ".join(f"{v:.7f}" for v in (*centre.tolist(), *size.tolist()))
            lines.append(f"{label - 1} {values}")
    return mosaic, lines


if __name__ == "__main__":
    main()
