"""A copy of a YOLO-layout dataset whose objects are smaller against their images: each
image pasted at a random place on a larger canvas of its own background colour.

    python benchmarks/padded_images.py SRC OUT [--canvas 2560 1920] [--train N]
        [--test N] [--seed 0]

Real sets with objects far smaller than the image (a slide scanned whole, a drone's
view) are where a detector's input size and finest map matter most. The copy keeps
SRC's objects, their looks and their number an image, and only makes them smaller once
an image is resized: on a 2560 x 1920 canvas the generated slides' platelets (41 px on
their 640 x 480 slides) are 17 px at the presets' 800 px, against 69 px on the slides.
The canvas is the image's median colour with light noise (standard deviation 3); the
labels move with the image. ``--train`` / ``--test`` copy the first N images of those
splits (all by default); positions and noise are drawn from ``--seed`` over the
training split's images and then the test split's, so the same command writes the same
set. ``recipe_ab.md`` (round 51) trains on such a set.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from PIL import Image

from faster_rcnn.data.dataset import image_files_in

NOISE = 3.0
JPEG_QUALITY = 92


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--canvas", type=int, nargs=2, default=(2560, 1920), metavar=("W", "H"))
    parser.add_argument("--train", type=int, help="images of the train split (default all)")
    parser.add_argument("--test", type=int, help="images of the test split (default all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True)
    (args.out / "classes.txt").write_text((args.src / "classes.txt").read_text())
    places, noise = random.Random(args.seed), np.random.default_rng(args.seed)
    for split, count in (("train", args.train), ("test", args.test)):
        for folder in ("images", "labels"):
            (args.out / folder / split).mkdir(parents=True)
        for path in image_files_in(args.src / "images" / split)[:count]:
            labels = args.src / "labels" / split / f"{path.stem}.txt"
            pad_image(path, labels, args.out, split, tuple(args.canvas), places, noise)
    print(f"{args.out}: {args.src}'s images on {args.canvas[0]} x {args.canvas[1]} canvases")


def pad_image(
    image_file: Path,
    label_file: Path,
    out: Path,
    split: str,
    canvas_size: tuple[int, int],
    places: random.Random,
    noise: np.random.Generator,
) -> None:
    """Write ``image_file`` on a canvas to ``out/images/split`` (as JPEG) and its labels,
    moved and scaled to the canvas, to ``out/labels/split``."""
    image = np.asarray(Image.open(image_file).convert("RGB"))
    height, width, _ = image.shape
    canvas_width, canvas_height = canvas_size
    background = np.median(image.reshape(-1, 3), axis=0)
    canvas = background + noise.normal(0, NOISE, (canvas_height, canvas_width, 3))
    left = places.randrange(canvas_width - width + 1)
    top = places.randrange(canvas_height - height + 1)
    canvas[top : top + height, left : left + width] = image
    picture = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    picture.save(out / "images" / split / f"{image_file.stem}.jpg", quality=JPEG_QUALITY)
    moved = []
    for line in label_file.read_text().splitlines():
        if not line.strip():
            continue
        label, x, y, w, h = line.split()
        x = (float(x) * width + left) / canvas_width
        y = (float(y) * height + top) / canvas_height
        w, h = float(w) * width / canvas_width, float(h) * height / canvas_height
        moved.append(f"{label} {x:.7f} {y:.7f} {w:.7f} {h:.7f}\n")
    (out / "labels" / split / f"{image_file.stem}.txt").write_text("".join(moved))


if __name__ == "__main__":
    main()
