"""Crowded datasets: mosaics of the generated slides, written in YOLO layout.

    python benchmarks/crowded_slides.py OUT [--train 150] [--test 30] [--grid 3]
        [--cells 10 24] [--workers 1]

By default each 1440 x 1920 image tiles 3 x 3 slides of 480 x 640
(``faster_rcnn.data.slides``), so it holds 117-186 objects (about 150): many more than
torchvision's 100 detections an image, with the slides' small rare class (platelets,
23 px once resized to 800) and large rare class among them. ``recipe_ab.md`` (round 9)
trains and evaluates on it. ``--grid 1`` writes the slides themselves, and ``--cells``
changes how many cells a slide holds, so how many overlap each other heavily (round 23:
``--grid 1 --cells 5 12`` and ``--cells 30 50``). The train split draws its slides with
seed 0, the test split with seed 1. A slide depends only on its seed and index, so
``--workers N`` writes the same files, N mosaics at a time (86 s in one process on a
2-core AMD EPYC).
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from faster_rcnn.data.slides import CLASS_NAMES, IMAGE_SIZE, SyntheticSlides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=150, help="mosaics in the train split")
    parser.add_argument("--test", type=int, default=30, help="mosaics in the test split")
    parser.add_argument("--grid", type=int, default=3, help="slides a mosaic's side (default 3)")
    parser.add_argument(
        "--cells",
        type=int,
        nargs=2,
        default=(10, 24),
        metavar=("FEWEST", "MOST"),
        help="cells drawn on a slide (default 10 24)",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes drawing mosaics")
    args = parser.parse_args()
    for split, count, seed in (("train", args.train, 0), ("test", args.test, 1)):
        slides = SyntheticSlides(count * args.grid**2, seed=seed, cells=tuple(args.cells))
        folders = (args.out / "images" / split, args.out / "labels" / split)
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        write = partial(write_mosaic, *folders, slides, args.grid)
        with ProcessPoolExecutor(
            args.workers, initializer=torch.set_num_threads, initargs=(1,)
        ) as pool:
            list(pool.map(write, range(count), chunksize=4))
    (args.out / "classes.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    print(f"-> {args.out}")


def write_mosaic(
    images: Path, labels: Path, slides: SyntheticSlides, grid: int, index: int
) -> None:
    """Mosaic ``index`` of ``slides`` (its ``grid x grid`` slides from ``index * grid**2``
    on), as ``images/mNNNN.jpg`` and ``labels/mNNNN.txt``."""
    tiles = [slides[index * grid**2 + k] for k in range(grid**2)]
    mosaic, lines = mosaic_of(tiles, grid)
    pixels = (mosaic * 255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(pixels).save(images / f"m{index:04d}.jpg", quality=92)
    (labels / f"m{index:04d}.txt").write_text("\n".join(lines) + "\n")


def mosaic_of(tiles: list[tuple[Tensor, dict[str, Tensor]]], grid: int) -> tuple[Tensor, list[str]]:
    """The ``(3, H, W)`` mosaic of ``grid * grid`` slides, row by row, and its YOLO label
    lines (``class cx cy w h`` as fractions of the mosaic)."""
    height, width = IMAGE_SIZE
    mosaic = torch.zeros(3, height * grid, width * grid)
    scale = torch.tensor([width * grid, height * grid] * 2)
    lines = []
    for k, (image, target) in enumerate(tiles):
        row, col = divmod(k, grid)
        mosaic[:, row * height : (row + 1) * height, col * width : (col + 1) * width] = image
        offset = torch.tensor([col * width, row * height] * 2)
        boxes = ((target["boxes"] + offset) / scale).clamp(0, 1)
        lines += yolo_lines(boxes, target["labels"].tolist())
    return mosaic, lines


def yolo_lines(boxes: Tensor, labels: list[int]) -> list[str]:
    """The YOLO label lines (``class cx cy w h``) of ``(N, 4)`` boxes ``(x1, y1, x2, y2)``
    given as fractions of the image, for ``labels`` counted from 1 (0 is background)."""
    centres, sizes = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
    lines = []
    for label, centre, size in zip(labels, centres, sizes, strict=True):
        values = " ".join(f"{v:.7f}" for v in (*centre.tolist(), *size.tolist()))
        lines.append(f"{label - 1} {values}")
    return lines


if __name__ == "__main__":
    main()
