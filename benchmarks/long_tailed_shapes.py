"""A long-tailed set of twelve classes, in YOLO layout: round 56's set.

    python benchmarks/long_tailed_shapes.py OUT [--train 1000] [--test 500] [--zipf 1.5]

Each 384 x 512 image holds up to 6 of ``faster_rcnn.data.synthetic``'s shapes; a class is
a geometry (rectangle, ellipse, triangle) in a colour (red, green, blue, yellow), so
twelve classes that only shape and colour together tell apart. The ``k``-th most common
class is drawn for an object ``1 / k ** zipf`` times as often as the first, in both
splits, so at 1.5 the first is in about four fifths of the images and the last in about
one in thirty: a tail of classes in few images, as Pascal VOC's (people in two fifths of
its images, sheep in one in fifty) or LVIS's, where repeat-factor sampling
(``train --repeat-threshold``) is meant to help. Ranks interleave geometries and colours,
so that no one of them is rare by itself. The train split is drawn with seed 0, the test
split with seed 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

from crowded_slides import yolo_lines
from faster_rcnn.data.synthetic import ShapeClass, SyntheticShapes

IMAGE_SIZE = (384, 512)  # (height, width)
COLOURS = {
    "red": (0.85, 0.25, 0.2),
    "green": (0.2, 0.75, 0.3),
    "blue": (0.25, 0.35, 0.9),
    "yellow": (0.9, 0.8, 0.2),
}
GEOMETRIES = ("rectangle", "ellipse", "triangle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=1000, help="images in the train split")
    parser.add_argument("--test", type=int, default=500, help="images in the test split")
    parser.add_argument("--zipf", type=float, default=1.5, help="the tail's exponent (1.5)")
    args = parser.parse_args()
    classes = ranked_classes()
    weights = [1 / rank**args.zipf for rank in range(1, len(classes) + 1)]
    for split, count, seed in (("train", args.train, 0), ("test", args.test, 1)):
        data = SyntheticShapes(count, IMAGE_SIZE, seed=seed, classes=classes, class_weights=weights)
        write_split(args.out, split, data)
    (args.out / "classes.txt").write_text("\n".join(c.name for c in classes) + "\n")
    print(f"-> {args.out}")


def ranked_classes() -> list[ShapeClass]:
    """The twelve classes, most common first: rank ``k`` has geometry ``k % 3`` and
    colour ``(k // 3 + k % 3) % 4``, so every geometry and colour is at the top and in
    the tail."""
    colours = list(COLOURS)
    classes = []
    for k in range(len(GEOMETRIES) * len(colours)):
        geometry = GEOMETRIES[k % 3]
        colour = colours[(k // 3 + k % 3) % len(colours)]
        classes.append(ShapeClass(f"{colour}_{geometry}", geometry, COLOURS[colour]))
    return classes


def write_split(out: Path, split: str, data: SyntheticShapes) -> None:
    """Every image of ``data`` as ``out/images/split/sNNNNN.jpg`` and its labels as
    ``out/labels/split/sNNNNN.txt`` (an empty file for an image without objects)."""
    images, labels = out / "images" / split, out / "labels" / split
    for folder in (images, labels):
        folder.mkdir(parents=True, exist_ok=True)
    height, width = IMAGE_SIZE
    scale = torch.tensor([width, height] * 2)
    for index in range(len(data)):
        image, target = data[index]
        pixels = (image * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(images / f"s{index:05d}.jpg", quality=92)
        lines = yolo_lines(target["boxes"] / scale, target["labels"].tolist())
        (labels / f"s{index:05d}.txt").write_text("".join(f"{line}\n" for line in lines))


if __name__ == "__main__":
    main()
