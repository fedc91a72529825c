"""Mosaics of a real dataset: crowded images of real objects, written in YOLO layout.

    python benchmarks/mosaic_dataset.py DATA OUT [--grid 3] [--columns N] [--tile 400]
        [--photos K] [--train 160] [--test 40]

Each mosaic tiles ``grid`` rows of ``columns`` images (``grid`` unless given) of one split
of DATA (any layout ``faster-rcnn`` opens), each scaled to fit a ``tile``-pixel square
(its aspect kept, centred on grey), drawn at random with no image twice in a mosaic: the
train split's mosaics from DATA's train split with seed 0, the test split's from its test
split with seed 1. Raccoon's photos (one large raccoon each, mostly) make real crowded
sets, where the generated slides are the only ones otherwise: 3 x 3 mosaics hold 9-12
raccoons (10, the median), 2 x 2 (``--grid 2 --tile 600``) 4-7 (4), 1 x 2 (``--grid 1
--columns 2 --tile 600``) 2-4 (2); ``recipe_ab.md``, rounds 33 and 34, trains on them.
With ``--photos K`` a mosaic holds only K images, in K tiles drawn at random, the others
left grey: ``--grid 2 --tile 600 --photos 1`` makes raccoons as small as the 2 x 2
mosaics' and as few as raccoon's own photos (round 35), to tell object size from the
crowd.
Boxes VOC marks difficult are written as plain boxes (raccoon has none).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from crowded_slides import yolo_lines
from faster_rcnn.data.dataset import DetectionDataset
from faster_rcnn.data.open import open_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the dataset whose images are tiled")
    parser.add_argument("out", type=Path)
    parser.add_argument("--grid", type=int, default=3, help="rows of images in a mosaic")
    parser.add_argument("--columns", type=int, help="columns of images (default: --grid)")
    parser.add_argument("--tile", type=int, default=400, help="a tile's side in pixels")
    parser.add_argument("--photos", type=int, help="images a mosaic (default: every tile)")
    parser.add_argument("--train", type=int, default=160, help="mosaics in the train split")
    parser.add_argument("--test", type=int, default=40, help="mosaics in the test split")
    args = parser.parse_args()
    shape = (args.grid, args.columns or args.grid)
    tiles = shape[0] * shape[1]
    photos = tiles if args.photos is None else args.photos
    if not 1 <= photos <= tiles:
        parser.error(f"--photos {photos}: a {shape[0]} x {shape[1]} mosaic holds 1 to {tiles}")
    names: tuple[str, ...] = ()
    for split, count, seed in (("train", args.train, 0), ("test", args.test, 1)):
        dataset = open_dataset(args.data, split)
        if len(dataset) < photos:
            parser.error(f"{args.data}: {split} has {len(dataset)} images, fewer than a mosaic")
        images, labels = args.out / "images" / split, args.out / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        names = names or dataset.class_names  # the train split's
        rng = random.Random(seed)
        for index in range(count):
            drawn = rng.sample(range(len(dataset)), photos)
            # Full mosaics fill their tiles in order (the mosaics of rounds 33-34).
            places = rng.sample(range(tiles), photos) if photos < tiles else range(tiles)
            mosaic, lines = mosaic_of(
                dataset, dict(zip(places, drawn, strict=True)), shape, args.tile
            )
            pixels = (mosaic * 255).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(pixels).save(images / f"m{index:04d}.jpg", quality=92)
            (labels / f"m{index:04d}.txt").write_text("".join(f"{line}\n" for line in lines))
    (args.out / "classes.txt").write_text("\n".join(names) + "\n")
    print(f"-> {args.out}")


def mosaic_of(
    dataset: DetectionDataset, placed: dict[int, int], shape: tuple[int, int], tile: int
) -> tuple[Tensor, list[str]]:
    """The ``(3, rows * tile, columns * tile)`` mosaic for ``shape = (rows, columns)`` with
    the item ``placed[k]`` in tile ``k`` (tiles counted row by row; the others grey), and
    its YOLO label lines (``class cx cy w h`` as fractions of the mosaic)."""
    rows, columns = shape
    mosaic = torch.full((3, rows * tile, columns * tile), 0.5)
    extent = torch.tensor([columns * tile, rows * tile] * 2)
    lines = []
    for k, index in placed.items():
        image, target = dataset[index]
        height, width = image.shape[-2:]
        scale = tile / max(height, width)
        size = (round(height * scale), round(width * scale))
        resized = F.interpolate(image[None], size, mode="bilinear", antialias=True)[0]
        row, col = divmod(k, columns)
        top = row * tile + (tile - size[0]) // 2
        left = col * tile + (tile - size[1]) // 2
        mosaic[:, top : top + size[0], left : left + size[1]] = resized.clamp(0, 1)
        boxes = (target["boxes"] * scale + torch.tensor([left, top] * 2)) / extent
        lines += yolo_lines(boxes, target["labels"].tolist())
    return mosaic, lines


if __name__ == "__main__":
    main()
